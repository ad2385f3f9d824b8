/**
 * Measures what chunking costs: the sample timeline's video rendered as ONE plain ffmpeg run
 * versus N = 1, 4, 8 chunks rendered one at a time and joined (join included).
 *
 *   node bin/run-ts.js bench/render-overhead.ts [--reps 3] [--preset ffv1] [--quick]
 *   npm run bench:render-overhead
 *
 * Video only (audio is rendered once per job either way). Variants are interleaved within each
 * repetition (baseline, N1, N4, N8, baseline, …) so machine noise hits all alike; the table shows
 * the median, min and max wall-clock seconds and the ratio of each median to the baseline's.
 * Target: N=4 median ≤ 1.05 × baseline median. Exits 0 whether that passes or not; non-zero on
 * errors. Every output is checked with ffprobe (frame count, timestamps) outside the timings.
 * --quick: one repetition (for `npm run bench`). The last stdout line is the BENCH line (bench/result.ts).
 */
import { rmSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { planChunks, type ChunkRange } from '../coordinator/planner.ts'
import type { TimelineSnapshot } from '../protocol/timeline.ts'
import { AssetCache } from '../agent/assets.ts'
import { locateFfmpeg, probeFfmpeg, type FfmpegTools } from '../agent/ffmpeg.ts'
import { compileChunk, requiredFilters, type CompileContext } from '../agent/render/compile.ts'
import { compileJoin } from '../agent/render/join.ts'
import { gopFrames, resolvePreset, type Preset } from '../agent/render/presets.ts'
import { runInvocation } from '../agent/render/run.ts'
import { validateOutput } from '../agent/render/validate.ts'
import { writeSample } from '../agent/sample.ts'
import { loadTimelineFile } from '../agent/timeline-file.ts'
import { printBench } from './result.ts'

const TARGET_RATIO = 1.05
const TARGET_CHUNKS = 4
const CHUNK_COUNTS = [1, 4, 8] as const

interface Variant {
  name: string
  /** undefined: the baseline (one plain run); otherwise the chunk count asked of the planner. */
  chunks: number | undefined
  /** Chunks the planner actually made (may be fewer than asked for inter-frame presets). */
  planned: number
  seconds: number[]
}

interface Summary { median: number; min: number; max: number }

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      reps: { type: 'string' },
      preset: { type: 'string', default: 'ffv1' },
      quick: { type: 'boolean', default: false }
    },
    strict: true
  })
  const reps = Number(values.reps ?? (values.quick === true ? 1 : 3))
  if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps must be a whole number ≥ 1 (got ${values.reps})`)

  const tools = await locateFfmpeg()
  const caps = await probeFfmpeg(tools, { checkGpu: true })
  const preset = resolvePreset(String(values.preset), caps)

  const root = await mkdtemp(path.join(os.tmpdir(), 'renderswarm-bench-'))
  // Stopped from outside (bench/all.ts over its time limit, Ctrl-C): ffmpeg goes with the process group; the files go here.
  const onSignal = (): void => { rmSync(root, { recursive: true, force: true }); process.exit(130) }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    process.stderr.write(`writing the sample timeline into ${root} …\n`)
    const timelineFile = await writeSample(path.join(root, 'sample'), tools)
    const loaded = await loadTimelineFile(timelineFile, { ffprobe: tools.ffprobe })
    const t = loaded.snapshot
    const missing = [...requiredFilters(t)].filter((f) => !caps.filters.has(f))
    if (missing.length > 0) throw new Error(`this ffmpeg (${caps.version}, ${tools.ffmpeg}) lacks the filter(s) ${missing.join(', ')} that the sample needs`)

    const cache = new AssetCache(path.join(root, 'cache'))
    for (const [sha, src] of Object.entries(loaded.sources)) await cache.put(src, sha)
    const paths: Record<string, string> = {}
    for (const sha of Object.keys(loaded.sources)) paths[sha] = await cache.verified(sha)
    const ctx = (workDir: string): CompileContext => ({ timeline: t, media: loaded.media, assetPath: (sha) => paths[sha] ?? cache.pathOf(sha), workDir, preset })

    const align = gopFrames(preset, t.fps)
    const plans = new Map<number, ChunkRange[]>(CHUNK_COUNTS.map((n) => [n, planChunks(t.duration, n, { align })]))
    const variants: Variant[] = [
      { name: 'baseline (1 plain run)', chunks: undefined, planned: 1, seconds: [] },
      ...CHUNK_COUNTS.map((n) => ({ name: `chunked N=${n}`, chunks: n, planned: plans.get(n)!.length, seconds: [] }))
    ]

    for (let rep = 1; rep <= reps; rep++) {
      for (const v of variants) {
        const dir = path.join(root, 'runs', `r${rep}-${v.chunks === undefined ? 'baseline' : `n${v.chunks}`}`)
        await mkdir(dir, { recursive: true })
        const out = path.join(dir, `out${preset.ext}`)
        const plan = v.chunks === undefined ? undefined : plans.get(v.chunks)!
        const seconds = plan === undefined
          ? await timeBaseline(tools, ctx, t, dir, out)
          : await timeChunked(tools, ctx, t, preset, plan, dir, out)
        // Outside the timing: the output must be the whole timeline, frame-continuous.
        await validateOutput(tools.ffprobe, out, { frames: t.duration, fps: t.fps })
        await rm(dir, { recursive: true, force: true })
        v.seconds.push(seconds)
        process.stderr.write(`rep ${rep}/${reps}  ${v.name.padEnd(22)} ${seconds.toFixed(2)} s\n`)
      }
    }

    report(variants, { tools, version: caps.version, preset, t, reps })
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

/** One plain ffmpeg run of compileChunk over [0, duration), writing the output directly. */
async function timeBaseline (tools: FfmpegTools, ctx: (workDir: string) => CompileContext, t: TimelineSnapshot, dir: string, out: string): Promise<number> {
  const began = performance.now()
  const inv = compileChunk(ctx(path.join(dir, 'work')), { start: 0, end: t.duration }, out)
  await runInvocation(inv, { ffmpeg: tools.ffmpeg })
  return (performance.now() - began) / 1000
}

/** Each chunk rendered one at a time into its own work dir, then joined (-c copy, no audio). */
async function timeChunked (tools: FfmpegTools, ctx: (workDir: string) => CompileContext, t: TimelineSnapshot, preset: Preset, plan: ChunkRange[], dir: string, out: string): Promise<number> {
  const segFile = (i: number): string => path.join(dir, `seg-${String(i).padStart(4, '0')}${preset.ext}`)
  const began = performance.now()
  for (const c of plan) {
    await runInvocation(compileChunk(ctx(path.join(dir, `chunk-${c.index}`)), c, segFile(c.index)), { ffmpeg: tools.ffmpeg })
  }
  await runInvocation(compileJoin({
    segments: plan.map((c) => ({ file: segFile(c.index), frames: c.end - c.start })),
    fps: t.fps,
    audio: undefined,
    preset,
    listFile: path.join(dir, 'segments.ffconcat'),
    outFile: out,
    frames: t.duration
  }), { ffmpeg: tools.ffmpeg })
  return (performance.now() - began) / 1000
}

function summarize (xs: number[]): Summary {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
  return { median, min: s[0]!, max: s[s.length - 1]! }
}

function describe (t: TimelineSnapshot): string {
  const clips = t.video.flatMap((tr) => tr.clips)
  const media = clips.filter((c) => c.type === 'media').length
  const text = clips.filter((c) => c.type === 'text').length
  const transitions = t.video.reduce((n, tr) => n + (tr.transitions?.length ?? 0), 0)
  const secs = t.duration * t.fps.den / t.fps.num
  return `${t.name ?? 'timeline'}: ${t.duration} frames (${secs} s), ${t.width}x${t.height} @ ${t.fps.num}/${t.fps.den} fps, ` +
    `${media} media clip(s), ${transitions} transition(s), ${text} text clip(s); video only`
}

function report (variants: Variant[], info: { tools: FfmpegTools; version: string; preset: Preset; t: TimelineSnapshot; reps: number }): void {
  const base = summarize(variants[0]!.seconds)
  const rows = variants.map((v) => {
    const s = summarize(v.seconds)
    return { v, s, ratio: s.median / base.median }
  })
  const n4 = rows.find((r) => r.v.chunks === TARGET_CHUNKS)!
  const pass = n4.ratio <= TARGET_RATIO
  const cpus = os.cpus()
  const date = new Date().toISOString()

  const header = ['variant', 'chunks', 'median s', 'min s', 'max s', 'ratio']
  const body = rows.map((r) => [r.v.name, String(r.v.planned), r.s.median.toFixed(2), r.s.min.toFixed(2), r.s.max.toFixed(2), r.ratio.toFixed(3)])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)))
  const line = (cells: string[]): string => cells.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join('  ')
  console.log('')
  console.log('render overhead: chunked (one at a time, + join) vs one plain ffmpeg run')
  console.log('')
  console.log(line(header))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const b of body) console.log(line(b))
  console.log('')
  console.log(`${pass ? 'PASS' : 'FAIL'}: N=${TARGET_CHUNKS} median / baseline median = ${n4.ratio.toFixed(3)} (target ≤ ${TARGET_RATIO.toFixed(2)})`)
  console.log('')
  console.log('method:')
  console.log(`  machine:   ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${os.platform()} ${os.arch()}`)
  console.log(`  node:      ${process.version}`)
  console.log(`  ffmpeg:    ${info.version} (${info.tools.ffmpeg})`)
  console.log(`  preset:    ${info.preset.name} (${info.preset.encoder})`)
  console.log(`  timeline:  ${describe(info.t)}`)
  console.log(`  runs:      ${info.reps} repetitions; median of ${info.reps} interleaved repetitions (baseline, N=1, N=4, N=8 in each)`)
  console.log('  chunks:    chunks run one at a time, each in its own work dir; time includes the join (concat, -c copy)')
  console.log('  baseline:  one plain ffmpeg run of compileChunk over [0, duration) writing the output directly')
  console.log('  timing:    wall clock (performance.now()); outputs checked with ffprobe outside the timings')
  console.log(`  date:      ${date}`)
  console.log('')
  console.log(JSON.stringify({
    bench: 'render-overhead',
    date,
    preset: info.preset.name,
    encoder: info.preset.encoder,
    reps: info.reps,
    machine: { cpu: cpus[0]?.model ?? null, cores: cpus.length, node: process.version, ffmpeg: info.version },
    frames: info.t.duration,
    baselineMedianSeconds: round(base.median),
    variants: rows.map((r) => ({
      name: r.v.chunks === undefined ? 'baseline' : `N${r.v.chunks}`,
      chunksAsked: r.v.chunks ?? null,
      chunks: r.v.planned,
      seconds: r.v.seconds.map((x) => round(x)),
      median: round(r.s.median),
      min: round(r.s.min),
      max: round(r.s.max),
      ratio: round(r.ratio, 4)
    })),
    target: { chunks: TARGET_CHUNKS, maxRatio: TARGET_RATIO, ratio: round(n4.ratio, 4), pass }
  }))
  const how = `${info.t.duration} frames 720p, ${info.preset.name}, chunks one at a time + join vs one plain ffmpeg run, median of ${info.reps}`
  printBench('bench/render-overhead.ts', [
    { figure: `render overhead of chunking, N=${TARGET_CHUNKS} / plain`, value: n4.ratio.toFixed(3), target: `≤ ${TARGET_RATIO.toFixed(2)}`, pass, method: how },
    ...rows.filter((r) => r.v.chunks !== undefined && r.v.chunks !== TARGET_CHUNKS).map((r) => ({ figure: `render overhead of chunking, N=${r.v.chunks!} / plain`, value: r.ratio.toFixed(3), target: '', pass: null, method: how }))
  ])
}

function round (x: number, digits = 3): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

try {
  await main()
} catch (err) {
  console.error(`render-overhead: ${(err as Error).stack ?? String(err)}`)
  process.exitCode = 1
}
