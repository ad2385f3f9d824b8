/**
 * Runs one compiled invocation with fluent-ffmpeg: work files first, progress out, a time limit.
 *
 *   await runInvocation(inv, { ffmpeg, onProgress: (p) => bar.update(p.frames), timeoutMs: 600_000 })
 *
 * Every run gets the render limits of limits.ts (memory, CPU time, file size, no network, a free
 * disk floor): `opts.limits`, else the defaults and RENDERSWARM_RENDER_* of the environment. A run
 * that meets one fails with a RenderError naming it.
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import ffmpegCommand from 'fluent-ffmpeg'
import { toArgv, type FfmpegInvocation } from './invocation.ts'
import { checkFreeDisk, explainFailure, limitedFfmpeg, renderLimits, type RenderLimits } from './limits.ts'

export interface RenderProgress { frames: number; fps: number }
export interface RunOptions {
  ffmpeg: string
  onProgress?: (p: RenderProgress) => void
  /** Kill ffmpeg (SIGKILL) after this long. Default: limits.timeMs (1 h unless RENDERSWARM_RENDER_TIME_S says). */
  timeoutMs?: number
  /** Memory, CPU, file-size, network and disk limits; default renderLimits() (limits.ts). */
  limits?: RenderLimits
  /** Called with the exact argv fluent-ffmpeg started (tests compare it to toArgv). */
  onStart?: (argv: string[]) => void
  signal?: AbortSignal
}

export class RenderError extends Error {
  override readonly name = 'RenderError'
}

/** Builds the fluent-ffmpeg command for an invocation; its argv equals toArgv(inv). */
export function toFluent (inv: FfmpegInvocation, ffmpeg: string): ffmpegCommand.FfmpegCommand {
  const cmd = ffmpegCommand()
  cmd.setFfmpegPath(ffmpeg)
  for (const input of inv.inputs) cmd.input(input.file).inputOptions(input.options)
  // fluent-ffmpeg has no public setter for global options; its internal argument list is callable.
  ;(cmd as unknown as { _global: (args: string[]) => void })._global(inv.global)
  if (inv.filterComplex !== undefined) cmd.complexFilter(inv.filterComplex)
  for (const output of inv.outputs) cmd.output(output.file).outputOptions(output.options)
  return cmd
}

export async function runInvocation (inv: FfmpegInvocation, opts: RunOptions): Promise<void> {
  for (const f of inv.files) {
    await mkdir(path.dirname(f.path), { recursive: true })
    if ('content' in f) await writeFile(f.path, f.content, { mode: 0o600 })
    else await copyFile(f.copyOf, f.path)
  }
  for (const o of inv.outputs) await mkdir(path.dirname(o.file), { recursive: true })
  const chosen = opts.limits ?? renderLimits()
  // GPU drivers (CUDA for nvenc, VA-API, QSV) reserve far more address space than they use:
  // an address-space limit breaks them, so GPU runs keep only the other limits.
  const limits = toArgv(inv).some((a) => /nvenc|cuda|vaapi|qsv/.test(a)) ? { ...chosen, memoryBytes: 0 } : chosen
  const timeoutMs = opts.timeoutMs ?? limits.timeMs
  try {
    for (const o of inv.outputs) await checkFreeDisk(path.dirname(o.file), limits)
  } catch (err) { throw new RenderError((err as Error).message, { cause: err }) }
  const exe = await limitedFfmpeg(opts.ffmpeg, limits)
  const expected = toArgv(inv)
  if (opts.signal?.aborted === true) throw new RenderError('render canceled')
  await new Promise<void>((resolve, reject) => {
    const cmd = toFluent(inv, exe)
    let settled = false
    let stderrTail = ''
    const began = performance.now()
    const timer = setTimeout(() => {
      fail(new RenderError(`ffmpeg ran past its time limit of ${Math.round(timeoutMs / 1000)} s and was stopped`))
      cmd.kill('SIGKILL')
    }, timeoutMs)
    const onAbort = (): void => { fail(new RenderError('render canceled')); cmd.kill('SIGKILL') }
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    function fail (err: Error): void {
      if (settled) return
      settled = true
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
      reject(err)
    }
    cmd.on('start', (line: string) => {
      const argv = (cmd as unknown as { _getArguments: () => string[] })._getArguments()
      if (JSON.stringify(argv) !== JSON.stringify(expected)) {
        fail(new RenderError(`fluent-ffmpeg built a different command than compiled: ${line.slice(0, 200)}`))
        cmd.kill('SIGKILL')
        return
      }
      opts.onStart?.(argv)
    })
    // Progress comes from ffmpeg's own stats lines. (fluent-ffmpeg's 'progress' event would
    // first run ffprobe on input 0, which compiled graphs with only generated sources lack.)
    cmd.on('stderr', (line: string) => {
      const m = /frame=\s*(\d+)\s+fps=\s*([\d.]+)/.exec(line)
      if (m !== null) opts.onProgress?.({ frames: Number(m[1]), fps: Number(m[2]) })
      else stderrTail = (stderrTail + '\n' + line).slice(-4000)
    })
    cmd.on('error', (err: Error) => {
      // Killed from outside: SIGKILL is what the kernel's out-of-memory killer sends.
      const signal = /killed with signal (SIG[A-Z0-9]+)/.exec(err.message)?.[1]
      const exitCode = /exited with code (\d+)/.exec(err.message)?.[1]
      const limit = explainFailure({ stderr: stderrTail, signal, exitCode: exitCode === undefined ? undefined : Number(exitCode), wallMs: performance.now() - began, cores: os.cpus().length }, limits)
      if (limit !== undefined) {
        fail(new RenderError(limit, { cause: err }))
        return
      }
      if (signal !== undefined) {
        fail(new RenderError(`ffmpeg was killed by ${signal}${signal === 'SIGKILL' ? ' (the out-of-memory killer does this when the machine runs short of memory)' : ''}`, { cause: err }))
        return
      }
      const detail = stderrTail.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('frame=')).slice(-3).join(' | ')
      fail(new RenderError(`ffmpeg failed: ${detail !== '' ? detail : err.message}`, { cause: err }))
    })
    cmd.on('end', () => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
      if (inv.frames !== undefined) opts.onProgress?.({ frames: inv.frames, fps: 0 })
      resolve()
    })
    cmd.run()
  })
}
