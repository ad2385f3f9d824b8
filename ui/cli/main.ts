/**
 * The `renderswarm` command line.
 *
 *   renderswarm sample DIR
 *   renderswarm render TIMELINE -o OUT [--preset P] [--chunks N] [--parallel J] [--json]
 *   renderswarm probe [--json]
 *   renderswarm demo               (what `npm start` runs)
 *
 * Exit codes: 0 done, 2 bad input (nothing written), 1 anything else.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import os from 'node:os'
import path from 'node:path'
import { locateFfmpeg, probeFfmpeg, FfmpegNotFoundError } from '../../agent/ffmpeg.ts'
import { renderTimeline } from '../../agent/render/local-render.ts'
import { UnknownPresetError, PRESET_NAMES } from '../../agent/render/presets.ts'
import { writeSample } from '../../agent/sample.ts'
import { PlanError } from '../../coordinator/planner.ts'
import { TimelineError } from '../../protocol/timeline.ts'
import { ProgressBar } from './progress.ts'

class UsageError extends Error {
  override readonly name = 'UsageError'
}

const USAGE = `usage: renderswarm <command>

  sample DIR                       write a sample timeline and its media into DIR
  render TIMELINE -o OUT           render TIMELINE on this machine
      [--preset ${PRESET_NAMES.join('|')}] [--chunks N] [--parallel J] [--no-gpu] [--json]
  probe [--json]                   show the ffmpeg in use and what it can do
  demo [DIR]                       write the sample into DIR (default ./renderswarm-demo) and render it
`

async function main (argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'sample': return await sampleCmd(rest)
    case 'render': return await renderCmd(rest)
    case 'probe': return await probeCmd(rest)
    case 'demo': return await demoCmd(rest)
    case undefined: case 'help': case '--help': case '-h':
      process.stdout.write(USAGE)
      return command === undefined ? 2 : 0
    default:
      throw new UsageError(`unknown command "${command}"\n${USAGE}`)
  }
}

function parse (args: string[], options: NonNullable<ParseArgsConfig['options']>): ReturnType<typeof parseArgs> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

async function sampleCmd (args: string[]): Promise<number> {
  const { positionals } = parse(args, {})
  if (positionals.length !== 1) throw new UsageError('usage: renderswarm sample DIR')
  const file = await writeSample(path.resolve(positionals[0]!), await locateFfmpeg())
  process.stdout.write(`wrote ${file}\nrender it with: renderswarm render ${path.relative(process.cwd(), file)} -o out.mkv\n`)
  return 0
}

function intOpt (v: unknown, name: string, dflt: number): number {
  if (v === undefined) return dflt
  if (typeof v !== 'string' || !/^\d+$/.test(v)) throw new UsageError(`--${name} must be a whole number ≥ 1 (got "${String(v)}")`)
  return Number(v)
}

async function renderCmd (args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    output: { type: 'string', short: 'o' },
    preset: { type: 'string', default: 'ffv1' },
    chunks: { type: 'string' },
    parallel: { type: 'string' },
    json: { type: 'boolean', default: false },
    'no-gpu': { type: 'boolean', default: false }
  })
  if (positionals.length !== 1) throw new UsageError('usage: renderswarm render TIMELINE -o OUT [--preset P] [--chunks N] [--parallel J] [--json]')
  if (typeof values.output !== 'string') throw new UsageError('-o OUT is required')
  const parallel = intOpt(values.parallel, 'parallel', Math.max(1, Math.min(os.availableParallelism(), 4)))
  const chunks = intOpt(values.chunks, 'chunks', parallel)
  return await doRender(positionals[0]!, values.output, String(values.preset), chunks, parallel, values.json === true, values['no-gpu'] !== true)
}

async function doRender (timeline: string, out: string, preset: string, chunks: number, parallel: number, json: boolean, gpu: boolean): Promise<number> {
  const bar = json ? undefined : new ProgressBar(process.stderr)
  // Ctrl-C / SIGTERM: stop ffmpeg, remove temporary files, leave any existing output as it was.
  const abort = new AbortController()
  let stoppedBy: NodeJS.Signals | undefined
  const stop = (sig: NodeJS.Signals): void => { stoppedBy ??= sig; abort.abort() }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  let result
  try {
    result = await renderTimeline({ timeline, out, preset, chunks, parallel, gpu, signal: abort.signal, onProgress: (p) => bar?.update(p) })
  } catch (err) {
    if (stoppedBy !== undefined) {
      bar?.done()
      process.stderr.write(`renderswarm: render stopped by ${stoppedBy}; temporary files removed\n`)
      return stoppedBy === 'SIGINT' ? 130 : 143
    }
    throw err
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  }
  bar?.done()
  if (json) {
    process.stdout.write(JSON.stringify({
      output: result.output, frames: result.frames, seconds: round(result.seconds), fps: round(result.fps),
      preset: result.preset, encoder: result.encoder, ffmpeg: result.ffmpeg,
      chunks: result.chunks.map((c) => ({ index: c.index, frameRange: [c.start, c.end], seconds: round(c.seconds) })),
      audioSeconds: result.validation.audioSeconds
    }) + '\n')
  } else {
    process.stdout.write(`rendered ${result.frames} frames in ${result.seconds.toFixed(1)} s (${result.fps.toFixed(1)} fps) as ${result.chunks.length} chunks with ${result.encoder}\n→ ${result.output}\n`)
  }
  return 0
}

async function probeCmd (args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean', default: false } })
  const tools = await locateFfmpeg()
  const caps = await probeFfmpeg(tools, { checkGpu: true })
  const info = {
    ffmpeg: tools.ffmpeg, ffmpegSource: tools.ffmpegSource, ffprobe: tools.ffprobe, ffprobeSource: tools.ffprobeSource,
    version: caps.version, gpuEncoders: caps.gpuEncoders, hwaccels: caps.hwaccels,
    encoders: ['libx264', 'libx265', 'h264_nvenc', 'hevc_nvenc', 'prores_ks', 'ffv1', 'aac', 'flac'].filter((e) => caps.encoders.has(e)),
    filters: caps.filters.size
  }
  if (values.json === true) process.stdout.write(JSON.stringify(info) + '\n')
  else {
    process.stdout.write(`ffmpeg   ${info.ffmpeg} (${info.ffmpegSource}, ${info.version})\nffprobe  ${info.ffprobe} (${info.ffprobeSource})\nencoders ${info.encoders.join(', ')}\nGPU      ${info.gpuEncoders.length > 0 ? info.gpuEncoders.join(', ') : 'none (CPU encoders)'}\nfilters  ${info.filters}\n`)
  }
  return 0
}

async function demoCmd (args: string[]): Promise<number> {
  const { positionals } = parse(args, {})
  const dir = path.resolve(positionals[0] ?? 'renderswarm-demo')
  process.stderr.write(`writing the sample project into ${dir} …\n`)
  const file = await writeSample(dir, await locateFfmpeg())
  const parallel = Math.max(1, Math.min(os.availableParallelism(), 4))
  return await doRender(file, path.join(dir, 'sample-render.mkv'), 'ffv1', 4, parallel, false, true)
}

function round (n: number): number {
  return Math.round(n * 1000) / 1000
}

function isInputError (err: unknown): boolean {
  return err instanceof TimelineError || err instanceof UsageError || err instanceof UnknownPresetError || err instanceof PlanError
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (err: unknown) => {
  const msg = err instanceof Error ? err.message : String(err)
  process.stderr.write(`renderswarm: ${msg.split('\n')[0]}${msg.includes('\n') && err instanceof UsageError ? '\n' + msg.split('\n').slice(1).join('\n') : ''}\n`)
  process.exitCode = isInputError(err) ? 2 : (err instanceof FfmpegNotFoundError ? 1 : 1)
})
