/**
 * Resource limits and isolation for ffmpeg children (spec M34): memory (address space), CPU
 * time, largest file written, no network, and a free-disk floor checked before each run.
 *
 *   const limits = renderLimits()                        // defaults, or RENDERSWARM_RENDER_* from the environment
 *   await checkFreeDisk(workDir, limits)                 // RenderLimitError when the disk is nearly full
 *   const exe = await limitedFfmpeg(ffmpeg, limits)      // a wrapper to give fluent-ffmpeg instead of ffmpeg
 *   explainFailure(stderr, signal, limits)               // "ran out of its 512 MiB memory limit" …, or undefined
 *
 * How (Linux): the wrapper is a two-line sh script that execs `prlimit --as --cpu --fsize`
 * (util-linux) and, where this process may create one (root, or unprivileged user namespaces),
 * `unshare --net` so ffmpeg runs with no network interface but a down loopback. MALLOC_ARENA_MAX
 * keeps glibc from reserving address space per thread, so the memory figure means memory.
 * Elsewhere (macOS, Windows, no prlimit) the wrapper is skipped and only the wall-clock time
 * limit (run.ts) and the disk floor apply: `isolation()` says which controls are in force.
 *
 * Disk: the worker refuses a lease while its work dir's disk is under the floor (`lowDiskReason`)
 * or the job already holds its per-job quota there (`jobDiskQuota`, `jobQuotaReason`); run.ts
 * checks the floor again before ffmpeg starts, and `--fsize` caps each file.
 *
 * The wrapper's path is derived from its content (fluent-ffmpeg keeps one ffmpeg path for the
 * whole process, so two runs with the same limits must name the same file). It lives in a
 * directory owned by this user with mode 0700 (~/.cache/renderswarm/ffmpeg-wrappers), checked
 * before use.
 */
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { statfsSync } from 'node:fs'
import { chmod, lstat, mkdir, readdir, rename, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

const MiB = 1024 * 1024

export interface RenderLimits {
  /** Address space of one ffmpeg, bytes; 0: no limit. */
  memoryBytes: number
  /** Wall-clock limit of one ffmpeg run, ms (run.ts kills it with SIGKILL). */
  timeMs: number
  /** CPU seconds of one ffmpeg (all threads); 0: no limit. A backstop behind timeMs. */
  cpuSeconds: number
  /** Largest file one ffmpeg may write, bytes (the per-chunk disk quota); 0: no limit. */
  maxFileBytes: number
  /** A run does not start when the work dir's disk has less free than this, bytes. */
  minFreeBytes: number
  /** Run ffmpeg in a new network namespace where the OS allows. */
  noNetwork: boolean
}

export class RenderLimitError extends Error {
  override readonly name = 'RenderLimitError'
}

/** Defaults, overridden field by field by `env` (RENDERSWARM_RENDER_MEMORY_MB, _TIME_S, _CPU_S, _MAX_FILE_MB, _MIN_FREE_MB, _NETWORK=allow). */
export function renderLimits (env: Record<string, string | undefined> = process.env, machine = { memBytes: os.totalmem(), cores: os.cpus().length }): RenderLimits {
  const num = (name: string, fallback: number): number => {
    const raw = env[name]
    if (raw === undefined || raw === '') return fallback
    const n = Number(raw)
    if (!Number.isFinite(n) || n < 0) throw new RenderLimitError(`${name}: "${raw.slice(0, 40)}" is not a number ≥ 0`)
    return n
  }
  // Address space, not resident memory: generous, so only a runaway graph meets it.
  const memoryBytes = Math.round(num('RENDERSWARM_RENDER_MEMORY_MB', Math.max(2048, Math.floor(machine.memBytes * 0.75 / MiB))) * MiB)
  const timeMs = Math.round(num('RENDERSWARM_RENDER_TIME_S', 3600) * 1000)
  const cpuSeconds = Math.round(num('RENDERSWARM_RENDER_CPU_S', timeMs === 0 ? 0 : Math.ceil(timeMs / 1000) * Math.max(1, machine.cores) + 60))
  const maxFileBytes = Math.round(num('RENDERSWARM_RENDER_MAX_FILE_MB', 100 * 1024) * MiB)
  const minFreeBytes = Math.round(num('RENDERSWARM_RENDER_MIN_FREE_MB', 1024) * MiB)
  const network = env.RENDERSWARM_RENDER_NETWORK
  if (network !== undefined && network !== '' && network !== 'allow' && network !== 'deny') throw new RenderLimitError(`RENDERSWARM_RENDER_NETWORK: "${network.slice(0, 40)}" must be "deny" (default) or "allow"`)
  return { memoryBytes, timeMs: timeMs === 0 ? 3_600_000 : timeMs, cpuSeconds, maxFileBytes, minFreeBytes, noNetwork: network !== 'allow' }
}

/** What this machine can enforce (probed once per process). */
export interface Isolation { prlimit: string | undefined; unshare: string[] | undefined }

let probed: Isolation | undefined
export function isolation (): Isolation {
  if (probed !== undefined) return probed
  const works = (cmd: string, args: string[]): boolean => {
    try { execFileSync(cmd, args, { stdio: 'ignore', timeout: 5000 }); return true } catch { return false }
  }
  const found = (name: string): string | undefined => ['/usr/bin', '/bin', '/usr/sbin', '/sbin'].map((d) => path.join(d, name)).find((p) => works(p, ['--version']))
  const prlimit = process.platform === 'linux' ? found('prlimit') : undefined
  const unshareBin = process.platform === 'linux' ? found('unshare') : undefined
  let unshare: string[] | undefined
  if (unshareBin !== undefined) {
    if (works(unshareBin, ['--net', '--', 'true'])) unshare = [unshareBin, '--net', '--']
    else if (works(unshareBin, ['--map-root-user', '--net', '--', 'true'])) unshare = [unshareBin, '--map-root-user', '--net', '--']
  }
  probed = { prlimit, unshare }
  return probed
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`

/** The wrapper script's text for these limits, or undefined when nothing can be enforced here. */
export function wrapperScript (ffmpeg: string, limits: RenderLimits, iso: Isolation = isolation()): string | undefined {
  const argv: string[] = []
  if (iso.prlimit !== undefined) {
    argv.push(iso.prlimit)
    if (limits.memoryBytes > 0) argv.push(`--as=${limits.memoryBytes}`)
    // Soft limit: SIGXCPU, on which ffmpeg stops cleanly (exit 255); the hard limit 2 s later is SIGKILL.
    if (limits.cpuSeconds > 0) argv.push(`--cpu=${limits.cpuSeconds}:${limits.cpuSeconds + 2}`)
    if (limits.maxFileBytes > 0) argv.push(`--fsize=${limits.maxFileBytes}`)
    argv.push('--')
  }
  if (limits.noNetwork && iso.unshare !== undefined) argv.push(...iso.unshare)
  if (argv.length === 0) return undefined
  return `#!/bin/sh\nMALLOC_ARENA_MAX=2 exec ${[...argv, path.resolve(ffmpeg)].map(shellQuote).join(' ')} "$@"\n`
}

/**
 * A private directory of this user for wrappers: created 0700, refused when someone else owns it.
 * In the user's cache dir (a render leaves nothing in the temp folder); the temp folder only when
 * there is no home to write to.
 */
async function privateDir (): Promise<string> {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0
  const cache = process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache')
  let dir = path.join(cache, 'renderswarm', 'ffmpeg-wrappers')
  try {
    await mkdir(path.dirname(dir), { recursive: true, mode: 0o700 })
  } catch {
    dir = path.join(os.tmpdir(), `renderswarm-ffmpeg-${uid}`)
  }
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const st = await lstat(dir)
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) throw new RenderLimitError(`${dir} is not a private directory of this user; remove it and try again`)
  return dir
}

