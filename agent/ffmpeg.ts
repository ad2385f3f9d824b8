/**
 * Finds ffmpeg and ffprobe and learns what they can do.
 *
 *   const tools = await locateFfmpeg({ ffmpegPath: config.ffmpeg })
 *   const caps = await probeFfmpeg(tools)     // version, encoders, filters, hwaccels
 *
 * Order: explicit config → FFMPEG_PATH / FFPROBE_PATH → PATH → the bundled
 * @ffmpeg-installer / @ffprobe-installer binaries (so a fresh `npm install` renders).
 */
import { execFile } from 'node:child_process'
import { access, constants } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export type ToolSource = 'config' | 'env' | 'path' | 'bundled'

export interface FfmpegTools {
  ffmpeg: string
  ffprobe: string
  ffmpegSource: ToolSource
  ffprobeSource: ToolSource
}

export interface FfmpegCapabilities {
  version: string
  /** A stable id for caching benchmarks: version line of the binary. */
  build: string
  encoders: Set<string>
  filters: Set<string>
  hwaccels: string[]
  /** GPU encoders that actually opened a device (listed is not the same as usable). */
  gpuEncoders: string[]
}

export class FfmpegNotFoundError extends Error {
  override readonly name = 'FfmpegNotFoundError'
}

export interface LocateOptions {
  ffmpegPath?: string | undefined
  ffprobePath?: string | undefined
  env?: NodeJS.ProcessEnv
  /** Skip PATH lookup (tests use it to force the bundled build). */
  usePath?: boolean
}

export async function locateFfmpeg (opts: LocateOptions = {}): Promise<FfmpegTools> {
  const env = opts.env ?? process.env
  const ff = await locateOne('ffmpeg', opts.ffmpegPath, env.FFMPEG_PATH, opts.usePath ?? true, env)
  const fp = await locateOne('ffprobe', opts.ffprobePath, env.FFPROBE_PATH, opts.usePath ?? true, env)
  return { ffmpeg: ff.file, ffprobe: fp.file, ffmpegSource: ff.source, ffprobeSource: fp.source }
}

async function locateOne (name: 'ffmpeg' | 'ffprobe', configured: string | undefined, fromEnv: string | undefined, usePath: boolean, env: NodeJS.ProcessEnv): Promise<{ file: string; source: ToolSource }> {
  if (configured !== undefined && configured !== '') {
    if (!(await isExecutable(configured))) throw new FfmpegNotFoundError(`configured ${name} "${configured}" is not an executable file`)
    return { file: configured, source: 'config' }
  }
  if (fromEnv !== undefined && fromEnv !== '') {
    const envName = name === 'ffmpeg' ? 'FFMPEG_PATH' : 'FFPROBE_PATH'
    if (!(await isExecutable(fromEnv))) throw new FfmpegNotFoundError(`${envName}="${fromEnv}" is not an executable file`)
    return { file: fromEnv, source: 'env' }
  }
  if (usePath) {
    for (const dir of (env.PATH ?? '').split(path.delimiter)) {
      if (dir === '') continue
      const file = path.join(dir, process.platform === 'win32' ? `${name}.exe` : name)
      if (await isExecutable(file)) return { file, source: 'path' }
    }
  }
  const bundled = bundledPath(name)
  if (bundled !== undefined && await isExecutable(bundled)) return { file: bundled, source: 'bundled' }
  throw new FfmpegNotFoundError(`${name} not found: set FFMPEG_PATH/FFPROBE_PATH, put ${name} on PATH, or reinstall so the bundled build is present`)
}

export function bundledPath (name: 'ffmpeg' | 'ffprobe'): string | undefined {
  const require = createRequire(import.meta.url)
  try {
    const mod = require(name === 'ffmpeg' ? '@ffmpeg-installer/ffmpeg' : '@ffprobe-installer/ffprobe') as { path: string }
    return mod.path
  } catch {
    return undefined
  }
}

async function isExecutable (file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}

const probeCache = new Map<string, Promise<FfmpegCapabilities>>()

/** Probes once per binary per process. */
export function probeFfmpeg (tools: Pick<FfmpegTools, 'ffmpeg'>, opts: { checkGpu?: boolean } = {}): Promise<FfmpegCapabilities> {
  const key = `${tools.ffmpeg}|${opts.checkGpu === true}`
  let p = probeCache.get(key)
  if (p === undefined) {
    p = doProbe(tools.ffmpeg, opts.checkGpu === true)
    probeCache.set(key, p)
    p.catch(() => probeCache.delete(key))
  }
  return p
}

async function doProbe (ffmpeg: string, checkGpu: boolean): Promise<FfmpegCapabilities> {
  const opt = { timeout: 15_000, maxBuffer: 8 * 1024 * 1024 }
  const [ver, enc, fil, hw] = await Promise.all([
    run(ffmpeg, ['-hide_banner', '-version'], opt),
    run(ffmpeg, ['-hide_banner', '-encoders'], opt),
    run(ffmpeg, ['-hide_banner', '-filters'], opt),
    run(ffmpeg, ['-hide_banner', '-hwaccels'], opt).catch(() => ({ stdout: '' }))
  ]).catch((err: unknown) => { throw new FfmpegNotFoundError(`running ${ffmpeg} failed: ${(err as Error).message}`, { cause: err }) })
  const build = ver.stdout.split('\n')[0] ?? ''
  const version = /ffmpeg version (\S+)/.exec(build)?.[1] ?? 'unknown'
  const caps: FfmpegCapabilities = {
    version,
    build,
    encoders: parseList(enc.stdout, /^\s*[VAS][F.][S.][X.][B.][D.]\s+(\S+)/),
    filters: parseList(fil.stdout, /^\s*[T.][S.][C.]?\s+(\S+)\s+\S+->\S+/),
    hwaccels: hw.stdout.split('\n').slice(1).map((s) => s.trim()).filter((s) => s !== ''),
    gpuEncoders: []
  }
  if (checkGpu) {
    for (const e of ['h264_nvenc', 'hevc_nvenc']) {
      if (!caps.encoders.has(e)) continue
      const ok = await run(ffmpeg, ['-hide_banner', '-nostdin', '-v', 'error', '-f', 'lavfi', '-i', 'color=s=256x256:d=0.2', '-c:v', e, '-f', 'null', '-'], { timeout: 15_000 })
        .then(() => true, () => false)
      if (ok) caps.gpuEncoders.push(e)
    }
  }
  return caps
}

function parseList (text: string, re: RegExp): Set<string> {
  const out = new Set<string>()
  for (const line of text.split('\n')) {
    const m = re.exec(line)
    if (m?.[1] !== undefined) out.add(m[1])
  }
  return out
}
