/**
 * Farm figures (issue C): the same timeline rendered (a) by plain ffmpeg pinned to one core,
 * (b) by a one-agent farm pinned to one core, (c) by two agents in two network namespaces pinned
 * to one core each. Needs root, iproute2, taskset and at least 2 cores.
 *
 *   node bin/run-ts.js bench/farm.ts [--runs 3] [--seconds 30] [--quiet-wait 300] [--max-other 0.1]
 *       [--attempts 4] [--logs DIR] [--quick]
 *   npm run bench:farm
 *
 * Prints overhead (b/a, target ≤ 1.05) and speed-up (a/c, target ≥ 1.8) from the medians, plus
 * dispatch latency (lease accepted → ffmpeg started, the workers' `rendering.worker.dispatchMs`,
 * p50/p99) and segment transfer MB/s (worker → owner over the network, the sender's
 * `rendering.segments`). Variants are interleaved within each run (a, b, c, a, b, c, …). Each farm
 * runs alone: its agents are started for its variant (state dirs kept between runs, so the
 * background benchmark runs once), it renders an untimed 3 s warm-up job first (fresh
 * processes, cached assets), then the timed job, and its agents are stopped. (a) is the
 * video-only argv of compileChunk over the whole timeline; (b) and (c) are whole jobs (video
 * chunks, audio, join, validation) timed from just before POST /v1/jobs to the job's 'done'
 * event, by a helper that this script starts inside the owner's namespace (the local API
 * listens on 127.0.0.1 there). On a shared machine other people's work lands in the timings, so
 * before each timed render it waits (up to --quiet-wait s) until the machine is idle (≤ 0.25 busy
 * cores over 1 s), and after it counts the CPU that processes other than its own used meanwhile
 * (/proc/stat minus /proc/PID/stat of this script, its agents and their reaped children): a
 * render during which others used more than --max-other cores is done again, up to --attempts
 * times (the least disturbed attempt is kept and counted as disturbed).
 * --quick (for `npm run bench`): --runs 1 --seconds 10 --quiet-wait 30 --attempts 1 unless given.
 * Exits 0 whether the targets are met or not; non-zero on errors. The last stdout line is the BENCH
 * line (bench/result.ts).
 * Every wait is bounded; Ctrl-C stops what it started and removes the namespaces and files.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream, existsSync, readFileSync, rmSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { printBench } from './result.ts'

const { values: opt } = parseArgs({
  options: {
    runs: { type: 'string' }, seconds: { type: 'string' }, logs: { type: 'string' }, 'quiet-wait': { type: 'string' },
    'max-other': { type: 'string', default: '0.1' }, attempts: { type: 'string' }, quick: { type: 'boolean', default: false },
    // Internal: this script run as a helper inside a namespace (see helperMain).
    role: { type: 'string' }, 'state-dir': { type: 'string' }, nodes: { type: 'string' }, timeline: { type: 'string' }, out: { type: 'string' }, 'timeout-s': { type: 'string' }, pids: { type: 'string' }
  },
  strict: true
})

const REPO = fileURLToPath(new URL('..', import.meta.url))
const BIN = path.join(REPO, 'bin', 'renderswarm.js')
const RUN_TS = path.join(REPO, 'bin', 'run-ts.js')
const SELF = fileURLToPath(import.meta.url)
const TARGET_OVERHEAD = 1.05
const TARGET_SPEEDUP = 1.8
const FPS = 30
const W = 1280
const H = 720
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2 }
/** Nearest-rank percentile. */
const pct = (xs: number[], p: number): number => { const s = [...xs].sort((a, b) => a - b); return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil(p / 100 * s.length) - 1)]! }
const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d

// ---------------------------------------------------------------- helper (inside a namespace)

/** --role ready|submit|status: talks to one agent's local API and prints one JSON line. */
async function helperMain (role: string): Promise<void> {
  const { LocalClient } = await import('../ui/sdk/client.ts')
  const dir = opt['state-dir']!
  const deadline = Date.now() + Number(opt['timeout-s'] ?? 60) * 1000
  const api = await LocalClient.forStateDir(dir)
  if (role === 'status') { console.log(JSON.stringify(await api.get('/v1/status'))); return }
  if (role === 'ready') {
    // Every member alive with a benchmark figure, and a coordinator elected.
    const want = Number(opt.nodes ?? 1)
    for (;;) {
      const [{ nodes }, status] = await Promise.all([api.get<{ nodes: Array<{ name: string; peerId: string; state: string; info?: { bench?: Record<string, number> } }> }>('/v1/nodes'), api.get<{ rendering?: { coordinator?: { leader: string | null } } }>('/v1/status')])
      const alive = nodes.filter((n) => n.state === 'alive')
      const leader = status.rendering?.coordinator?.leader ?? null
      if (alive.length >= want && alive.every((n) => (n.info?.bench?.ffv1 ?? 0) > 0) && leader !== null) {
        console.log(JSON.stringify({ leader, nodes: alive.map((n) => ({ name: n.name, peerId: n.peerId, ffv1Fps: n.info!.bench!.ffv1 })) }))
        return
      }
      if (Date.now() > deadline) throw new Error(`not ready: ${alive.length}/${want} alive, benchmarks ${alive.map((n) => `${n.name}=${n.info?.bench?.ffv1 ?? '-'}`).join(' ')}, leader ${leader ?? 'none'}`)
      await sleep(250)
    }
  }
  if (role !== 'submit') throw new Error(`unknown role ${role}`)
  // Subscribe first (the 'hello' event says we are), so the job's final event cannot be missed.
  const abort = new AbortController()
  let jobId: string | undefined
  let hello!: () => void
  let finished!: () => void
  const helloP = new Promise<void>((resolve) => { hello = resolve })
  const finishedP = new Promise<void>((resolve) => { finished = resolve })
  void api.events((type, data) => {
    const d = data as { jobId?: string; status?: string }
    if (type === 'hello') hello()
    else if (type === 'job' && d.jobId !== undefined && d.jobId === jobId && ['done', 'failed', 'cancelled'].includes(d.status ?? '')) finished()
  }, abort.signal).catch(() => {})
  await Promise.race([helloP, sleep(10_000).then(() => { throw new Error('no event stream from the agent') })])
  // The machine check and the CPU count happen here, around exactly the timed part.
  await quiet(Number(opt['quiet-wait']))
  const m0 = meter((opt.pids ?? '').split(',').filter((x) => x !== '').map(Number))
  const t0Ms = Date.now()
  const p0 = performance.now()
  const { job } = await api.post<{ job: { jobId: string } }>('/v1/jobs', { timeline: opt.timeline, output: opt.out, preset: 'ffv1' }, 60_000)
  jobId = job.jobId
  // The event ends the wait; a slow poll is only a safety net.
  for (;;) {
    const polled = await Promise.race([finishedP.then(() => true), sleep(2000).then(() => false)])
    if (polled) break
    const j = await api.get<{ job: { status: string } }>(`/v1/jobs/${jobId}`)
    if (['done', 'failed', 'cancelled'].includes(j.job.status)) break
    if (Date.now() > deadline) throw new Error(`job ${jobId} did not finish within ${opt['timeout-s']} s`)
  }
  const seconds = (performance.now() - p0) / 1000
  const t1Ms = Date.now()
  const use = usage(m0)
  abort.abort()
  const final = await api.get<{ job: unknown }>(`/v1/jobs/${jobId}`)
  console.log(JSON.stringify({ t0Ms, t1Ms, seconds, ...use, quietMissed: quietMisses > 0, job: final.job }))
}

