/**
 * The estimate's probe: the owner renders a few frames of the job's own timeline (the real
 * compileChunk and runInvocation, into a temp dir that is removed) to see how fast this
 * timeline renders here, with ffmpeg's start-up measured apart. The coordinator turns it into a
 * speed factor over the benchmark (coordinator/estimate.ts probeSpeedFactor).
 *
 *   const p = await probeTimeline({ timeline, media, sources, preset, ffmpeg, tmpDir })
 *   // { frames: 42, seconds: 0.61, startSeconds: 0.14 }: 42 frames in 0.61 s once started
 *
 * Runs: at up to three points spread over the timeline (a timeline's cost changes along it), one
 * run of a single frame (the start-up there: spawn, open inputs, seek, first frame) and one of
 * `framesPerPoint` frames, one after another; when the first point rendered (start-up taken out)
 * in under 0.5 s, it is rendered again with enough frames for about 0.5 s (at most 8 × as many),
 * and so are the others: a render as short as the start-up is lost in its noise. It stops early once `budgetMs` is spent (at least
 * one point is always rendered), and gives up (throws) after `limitMs` in all. Each point's
 * fps = (frames − 1) / (seconds − its start-up) and the start-up sent is the median point's, so the
 * start-up is not counted as rendering (it is charged per chunk instead); the result is the median
 * point, since on a shared machine one run can land on a burst of someone else's work.
 *
 * Cores: on Linux, the CPU seconds of this process's reaped children (ffmpeg; /proc/self/stat
 * cutime + cstime) over the wall seconds of the multi-frame runs, i.e. how many cores one render of
 * this timeline keeps busy; agents sharing a machine split its cores by it (coordinator/estimate.ts
 * hostShares). Anything else this process reaps meanwhile (a chunk it renders for the farm) counts
 * too. A render that had no idle core beside it (/proc/stat: under 0.25 of a core idle over its
 * runs) may have wanted more than it got, so then `cores` is left out (the estimate then takes a
 * render to fill its host), as it is off Linux, and the run is marked `busy`: its speed undersells
 * this machine too, so the owner does not keep it for the next estimate (agent/owner.ts).
 *
 * Together: when `cores` was measured (an idle core beside the probe) on a machine of 2 cores or
 * more, the median point is rendered again by `together` renders side by side (the farm's render
 * nodes on this machine; 2 to 4): worth = renders × its time alone / their time together
 * (start-up taken out once), clamped to [0.25, renders], i.e. how many renders' worth of work
 * they got done. Agents sharing a host are sized by it (coordinator/estimate.ts hostShares):
 * cores over wall seconds said three agents on 2 cores would go ×1.5; they went ×0.75–1.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { TimelineSnapshot } from '../protocol/timeline.ts'
import type { MediaInfo } from './media-info.ts'
import { compileChunk } from './render/compile.ts'
import type { Preset } from './render/presets.ts'
import { runInvocation } from './render/run.ts'

const PROBE_POINTS = 3
const DEFAULT_FRAMES_PER_POINT = 30
/** Rendering (start-up taken out) a point should take at least, once the first point shows the speed. */
const MIN_RENDER_S = 0.5
/** At most this many times framesPerPoint. */
const MAX_GROWTH = 8
/** At most this many renders side by side for `together`. */
const MAX_TOGETHER = 4

export interface ProbeInput {
  timeline: TimelineSnapshot
  media: Readonly<Record<string, MediaInfo>>
  /** The local file of each asset, by sha256. */
  sources: Readonly<Record<string, string>>
  preset: Preset
  ffmpeg: string
  /** Where to make the probe's temp dir (removed afterwards). */
  tmpDir: string
  /** Default 30. */
  framesPerPoint?: number
  /** Stop starting new points after this long. Default 2000 ms. */
  budgetMs?: number
  /** Stop the probe (it throws) after this long in all, whatever it is doing. Default 10 s. */
  limitMs?: number
  /** Renders to run side by side for `together` (the render nodes on this machine, at most 4); under 2: not measured. Default 2. */
  together?: number
  signal?: AbortSignal
}
export interface ProbeResult {
  frames: number
  seconds: number
  startSeconds: number
  cores?: number
  /**
   * `renders` renders of this timeline side by side on this machine got `worth` renders' worth of
   * work done (1: no gain over one alone); measured only with an idle core beside the probe.
   */
  together?: { renders: number; worth: number }
}
/** What probeTimeline measured, and whether the machine had no idle core beside it (the figures then undersell this machine). */
export interface ProbeRun { result: ProbeResult; busy: boolean }

