/**
 * Side by side (issue H): one source rendered to the ffv1 preset by the do-it-yourself method
 * (split with ffmpeg, encode the parts in parallel, concat) and by a farm of as many agents as
 * the DIY run has parallel jobs, on this machine; wall time and frame-exact correctness of each
 * against a one-machine reference render (`renderswarm render … --chunks 1`).
 *
 *   node bin/run-ts.js bench/diy.ts [--seconds 60] [--parts 2] [--reps 3] [--quick] [--keep DIR]
 *   npm run bench:diy
 *
 * Source: a 1280x720 30 fps H.264 file (x264 veryfast crf 20, its default GOP of 250 frames,
 * B-frames), as an editor's exported master or a camera file is; the timeline is that file,
 * whole, one clip (a single source, so that the DIY method does the same work as the farm).
 * DIY methods (each timed from the split to the joined file):
 *   (1) ss-copy   `ffmpeg -ss S -t D -i src -c copy partK.mp4` (the recipe most guides give),
 *   (2) segment   `ffmpeg -i src -c copy -f segment -segment_time D -reset_timestamps 1`,
 *   (3) ss-encode each parallel job seeks the source itself: `ffmpeg -ss S -t D -i src <preset>`,
 * then (1) and (2) encode the parts with the preset's arguments; all run their encodes with GNU
 * parallel (`parallel -j N < jobs`) when it is installed, otherwise `xargs -P N`, and join with
 * the concat demuxer (`-f concat -c copy`). Farm: N agents on 127.0.0.1 (`--no-mdns`, joined by
 * invite), timed from POST /v1/jobs to the job's 'done'. Each output's frames are hashed
 * (`-f framemd5`) and compared with the reference's, position by position and as a multiset
 * (frames missing, duplicated, foreign). The source's frames are all different (testsrc2 draws
 * a frame counter), so a duplicate is a duplicate. Variants are interleaved within each rep;
 * medians. --quick: 20 s source, 1 rep (under 3 min). Exits 0 whether or not the outputs match;
 * non-zero on errors. Stops what it starts (agents in their own process groups) and removes its
 * temp dir (unless --keep).
 */
import { execFile, spawn } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs, promisify } from 'node:util'
import { locateFfmpeg, probeFfmpeg, type FfmpegTools } from '../agent/ffmpeg.ts'
import { resolvePreset, type Preset } from '../agent/render/presets.ts'
import { cli, LoopbackFarms, median, sleep } from './loopback-farm.ts'
import { printBench, type BenchRow } from './result.ts'