// ---------------------------------------------------------------- processes

const spawned = new Set<ChildProcess>()

/** Runs a command to its end (bounded); resolves stdout, rejects with stderr's tail. */
function runTo (cmd: string, args: string[], timeoutMs: number, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    spawned.add(c)
    let out = ''
    let err = ''
    c.stdout!.on('data', (d: Buffer) => { out += d.toString() })
    c.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-4000) })
    const timer = setTimeout(() => { c.kill('SIGKILL') }, timeoutMs)
    c.on('error', (e) => { clearTimeout(timer); spawned.delete(c); reject(new Error(`${what}: ${e.message}`)) })
    c.on('close', (code, signal) => {
      clearTimeout(timer)
      spawned.delete(c)
      if (code === 0) resolve(out)
      else reject(new Error(`${what}: ${signal === 'SIGKILL' ? `no answer within ${timeoutMs / 1000} s` : `exit ${code ?? signal}`}: ${err.trim().split('\n').slice(-3).join(' | ')}`))
    })
  })
}

async function helper<T> (ns: string, role: string, args: string[], timeoutS: number): Promise<T> {
  const out = await runTo('ip', ['netns', 'exec', ns, process.execPath, RUN_TS, SELF, '--role', role, '--timeout-s', String(timeoutS), ...args], (timeoutS + 30) * 1000, `${role} helper in ${ns}`)
  return JSON.parse(out.trim().split('\n').at(-1)!) as T
}

interface Host { ns: string; ip: string }
interface AgentProc { name: string; child: ChildProcess; stateDir: string; host: Host; lines: string[] }
const agents = new Set<AgentProc>()

/** An agent pinned to `core` in `host`'s namespace, in a process group of its own (so its ffmpeg children can be stopped with it). */
async function startAgent (name: string, core: number, host: Host, stateDir: string, extra: string[]): Promise<AgentProc> {
  await rm(path.join(stateDir, 'api.json'), { force: true })
  const child = spawn('taskset', ['-c', String(core), 'ip', 'netns', 'exec', host.ns, process.execPath, BIN, 'agent', '--state-dir', stateDir, '--name', name,
    '--listen', `/ip4/${host.ip}/tcp/0`, ...extra], { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
  const a: AgentProc = { name, child, stateDir, host, lines: [] }
  child.stderr!.on('data', (d: Buffer) => { for (const l of d.toString().split('\n')) if (l !== '') a.lines.push(l) })
  agents.add(a)
  const deadline = Date.now() + 60_000
  while (!existsSync(path.join(stateDir, 'api.json'))) {
    if (child.exitCode !== null) throw new Error(`agent ${name} exited: ${a.lines.slice(-3).join(' | ')}`)
    if (Date.now() > deadline) throw new Error(`agent ${name}: no API within 60 s`)
    await sleep(50)
  }
  return a
}

async function stopAgent (a: AgentProc, logs: string | undefined, label: string): Promise<void> {
  const exited = new Promise((r) => { if (a.child.exitCode !== null || a.child.signalCode !== null) r(undefined); else a.child.once('exit', r) })
  try { process.kill(-a.child.pid!, 'SIGTERM') } catch { /* gone */ }
  if (await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]) === false) {
    try { process.kill(-a.child.pid!, 'SIGKILL') } catch { /* gone */ }
    await Promise.race([exited, sleep(5000)])
  }
  agents.delete(a)
  if (logs !== undefined) {
    await mkdir(logs, { recursive: true })
    await writeFile(path.join(logs, `${label}-${a.name}.log`), a.lines.join('\n') + '\n')
  }
}

/** Kills everything this script started (by PID or its own process group) and removes what it created; synchronous, for signals too. */
function cleanupSync (lan: { destroy: () => void } | undefined, root: string | undefined): void {
  for (const a of agents) { try { process.kill(-a.child.pid!, 'SIGKILL') } catch { /* gone */ } }
  agents.clear()
  for (const c of spawned) { try { c.kill('SIGKILL') } catch { /* gone */ } }
  spawned.clear()
  lan?.destroy()
  if (root !== undefined) rmSync(root, { recursive: true, force: true })
}

