/**
 * Test media and timelines, generated with ffmpeg's own sources (no binary fixtures).
 *
 *   const dir = await tmpDir('kitchen'); await writeKitchenSink(dir, tools)
 */
import { execFile } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import type { TimelineFile } from '../../protocol/timeline.ts'
import { bundledFontPath } from '../../agent/sample.ts'

export const run = promisify(execFile)

const made: string[] = []
export async function tmpDir (name: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `rs-test-${name}-`))
  made.push(dir)
  return dir
}
export async function cleanupTmp (): Promise<void> {
  for (const d of made.splice(0)) await rm(d, { recursive: true, force: true })
}

export async function gen (ffmpeg: string, out: string, args: string[]): Promise<string> {
  await mkdir(path.dirname(out), { recursive: true })
  await run(ffmpeg, ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', ...args, out], { timeout: 120_000 })
  return out
}

export const H264 = ['-c:v', 'libx264', '-preset', 'veryfast', '-crf', '20', '-pix_fmt', 'yuv420p', '-g', '48']

/** A .cube LUT (size 2) that warms the image a little. */
export const WARM_CUBE = ['LUT_3D_SIZE 2',
  '0.05 0.0 0.0', '1.0 0.0 0.0', '0.05 1.0 0.0', '1.0 1.0 0.0',
  '0.05 0.0 0.9', '1.0 0.0 0.9', '0.05 1.0 0.9', '1.0 1.0 0.9'].join('\n') + '\n'

/**
 * 29.97 fps, 320x180, every feature: fades, dissolve, wipe, slide, fadeblack, speed 2 and 0.5,
 * a 25 fps source, scaling, opacity, eq/hue/gblur/lut3d, colour and text clips, two audio tracks.
 */
export async function writeKitchenSink (dir: string, ffmpeg: string): Promise<string> {
  const m = path.join(dir, 'media')
  const ntsc = '30000/1001'
  await Promise.all([
    gen(ffmpeg, path.join(m, 'a.mp4'), ['-f', 'lavfi', '-i', `testsrc2=s=320x180:r=${ntsc}:d=6`, ...H264]),
    gen(ffmpeg, path.join(m, 'b.mp4'), ['-f', 'lavfi', '-i', `testsrc=s=320x180:r=${ntsc}:d=8`, ...H264])
  ])
  await Promise.all([
    gen(ffmpeg, path.join(m, 'c25.mkv'), ['-f', 'lavfi', '-i', 'testsrc2=s=320x180:r=25:d=6', '-c:v', 'ffv1']),
    gen(ffmpeg, path.join(m, 'big.mp4'), ['-f', 'lavfi', '-i', `smptehdbars=s=640x360:r=${ntsc}:d=4`, '-f', 'lavfi', '-i', 'sine=f=330:r=44100:d=4', '-vf', 'drawbox=x=t*100:y=20:w=40:h=40:c=white:t=fill', ...H264, '-c:a', 'aac', '-shortest'])
  ])
  await gen(ffmpeg, path.join(m, 'tone.m4a'), ['-f', 'lavfi', '-i', 'sine=f=220:r=48000:d=12', '-ac', '2', '-c:a', 'aac'])
  await writeFile(path.join(m, 'warm.cube'), WARM_CUBE)
  await copyFile(bundledFontPath(), path.join(m, 'font.ttf'))
  const t: TimelineFile = {
    schema: 'farm.timeline/1',
    fps: { num: 30000, den: 1001 },
    width: 320,
    height: 180,
    sampleRate: 48000,
    duration: 300,
    assets: {
      a: { path: 'media/a.mp4' }, b: { path: 'media/b.mp4' }, c25: { path: 'media/c25.mkv' },
      big: { path: 'media/big.mp4' }, tone: { path: 'media/tone.m4a' }, warm: { path: 'media/warm.cube' }, font: { path: 'media/font.ttf' }
    },
    video: [
      {
        clips: [
          { id: 'c1', type: 'media', asset: 'a', start: 0, length: 80, srcIn: 3, fadeIn: 10 },
          { id: 'c2', type: 'media', asset: 'b', start: 60, length: 90, srcIn: 0, speed: 2 },
          { id: 'c3', type: 'media', asset: 'c25', start: 130, length: 90, srcIn: 7 },
          { id: 'c4', type: 'color', color: '#2050C0', start: 200, length: 60 },
          { id: 'c5', type: 'media', asset: 'big', start: 240, length: 60, srcIn: 0, speed: 0.5, fx: [{ k: 'eq', brightness: 0.05, contrast: 1.2 }, { k: 'hue', deg: 30 }, { k: 'gblur', sigma: 1.5 }, { k: 'lut3d', lut: 'warm' }] }
        ],
        transitions: [
          { a: 'c1', b: 'c2', kind: 'dissolve' },
          { a: 'c2', b: 'c3', kind: 'wipeleft' },
          { a: 'c3', b: 'c4', kind: 'slideleft' },
          { a: 'c4', b: 'c5', kind: 'fadeblack' }
        ]
      },
      {
        clips: [
          { id: 'pip', type: 'media', asset: 'big', start: 100, length: 100, srcIn: 5, scale: 0.4, x: 60, y: -40, opacity: 0.6, fadeOut: 12 }
        ]
      },
      {
        clips: [
          { id: 'title', type: 'text', text: "It's 50% \"done\": [a,b];\nline two", font: 'font', size: 18, color: '#FFFF00', x: 10, y: 140, start: 30, length: 220 }
        ]
      }
    ],
    audio: [
      { clips: [{ id: 'tone', type: 'media', asset: 'tone', start: 0, length: 300, srcIn: 10, volume: 0.5 }] },
      { clips: [{ id: 'bigsnd', type: 'media', asset: 'big', start: 50, length: 100, srcIn: 0, speed: 1.5, fadeIn: 5 }], volume: 0.8 }
    ]
  }
  const file = path.join(dir, 'kitchen.timeline.json')
  await writeFile(file, JSON.stringify(t, null, 2))
  return file
}

/** 25 fps, two clips joined by a dissolve that a 7-chunk plan cuts in the middle (frame 100). */
export async function writeDissolveCut (dir: string, ffmpeg: string): Promise<string> {
  const m = path.join(dir, 'media')
  await gen(ffmpeg, path.join(m, 'x.mp4'), ['-f', 'lavfi', '-i', 'testsrc2=s=320x240:r=25:d=5', ...H264])
  await gen(ffmpeg, path.join(m, 'y.mp4'), ['-f', 'lavfi', '-i', 'testsrc=s=320x240:r=25:d=5', '-f', 'lavfi', '-i', 'sine=f=500:r=48000:d=5', ...H264, '-c:a', 'aac', '-shortest'])
  const t: TimelineFile = {
    schema: 'farm.timeline/1', fps: { num: 25, den: 1 }, width: 320, height: 240, sampleRate: 48000, duration: 175,
    assets: { x: { path: 'media/x.mp4' }, y: { path: 'media/y.mp4' } },
    video: [{
      clips: [
        { id: 'x', type: 'media', asset: 'x', start: 0, length: 110, srcIn: 0 },
        { id: 'y', type: 'media', asset: 'y', start: 90, length: 85, srcIn: 2 }
      ],
      transitions: [{ a: 'x', b: 'y', kind: 'dissolve' }]
    }],
    audio: [{ clips: [{ id: 'ya', type: 'media', asset: 'y', start: 90, length: 85, srcIn: 2 }] }]
  }
  const file = path.join(dir, 'dissolve.timeline.json')
  await writeFile(file, JSON.stringify(t, null, 2))
  return file
}

/** Decoded-frame md5s of a file's first video stream (ffmpeg -f framemd5), one per frame. */
export async function frameHashes (ffmpeg: string, file: string): Promise<string[]> {
  const { stdout } = await run(ffmpeg, ['-nostdin', '-v', 'error', '-i', file, '-map', '0:v:0', '-f', 'framemd5', '-'], { maxBuffer: 64 * 1024 * 1024, timeout: 120_000 })
  return stdout.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split(',').at(-1)!.trim())
}

export async function listDir (dir: string): Promise<string[]> {
  return (await readdir(dir)).sort()
}