const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string' }, parts: { type: 'string', default: '2' }, reps: { type: 'string' },
    quick: { type: 'boolean', default: false }, keep: { type: 'string' }
  },
  strict: true
})
const W = 1280
const H = 720
const FPS = 30
const run = promisify(execFile)
/** Single-quoted for sh. */
const q = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`

type DiyMethod = 'ss-copy' | 'segment' | 'ss-encode'
const DIY_METHODS: Array<{ key: DiyMethod; label: string }> = [
  { key: 'ss-copy', label: 'DIY -ss/-t copy split' },
  { key: 'segment', label: 'DIY -f segment split' },
  { key: 'ss-encode', label: 'DIY -ss/-t in each encode' }
]

/** How one output compares with the reference, frame by frame. */
interface Check {
  frames: number
  durationS: number
  identical: boolean
  /** Frames equal to the reference's at the same index. */
  samePosition: number
  /** First index where the output differs from the reference (or where one of them ends); null when identical. */
  firstDiff: number | null
  /** Reference frames absent from the output, output frames that repeat a reference frame, and output frames found nowhere in the reference. */
  missing: number
  duplicated: number
  foreign: number
}

function compare (ref: string[], out: string[], durationS: number): Check {
  const left = new Map<string, number>()
  for (const h of ref) left.set(h, (left.get(h) ?? 0) + 1)
  const known = new Set(ref)
  let matched = 0; let duplicated = 0; let foreign = 0
  for (const h of out) {
    const n = left.get(h) ?? 0
    if (n > 0) { left.set(h, n - 1); matched++ } else if (known.has(h)) duplicated++; else foreign++
  }
  let samePosition = 0
  let firstDiff: number | null = null
  for (let i = 0; i < Math.max(ref.length, out.length); i++) {
    if (i < ref.length && i < out.length && ref[i] === out[i]) samePosition++
    else if (firstDiff === null) firstDiff = i
  }
  return { frames: out.length, durationS, identical: firstDiff === null, samePosition, firstDiff, missing: ref.length - matched, duplicated, foreign }
}

async function frameHashes (ffmpeg: string, file: string): Promise<string[]> {
  const { stdout } = await run(ffmpeg, ['-nostdin', '-v', 'error', '-i', file, '-map', '0:v:0', '-f', 'framemd5', '-'], { maxBuffer: 256 * 1024 * 1024, timeout: 300_000 })
  return stdout.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split(',').at(-1)!.trim())
}

async function durationOf (ffprobe: string, file: string): Promise<number> {
  const { stdout } = await run(ffprobe, ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', file], { timeout: 60_000 })
  return Number(stdout.trim())
}

/** Runs a command to its end (bounded); rejects with its stderr's tail. */
function sh (cmd: string, args: string[], timeoutMs: number, what: string, stdin?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    let out = ''; let err = ''
    c.stdout!.on('data', (d: Buffer) => { out += d.toString() })
    c.stderr!.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-4000) })
    if (stdin !== undefined) c.stdin!.end(stdin)
    const timer = setTimeout(() => { c.kill('SIGKILL') }, timeoutMs)
    c.on('error', (e) => { clearTimeout(timer); reject(new Error(`${what}: ${e.message}`)) })
    c.on('close', (code, signal) => {
      clearTimeout(timer)
      if (code === 0) resolve(out)
      else reject(new Error(`${what}: ${signal === 'SIGKILL' ? `no end within ${timeoutMs / 1000} s` : `exit ${code ?? signal}`}: ${err.trim().split('\n').slice(-3).join(' | ')}`))
    })
  })
}

/** GNU parallel if installed (what DIY guides use), else xargs -P. */
async function runner (): Promise<'parallel' | 'xargs'> {
  try {
    const v = await sh('parallel', ['--version'], 10_000, 'parallel --version')
    return v.includes('GNU parallel') ? 'parallel' : 'xargs'
  } catch {
    return 'xargs'
  }
}

/** Runs shell command lines `jobs`, N at a time, the way a DIY user does. */
async function inParallel (how: 'parallel' | 'xargs', jobs: string[], n: number): Promise<void> {
  const input = jobs.join('\n') + '\n'
  if (how === 'parallel') await sh('parallel', ['-j', String(n), '--halt', 'now,fail=1'], 900_000, 'parallel', input)
  else await sh('xargs', ['-d', '\n', '-P', String(n), '-I', 'CMD', 'sh', '-c', 'CMD'], 900_000, 'xargs -P', input)
}

interface DiyPlan { parts: number; frames: number; tools: FfmpegTools; preset: Preset; src: string; how: 'parallel' | 'xargs' }

/** One DIY run in `dir`: split, encode in parallel, concat. Returns the joined file and the wall seconds from the split to the joined file. */
async function diy (method: DiyMethod, p: DiyPlan, dir: string): Promise<{ out: string; seconds: number }> {
  await mkdir(dir, { recursive: true })
  const ff = q(p.tools.ffmpeg)
  const enc = [...p.preset.videoArgs, '-pix_fmt', p.preset.pixFmt].map(q).join(' ')
  const cut = (k: number): string => (Math.round(k * p.frames / p.parts) / FPS).toFixed(6)
  const began = performance.now()
  let parts: string[] = []
  if (method === 'ss-copy') {
    for (let k = 0; k < p.parts; k++) {
      const file = path.join(dir, `part${k}.mp4`)
      const dur = (Number(cut(k + 1)) - Number(cut(k))).toFixed(6)
      await sh(p.tools.ffmpeg, ['-nostdin', '-v', 'error', '-y', '-ss', cut(k), '-t', dur, '-i', p.src, '-map', '0:v:0', '-c', 'copy', file], 300_000, `split part ${k}`)
      parts.push(file)
    }
  } else if (method === 'segment') {
    await sh(p.tools.ffmpeg, ['-nostdin', '-v', 'error', '-y', '-i', p.src, '-map', '0:v:0', '-c', 'copy', '-f', 'segment', '-segment_time', cut(1), '-reset_timestamps', '1', path.join(dir, 'part%03d.mp4')], 300_000, 'segment split')
    parts = (await readdir(dir)).filter((f) => /^part\d+\.mp4$/.test(f)).sort().map((f) => path.join(dir, f))
  }
  const encoded: string[] = []
  const jobs: string[] = []
  if (method === 'ss-encode') {
    for (let k = 0; k < p.parts; k++) {
      const file = path.join(dir, `part${k}.mkv`)
      const dur = (Number(cut(k + 1)) - Number(cut(k))).toFixed(6)
      jobs.push(`${ff} -nostdin -v error -y -ss ${cut(k)} -t ${dur} -i ${q(p.src)} -map 0:v:0 ${enc} ${q(file)}`)
      encoded.push(file)
    }
  } else {
    for (const part of parts) {
      const file = part.replace(/\.mp4$/, '.mkv')
      jobs.push(`${ff} -nostdin -v error -y -i ${q(part)} -map 0:v:0 ${enc} ${q(file)}`)
      encoded.push(file)
    }
  }
  await inParallel(p.how, jobs, p.parts)
  const list = path.join(dir, 'list.txt')
  await writeFile(list, encoded.map((f) => `file ${q(f)}`).join('\n') + '\n')
  const out = path.join(dir, 'out.mkv')
  await sh(p.tools.ffmpeg, ['-nostdin', '-v', 'error', '-y', '-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', out], 300_000, 'concat')
  return { out, seconds: (performance.now() - began) / 1000 }
}

// ---------------------------------------------------------------- the farm (as bench/estimate starts it)

const farms = new LoopbackFarms()
const stopAll = async (): Promise<void> => { await farms.stopAll() }
let tempRoot: string | undefined

// ---------------------------------------------------------------- main

interface Result { label: string; seconds: number[]; checks: Check[]; note: string }

async function main (): Promise<void> {
  const quick = opt.quick === true
  const seconds = Number(opt.seconds ?? (quick ? 20 : 60))
  const parts = Number(opt.parts)
  const reps = Number(opt.reps ?? (quick ? 1 : 3))
  if (!Number.isFinite(seconds) || seconds < 4 || seconds > 600) throw new Error(`--seconds must be 4–600 (got ${opt.seconds})`)
  if (!Number.isInteger(parts) || parts < 2 || parts > 8) throw new Error(`--parts must be 2–8 (got ${opt.parts})`)
  if (!Number.isInteger(reps) || reps < 1 || reps > 20) throw new Error(`--reps must be 1–20 (got ${opt.reps})`)
  const frames = Math.round(seconds * FPS)
  const root = opt.keep !== undefined ? path.resolve(opt.keep) : await mkdtemp(path.join(os.tmpdir(), 'rs-bench-diy-'))
  await mkdir(root, { recursive: true })
  if (opt.keep === undefined) tempRoot = root
  const began = Date.now()
  const loadBefore = os.loadavg()[0]!
  try {
    const tools = await locateFfmpeg()
    const caps = await probeFfmpeg(tools, { checkGpu: false })
    const preset = resolvePreset('ffv1', caps)
    const how = await runner()
    const project = path.join(root, 'project')
    await mkdir(project, { recursive: true })
    const src = path.join(project, 'master.mp4')
    process.stderr.write(`writing a ${seconds} s ${W}x${H} H.264 source in ${root} …\n`)
    await sh(tools.ffmpeg, ['-nostdin', '-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=s=${W}x${H}:r=${FPS}`, '-frames:v', String(frames), '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '20', '-pix_fmt', 'yuv420p', src], 600_000, 'writing the source')
    const keyframes = (await run(tools.ffprobe, ['-v', 'error', '-select_streams', 'v:0', '-skip_frame', 'nokey', '-show_entries', 'frame=pts_time', '-of', 'csv=p=0', src], { timeout: 120_000 })).stdout.split('\n').filter((l) => l.trim() !== '').map((l) => Math.round(Number(l.split(',')[0]) * FPS))
    const timeline = path.join(project, 'diy.timeline.json')
    await writeFile(timeline, JSON.stringify({
      schema: 'farm.timeline/1', name: `diy side by side ${seconds} s`, fps: { num: FPS, den: 1 }, width: W, height: H, sampleRate: 48000, duration: frames,
      assets: { master: { path: 'master.mp4' } },
      video: [{ clips: [{ id: 'master', type: 'media', asset: 'master', start: 0, length: frames, srcIn: 0 }] }],
      audio: []
    }, null, 2) + '\n')

    // The reference: one machine, one chunk.
    const refFile = path.join(root, 'reference.mkv')
    const r0 = performance.now()
    const rendered = await cli(['render', timeline, '-o', refFile, '--preset', 'ffv1', '--chunks', '1', '--parallel', '1', '--no-gpu', '--json'], 900_000)
    const refSeconds = (performance.now() - r0) / 1000
    if (rendered.code !== 0) throw new Error(`the reference render: ${rendered.stderr.trim().split('\n').slice(-3).join(' | ')}`)
    const ref = await frameHashes(tools.ffmpeg, refFile)
    if (ref.length !== frames) throw new Error(`the reference render has ${ref.length} frames, not ${frames}`)
    if (new Set(ref).size !== ref.length) throw new Error('the reference has repeated frames: a duplicate could not be told from a copy')
    process.stderr.write(`reference (renderswarm render --chunks 1): ${refSeconds.toFixed(2)} s, ${ref.length} frames\n`)

    process.stderr.write(`starting a farm of ${parts} agents on 127.0.0.1 …\n`)
    const f0 = performance.now()
    const { farm } = await farms.start(path.join(root, 'farm'), parts, { prefix: 'diy' })
    const farmStartS = (performance.now() - f0) / 1000
    process.stderr.write(`farm up in ${farmStartS.toFixed(0)} s\n`)

    const plan: DiyPlan = { parts, frames, tools, preset, src, how }
    const results: Result[] = [
      ...DIY_METHODS.map((m) => ({ label: m.label, seconds: [] as number[], checks: [] as Check[], note: '' })),
      { label: `farm, ${parts} agents`, seconds: [], checks: [], note: '' }
    ]
    const farmChunks: number[] = []
    for (let rep = 1; rep <= reps; rep++) {
      for (const [i, m] of DIY_METHODS.entries()) {
        const dir = path.join(root, 'runs', `${m.key}-${rep}`)
        const d = await diy(m.key, plan, dir)
        const c = compare(ref, await frameHashes(tools.ffmpeg, d.out), await durationOf(tools.ffprobe, d.out))
        // Outside the timing: the parts as the split made them (ffv1 is intra-only, one packet a frame).
        const sizes: number[] = []
        for (const f of (await readdir(dir)).filter((x) => /^part\d+\.mkv$/.test(x)).sort()) {
          const { stdout } = await run(tools.ffprobe, ['-v', 'error', '-select_streams', 'v:0', '-count_packets', '-show_entries', 'stream=nb_read_packets', '-of', 'csv=p=0', path.join(dir, f)], { timeout: 60_000 })
          sizes.push(Number(stdout.trim()))
        }
        results[i]!.note = `parts ${sizes.join(' + ')} frames`
        results[i]!.seconds.push(d.seconds); results[i]!.checks.push(c)
        await rm(dir, { recursive: true, force: true })
        process.stderr.write(`rep ${rep}/${reps}  ${m.label.padEnd(26)} ${d.seconds.toFixed(2).padStart(7)} s  ${c.frames} frames, ${c.identical ? 'identical' : `NOT identical (first difference at frame ${c.firstDiff}, ${c.missing} missing, ${c.duplicated} duplicated, ${c.foreign} foreign)`}\n`)
      }
      const out = path.join(root, 'runs', `farm-${rep}.mkv`)
      await mkdir(path.dirname(out), { recursive: true })
      const t0 = performance.now()
      const job = await farm.submit({ timeline, output: out, preset: 'ffv1', name: `diy bench ${rep}` })
      const final = await farm.wait(job.jobId, { signal: AbortSignal.timeout(900_000), pollMs: 200 })
      const s = (performance.now() - t0) / 1000
      if (final.status !== 'done') throw new Error(`farm job: ${final.status} ${final.error ?? ''}`)
      const c = compare(ref, await frameHashes(tools.ffmpeg, out), await durationOf(tools.ffprobe, out))
      const fr = results.at(-1)!
      fr.seconds.push(s); fr.checks.push(c)
      farmChunks.push(final.chunks.length)
      await rm(out, { force: true })
      process.stderr.write(`rep ${rep}/${reps}  ${fr.label.padEnd(26)} ${s.toFixed(2).padStart(7)} s  ${c.frames} frames, ${final.chunks.length} chunks, ${c.identical ? 'identical' : `NOT identical (first difference at frame ${c.firstDiff})`}\n`)
    }
    results.at(-1)!.note = `${median(farmChunks)} chunks`
    report(results, { frames, seconds, parts, reps, how, preset, refSeconds, farmStartS, keyframes, version: caps.version, ffmpeg: tools.ffmpeg, totalS: (Date.now() - began) / 1000, loadBefore, loadAfter: os.loadavg()[0]! })
  } finally {
    await stopAll()
    if (opt.keep === undefined) await rm(root, { recursive: true, force: true })
  }
}