// ---------------------------------------------------------------- the timeline

/**
 * A W×H, `seconds`-long timeline shaped like the sample (agent/sample.ts) but longer: three
 * generated clips joined by a dissolve and a wipe, a colour grade, a text title, a tone. Plus a
 * 3 s warm-up timeline over the same assets (a worker fetches every asset a job uses).
 */
async function writeTimelines (dir: string, ffmpeg: string, seconds: number): Promise<{ main: string; warmup: string }> {
  const { gen, H264 } = await import('../test/helpers/media.ts')
  const { bundledFontPath } = await import('../agent/sample.ts')
  const m = path.join(dir, 'media')
  const L = Math.round(seconds * FPS / 3)
  const secs = (frames: number): string => String((frames + FPS) / FPS)
  await gen(ffmpeg, path.join(m, 'a.mp4'), ['-f', 'lavfi', '-i', `testsrc2=s=${W}x${H}:r=${FPS}`, '-t', secs(L + 15), ...H264])
  await gen(ffmpeg, path.join(m, 'b.mp4'), ['-f', 'lavfi', '-i', `life=s=320x180:r=${FPS}:mold=10:ratio=0.1:death_color=#C83232:life_color=#00FF00,scale=${W}:${H}:flags=neighbor`, '-t', secs(L + 30), ...H264])
  await gen(ffmpeg, path.join(m, 'c.mp4'), ['-f', 'lavfi', '-i', `testsrc=s=${W}x${H}:r=${FPS}`, '-t', secs(L + 15), ...H264])
  await gen(ffmpeg, path.join(m, 'tone.m4a'), ['-f', 'lavfi', '-i', `sine=f=220:r=48000:d=${seconds + 1}`, '-ac', '2', '-c:a', 'aac', '-b:a', '128k'])
  await copyFile(bundledFontPath(), path.join(m, 'font.ttf'))
  const doc = (name: string, d: number, a: number, b: number): Record<string, unknown> => ({
    schema: 'farm.timeline/1', name, fps: { num: FPS, den: 1 }, width: W, height: H, sampleRate: 48000, duration: d,
    assets: { a: { path: 'media/a.mp4' }, b: { path: 'media/b.mp4' }, c: { path: 'media/c.mp4' }, tone: { path: 'media/tone.m4a' }, font: { path: 'media/font.ttf' } },
    video: [
      {
        clips: [
          { id: 'a', type: 'media', asset: 'a', start: 0, length: a + 15, srcIn: 0, fadeIn: 15 },
          { id: 'b', type: 'media', asset: 'b', start: a - 15, length: b - a + 30, srcIn: 0, fx: [{ k: 'eq', saturation: 1.3, contrast: 1.1 }] },
          { id: 'c', type: 'media', asset: 'c', start: b - 15, length: d - b + 15, srcIn: 0, fadeOut: 20 }
        ],
        transitions: [{ a: 'a', b: 'b', kind: 'dissolve' }, { a: 'b', b: 'c', kind: 'wipeleft' }]
      },
      { clips: [{ id: 'title', type: 'text', text: 'renderswarm — farm bench', font: 'font', size: 64, color: '#FFFFFF', x: 80, y: 560, start: 0, length: Math.min(150, d) }] }
    ],
    audio: [{ clips: [{ id: 'tone', type: 'media', asset: 'tone', start: 0, length: d, srcIn: 0, volume: 0.5, fadeIn: 10, fadeOut: 30 }] }]
  })
  const main = path.join(dir, 'farm.timeline.json')
  const warmup = path.join(dir, 'warmup.timeline.json')
  await writeFile(main, JSON.stringify(doc(`farm bench ${seconds} s`, 3 * L, L, 2 * L), null, 2) + '\n')
  await writeFile(warmup, JSON.stringify(doc('farm bench warm-up', 90, 30, 60), null, 2) + '\n')
  return { main, warmup }
}

// ---------------------------------------------------------------- measurements

/** Whole-machine busy cores over an interval (other users of this machine show up here). */
function cpuTicks (): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  const idle = (f[3] ?? 0) + (f[4] ?? 0)
  const total = f.reduce((x, y) => x + y, 0)
  return { busy: total - idle, total }
}
const busyCores = (a: { busy: number; total: number }, b: { busy: number; total: number }): number => (b.busy - a.busy) / Math.max(1, b.total - a.total) * os.cpus().length
const QUIET_CORES = 0.25
let quietMisses = 0
let disturbedKept = 0

/** CPU ticks of a process (utime + stime) and of its reaped children (cutime + cstime). */
function processTicks (pid: number): { self: number; children: number } {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    return { self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) }
  } catch {
    return { self: 0, children: 0 }
  }
}
let clockTicks: number | undefined
const hz = (): number => (clockTicks ??= (() => { try { return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 })) || 100 } catch { return 100 } })())
interface Meter { cpu: { busy: number; total: number }; procs: Array<{ self: number; children: number }>; pids: number[] }
/** Ticks of the machine and of this process plus `pids` (its agents), each with its reaped children. */
const meter = (pids: number[]): Meter => ({ cpu: cpuTicks(), procs: [process.pid, ...pids].map(processTicks), pids })
/** Since m0: busy cores of the whole machine, the part of it not ours, and CPU seconds of this process's children and of each of `pids` (self, children). */
function usage (m0: Meter): { busy: number; other: number; childrenS: number; agentsS: Array<{ self: number; children: number }> } {
  const m1 = meter(m0.pids)
  const dt = Math.max(1, m1.cpu.total - m0.cpu.total)
  const n = os.cpus().length
  const busy = m1.cpu.busy - m0.cpu.busy
  const d = m1.procs.map((p, i) => ({ self: p.self - m0.procs[i]!.self, children: p.children - m0.procs[i]!.children }))
  const ours = d.reduce((x, p) => x + p.self + p.children, 0)
  return {
    busy: busy / dt * n,
    other: Math.max(0, busy - ours) / dt * n,
    childrenS: d[0]!.children / hz(),
    agentsS: d.slice(1).map((p) => ({ self: p.self / hz(), children: p.children / hz() }))
  }
}

