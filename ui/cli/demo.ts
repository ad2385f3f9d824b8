/**
 * `renderswarm demo` (what `npm start` runs): a farm of three agents on this machine, each
 * with its own state dir and ports, renders the sample timeline with live progress, then
 * stays up until Ctrl-C so you can try `renderswarm nodes`, `jobs`, `submit` against it.
 *
 *   renderswarm demo [DIR]          # DIR default ./renderswarm-demo
 *   renderswarm demo --local [DIR]  # the one-machine render instead (no agents)
 *
 * Everything stays on loopback (127.0.0.1): the agents find each other through the first
 * one's address (an invite carries it, and members exchange addresses), not mDNS, because a
 * loopback interface usually has no multicast. On a LAN, agents use mDNS (README).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { locateFfmpeg } from '../../agent/ffmpeg.ts'
import { writeSample } from '../../agent/sample.ts'
import { RenderFarm } from '../sdk/farm.ts'
import { clock, farmBar, farmBarDone, ProgressBar } from './progress.ts'

const BIN = fileURLToPath(new URL('../../bin/renderswarm.js', import.meta.url))
const NAMES = ['demo-one', 'demo-two', 'demo-three']

function runCli (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''; let stderr = ''
    c.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    c.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    c.on('close', (code) => { resolve({ code: code ?? 1, stdout, stderr }) })
  })
}

async function until<T> (what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`the demo farm did not come up: ${what} took over ${timeoutMs / 1000} s (agent logs are in the demo folder)`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

export async function farmDemo (dirArg: string | undefined): Promise<number> {
  const dir = path.resolve(dirArg ?? 'renderswarm-demo')
  process.stderr.write(`writing the sample project into ${dir} …\n`)
  const timeline = await writeSample(dir, await locateFfmpeg())
  const farmDir = path.join(dir, 'farm')
  const children: ChildProcess[] = []
  const stopAll = async (): Promise<void> => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM')
    await Promise.all(children.map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null) { resolve(); return }
      const t = setTimeout(() => { c.kill('SIGKILL'); resolve() }, 5000)
      c.once('exit', () => { clearTimeout(t); resolve() })
    })))
  }
  let interrupted = false
  const onSignal = (): void => { interrupted = true }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    const { createWriteStream } = await import('node:fs')
    const { mkdir } = await import('node:fs/promises')
    await mkdir(farmDir, { recursive: true })
    const start = (name: string): void => {
      const log = createWriteStream(path.join(farmDir, `${name}.log`), { flags: 'a' })
      const c = spawn(process.execPath, [BIN, 'agent', '--state-dir', path.join(farmDir, name), '--name', name, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--api-port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] })
      c.stderr!.pipe(log)
      children.push(c)
    }
    // The first agent holds the farm key; the other two join it with single-use invites.
    const first = NAMES[0]!
    start(first)
    await until(`${first} to start`, 90_000, async () => existsSync(path.join(farmDir, first, 'api.json')) ? true : undefined)
    for (const name of NAMES.slice(1)) {
      if (!existsSync(path.join(farmDir, name, 'state.db'))) {
        const inv = await runCli(['farm', 'invite', '--ttl', '10m', '--state-dir', path.join(farmDir, first)])
        if (inv.code !== 0) throw new Error(`farm invite: ${inv.stderr.trim()}`)
        const join = await runCli(['farm', 'join', inv.stdout.trim(), '--state-dir', path.join(farmDir, name)])
        if (join.code !== 0) throw new Error(`farm join: ${join.stderr.trim()}`)
      }
      start(name)
    }
    const farm = await until('the API of the first agent', 10_000, async () => await RenderFarm.connect(path.join(farmDir, first)))
    await until('three members and a coordinator', 120_000, async () => {
      const s = await farm.client.get<{ nodes: { active: number }; rendering?: { coordinator?: { leader: string | null } } }>('/v1/status')
      return s.nodes.active === 3 && s.rendering?.coordinator?.leader != null ? true : undefined
    })
    process.stderr.write(`farm of ${NAMES.length} agents up on 127.0.0.1 (logs in ${farmDir}); submitting the sample …\n`)
    const out = path.join(dir, 'sample-farm.mkv')
    await rm(out, { force: true })
    const job = await farm.submit({ timeline, output: out, preset: 'ffv1', name: 'renderswarm demo' })
    process.stderr.write(`job ${job.jobId}: ${job.chunks.length} chunks, ${job.frames} frames, estimate ${clock(job.estimate?.seconds.expected ?? 0)}\n`)
    const bar = new ProgressBar(process.stderr)
    const started = Date.now()
    const final = await farm.wait(job.jobId, {
      onProgress: (p) => { bar.update(farmBar(p, started)) }
    })
    if (final.status === 'done') bar.update(farmBarDone(final))
    bar.done()
    if (final.status !== 'done') throw new Error(`the demo job ${final.status}: ${final.error ?? ''}`)
    const names = new Map((await farm.client.get<{ nodes: Array<{ peerId: string; name: string }> }>('/v1/nodes')).nodes.map((n) => [n.peerId, n.name]))
    process.stdout.write(`rendered by ${[...new Set(final.chunks.map((c) => names.get(c.node ?? '') ?? c.node))].join(', ')} in ${((Date.now() - started) / 1000).toFixed(1)} s\n→ ${final.output ?? out}\n`)
    process.stdout.write(`\nthe farm keeps running; in another terminal try:\n  renderswarm nodes --state-dir ${path.join(farmDir, first)}\n  renderswarm submit ${timeline} -o ${path.join(dir, 'again.mkv')} --state-dir ${path.join(farmDir, NAMES[1]!)}\n  API and dashboard: ${farm.client.url} (token in ${path.join(farmDir, first, 'api.json')})\nCtrl-C stops the farm.\n`)
    if (process.env.RENDERSWARM_DEMO_EXIT === '1') return 0
    await new Promise<void>((resolve) => {
      if (interrupted) { resolve(); return }
      process.once('SIGINT', () => { resolve() })
      process.once('SIGTERM', () => { resolve() })
    })
    return 0
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.stderr.write('stopping the demo farm …\n')
    await stopAll()
  }
}
