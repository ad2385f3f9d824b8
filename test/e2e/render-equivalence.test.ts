/**
 * The engine's promise, with real ffmpeg: a timeline rendered as 7 chunks and joined is the
 * same video as one continuous render (framemd5 for ffv1; PSNR for h264), with exactly
 * `duration` frames, continuous timestamps, and audio as long as the timeline.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { locateFfmpeg, type FfmpegTools } from '../../agent/ffmpeg.ts'
import { renderTimeline, type RenderResult } from '../../agent/render/local-render.ts'
import { validateOutput } from '../../agent/render/validate.ts'
import { writeSample } from '../../agent/sample.ts'
import { cleanupTmp, frameHashes, run, tmpDir, writeDissolveCut, writeKitchenSink } from '../helpers/media.ts'

let tools: FfmpegTools
let dir: string
let cacheDir: string

beforeAll(async () => {
  tools = await locateFfmpeg()
  dir = await tmpDir('equiv')
  cacheDir = path.join(dir, 'cache')
})
afterAll(cleanupTmp)

async function render (timeline: string, out: string, preset: string, chunks: number): Promise<RenderResult> {
  return await renderTimeline({ timeline, out: path.join(dir, out), preset, chunks, parallel: 2, tools, cacheDir, gpu: false })
}

async function expectChunkedIdentical (timeline: string, name: string, duration: number, fps: { num: number; den: number }): Promise<void> {
  const one = await render(timeline, `${name}-1.mkv`, 'ffv1', 1)
  const seven = await render(timeline, `${name}-7.mkv`, 'ffv1', 7)
  expect(one.chunks).toHaveLength(1)
  expect(seven.chunks).toHaveLength(7)
  const [h1, h7] = await Promise.all([frameHashes(tools.ffmpeg, one.output), frameHashes(tools.ffmpeg, seven.output)])
  expect(h1).toHaveLength(duration)
  expect(h7).toEqual(h1)
  // Not a degenerate video: many distinct frames.
  expect(new Set(h1).size).toBeGreaterThan(duration / 3)
  const seconds = duration * fps.den / fps.num
  for (const out of [one.output, seven.output]) {
    const v = await validateOutput(tools.ffprobe, out, { frames: duration, fps, audioSeconds: seconds })
    expect(v.frames).toBe(duration)
    expect(Math.abs(v.audioSeconds! - seconds)).toBeLessThanOrEqual(fps.den / fps.num)
  }
}

describe('ffv1: 7 chunks are frame-identical to 1', () => {
  it('the sample timeline (1280x720, 30 fps, dissolve, text, two audio tracks)', async () => {
    const file = await writeSample(path.join(dir, 'sample'), tools)
    await expectChunkedIdentical(file, 'sample', 600, { num: 30, den: 1 })
  })

  it('a 30000/1001 timeline with every transition, speed changes, a 25 fps source, effects, text', async () => {
    const file = await writeKitchenSink(path.join(dir, 'kitchen'), tools.ffmpeg)
    await expectChunkedIdentical(file, 'kitchen', 300, { num: 30000, den: 1001 })
  })

  it('a dissolve cut by a chunk boundary (frame 100 inside the dissolve [90, 110))', async () => {
    const file = await writeDissolveCut(path.join(dir, 'dissolve'), tools.ffmpeg)
    const seven = await render(file, 'dissolve-probe.mkv', 'ffv1', 7)
    expect(seven.chunks.some((c) => c.start > 90 && c.start < 110)).toBe(true)
    await expectChunkedIdentical(file, 'dissolve', 175, { num: 25, den: 1 })
  })
})

describe('h264: 7 chunks match 1 chunk in quality', () => {
  it('per-frame PSNR against the lossless render is within 1 dB of the 1-chunk encode', async () => {
    const file = await writeSample(path.join(dir, 'sample'), tools)
    // The lossless one-chunk render of the first test, when it ran.
    const lossless = existsSync(path.join(dir, 'sample-1.mkv')) ? { output: path.join(dir, 'sample-1.mkv') } : await render(file, 'ref.mkv', 'ffv1', 1)
    const h1 = await render(file, 'h-1.mp4', 'h264', 1)
    const h7 = await render(file, 'h-7.mp4', 'h264', 7)
    expect(h7.chunks.length).toBeGreaterThanOrEqual(5)
    const fps = { num: 30, den: 1 }
    await validateOutput(tools.ffprobe, h7.output, { frames: 600, fps, audioSeconds: 20 })
    const p1 = await psnr(h1.output, lossless.output)
    const p7 = await psnr(h7.output, lossless.output)
    expect(p1).toHaveLength(600)
    expect(p7).toHaveLength(600)
    const diffs = p1.map((v, i) => Math.abs(v - p7[i]!))
    const stats = (p: number[]): string => `min ${Math.min(...p).toFixed(2)} dB, mean ${(p.reduce((x, y) => x + y, 0) / p.length).toFixed(2)} dB`
    console.log(`h264 PSNR vs lossless — 1 chunk: ${stats(p1)}; 7 chunks: ${stats(p7)}; largest per-frame difference ${Math.max(...diffs).toFixed(3)} dB`)
    expect(Math.max(...diffs)).toBeLessThanOrEqual(1)
    expect(Math.min(...p7)).toBeGreaterThan(35)
  })
})

describe('every preset: chunked decodes to the same frames as continuous', () => {
  it.each([['hevc', '.mp4'], ['prores', '.mov'], ['h264', '.mp4']])('%s', async (preset, ext) => {
    const file = await writeDissolveCut(path.join(dir, `dissolve-${preset}`), tools.ffmpeg)
    const one = await render(file, `p-${preset}-1${ext}`, preset, 1)
    const three = await render(file, `p-${preset}-3${ext}`, preset, 3)
    expect(three.chunks.length).toBeGreaterThan(1)
    const [h1, h3] = await Promise.all([frameHashes(tools.ffmpeg, one.output), frameHashes(tools.ffmpeg, three.output)])
    expect(h1).toHaveLength(175)
    expect(h3).toEqual(h1)
    await validateOutput(tools.ffprobe, three.output, { frames: 175, fps: { num: 25, den: 1 }, audioSeconds: 7 })
  })
})

/** Per-frame PSNR (psnr_avg, capped at 100 for identical frames), frames paired by index. */
async function psnr (file: string, ref: string): Promise<number[]> {
  const { stdout } = await run(tools.ffmpeg, ['-nostdin', '-v', 'error', '-i', file, '-i', ref, '-lavfi',
    '[0:v]settb=1/30,setpts=N[a];[1:v]settb=1/30,setpts=N[b];[a][b]psnr=stats_file=-', '-f', 'null', '-'], { maxBuffer: 64 * 1024 * 1024, timeout: 300_000 })
  return stdout.split('\n').filter((l) => l.includes('psnr_avg:')).map((l) => {
    const v = /psnr_avg:(\S+)/.exec(l)![1]!
    return v === 'inf' ? 100 : Math.min(100, Number(v))
  })
}