/** Waits (bounded) until the whole machine is idle: other people's work would land in the timings. */
async function quiet (maxWaitS: number): Promise<void> {
  if (!(maxWaitS > 0)) return
  const began = Date.now()
  for (let said = false; ;) {
    const c0 = cpuTicks()
    await sleep(1000)
    const busy = busyCores(c0, cpuTicks())
    if (busy <= QUIET_CORES) return
    if (Date.now() - began > maxWaitS * 1000) { quietMisses++; process.stderr.write(`  the machine is still busy (${busy.toFixed(2)} cores) after ${maxWaitS} s; timing anyway\n`); return }
    if (!said) { process.stderr.write(`  waiting for a quiet machine (${busy.toFixed(2)} busy cores) …\n`); said = true }
  }
}

interface Plain { seconds: number; busy: number; other: number; attempts: number; childrenS: number }
interface FarmRun {
  seconds: number
  busy: number
  other: number
  attempts: number
  /** CPU seconds during the timed job of each agent's own process and of its children (ffmpeg, ffprobe). */
  cpu: Array<{ node: string; self: number; children: number }>
  chunks: Array<{ node: string; frames: number; seconds: number }>
  dispatchMs: number[]
  segment: { sent: number; bytes: number; seconds: number }
  /** Phases from the job record (ms clocks of one machine): submit → first lease → last chunk stored → done. */
  toFirstLease: number
  leasesToLastChunk: number
  lastChunkToDone: number
}

interface JobView { status: string; error?: string; chunks: Array<{ frameRange: [number, number]; node?: string; startedAt?: number; endedAt?: number }> }
interface StatusView { rendering: { worker: { dispatchMs: number[] }; segments: { sent: number; bytes: number; mbPerSecond: number | null } } }

const segSeconds = (s: StatusView['rendering']['segments']): number => s.mbPerSecond !== null && s.mbPerSecond > 0 ? s.bytes / (s.mbPerSecond * 1e6) : 0

