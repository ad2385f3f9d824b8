/**
 * A farm of real agents on 127.0.0.1 for bench scripts (no mDNS, invites), and the small waits
 * and CLI runs they share.
 *
 *   const farms = new LoopbackFarms()
 *   const f = await farms.start(dir, 3, { prefix: 'f3', args: ['--cost-per-hour', '1'] })
 *   await f.farm.submit(…)                // ui/sdk/farm.ts
 *   await farms.stopAll()                 // every agent this started, with its ffmpeg children
 *
 * Agents start one after another, each after the previous one's benchmark: agents that
 * benchmark at once on one machine share its cores and get figures a factor of 4 apart. Each
 * runs in its own process group, so stopping it stops its ffmpeg children too.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { RenderFarm } from '../ui/sdk/farm.ts'

export const BIN = fileURLToPath(new URL('../bin/renderswarm.js', import.meta.url))

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
export const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2 }

/** Runs the CLI (`renderswarm ARGS`), killed after `timeoutMs`. */
export function cli (args: string[], timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''; let stderr = ''
    const t = setTimeout(() => { c.kill('SIGKILL') }, timeoutMs)
    c.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    c.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    c.on('close', (code) => { clearTimeout(t); resolve({ code: code ?? 1, stdout, stderr }) })
  })
}

/** Polls `fn` every 250 ms until it gives a value (errors count as not yet); throws after `timeoutMs`. */
export async function until<T> (what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`${what} took over ${timeoutMs / 1000} s`)
    await sleep(250)
  }
}

export interface StartOptions {
  /** Agent names are PREFIX-1, PREFIX-2, … */
  prefix: string
  /** More `renderswarm agent` flags. */
  args?: string[]
  /** Called with each agent's state dir before it starts (e.g. to seed its benchmark). */
  beforeStart?: (stateDir: string, index: number) => void
  /** Longest wait for the whole farm to be ready, ms. Default 180 s. */
  readyMs?: number
}

export interface LoopbackFarm { farm: RenderFarm; first: string; names: string[]; dir: string }

type Nodes = { nodes: Array<{ state: string; info?: { bench?: Record<string, number> } }> }

export class LoopbackFarms {
  /** Every agent process started, for CPU accounting and for stopAll. */
  readonly children: ChildProcess[] = []

  /** `size` agents in `dir` (one state dir each); resolves when all are alive with benchmarks and one coordinates. */
  async start (dir: string, size: number, o: StartOptions): Promise<LoopbackFarm> {
    await mkdir(dir, { recursive: true })
    const names = Array.from({ length: size }, (_, i) => `${o.prefix}-${i + 1}`)
    const start = (name: string, index: number): void => {
      const stateDir = path.join(dir, name)
      o.beforeStart?.(stateDir, index)
      const log = createWriteStream(path.join(dir, `${name}.log`), { flags: 'a' })
      log.on('error', () => { /* the log is a convenience; a failed write must not end the bench */ })
      const c = spawn(process.execPath, [BIN, 'agent', '--state-dir', stateDir, '--name', name, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--api-port', '0', ...(o.args ?? [])],
        { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
      c.stderr!.pipe(log)
      this.children.push(c)
    }
    const first = path.join(dir, names[0]!)
    start(names[0]!, 0)
    await until(`${names[0]} to start`, 90_000, async () => existsSync(path.join(first, 'api.json')) ? true : undefined)
    const farm = await until(`the API of ${names[0]}`, 10_000, async () => await RenderFarm.connect(first))
    const benchmarked = async (n: number): Promise<true | undefined> => {
      const { nodes } = await farm.client.get<Nodes>('/v1/nodes')
      return nodes.filter((x) => x.state === 'alive' && (x.info?.bench?.ffv1 ?? 0) > 0).length >= n ? true : undefined
    }
    await until(`${names[0]}'s benchmark`, 120_000, async () => await benchmarked(1))
    for (const [i, name] of names.slice(1).entries()) {
      const inv = await cli(['farm', 'invite', '--ttl', '10m', '--state-dir', first])
      if (inv.code !== 0) throw new Error(`farm invite: ${inv.stderr.trim()}`)
      const join = await cli(['farm', 'join', inv.stdout.trim(), '--state-dir', path.join(dir, name)])
      if (join.code !== 0) throw new Error(`farm join: ${join.stderr.trim()}`)
      start(name, i + 1)
      await until(`${name}'s benchmark`, 120_000, async () => await benchmarked(i + 2))
    }
    await until(`${size} member(s) with benchmarks and a coordinator`, o.readyMs ?? 180_000, async () => {
      const [{ nodes }, s] = await Promise.all([
        farm.client.get<Nodes>('/v1/nodes'),
        farm.client.get<{ rendering?: { coordinator?: { leader: string | null } } }>('/v1/status')
      ])
      return nodes.filter((n) => n.state === 'alive' && (n.info?.bench?.ffv1 ?? 0) > 0).length === size && s.rendering?.coordinator?.leader != null ? true : undefined
    })
    return { farm, first, names, dir }
  }

  /** SIGTERM to each agent's process group, SIGKILL after 8 s. */
  async stopAll (): Promise<void> {
    const alive = this.children.filter((c) => c.exitCode === null && c.signalCode === null)
    for (const c of alive) { try { process.kill(-c.pid!, 'SIGTERM') } catch { /* gone */ } }
    await Promise.all(alive.map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) { resolve(); return }
      const t = setTimeout(() => { try { process.kill(-c.pid!, 'SIGKILL') } catch { /* gone */ } resolve() }, 8000)
      c.once('exit', () => { clearTimeout(t); resolve() })
    })))
  }
}
