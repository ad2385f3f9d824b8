/**
 * Real agent processes on test hosts (network namespaces from netns.ts) and the CLI run
 * against them. Every process started here is recorded, so `killAll()` ends exactly those.
 *
 *   const a = startAgent(host, dir, 'alpha', ['--slots', '1'])
 *   await waitFor(() => existsSync(path.join(a.stateDir, 'api.json')), 20_000, 'alpha')
 *   const r = await cli(host.ns, ['nodes', '--json', '--state-dir', a.stateDir])
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { copyFile, mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { locateFfmpeg, type FfmpegTools } from '../../agent/ffmpeg.ts'
import { bundledFontPath } from '../../agent/sample.ts'
import { cleanupTmp, frameHashes, run, tmpDir } from './media.ts'
import { createLan, destroyLan, type Lan } from './netns.ts'
import { waitFor } from './wait.ts'

export const BIN = fileURLToPath(new URL('../../bin/renderswarm.js', import.meta.url))

export interface AgentProc { child: ChildProcess; log: string[]; stateDir: string; name: string }
const started: AgentProc[] = []

export function cli (ns: string, args: string[], timeoutMs = 180_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs })
    let stdout = ''; let stderr = ''
    c.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    c.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    c.on('close', (code) => { resolve({ code: code ?? 1, stdout, stderr }) })
  })
}

/** `env` adds to this process's environment (e.g. RENDERSWARM_FAULTS with RENDERSWARM_TSX=1: fault hooks exist only in the sources). */
export function startAgent (host: { ns: string; ip: string }, dir: string, name: string, extra: string[] = [], env: Record<string, string> = {}): AgentProc {
  const stateDir = path.join(dir, name)
  const log: string[] = []
  const child = spawn('ip', ['netns', 'exec', host.ns, process.execPath, BIN, 'agent', '--state-dir', stateDir, '--name', name,
    '--listen', `/ip4/${host.ip}/tcp/0`, '--mdns-interface', host.ip, ...extra], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } })
  child.stderr!.on('data', (d: Buffer) => { for (const l of d.toString().split('\n')) if (l !== '') log.push(`${Date.now()} ${l}`) })
  const a = { child, log, stateDir, name }
  started.push(a)
  return a
}

/** SIGKILLs every agent this module started that is still running (by its PID), and forgets them. */
export async function killAll (): Promise<void> {
  for (const a of started.splice(0)) if (a.child.exitCode === null && a.child.pid !== undefined) a.child.kill('SIGKILL')
  await new Promise((r) => setTimeout(r, 300))
}