/** The executable to start instead of `ffmpeg` so that `limits` apply (ffmpeg itself where nothing can be enforced). */
export async function limitedFfmpeg (ffmpeg: string, limits: RenderLimits, iso: Isolation = isolation()): Promise<string> {
  const text = wrapperScript(ffmpeg, limits, iso)
  if (text === undefined) return ffmpeg
  const file = path.join(await privateDir(), `ffmpeg-${createHash('sha256').update(text).digest('hex').slice(0, 16)}.sh`)
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}`
  await writeFile(tmp, text, { mode: 0o700 })
  await chmod(tmp, 0o700)
  await rename(tmp, file)
  return file
}

/**
 * Free bytes on the disk holding `dir` (its nearest existing parent while it does not exist yet),
 * or undefined where statfs is unsupported.
 */
export function freeDiskBytes (dir: string): number | undefined {
  let d = path.resolve(dir)
  for (let i = 0; i < 64; i++) {
    try {
      const s = statfsSync(d)
      return Number(s.bavail) * Number(s.bsize)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || path.dirname(d) === d) return undefined
      d = path.dirname(d)
    }
  }
  return undefined
}

/** Why nothing more should be written under `dir` now ("… has 3 MiB free, under the 1024 MiB …"), or undefined. */
export function lowDiskReason (dir: string, limits: Pick<RenderLimits, 'minFreeBytes'>): string | undefined {
  if (limits.minFreeBytes <= 0) return undefined
  const free = freeDiskBytes(dir)
  // statfs unsupported here: the fsize limit and ENOSPC still stop a runaway write.
  if (free === undefined || free >= limits.minFreeBytes) return undefined
  return `the disk holding ${dir} has ${Math.floor(free / MiB)} MiB free, under the ${Math.round(limits.minFreeBytes / MiB)} MiB this node keeps free`
}

/**
 * Refuses to start a render on a nearly full disk: the second line of defence behind the
 * worker, which refuses the lease itself (agent/worker.ts).
 */
export async function checkFreeDisk (dir: string, limits: RenderLimits): Promise<void> {
  const low = lowDiskReason(dir, limits)
  if (low !== undefined) throw new RenderLimitError(`${low}; the render was not started`)
}

/**
 * The most one job's files (its chunks' work dirs: segments rendering, and finished ones kept
 * for an owner that cannot take them yet) may take on one worker's disk, bytes; 0: no quota.
 * RENDERSWARM_RENDER_JOB_DISK_MB, default 200 GiB.
 */
export function jobDiskQuota (env: Record<string, string | undefined> = process.env): number {
  const raw = env.RENDERSWARM_RENDER_JOB_DISK_MB
  if (raw === undefined || raw === '') return 200 * 1024 * MiB
  const n = Number(raw)
  if (!Number.isFinite(n) || n < 0) throw new RenderLimitError(`RENDERSWARM_RENDER_JOB_DISK_MB: "${raw.slice(0, 40)}" is not a number ≥ 0`)
  return Math.round(n * MiB)
}

/** Why a job's `usedBytes` on this worker breaks its quota, or undefined (pure). */
export function jobQuotaReason (jobId: string, usedBytes: number, quotaBytes: number): string | undefined {
  if (quotaBytes <= 0 || usedBytes < quotaBytes) return undefined
  const fmt = (b: number): string => b >= MiB ? `${(b / MiB).toFixed(1)} MiB` : `${Math.ceil(b / 1024)} KiB`
  return `job ${jobId.slice(0, 40)} holds ${fmt(usedBytes)} on this worker's disk, at or over its per-job quota of ${fmt(quotaBytes)}`
}

