/**
 * Renders a timeline on this machine as N frame-range chunks, J at a time, then joins them.
 *
 *   const result = await renderTimeline({ timeline: 'edit.json', out: 'out.mkv', preset: 'ffv1', chunks: 7, parallel: 2 })
 *
 * Steps: validate everything (preset, timeline, assets, filters) before writing anything;
 * copy assets into the content-addressed cache; render audio once and every chunk into a
 * private work dir; check each segment's frame count; join (concat, -c copy) and mux audio
 * into a temporary file beside the output; validate it; rename into place. On any failure
 * the work dir and the temporary file are removed, and an existing output is left as it was.
 */
import { randomUUID } from 'node:crypto'
import { mkdtemp, rename, rm, stat } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { planChunks } from '../../coordinator/planner.ts'
import { framesToSeconds, TimelineError } from '../../protocol/timeline.ts'
import { AssetCache } from '../assets.ts'
import { locateFfmpeg, probeFfmpeg, type FfmpegTools } from '../ffmpeg.ts'
import { loadTimelineFile } from '../timeline-file.ts'
import { compileAudio } from './audio.ts'
import { compileChunk, requiredFilters, type CompileContext } from './compile.ts'
import { compileJoin } from './join.ts'
import { gopFrames, resolvePreset } from './presets.ts'
import { runInvocation } from './run.ts'
import { validateOutput, type ValidationReport } from './validate.ts'

export interface RenderRequest {
  timeline: string
  out: string
  preset: string
  chunks: number
  parallel: number
  tools?: FfmpegTools
  /** Content-addressed asset cache; default `<user cache>/renderswarm/assets`. */
  cacheDir?: string
  /** Parent of the private work dir; default the OS temp dir. */
  workRoot?: string
  /** Per-ffmpeg time limit. */
  timeoutMs?: number
  gpu?: boolean
  onProgress?: (p: JobProgress) => void
  /** Aborting stops every running ffmpeg and cleans up; the render rejects with RenderError. */
  signal?: AbortSignal
}

export interface JobProgress { framesDone: number; frames: number; fps: number; etaSeconds: number | undefined; chunksDone: number; chunks: number }

export interface RenderResult {
  output: string
  frames: number
  chunks: Array<{ index: number; start: number; end: number; seconds: number }>
  seconds: number
  fps: number
  preset: string
  encoder: string
  ffmpeg: string
  validation: ValidationReport
}

export function defaultCacheDir (): string {
  const base = process.env.XDG_CACHE_HOME ?? (process.platform === 'darwin' ? path.join(os.homedir(), 'Library', 'Caches') : process.platform === 'win32' ? (process.env.LOCALAPPDATA ?? os.tmpdir()) : path.join(os.homedir(), '.cache'))
  return path.join(base, 'renderswarm', 'assets')
}