function report (results: Result[], info: { frames: number; seconds: number; parts: number; reps: number; how: string; preset: Preset; refSeconds: number; farmStartS: number; keyframes: number[]; version: string; ffmpeg: string; totalS: number; loadBefore: number; loadAfter: number }): void {
  const header = ['method', 'median s', 'min–max s', 'frames', 'duration s', 'identical', 'at the cut(s)', 'note']
  /** The worst check over the reps (a method that is wrong once is wrong). */
  const worst = (r: Result): Check => [...r.checks].sort((a, b) => Number(a.identical) - Number(b.identical) || (b.missing + b.duplicated + b.foreign) - (a.missing + a.duplicated + a.foreign))[0]!
  const body = results.map((r) => {
    const c = worst(r)
    const detail = c.identical ? '—' : `from frame ${c.firstDiff}: ${c.missing} missing, ${c.duplicated} duplicated, ${c.foreign} foreign`
    return [r.label, median(r.seconds).toFixed(2), `${Math.min(...r.seconds).toFixed(2)}–${Math.max(...r.seconds).toFixed(2)}`, String(c.frames), c.durationS.toFixed(3), c.identical ? 'yes' : 'NO', detail, r.note]
  })
  body.unshift(['reference (1 machine, 1 chunk)', info.refSeconds.toFixed(2), '—', String(info.frames), (info.frames / FPS).toFixed(3), '(itself)', '—', 'renderswarm render --chunks 1'])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)))
  const line = (cells: string[]): string => cells.map((c, i) => i === 0 || i >= 6 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join('  ').trimEnd()
  const cpus = os.cpus()
  const date = new Date().toISOString()
  const diy = results[0]!
  const farm = results.at(-1)!
  const diyS = median(diy.seconds)
  const farmS = median(farm.seconds)
  const diyOk = diy.checks.every((c) => c.identical)
  const farmOk = farm.checks.every((c) => c.identical)
  const cuts = Array.from({ length: info.parts - 1 }, (_, k) => Math.round((k + 1) * info.frames / info.parts))

  console.log('')
  console.log(`DIY (split, ${info.how === 'parallel' ? 'GNU parallel' : 'xargs -P'} × ${info.parts}, concat) vs a farm of ${info.parts} agents, same machine, ffv1`)
  console.log('')
  console.log(line(header))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const b of body) console.log(line(b))
  console.log('')
  console.log(`farm / DIY (-ss/-t copy split) = ${(farmS / diyS).toFixed(3)}; farm / DIY (-ss/-t in each encode) = ${(farmS / median(results[2]!.seconds)).toFixed(3)}`)
  console.log('')
  console.log('method:')
  console.log(`  machine:   ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores (shared), ${os.platform()} ${os.arch()}; node ${process.version}; ffmpeg ${info.version} (${info.ffmpeg}); 1-min load average ${info.loadBefore.toFixed(1)} before, ${info.loadAfter.toFixed(1)} after (other people's work lands in every timing)`)
  console.log(`  source:    ${info.frames} frames (${info.seconds} s) ${W}x${H} @ ${FPS} fps H.264 (x264 veryfast crf 20, default GOP; keyframes at frames ${info.keyframes.join(', ')}); the timeline is that file, whole`)
  console.log(`  preset:    ${info.preset.name}: ${[...info.preset.videoArgs, '-pix_fmt', info.preset.pixFmt].join(' ')} (DIY encodes use the same arguments)`)
  console.log(`  DIY:       ${info.parts} parts cut at frame(s) ${cuts.join(', ')}; -ss/-t copy: \`ffmpeg -ss S -t D -i src -c copy\` per part; segment: \`ffmpeg -i src -c copy -f segment -segment_time D -reset_timestamps 1\` (cuts only at keyframes); -ss/-t in each encode: no split step, each job seeks the source; encodes run by ${info.how === 'parallel' ? '`parallel -j N < jobs` (GNU parallel)' : '`xargs -P N` (GNU parallel is not installed)'}; joined with \`-f concat -c copy\`; timed from the split to the joined file`)
  console.log(`  farm:      ${info.parts} agents on 127.0.0.1 (--no-mdns, joined by invite, started in ${info.farmStartS.toFixed(0)} s, not counted); POST /v1/jobs → job 'done' (chunks, audio, join, validation)`)
  console.log('  correct:   `-f framemd5` of each output\'s video against the reference\'s, by index and as a multiset (missing, duplicated, foreign); the worst rep shown; duration from ffprobe (format)')
  console.log(`  runs:      ${info.reps} rep(s), methods interleaved within each; medians; ${info.totalS.toFixed(0)} s in all; ${date}`)
  const rows: BenchRow[] = [
    { figure: 'DIY time (-ss/-t copy split, parallel encode, concat)', value: `${diyS.toFixed(2)} s`, target: '', pass: null, method: `${info.frames} frames 720p H.264 → ffv1, ${diy.note}, ${info.how}, median of ${info.reps}` },
    { figure: `farm time (${info.parts} agents, same machine)`, value: `${farmS.toFixed(2)} s`, target: '', pass: null, method: `POST /v1/jobs → done, ${farm.note}, median of ${info.reps}` },
    { figure: 'farm / DIY time', value: (farmS / diyS).toFixed(3), target: '', pass: null, method: 'medians; DIY = -ss/-t copy split' },
    { figure: 'DIY frames identical to the reference', value: diyOk ? 'yes' : `no (${describeWorst(worst(diy))})`, target: 'yes', pass: diyOk, method: 'framemd5 vs renderswarm render --chunks 1' },
    { figure: 'farm frames identical to the reference', value: farmOk ? 'yes' : `no (${describeWorst(worst(farm))})`, target: 'yes', pass: farmOk, method: 'framemd5 vs renderswarm render --chunks 1' },
    ...results.slice(1, -1).map((r): BenchRow => {
      const ok = r.checks.every((c) => c.identical)
      return { figure: `${r.label}: time, frames identical`, value: `${median(r.seconds).toFixed(2)} s, ${ok ? 'yes' : `no (${describeWorst(worst(r))})`}`, target: '', pass: null, method: `${r.note !== '' ? `${r.note}; ` : ''}median of ${info.reps}` }
    })
  ]
  printBench('bench/diy.ts', rows)
}

function describeWorst (c: Check): string {
  return `${c.frames} frames: ${c.missing} missing, ${c.duplicated} duplicated, ${c.foreign} foreign, from frame ${c.firstDiff}`
}

process.once('SIGINT', () => { void stopAll().then(async () => { if (tempRoot !== undefined) await rm(tempRoot, { recursive: true, force: true }); process.exit(130) }) })
process.once('SIGTERM', () => { void stopAll().then(async () => { if (tempRoot !== undefined) await rm(tempRoot, { recursive: true, force: true }); process.exit(143) }) })
main().catch(async (err: Error) => { console.error(`bench/diy: ${err.stack ?? err.message}`); await stopAll(); if (tempRoot !== undefined) await rm(tempRoot, { recursive: true, force: true }); process.exit(1) })