async function main (): Promise<void> {
  const quick = opt.quick === true
  const RUNS = Number(opt.runs ?? (quick ? 1 : 3))
  const SECONDS = Number(opt.seconds ?? (quick ? 10 : 30))
  if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 20) throw new Error(`--runs must be a whole number 1–20 (got ${opt.runs})`)
  if (!Number.isFinite(SECONDS) || SECONDS < 4 || SECONDS > 600) throw new Error(`--seconds must be 4–600 (got ${opt.seconds})`)
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces)')
  if (os.cpus().length < 2) throw new Error('needs at least 2 cores (one per agent)')
  const LOGS = opt.logs !== undefined ? path.resolve(opt.logs) : undefined
  const QUIET_WAIT_S = Number(opt['quiet-wait'] ?? (quick ? 30 : 300))
  const MAX_OTHER = Number(opt['max-other'])
  const ATTEMPTS = Number(opt.attempts ?? (quick ? 1 : 4))
  if (!Number.isFinite(MAX_OTHER) || MAX_OTHER < 0) throw new Error(`--max-other must be a number of cores ≥ 0 (got ${opt['max-other']})`)
  if (!Number.isInteger(ATTEMPTS) || ATTEMPTS < 1 || ATTEMPTS > 20) throw new Error(`--attempts must be a whole number 1–20 (got ${opt.attempts})`)
  /** Runs a timed render until others leave it alone (bounded); keeps the least disturbed attempt. */
  const undisturbed = async <T extends { other: number; attempts: number }>(what: string, once: () => Promise<T>): Promise<T> => {
    let best: T | undefined
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const r = await once()
      r.attempts = attempt
      if (best === undefined || r.other < best.other) best = r
      if (r.other <= MAX_OTHER) return r
      process.stderr.write(`  ${what}: other processes used ${r.other.toFixed(2)} cores meanwhile${attempt < ATTEMPTS ? '; again' : `; keeping the least disturbed of ${ATTEMPTS} attempts`}\n`)
    }
    disturbedKept++
    return best!
  }
  if (!Number.isFinite(QUIET_WAIT_S) || QUIET_WAIT_S < 0 || QUIET_WAIT_S > 3600) throw new Error(`--quiet-wait must be 0–3600 s (got ${opt['quiet-wait']})`)

  const { createLan, destroyLan } = await import('../test/helpers/netns.ts')
  const { AssetCache } = await import('../agent/assets.ts')
  const { locateFfmpeg, probeFfmpeg } = await import('../agent/ffmpeg.ts')
  const { compileChunk } = await import('../agent/render/compile.ts')
  const { compileAudio } = await import('../agent/render/audio.ts')
  const { toArgv } = await import('../agent/render/invocation.ts')
  const { resolvePreset } = await import('../agent/render/presets.ts')
  const { validateOutput } = await import('../agent/render/validate.ts')
  const { loadTimelineFile } = await import('../agent/timeline-file.ts')
  const { framesToSeconds } = await import('../protocol/timeline.ts')

  const tools = await locateFfmpeg()
  const caps = await probeFfmpeg(tools, { checkGpu: false })
  const preset = resolvePreset('ffv1', caps)
  const P = `rsf${process.pid % 100000}`
  let lan: ReturnType<typeof createLan> | undefined
  let root: string | undefined
  const lanHandle = { destroy: () => { if (lan !== undefined) destroyLan(lan) } }
  const onSignal = (sig: string): void => {
    process.stderr.write(`\n${sig}: stopping the agents, removing namespaces and files …\n`)
    cleanupSync(lanHandle, root)
    process.exit(130)
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  const loadBefore = os.loadavg()[0]!
  const codeBefore = codeVersion()
  try {
    root = await mkdtemp(path.join(os.tmpdir(), 'rs-bench-farm-'))
    lan = createLan(P, 2, `10.79.${process.pid % 200}`)
    const [h1, h2] = lan.hosts as [Host, Host]
    process.stderr.write(`generating a ${SECONDS} s ${W}x${H} timeline in ${root} …\n`)
    const tl = await writeTimelines(path.join(root, 'project'), tools.ffmpeg, SECONDS)
    const loaded = await loadTimelineFile(tl.main, { ffprobe: tools.ffprobe })
    const t = loaded.snapshot
    const cache = new AssetCache(path.join(root, 'cache'))
    const paths: Record<string, string> = {}
    for (const [sha, src] of Object.entries(loaded.sources)) { await cache.put(src, sha); paths[sha] = await cache.verified(sha) }
    const ctx = (workDir: string): Parameters<typeof compileChunk>[0] => ({ timeline: t, media: loaded.media, assetPath: (sha) => paths[sha]!, workDir, preset })

    /** (a): the exact argv for [0, duration), run by ffmpeg itself under taskset. */
    const plain = async (what: string, inv: ReturnType<typeof compileChunk>): Promise<Plain> => {
      for (const f of inv.files) {
        await mkdir(path.dirname(f.path), { recursive: true })
        if ('content' in f) await writeFile(f.path, f.content); else await copyFile(f.copyOf, f.path)
      }
      for (const o of inv.outputs) await mkdir(path.dirname(o.file), { recursive: true })
      return await undisturbed(what, async () => {
        await quiet(QUIET_WAIT_S)
        const m0 = meter([])
        const p0 = performance.now()
        await runTo('taskset', ['-c', '0', tools.ffmpeg, ...toArgv(inv)], 600_000, 'plain ffmpeg')
        const u = usage(m0)
        return { seconds: (performance.now() - p0) / 1000, busy: u.busy, other: u.other, childrenS: u.childrenS, attempts: 1 }
      })
    }

    const state = (n: string): string => path.join(root!, 'state', n)
    let farmCJoined = false
    let coldDispatchMs: number | undefined

    /** (b) and (c): start the farm, warm it up, time one job, read the workers' figures, stop it. */
    const farmRun = async (label: 'b' | 'c', run: number): Promise<FarmRun> => {
      const started: AgentProc[] = []
      try {
        let owner: AgentProc
        if (label === 'b') {
          owner = await startAgent('solo', 0, h1, state('solo'), ['--no-mdns'])
          started.push(owner)
        } else {
          owner = await startAgent('alpha', 0, h1, state('alpha'), ['--mdns-interface', h1.ip])
          started.push(owner)
          if (!farmCJoined) {
            const token = (await runTo('ip', ['netns', 'exec', h1.ns, process.execPath, BIN, 'farm', 'invite', '--ttl', '10m', '--state-dir', owner.stateDir], 60_000, 'farm invite')).trim()
            await runTo('ip', ['netns', 'exec', h2.ns, process.execPath, BIN, 'farm', 'join', token, '--state-dir', state('beta')], 60_000, 'farm join')
            farmCJoined = true
          }
          started.push(await startAgent('beta', 1, h2, state('beta'), ['--mdns-interface', h2.ip]))
        }
        const n = started.length
        // The first start of a state dir runs the background benchmark: wait for every figure (up to 3 min).
        const ready = await Promise.all(started.map(async (a) => await helper<{ leader: string; nodes: Array<{ name: string; peerId: string; ffv1Fps: number }> }>(a.host.ns, 'ready', ['--state-dir', a.stateDir, '--nodes', String(n)], 180)))
        const names = new Map(ready[0]!.nodes.map((x) => [x.peerId, x.name]))
        const statuses = async (): Promise<StatusView[]> => await Promise.all(started.map(async (a) => await helper<StatusView>(a.host.ns, 'status', ['--state-dir', a.stateDir], 30)))
        type Submitted = { t0Ms: number; t1Ms: number; seconds: number; busy: number; other: number; agentsS: Array<{ self: number; children: number }>; quietMissed: boolean; job: JobView }
        const submit = async (timeline: string, out: string, timed: boolean): Promise<Submitted> => {
          const r = await helper<Submitted>(h1.ns, 'submit', ['--state-dir', owner.stateDir, '--timeline', timeline, '--out', out,
            '--quiet-wait', String(timed ? QUIET_WAIT_S : 0), ...(timed ? ['--pids', started.map((a) => a.child.pid!).join(',')] : [])], 600 + (timed ? QUIET_WAIT_S : 0))
          if (r.job.status !== 'done') throw new Error(`(${label}) job ${r.job.status}: ${r.job.error ?? ''}`)
          if (r.quietMissed) quietMisses++
          return r
        }
        const outDir = path.join(root!, 'out')
        await mkdir(outDir, { recursive: true })
        await submit(tl.warmup, path.join(outDir, `warmup-${label}${run}.mkv`), false)
        let attemptNo = 0
        return await undisturbed(`(${label}) run ${run}`, async (): Promise<FarmRun> => {
          const before = await statuses()
          if (label === 'c' && coldDispatchMs === undefined) coldDispatchMs = before[1]!.rendering.worker.dispatchMs[0]
          const out = path.join(outDir, `${label}${run}-${++attemptNo}.mkv`)
          const r = await submit(tl.main, out, true)
          const after = await statuses()
          // Outside the timing: the output is the whole timeline, audio included.
          await validateOutput(tools.ffprobe, out, { frames: t.duration, fps: t.fps, audioSeconds: framesToSeconds(t.duration, t.fps) })
          await rm(out, { force: true })
          const dispatchMs = after.flatMap((s, i) => s.rendering.worker.dispatchMs.slice(before[i]!.rendering.worker.dispatchMs.length))
          const seg = after.reduce((acc, s, i) => {
            const b = before[i]!.rendering.segments
            return { sent: acc.sent + s.rendering.segments.sent - b.sent, bytes: acc.bytes + s.rendering.segments.bytes - b.bytes, seconds: acc.seconds + segSeconds(s.rendering.segments) - segSeconds(b) }
          }, { sent: 0, bytes: 0, seconds: 0 })
          const cs = r.job.chunks
          const firstLease = Math.min(...cs.map((c) => c.startedAt ?? NaN))
          const lastChunk = Math.max(...cs.map((c) => c.endedAt ?? NaN))
          return {
            seconds: r.seconds,
            busy: r.busy,
            other: r.other,
            attempts: 1,
            cpu: r.agentsS.map((x, i) => ({ node: started[i]!.name, self: x.self, children: x.children })),
            chunks: cs.map((c) => ({ node: names.get(c.node ?? '') ?? c.node ?? '?', frames: c.frameRange[1] - c.frameRange[0], seconds: ((c.endedAt ?? NaN) - (c.startedAt ?? NaN)) / 1000 })),
            dispatchMs,
            segment: seg,
            toFirstLease: (firstLease - r.t0Ms) / 1000,
            leasesToLastChunk: (lastChunk - firstLease) / 1000,
            lastChunkToDone: (r.t1Ms - lastChunk) / 1000
          }
        })
      } finally {
        await rm(path.join(root!, 'out'), { recursive: true, force: true })
        for (const a of started) await stopAgent(a, LOGS, `${label}${run}`)
      }
    }

    const results = { a: [] as Plain[], audio: [] as Plain[], b: [] as FarmRun[], c: [] as FarmRun[] }
    for (let run = 1; run <= RUNS; run++) {
      const dir = path.join(root, 'plain', String(run))
      const out = path.join(dir, 'a.mkv')
      const a = await plain(`(a) run ${run}`, compileChunk(ctx(path.join(dir, 'work')), { start: 0, end: t.duration }, out))
      await validateOutput(tools.ffprobe, out, { frames: t.duration, fps: t.fps })
      results.a.push(a)
      process.stderr.write(`run ${run}/${RUNS}  (a) plain ffmpeg, core 0          ${a.seconds.toFixed(2)} s  (others ${a.other.toFixed(2)} cores)\n`)
      const au = await plain(`audio run ${run}`, compileAudio(ctx(path.join(dir, 'audio-work')), path.join(dir, `audio${preset.audioExt}`)))
      results.audio.push(au)
      if (run === 1) {
        const st = await stat(out)
        const h0 = performance.now()
        const h = createHash('sha256')
        for await (const chunk of createReadStream(out)) h.update(chunk as Buffer)
        h.digest()
        hashMBps = st.size / 1e6 / ((performance.now() - h0) / 1000)
        outputMB = st.size / 1e6
      }
      await rm(dir, { recursive: true, force: true })
      for (const v of ['b', 'c'] as const) {
        const f = await farmRun(v, run)
        results[v].push(f)
        process.stderr.write(`run ${run}/${RUNS}  (${v}) ${v === 'b' ? 'one-agent farm, core 0        ' : 'two agents, cores 0 and 1     '} ${f.seconds.toFixed(2)} s  (${f.chunks.map((c) => `${c.node} ${c.frames} fr ${c.seconds.toFixed(1)} s`).join(', ')}; dispatch ${f.dispatchMs.join(', ')} ms${f.segment.sent > 0 ? `; segments ${(f.segment.bytes / 1e6).toFixed(0)} MB at ${(f.segment.bytes / 1e6 / f.segment.seconds).toFixed(1)} MB/s` : ''}; others ${f.other.toFixed(2)} cores)\n`)
      }
    }
    const codeAfter = codeVersion()
    report(results, { t, ffmpeg: tools.ffmpeg, version: caps.version, preset: preset.name, runs: RUNS, loadBefore, loadAfter: os.loadavg()[0]!, coldDispatchMs, maxOther: MAX_OTHER, attempts: ATTEMPTS, code: codeAfter === codeBefore ? codeBefore : `${codeBefore}, then ${codeAfter} (the code changed during the run)` })
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    for (const a of [...agents]) await stopAgent(a, LOGS, 'cleanup')
    cleanupSync(lanHandle, root)
  }
}