/** Bytes of the regular files under `dir` (0 when it does not exist); bounded in depth and count. */
export async function dirBytes (dir: string, depth = 4): Promise<number> {
  let total = 0
  let entries
  try { entries = await readdir(dir, { withFileTypes: true }) } catch { return 0 }
  for (const e of entries.slice(0, 10_000)) {
    const p = path.join(dir, e.name)
    if (e.isDirectory() && depth > 0) total += await dirBytes(p, depth - 1)
    else if (e.isFile()) { try { total += (await lstat(p)).size } catch { /* removed meanwhile */ } }
  }
  return total
}

/** How an ffmpeg run ended, for explainFailure. */
export interface RunEnd { stderr: string; signal: string | undefined; exitCode: number | undefined; wallMs: number; cores: number }

/**
 * Names the limit a failed ffmpeg ran into, from how it ended: the CPU limit (ffmpeg catches
 * SIGXCPU and exits 255, or the hard limit's SIGKILL follows; only counted when the run lasted
 * long enough to use that much CPU on this many cores), SIGXFSZ (file size), or an allocation
 * failure under a memory limit (ffmpeg prints one of several messages, or dies by
 * SIGSEGV/SIGABRT when a library does not check). Undefined otherwise.
 */
export function explainFailure (end: RunEnd, limits: RenderLimits, iso: Isolation = isolation()): string | undefined {
  if (iso.prlimit === undefined) return undefined
  const { stderr, signal } = end
  const couldUseCpu = limits.cpuSeconds > 0 && end.wallMs * Math.max(1, end.cores) >= limits.cpuSeconds * 1000
  if (signal === 'SIGXCPU' || (couldUseCpu && (end.exitCode === 255 || signal === 'SIGKILL'))) return `ffmpeg used up its CPU time limit of ${limits.cpuSeconds} s and was stopped`
  if (signal === 'SIGXFSZ') return `ffmpeg tried to write a file over the ${Math.round(limits.maxFileBytes / MiB)} MiB per-chunk disk limit and was stopped`
  if (limits.memoryBytes > 0 && (signal === 'SIGSEGV' || signal === 'SIGABRT' || signal === 'SIGBUS' ||
    /cannot allocate memory|failed to allocate|failed to map segment|out of memory|memory allocation failed|ENOMEM|std::bad_alloc/i.test(stderr))) {
    return `ffmpeg ran out of its memory limit of ${Math.round(limits.memoryBytes / MiB)} MiB (address space) and failed`
  }
  return undefined
}