export async function renderTimeline (req: RenderRequest): Promise<RenderResult> {
  const began = performance.now()
  if (!Number.isInteger(req.chunks) || req.chunks < 1) throw new TimelineError('--chunks', `must be a whole number ≥ 1 (got ${req.chunks})`)
  if (!Number.isInteger(req.parallel) || req.parallel < 1) throw new TimelineError('--parallel', `must be a whole number ≥ 1 (got ${req.parallel})`)
  const tools = req.tools ?? await locateFfmpeg()
  const caps = await probeFfmpeg(tools, { checkGpu: req.gpu !== false })
  const preset = resolvePreset(req.preset, caps, { gpu: req.gpu })
  const out = path.resolve(req.out)
  const ext = path.extname(out).toLowerCase()
  if (ext !== preset.ext) throw new TimelineError('-o', `output "${path.basename(out)}" should end in ${preset.ext} for preset ${preset.name}`)
  await checkOutputDir(out)

  const loaded = await loadTimelineFile(req.timeline, { ffprobe: tools.ffprobe })
  const t = loaded.snapshot
  const missing = [...requiredFilters(t)].filter((f) => !caps.filters.has(f))
  if (missing.length > 0) throw new TimelineError('', `this ffmpeg (${caps.version}, ${tools.ffmpeg}) lacks the filter(s) ${missing.join(', ')} that this timeline needs; install a fuller ffmpeg and set FFMPEG_PATH`)

  const cache = new AssetCache(req.cacheDir ?? defaultCacheDir())
  for (const [sha, src] of Object.entries(loaded.sources)) await cache.put(src, sha)

  const work = await mkdtemp(path.join(req.workRoot ?? os.tmpdir(), 'renderswarm-'))
  const partial = path.join(path.dirname(out), `.${path.basename(out, ext)}.${randomUUID().slice(0, 8)}.partial${ext}`)
  try {
    const paths: Record<string, string> = {}
    for (const sha of Object.keys(loaded.sources)) paths[sha] = await cache.verified(sha)
    const ctx = (workDir: string): CompileContext => ({ timeline: t, media: loaded.media, assetPath: (sha) => paths[sha] ?? cache.pathOf(sha), workDir, preset })
    const plan = planChunks(t.duration, req.chunks, { align: gopFrames(preset, t.fps) })
    const done = new Array<number>(plan.length).fill(0)
    let chunksDone = 0
    const report = (): void => {
      const framesDone = done.reduce((x, y) => x + y, 0)
      const elapsed = (performance.now() - began) / 1000
      const fps = elapsed > 0 ? framesDone / elapsed : 0
      req.onProgress?.({ framesDone, frames: t.duration, fps, etaSeconds: fps > 0 ? (t.duration - framesDone) / fps : undefined, chunksDone, chunks: plan.length })
    }
    const segFile = (i: number): string => path.join(work, `seg-${String(i).padStart(4, '0')}${preset.ext}`)
    const audioFile = path.join(work, `audio${preset.audioExt}`)
    const timings: RenderResult['chunks'] = []
    const tasks: Array<() => Promise<void>> = [
      async () => { await runInvocation(compileAudio(ctx(path.join(work, 'audio')), audioFile), { ffmpeg: tools.ffmpeg, timeoutMs: req.timeoutMs, signal: req.signal }) },
      ...plan.map((c) => async () => {
        const started = performance.now()
        const inv = compileChunk(ctx(path.join(work, `chunk-${c.index}`)), c, segFile(c.index))
        await runInvocation(inv, {
          ffmpeg: tools.ffmpeg,
          timeoutMs: req.timeoutMs,
          signal: req.signal,
          onProgress: (p) => { done[c.index] = Math.min(p.frames, c.end - c.start); report() }
        })
        await validateOutput(tools.ffprobe, segFile(c.index), { frames: c.end - c.start, fps: t.fps })
        chunksDone++
        timings.push({ ...c, seconds: (performance.now() - started) / 1000 })
        report()
      })
    ]
    await runPool(tasks, req.parallel)
    await runInvocation(compileJoin({
      segments: plan.map((c) => ({ file: segFile(c.index), frames: c.end - c.start })),
      fps: t.fps,
      audio: audioFile,
      preset,
      listFile: path.join(work, 'segments.ffconcat'),
      outFile: partial,
      frames: t.duration
    }), { ffmpeg: tools.ffmpeg, timeoutMs: req.timeoutMs, signal: req.signal })
    const validation = await validateOutput(tools.ffprobe, partial, { frames: t.duration, fps: t.fps, audioSeconds: framesToSeconds(t.duration, t.fps) })
    await rename(partial, out)
    const seconds = (performance.now() - began) / 1000
    return {
      output: out, frames: t.duration, chunks: timings.sort((x, y) => x.index - y.index), seconds, fps: t.duration / seconds,
      preset: preset.name, encoder: preset.encoder, ffmpeg: tools.ffmpeg, validation
    }
  } finally {
    await rm(partial, { force: true })
    await rm(work, { recursive: true, force: true })
  }
}

async function checkOutputDir (out: string): Promise<void> {
  try {
    const st = await stat(path.dirname(out))
    if (!st.isDirectory()) throw new Error('not a directory')
  } catch (err) {
    throw new TimelineError('-o', `the output folder ${path.dirname(out)} does not exist`, { cause: err })
  }
}

/** Runs tasks at most `limit` at a time; the first failure stops new starts and is rethrown after running ones end. */
export async function runPool (tasks: Array<() => Promise<void>>, limit: number): Promise<void> {
  let nextTask = 0
  let failure: unknown
  const worker = async (): Promise<void> => {
    while (failure === undefined && nextTask < tasks.length) {
      const task = tasks[nextTask++]!
      try {
        await task()
      } catch (err) {
        failure ??= err
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker))
  if (failure !== undefined) throw failure
}