/** HEAD and a hash of the uncommitted changes: other people edit this tree while benches run. */
function codeVersion (): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8', timeout: 10_000 }).trim()
    const diff = execFileSync('git', ['diff', 'HEAD'], { cwd: REPO, maxBuffer: 256 * 1024 * 1024, timeout: 30_000 })
    return diff.length === 0 ? head : `${head} + uncommitted changes ${createHash('sha256').update(diff).digest('hex').slice(0, 8)}`
  } catch {
    return 'unknown (no git)'
  }
}

let hashMBps = NaN
let outputMB = NaN

type Timeline = Awaited<ReturnType<typeof import('../agent/timeline-file.ts').loadTimelineFile>>['snapshot']

function report (r: { a: Plain[]; audio: Plain[]; b: FarmRun[]; c: FarmRun[] }, info: { t: Timeline; ffmpeg: string; version: string; preset: string; runs: number; loadBefore: number; loadAfter: number; coldDispatchMs: number | undefined; maxOther: number; attempts: number; code: string }): void {
  const s = (xs: number[]): { median: number; min: number; max: number } => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) })
  const a = s(r.a.map((x) => x.seconds))
  const b = s(r.b.map((x) => x.seconds))
  const c = s(r.c.map((x) => x.seconds))
  const overhead = b.median / a.median
  const speedup = a.median / c.median
  const dispB = r.b.flatMap((x) => x.dispatchMs)
  const dispC = r.c.flatMap((x) => x.dispatchMs)
  const disp = [...dispB, ...dispC]
  const segRates = r.c.filter((x) => x.segment.seconds > 0).map((x) => x.segment.bytes / 1e6 / x.segment.seconds)
  const segMB = r.c.filter((x) => x.segment.sent > 0).map((x) => x.segment.bytes / 1e6 / x.segment.sent)
  const chunksOf = (xs: FarmRun[]): string => [...new Set(xs.map((x) => `${x.chunks.length} (${x.chunks.map((ch) => `${ch.node} ${ch.frames}`).join(', ')})`))].join(' / ')
  const t = info.t
  const cpus = os.cpus()
  const date = new Date().toISOString()

  const header = ['variant', 'chunks', 'median s', 'min s', 'max s', 'others\' cores']
  const body = [
    ['(a) plain ffmpeg, 1 core', '1', a, r.a],
    ['(b) one-agent farm, 1 core', String(median(r.b.map((x) => x.chunks.length))), b, r.b],
    ['(c) two agents, 1 core each', String(median(r.c.map((x) => x.chunks.length))), c, r.c]
  ].map(([name, chunks, v, xs]) => {
    const vv = v as { median: number; min: number; max: number }
    return [name as string, chunks as string, vv.median.toFixed(2), vv.min.toFixed(2), vv.max.toFixed(2), Math.max(...(xs as Array<{ other: number }>).map((x) => x.other)).toFixed(2)]
  })
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((x) => x[i]!.length)))
  const line = (cells: string[]): string => cells.map((x, i) => i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!)).join('  ')
  console.log('')
  console.log('farm: plain ffmpeg vs a one-agent farm vs two agents (ffv1, one core each)')
  console.log('')
  console.log(line(header))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const x of body) console.log(line(x))
  console.log('')
  console.log(`${overhead <= TARGET_OVERHEAD ? 'PASS' : 'FAIL'}: overhead  b/a = ${overhead.toFixed(3)} (target ≤ ${TARGET_OVERHEAD.toFixed(2)})`)
  console.log(`${speedup >= TARGET_SPEEDUP ? 'PASS' : 'FAIL'}: speed-up  a/c = ${speedup.toFixed(3)} (target ≥ ${TARGET_SPEEDUP.toFixed(1)})`)
  console.log(`dispatch latency (lease accepted → ffmpeg started): p50 ${pct(disp, 50).toFixed(1)} ms, p99 ${pct(disp, 99).toFixed(1)} ms over ${disp.length} leases (b: p50 ${pct(dispB, 50).toFixed(1)}, max ${Math.max(...dispB).toFixed(1)}; c: p50 ${pct(dispC, 50).toFixed(1)}, max ${Math.max(...dispC).toFixed(1)})${info.coldDispatchMs !== undefined ? `; first lease on a fresh worker (fetches the assets) ${info.coldDispatchMs.toFixed(1)} ms` : ''}`)
  console.log(`segment transfer (worker → owner, over the network): ${median(segRates).toFixed(1)} MB/s median (${segRates.map((x) => x.toFixed(1)).join(', ')}), ${median(segMB).toFixed(0)} MB per segment`)
  console.log('')
  const ph = (xs: FarmRun[], f: (x: FarmRun) => number): string => median(xs.map(f)).toFixed(2).padStart(6)
  console.log('where the farm time goes (medians, s):   submit→1st lease  leases→last chunk stored  last chunk→done')
  console.log(`  (b) one agent                          ${ph(r.b, (x) => x.toFirstLease)}            ${ph(r.b, (x) => x.leasesToLastChunk)}                 ${ph(r.b, (x) => x.lastChunkToDone)}`)
  console.log(`  (c) two agents                         ${ph(r.c, (x) => x.toFirstLease)}            ${ph(r.c, (x) => x.leasesToLastChunk)}                 ${ph(r.c, (x) => x.lastChunkToDone)}`)
  console.log(`  chunk lease→stored, per node (c):      ${[...new Set(r.c.flatMap((x) => x.chunks.map((ch) => ch.node)))].map((nd) => `${nd} ${median(r.c.flatMap((x) => x.chunks.filter((ch) => ch.node === nd).map((ch) => ch.seconds))).toFixed(2)} s`).join(', ')}`)
  const cpuOf = (xs: FarmRun[]): string => [...new Set(xs.flatMap((x) => x.cpu.map((c) => c.node)))].map((nd) => {
    const mine = xs.flatMap((x) => x.cpu.filter((c) => c.node === nd))
    return `${nd}: agent ${median(mine.map((c) => c.self)).toFixed(2)} + children ${median(mine.map((c) => c.children)).toFixed(2)}`
  }).join('; ')
  console.log(`  CPU s in the timed part (medians):     (a) ffmpeg ${median(r.a.map((x) => x.childrenS)).toFixed(2)}; (b) ${cpuOf(r.b)}; (c) ${cpuOf(r.c)}`)
  console.log(`  plain ffmpeg, audio only, 1 core:      ${median(r.audio.map((x) => x.seconds)).toFixed(2)} s (the owner renders it beside its video chunk, on the same core)`)
  console.log(`  sha256 (this process, one core):       ${hashMBps.toFixed(0)} MB/s; the whole video is ${outputMB.toFixed(0)} MB`)
  console.log('')
  console.log('method:')
  console.log(`  machine:   ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${os.platform()} ${os.arch()}; 1-min load average ${info.loadBefore.toFixed(2)} before, ${info.loadAfter.toFixed(2)} after`)
  console.log(`  node:      ${process.version}; agents: ${path.relative(REPO, BIN)}; code: ${info.code}`)
  console.log(`  ffmpeg:    ${info.version} (${info.ffmpeg})`)
  console.log(`  preset:    ${info.preset}`)
  console.log(`  timeline:  ${t.duration} frames (${t.duration / FPS} s), ${t.width}x${t.height} @ ${FPS} fps, 3 generated H.264 clips, 1 dissolve, 1 wipe, eq, 1 text title, 1 audio track`)
  console.log(`  runs:      ${info.runs}; medians; variants interleaved (a, b, c in each run); each timed render started on an idle machine (≤ ${QUIET_CORES} busy cores over 1 s)${quietMisses > 0 ? ` except ${quietMisses} that waited in vain` : ''} and done again when other processes used > ${info.maxOther} cores meanwhile (up to ${info.attempts} attempts; ${disturbedKept} kept disturbed); "others' cores" = the most any kept render saw`)
  console.log('  (a):       the video-only argv of compileChunk over [0, duration) (agent/render/compile.ts + toArgv), run as `taskset -c 0 ffmpeg …`; spawn → exit')
  console.log('  (b):       one agent (`taskset -c 0`, own farm, in a namespace); the job submitted through it; ffmpeg children inherit the pinning')
  console.log('  (c):       two agents in two namespaces on one bridge (`taskset -c 0` owner + `taskset -c 1` worker, joined by invite); the job submitted through the core-0 agent, which renders too')
  console.log('  farm time: POST /v1/jobs → the job\'s \'done\' event (output joined with audio, validated, renamed), timed inside the owner\'s namespace; each farm is started for its variant and renders an untimed 3 s warm-up job first (warm processes, cached assets)')
  console.log('  dispatch:  the workers\' rendering.worker.dispatchMs for the timed jobs (lease accepted → just before ffmpeg is spawned); p99 of so few leases is their maximum')
  console.log('  segments:  the sender\'s rendering.segments for the timed jobs (its clock starts before it hashes the segment)')
  console.log(`  date:      ${date}`)
  console.log('')
  console.log(JSON.stringify({
    bench: 'farm', date, preset: info.preset, runs: info.runs, frames: t.duration,
    machine: { cpu: cpus[0]?.model ?? null, cores: cpus.length, node: process.version, ffmpeg: info.version, loadBefore: round(info.loadBefore, 2), loadAfter: round(info.loadAfter, 2), quietMisses, disturbedKept },
    code: info.code,
    a: r.a.map((x) => ({ seconds: round(x.seconds), busy: round(x.busy, 2), other: round(x.other, 2), attempts: x.attempts, cpuS: round(x.childrenS, 2) })),
    audio: r.audio.map((x) => round(x.seconds)),
    b: r.b.map((x) => ({ ...x, seconds: round(x.seconds), busy: round(x.busy, 2), other: round(x.other, 2) })),
    c: r.c.map((x) => ({ ...x, seconds: round(x.seconds), busy: round(x.busy, 2), other: round(x.other, 2) })),
    chunks: { b: chunksOf(r.b), c: chunksOf(r.c) },
    overhead: { ratio: round(overhead, 4), target: TARGET_OVERHEAD, pass: overhead <= TARGET_OVERHEAD },
    speedup: { ratio: round(speedup, 4), target: TARGET_SPEEDUP, pass: speedup >= TARGET_SPEEDUP },
    dispatchMs: { p50: pct(disp, 50), p99: pct(disp, 99), n: disp.length, cold: info.coldDispatchMs ?? null },
    segmentMBps: { median: round(median(segRates), 1), runs: segRates.map((x) => round(x, 1)), mbPerSegment: round(median(segMB), 1) },
    sha256MBps: round(hashMBps, 0)
  }))
  const how = `${t.duration} frames 720p ffv1, one core per agent, median of ${info.runs}${disturbedKept > 0 ? `, ${disturbedKept} render(s) disturbed by other work` : ''}`
  printBench('bench/farm.ts', [
    { figure: 'farm overhead: one-agent farm / plain ffmpeg (1 core)', value: overhead.toFixed(3), target: `≤ ${TARGET_OVERHEAD.toFixed(2)}`, pass: overhead <= TARGET_OVERHEAD, method: how },
    { figure: 'farm speed-up: plain ffmpeg / two agents (1 core each)', value: `${speedup.toFixed(2)} ×`, target: `≥ ${TARGET_SPEEDUP.toFixed(1)} ×`, pass: speedup >= TARGET_SPEEDUP, method: how },
    { figure: 'dispatch latency in a job (lease → ffmpeg started), p50 / p99', value: `${pct(disp, 50).toFixed(1)} / ${pct(disp, 99).toFixed(1)} ms`, target: '', pass: null, method: `${disp.length} leases; workers' dispatchMs` },
    { figure: 'segment transfer in a job (worker → owner)', value: `${median(segRates).toFixed(1)} MB/s`, target: '', pass: null, method: `sender's rendering.segments, ${median(segMB).toFixed(0)} MB per segment` }
  ])
}

if (opt.role !== undefined) {
  try {
    await helperMain(opt.role)
  } catch (err) {
    console.error(`farm helper (${opt.role}): ${(err as Error).message}`)
    process.exitCode = 1
  }
} else {
  try {
    await main()
  } catch (err) {
    console.error(`farm: ${(err as Error).stack ?? String(err)}`)
    process.exitCode = 1
  }
}