export async function statusOf<T = Record<string, unknown>> (ns: string, stateDir: string, what = 'status'): Promise<T> {
  const r = await cli(ns, [what, '--json', '--state-dir', stateDir])
  if (r.code !== 0) throw new Error(`${what} failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as T
}

export interface TestFarm { workers: AgentProc[]; editor: AgentProc; hosts: Array<{ ns: string; ip: string }>; peerOf: Map<string, string> }

/**
 * Three workers (alpha holds the farm key; beta and gamma join by invite) and an editor's
 * workstation that submits but never renders (--slots 0), one per host; resolves once all four
 * see each other and every worker has its benchmark.
 */
export async function startFarm (hosts: Array<{ ns: string; ip: string }>, dir: string, extra: string[] = []): Promise<TestFarm> {
  const [h1, h2, h3, h4] = hosts as [typeof hosts[0], typeof hosts[0], typeof hosts[0], typeof hosts[0]]
  const alpha = startAgent(h1, dir, 'alpha', extra)
  await waitFor(() => existsSync(path.join(alpha.stateDir, 'api.json')) ? true : undefined, 20_000, 'alpha to start')
  for (const name of ['beta', 'gamma', 'editor']) {
    const inv = await cli(h1.ns, ['farm', 'invite', '--ttl', '10m', '--state-dir', alpha.stateDir])
    if (inv.code !== 0) throw new Error(`farm invite: ${inv.stderr}`)
    const join = await cli(h1.ns, ['farm', 'join', inv.stdout.trim(), '--state-dir', path.join(dir, name)])
    if (join.code !== 0) throw new Error(`farm join: ${join.stderr}`)
  }
  const workers = [alpha, startAgent(h2, dir, 'beta', extra), startAgent(h3, dir, 'gamma', extra)]
  const editor = startAgent(h4, dir, 'editor', ['--slots', '0', ...extra])
  const peerOf = new Map<string, string>()
  await waitFor(async () => {
    const r = await cli(h4.ns, ['nodes', '--json', '--state-dir', editor.stateDir])
    if (r.code !== 0) return undefined
    const nodes = (JSON.parse(r.stdout) as { nodes: Array<{ name: string; peerId: string; state: string; info?: { bench?: Record<string, number> } }> }).nodes
    for (const n of nodes) peerOf.set(n.name, n.peerId)
    return nodes.filter((n) => n.state === 'alive').length === 4 && nodes.filter((n) => n.name !== 'editor').every((n) => (n.info?.bench?.ffv1 ?? 0) > 0) ? true : undefined
  }, 240_000, 'four members with benchmarks', 500)
  return { workers, editor, hosts: [h1, h2, h3, h4], peerOf }
}

export interface FarmChunk { id: string; status: string; node?: string; attempts: number; framesDone: number; frameRange: [number, number]; errors?: string[]; startedAt?: number; endedAt?: number }
export interface FarmJob { jobId: string; status: string; output?: string; frames: number; chunks: FarmChunk[]; error?: string; note?: string; completedAt?: string }
/** Where a CLI command runs: an agent's host namespace and its state dir. */
export interface Via { ns: string; stateDir: string }

export function viaOf (farm: TestFarm, a: AgentProc): Via {
  const i = farm.workers.indexOf(a)
  return { ns: farm.hosts[i === -1 ? 3 : i]!.ns, stateDir: a.stateDir }
}

/** The job as `jobs --json` on that agent shows it (its replica of the record), or undefined. */
export async function jobOf (via: Via, jobId: string): Promise<FarmJob | undefined> {
  const r = await cli(via.ns, ['jobs', '--json', '--state-dir', via.stateDir])
  if (r.code !== 0) return undefined
  return (JSON.parse(r.stdout) as { jobs: FarmJob[] }).jobs.find((j) => j.jobId === jobId)
}

export async function submitDetached (via: Via, timeline: string, out: string, extra: string[] = []): Promise<string> {
  const r = await cli(via.ns, ['submit', timeline, '-o', out, '--detach', '--json', '--state-dir', via.stateDir, ...extra])
  if (r.code !== 0) throw new Error(`submit failed: ${r.stderr}`)
  return (JSON.parse(r.stdout) as FarmJob).jobId
}

/** Waits until the job is done, failed or cancelled. */
export async function jobEnd (via: Via, jobId: string, timeoutMs: number): Promise<FarmJob> {
  return await waitFor(async () => { const j = await jobOf(via, jobId); return j !== undefined && ['done', 'failed', 'cancelled'].includes(j.status) ? j : undefined }, timeoutMs, `job ${jobId} to finish`, 500)
}

/** Agents' stderr lines are stamped with Date.now() as they arrive. */
export const logTime = (line: string): number => Number(line.split(' ')[0])

/** "chunk <id> [a, b) rendered in" lines in the agents' logs, by chunk id. */
export function renders (agents: AgentProc[]): Map<string, number[]> {
  const out = new Map<string, number[]>()
  for (const a of agents) {
    for (const l of a.log) {
      const m = / chunk (\S+) \[\d+, \d+\) rendered in /.exec(l)
      if (m !== null) out.set(m[1]!, [...(out.get(m[1]!) ?? []), logTime(l)])
    }
  }
  return out
}

/** Waits until all four members are alive again (after a restart). */
export async function allAlive (farm: TestFarm, via: Via = viaOf(farm, farm.workers[0]!)): Promise<void> {
  // An agent that was just restarted may not answer yet: that is "not yet", not a failure.
  await waitFor(async () => (await statusOf<{ nodes: { active: number } }>(via.ns, via.stateDir).catch(() => undefined))?.nodes.active === 4 ? true : undefined, 60_000, 'all four members alive', 500)
}

/** The failure tests' timeline (720p colour and text, 25 fps) as `dir`/timeline.json, its font beside it. */
export async function writeColourText (dir: string, frames: number, text: string): Promise<string> {
  await copyFile(bundledFontPath(), path.join(dir, 'font.ttf'))
  const timeline = path.join(dir, 'timeline.json')
  await writeFile(timeline, JSON.stringify({
    schema: 'farm.timeline/1', fps: { num: 25, den: 1 }, width: 1280, height: 720, duration: frames, assets: { font: { path: 'font.ttf' } },
    video: [
      { clips: [{ id: 'bg', type: 'color', color: '#304050', start: 0, length: frames }] },
      { clips: [{ id: 't', type: 'text', text, font: 'font', size: 64, color: '#FFFFFF', x: 80, y: 80, start: 0, length: frames }] }
    ]
  }))
  return timeline
}

/**
 * The failure tests' timeline (720p colour and text, 25 fps) in `dir`, and the frame hashes of
 * its one-machine render (`render --chunks 1`) to compare every farm output with.
 */
export async function farmTimeline (dir: string, tools: FfmpegTools, frames: number, text: string): Promise<{ timeline: string; reference: string[] }> {
  const timeline = await writeColourText(dir, frames, text)
  const ref = path.join(dir, 'reference.mkv')
  await run(process.execPath, [BIN, 'render', timeline, '-o', ref, '--chunks', '1'], { timeout: 300_000 })
  const reference = await frameHashes(tools.ffmpeg, ref)
  if (reference.length !== frames) throw new Error(`the reference render has ${reference.length} frames, not ${frames}`)
  return { timeline, reference }
}

/**
 * farmTimeline sized to about `chunks` chunks on this farm today. The coordinator sizes chunks from
 * the workers' speed on the timeline (probe × benchmark), which this shared machine's load moves
 * several-fold: a fixed frame count gave 3 chunks on one run and 12 on another. This asks the
 * farm's own estimate how many chunks a long probe timeline gets and scales, within [min, max] frames.
 */
export async function sizedFarmTimeline (net: NetnsFarm, chunks: number, min: number, max: number, text: string): Promise<{ timeline: string; reference: string[]; frames: number }> {
  const { dir, tools, farm } = net
  const sizing = path.join(dir, 'sizing')
  await mkdir(sizing, { recursive: true })
  const probeFrames = 9000
  const probe = await writeColourText(sizing, probeFrames, text)
  const t0 = Date.now()
  const est = await cli(farm.hosts[3]!.ns, ['estimate', probe, '--json', '--state-dir', farm.editor.stateDir])
  if (est.code !== 0) throw new Error(`estimate failed: ${est.stderr}`)
  const { chunks: got, framesPerSecond } = JSON.parse(est.stdout) as { chunks: number; framesPerSecond: number }
  const frames = Math.min(max, Math.max(min, Math.round(chunks * probeFrames / got)))
  const t1 = Date.now()
  const made = await farmTimeline(dir, tools, frames, text)
  console.log(`a ${probeFrames}-frame timeline is cut into ${got} chunks here today (${framesPerSecond} frames/s in all): the test's job has ${frames} frames (about ${Math.max(1, Math.round(frames * got / probeFrames))} chunks); estimate ${((t1 - t0) / 1000).toFixed(1)} s, reference render ${((Date.now() - t1) / 1000).toFixed(1)} s`)
  return { ...made, frames }
}

/** A test's own farm: startFarm on a fresh LAN of four namespaces, a temp dir, ffmpeg located. */
export interface NetnsFarm { dir: string; tools: FfmpegTools; farm: TestFarm; lan: Lan; /** Log lines of each member's earlier runs (restartMember). */ earlier?: Record<string, string[]> }

/** `prefix` names the namespaces, `octet` the 10.octet.x.0/24 subnet: each test file picks its own. */
export async function startNetnsFarm (name: string, prefix: string, octet: number, extra: string[]): Promise<NetnsFarm> {
  const dir = await tmpDir(name)
  const tools = await locateFfmpeg()
  const lan = createLan(`${prefix}${process.pid % 100000}`, 4, `10.${octet}.${process.pid % 200}`)
  try {
    const t0 = Date.now()
    const farm = await startFarm(lan.hosts, dir, extra)
    console.log(`${name}: four agents up, members with benchmarks, in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    return { dir, tools, lan, farm }
  } catch (err) {
    await killAll()
    destroyLan(lan)
    throw err
  }
}

/** Ends every agent, removes the namespaces and temp dirs; with RS_DEBUG_NETNS=1 each agent's log is kept as /tmp/rs-debug-<tag>-<name>.log. */
export async function stopNetnsFarm (f: NetnsFarm | undefined, tag: string): Promise<void> {
  if (f !== undefined && process.env.RS_DEBUG_NETNS === '1') for (const a of [...f.farm.workers, f.farm.editor]) await writeFile(`/tmp/rs-debug-${tag}-${a.name}.log`, [...(f.earlier?.[a.name] ?? []), ...a.log].join('\n'))
  // Links back up in case a test stopped mid-cut (destroyLan removes them anyway).
  if (f !== undefined) for (const h of f.lan.hosts) await run('ip', ['netns', 'exec', h.ns, 'ip', 'link', 'set', 'eth0', 'up']).catch(() => {})
  await killAll()
  if (f !== undefined) destroyLan(f.lan)
  await cleanupTmp()
}

/** Starts a member again on its host with the same state dir (same identity and membership); the editor keeps --slots 0. */
export function restartMember (f: NetnsFarm, name: string, extra: string[], env: Record<string, string> = {}): AgentProc {
  const i = name === 'editor' ? 3 : f.farm.workers.findIndex((w) => w.name === name)
  const before = name === 'editor' ? f.farm.editor : f.farm.workers[i]!
  f.earlier ??= {}
  f.earlier[name] = [...(f.earlier[name] ?? []), ...before.log, `${Date.now()} --- ${name} restarted ---`]
  const a = startAgent(f.farm.hosts[i]!, f.dir, name, name === 'editor' ? ['--slots', '0', ...extra] : extra, env)
  if (name === 'editor') f.farm.editor = a
  else f.farm.workers[i] = a
  return a
}

/** One agent on 127.0.0.1 with no mDNS, its own farm and coordinator; its stderr lines in `log`. */
export interface SoloAgent { child: ChildProcess; log: string[]; api: { url: string; token: string }; stop: () => Promise<void> }

/** Starts it (name 'solo') and waits until it coordinates, so it renders what it is given. */
export async function startSoloAgent (stateDir: string, extra: string[] = [], env: Record<string, string> = {}): Promise<SoloAgent> {
  const child = spawn(process.execPath, [BIN, 'agent', '--state-dir', stateDir, '--name', 'solo', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', ...extra],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } })
  const log: string[] = []
  child.stderr!.on('data', (d: Buffer) => { for (const l of d.toString().split('\n')) if (l !== '') log.push(l) })
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.pid === undefined) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))])
    if (child.exitCode === null) child.kill('SIGKILL')
  }
  try {
    const file = path.join(stateDir, 'api.json')
    const api = await waitFor(() => {
      if (!existsSync(file)) return undefined
      try { return JSON.parse(readFileSync(file, 'utf8')) as { url: string; token: string } } catch { return undefined } // being written
    }, 30_000, 'the agent to start')
    // Rendering starts once ffmpeg is probed and the agent has elected itself coordinator.
    await waitFor(async () => {
      const res = await fetch(`${api.url}/v1/status`, { headers: { authorization: `Bearer ${api.token}` } })
      return res.ok && (await res.json() as { rendering?: { coordinator: { self: boolean } } }).rendering?.coordinator.self === true ? true : undefined
    }, 60_000, 'the agent to coordinate', 200)
    return { child, log, api, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
