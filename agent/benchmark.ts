/**
 * Self-benchmark: a fixed reference workload rendered with this node's ffmpeg, per preset,
 * giving frames per second. Cached per (hardware, ffmpeg build); re-run on demand.
 *
 *   const table = await benchmark(tools, caps, hw, store)            // cached when it can be
 *   const fresh = await benchmark(tools, caps, hw, store, { force: true })
 *
 * The workload (fixed, so figures compare across machines): 90 frames of 1280x720 at 30 fps
 * from ffmpeg's testsrc2 with a blur and an overlay, encoded with the preset's own settings.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import os from 'node:os'
import type { FfmpegCapabilities, FfmpegTools } from './ffmpeg.ts'
import type { HardwareInfo } from './hardware.ts'
import { PRESET_NAMES, resolvePreset, type PresetName } from './render/presets.ts'
import type { Store } from './store.ts'

/** Runs ffmpeg, optionally at low CPU priority (an agent benchmarking in the background). */
function run (file: string, args: string[], lowPriority: boolean, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: 300_000, ...(signal !== undefined ? { signal } : {}) }, (err) => { if (err === null) resolve(); else reject(err) })
    if (lowPriority && child.pid !== undefined) { try { os.setPriority(child.pid, 15) } catch { /* not permitted: run as is */ } }
  })
}
export const REFERENCE_FRAMES = 90
const GRAPH = 'testsrc2=s=1280x720:r=30,split[a][b];[a]gblur=sigma=2[c];[c][b]overlay=x=320:y=180:shortest=1,format=yuv420p'

export interface BenchResult { fps: Partial<Record<PresetName, number>>; measuredAtMs: number; key: string; cached: boolean }

/** The cache key: what the figure depends on. */
export function benchmarkKey (hw: HardwareInfo, caps: Pick<FfmpegCapabilities, 'build'>): string {
  const what = JSON.stringify({ cpu: hw.cpu, gpus: hw.gpus.map((g) => g.model), ffmpeg: caps.build, workload: GRAPH, frames: REFERENCE_FRAMES })
  return createHash('sha256').update(what).digest('hex').slice(0, 32)
}

export async function benchmark (tools: FfmpegTools, caps: FfmpegCapabilities, hw: HardwareInfo, store: Store, opts: { force?: boolean; presets?: PresetName[]; now?: () => number; lowPriority?: boolean; signal?: AbortSignal } = {}): Promise<BenchResult> {
  const key = benchmarkKey(hw, caps)
  const cached = store.getBenchmark<Partial<Record<PresetName, number>>>(key)
  if (cached !== undefined && opts.force !== true) return { fps: cached.result, measuredAtMs: cached.measuredAtMs, key, cached: true }
  const fps: Partial<Record<PresetName, number>> = {}
  for (const name of opts.presets ?? PRESET_NAMES) {
    let preset
    try { preset = resolvePreset(name, caps) } catch { continue }
    const started = performance.now()
    await run(tools.ffmpeg, ['-nostdin', '-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', GRAPH,
      '-frames:v', String(REFERENCE_FRAMES), ...preset.videoArgs, '-an', '-f', 'null', '-'], opts.lowPriority === true, opts.signal)
    fps[name] = Math.round(REFERENCE_FRAMES / ((performance.now() - started) / 1000) * 10) / 10
  }
  const measuredAtMs = (opts.now ?? Date.now)()
  store.putBenchmark(key, fps, measuredAtMs)
  return { fps, measuredAtMs, key, cached: false }
}