/** Whole-machine CPU ticks, idle and in all (Linux /proc/stat); undefined elsewhere. */
export function machineTicks (): { idle: number; total: number } | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
    const total = f.reduce((x, y) => x + y, 0)
    return Number.isFinite(total) && total > 0 ? { idle: (f[3] ?? 0) + (f[4] ?? 0), total } : undefined
  } catch {
    return undefined
  }
}

let clockTicks: number | undefined
/** CPU seconds of this process's reaped children (Linux /proc/self/stat cutime + cstime); undefined elsewhere. */
export function childCpuSeconds (): number | undefined {
  try {
    const s = readFileSync('/proc/self/stat', 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 })) || 100
    const ticks = Number(f[13]) + Number(f[14])
    return Number.isFinite(ticks) ? ticks / clockTicks : undefined
  } catch {
    return undefined
  }
}

/** Where the probe renders: `points` ranges of `n` frames centred at 1/6, 1/2, 5/6 of the timeline (pure). */
export function probeRanges (duration: number, n: number, points = 3): Array<{ start: number; end: number }> {
  if (!Number.isInteger(duration) || duration < 1) throw new Error(`duration must be a whole number ≥ 1 (got ${duration})`)
  const len = Math.max(1, Math.min(n, Math.floor(duration / points)))
  const out: Array<{ start: number; end: number }> = []
  for (let i = 0; i < points; i++) {
    const centre = Math.floor(duration * (2 * i + 1) / (2 * points))
    const start = Math.max(0, Math.min(duration - len, centre - Math.floor(len / 2)))
    if (out.some((r) => r.start === start)) continue
    out.push({ start, end: start + len })
  }
  return out
}

/** The point with the median fps (the slower of the middle two when even) (pure). */
export function medianPoint<P extends { frames: number; seconds: number }> (points: readonly P[]): P {
  if (points.length === 0) throw new Error('no probe points')
  const s = [...points].sort((a, b) => a.frames / a.seconds - b.frames / b.seconds)
  return s[(s.length - 1) >> 1]!
}

