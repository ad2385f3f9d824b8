/**
 * The content is right, not just consistent: an untouched media clip reproduces its source
 * frames at the right timeline positions, a colour clip gives its colour, gaps are black.
 * Also run with the bundled (2018) ffmpeg that a fresh `npm install` provides.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { bundledPath, locateFfmpeg, probeFfmpeg, type FfmpegTools } from '../../agent/ffmpeg.ts'
import { renderTimeline } from '../../agent/render/local-render.ts'
import type { TimelineFile } from '../../protocol/timeline.ts'
import { cleanupTmp, frameHashes, gen, H264, run, tmpDir, writeKitchenSink } from '../helpers/media.ts'

let dir: string
beforeAll(async () => { dir = await tmpDir('content') })
afterAll(cleanupTmp)

async function contentTimeline (tools: FfmpegTools, sub: string): Promise<{ file: string; src: string }> {
  const d = path.join(dir, sub)
  const src = await gen(tools.ffmpeg, path.join(d, 'media', 'src.mp4'), ['-f', 'lavfi', '-i', 'testsrc2=s=320x240:r=25:d=4', ...H264])
  const t: TimelineFile = {
    schema: 'farm.timeline/1', fps: { num: 25, den: 1 }, width: 320, height: 240, sampleRate: 48000, duration: 90,
    assets: { src: { path: 'media/src.mp4' } },
    video: [{
      clips: [
        { id: 'm', type: 'media', asset: 'src', start: 10, length: 40, srcIn: 5 },
        { id: 'blue', type: 'color', color: '#3060C0', start: 60, length: 20 }
      ]
    }],
    audio: []
  }
  const file = path.join(d, 'content.timeline.json')
  await writeFile(file, JSON.stringify(t))
  return { file, src }
}

/** The RGB of pixel (x, y) of frame n. */
async function pixel (ffmpeg: string, file: string, n: number, x: number, y: number): Promise<number[]> {
  const { stdout } = await run(ffmpeg, ['-nostdin', '-v', 'error', '-i', file, '-vf', `select=eq(n\\,${n}),format=rgb24,crop=2:2:${x}:${y}`, '-frames:v', '1', '-pix_fmt', 'rgb24', '-f', 'rawvideo', '-'], { encoding: 'buffer' })
  return [...stdout.subarray(0, 3)]
}

async function checkContent (tools: FfmpegTools, sub: string): Promise<void> {
  const { file, src } = await contentTimeline(tools, sub)
  for (const chunks of [1, 4]) {
    const res = await renderTimeline({ timeline: file, out: path.join(dir, sub, `out-${chunks}.mkv`), preset: 'ffv1', chunks, parallel: 2, tools, cacheDir: path.join(dir, 'cache'), gpu: false })
    const out = await frameHashes(tools.ffmpeg, res.output)
    const source = await frameHashes(tools.ffmpeg, src)
    expect(out).toHaveLength(90)
    // Timeline frames 10..49 are source frames 5..44, exactly.
    expect(out.slice(10, 50)).toEqual(source.slice(5, 45))
    expect(out[9]).not.toEqual(source[4])
    // Before the clip: black; the colour clip: its colour (within YUV rounding).
    expect(await pixel(tools.ffmpeg, res.output, 3, 100, 100)).toEqual([0, 0, 0])
    const blue = await pixel(tools.ffmpeg, res.output, 70, 160, 120)
    expect(Math.abs(blue[0]! - 0x30)).toBeLessThanOrEqual(4)
    expect(Math.abs(blue[1]! - 0x60)).toBeLessThanOrEqual(4)
    expect(Math.abs(blue[2]! - 0xC0)).toBeLessThanOrEqual(4)
    expect(await pixel(tools.ffmpeg, res.output, 85, 160, 120)).toEqual([0, 0, 0])
  }
}

describe('rendered content', () => {
  it('media frames land at their timeline positions; colour and black are right (default ffmpeg)', async () => {
    await checkContent(await locateFfmpeg(), 'default')
  })
})

describe('the bundled ffmpeg from npm install', () => {
  it('is found when nothing else is configured, and renders frame-identical chunks', async () => {
    const tools = await locateFfmpeg({ usePath: false, env: {} })
    expect(tools.ffmpegSource).toBe('bundled')
    expect(tools.ffmpeg).toBe(bundledPath('ffmpeg'))
    const caps = await probeFfmpeg(tools)
    // The bundled build has no xfade; transitions never use it.
    expect(caps.filters.has('xfade')).toBe(false)
    await checkContent(tools, 'bundled')
    const file = await writeKitchenSink(path.join(dir, 'kitchen-bundled'), tools.ffmpeg)
    const hashes: string[][] = []
    for (const chunks of [1, 7]) {
      const res = await renderTimeline({ timeline: file, out: path.join(dir, `kb-${chunks}.mkv`), preset: 'ffv1', chunks, parallel: 2, tools, cacheDir: path.join(dir, 'cache'), gpu: false })
      hashes.push(await frameHashes(tools.ffmpeg, res.output))
    }
    expect(hashes[0]).toHaveLength(300)
    expect(hashes[1]).toEqual(hashes[0])
  })
})