export async function probeTimeline (input: ProbeInput): Promise<ProbeRun> {
  const { timeline, preset } = input
  const budget = input.budgetMs ?? 2000
  const limit = AbortSignal.timeout(input.limitMs ?? 10_000)
  const signal = input.signal !== undefined ? AbortSignal.any([input.signal, limit]) : limit
  const dir = await mkdtemp(path.join(input.tmpDir, 'probe-'))
  const began = performance.now()
  try {
    let run = 0
    let cpuS = 0
    let wallS = 0
    let cpuKnown = true
    let idleTicks = 0
    let allTicks = 0
    const render = async (range: { start: number; end: number }, count = true): Promise<number> => {
      const at = path.join(dir, String(run++))
      const inv = compileChunk({ timeline, media: input.media, assetPath: (sha) => input.sources[sha]!, workDir: path.join(at, 'work'), preset }, range, path.join(at, `probe${preset.ext}`))
      const c0 = childCpuSeconds()
      const m0 = machineTicks()
      const t0 = performance.now()
      await runInvocation(inv, { ffmpeg: input.ffmpeg, timeoutMs: 30_000, signal })
      const seconds = (performance.now() - t0) / 1000
      const c1 = childCpuSeconds()
      const m1 = machineTicks()
      if (count && range.end - range.start > 1) {
        if (c0 === undefined || c1 === undefined || m0 === undefined || m1 === undefined) cpuKnown = false
        else { cpuS += c1 - c0; wallS += seconds; idleTicks += m1.idle - m0.idle; allTicks += m1.total - m0.total }
      }
      return seconds
    }
    // Each point renders at least `framesPerPoint` frames, and enough for about MIN_RENDER_S of
    // rendering once the first point shows how fast this timeline goes: with 30 frames the
    // render was as short as ffmpeg's start-up, whose noise moved the sample's figure from 118
    // to 176 frames/s between five probes (docs/benchmarks.md).
    let n = input.framesPerPoint ?? DEFAULT_FRAMES_PER_POINT
    const points: Array<{ frames: number; seconds: number; range: { start: number; end: number }; one: number }> = []
    const point = async (r: { start: number; end: number }): Promise<(typeof points)[number]> => {
      // Start-up differs along a timeline (which inputs are open, how far they seek): measured at each point.
      const one = await render({ start: r.start, end: r.start + 1 })
      if (r.end - r.start < 2) return { frames: 1, seconds: one, range: r, one }
      const seconds = await render(r)
      // The run's first frame is in the start-up; a run can beat the single-frame one by noise.
      return { frames: r.end - r.start - 1, seconds: Math.max(seconds - one, seconds * 0.2), range: r, one }
    }
    for (let i = 0; i < PROBE_POINTS; i++) {
      if (points.length > 0 && performance.now() - began > budget) break
      const r = probeRanges(timeline.duration, n)[i]
      if (r === undefined) break
      let p = await point(r)
      if (i === 0 && p.frames > 1 && p.seconds < MIN_RENDER_S) {
        // Too short to tell from the start-up: this point again, longer, and the rest as long.
        n = Math.min(n * MAX_GROWTH, Math.ceil(n * MIN_RENDER_S / p.seconds))
        const longer = probeRanges(timeline.duration, n)[i]
        if (longer !== undefined && longer.end - longer.start > r.end - r.start) p = await point(longer)
      }
      points.push(p)
    }
    const mid = medianPoint(points)
    const starts = points.map((p) => p.one).sort((a, b) => a - b)
    const startSeconds = starts[(starts.length - 1) >> 1]!
    const idleCores = allTicks > 0 ? idleTicks / allTicks * os.cpus().length : 0
    const busy = cpuKnown && allTicks > 0 && idleCores < 0.25
    const cores = cpuKnown && wallS > 0 && cpuS > 0 && !busy && allTicks > 0 ? Math.round(cpuS / wallS * 100) / 100 : undefined
    // Renders side by side, as many as the farm has render nodes on this machine: how much a
    // second (third, …) render here adds. CPU seconds over wall seconds do not tell it (two
    // hardware threads of one core, memory bandwidth, threads over-subscribing the cores):
    // measured on a 2-core host, three agents rendered no faster than one where 1.3 cores a render
    // predicted ×1.5 (docs/benchmarks.md). Only on an otherwise quiet machine with a core to spare.
    let together: ProbeResult['together']
    const renders = Math.min(MAX_TOGETHER, Math.floor(input.together ?? 2))
    if (renders >= 2 && cores !== undefined && os.cpus().length >= 2 && mid.frames > 1 && performance.now() - began < (input.limitMs ?? 10_000) / 2) {
      const t0 = performance.now()
      await Promise.all(Array.from({ length: renders }, async () => await render(mid.range, false)))
      // Side by side in less than one start-up (a point of a few frames on a machine that sped up
      // since): as good as free, so the clamp's top, `renders` renders' worth.
      const seconds = Math.max(1e-3, (performance.now() - t0) / 1000 - mid.one)
      together = { renders, worth: Math.round(Math.min(renders, Math.max(0.25, renders * mid.seconds / seconds)) * 100) / 100 }
    }
    return { result: { frames: mid.frames, seconds: Math.round(mid.seconds * 1e4) / 1e4, startSeconds: Math.round(startSeconds * 1e4) / 1e4, ...(cores !== undefined ? { cores } : {}), ...(together !== undefined ? { together } : {}) }, busy }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
