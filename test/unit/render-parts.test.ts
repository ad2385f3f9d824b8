import { afterAll, describe, expect, it } from 'vitest'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { locateFfmpeg } from '../../agent/ffmpeg.ts'
import { bundledFontPath } from '../../agent/sample.ts'
import { cleanupTmp, run, tmpDir } from '../helpers/media.ts'
import { escapeFilterValue, sec } from '../../agent/render/invocation.ts'
import { atempoChain, sampleAt } from '../../agent/render/audio.ts'
import { gopFrames, resolvePreset, UnknownPresetError } from '../../agent/render/presets.ts'
import { formatProgress, clock } from '../../ui/cli/progress.ts'
import { runPool } from '../../agent/render/local-render.ts'

afterAll(cleanupTmp)

describe('filter escaping and numbers', () => {
  it('escapes both filtergraph levels', () => {
    expect(escapeFilterValue('/a b/c.ttf')).toBe('/a b/c.ttf')
    expect(escapeFilterValue("C:\\x'y")).toBe("C\\\\:\\\\\\\\x\\\\\\'y")
    expect(escapeFilterValue('a,b;c[d]')).toBe('a\\,b\\;c\\[d\\]')
  })
  it('lets real ffmpeg open a file whose path has every special character', async () => {
    const dir = path.join(await tmpDir('esc'), "we'ird, [dir]; x:y")
    await mkdir(dir)
    const text = path.join(dir, 'f.txt')
    await writeFile(text, 'hello')
    const { ffmpeg } = await locateFfmpeg()
    const graph = `[0:v]drawtext=fontfile=${escapeFilterValue(bundledFontPath())}:textfile=${escapeFilterValue(text)}[o]`
    await run(ffmpeg, ['-nostdin', '-v', 'error', '-f', 'lavfi', '-i', 'color=s=64x64:d=0.1', '-filter_complex', graph, '-map', '[o]', '-f', 'null', '-'])
    await expect(run(ffmpeg, ['-nostdin', '-v', 'error', '-f', 'lavfi', '-i', 'color=s=64x64:d=0.1', '-filter_complex', graph.replace('f.txt', 'g.txt'), '-map', '[o]', '-f', 'null', '-'])).rejects.toThrow()
  })
  it('prints seconds with a leading zero and no exponent', () => {
    expect(sec(0.5)).toBe('0.5')
    expect(sec(1001 / 30000)).toBe('0.033367')
    expect(sec(2)).toBe('2')
    expect(sec(1e-9)).toBe('0')
  })
})

describe('audio helpers', () => {
  it('places frames on exact samples', () => {
    expect(sampleAt({ fps: { num: 30000, den: 1001 }, sampleRate: 48000 }, 1)).toBe(1602)
    expect(sampleAt({ fps: { num: 30000, den: 1001 }, sampleRate: 48000 }, 30000)).toBe(48048000)
    expect(sampleAt({ fps: { num: 25, den: 1 }, sampleRate: 44100 }, 3)).toBe(5292)
  })
  it('chains atempo within its 0.5–2 range', () => {
    expect(atempoChain(1)).toEqual([])
    expect(atempoChain(1.5)).toEqual([1.5])
    expect(atempoChain(5)).toEqual([2, 2, 1.25])
    expect(atempoChain(0.2)).toEqual([0.5, 0.5, 0.8])
  })
})

describe('presets', () => {
  const caps = { encoders: new Set(['libx264', 'ffv1', 'prores_ks', 'aac', 'flac', 'h264_nvenc']), gpuEncoders: [] as string[] }
  it('resolves names to encoders, using a GPU encoder only when it works', () => {
    expect(resolvePreset('ffv1', caps).ext).toBe('.mkv')
    expect(resolvePreset('h264', caps).encoder).toBe('libx264')
    expect(resolvePreset('h264', { ...caps, gpuEncoders: ['h264_nvenc'] }).encoder).toBe('h264_nvenc')
    expect(resolvePreset('h264', { ...caps, gpuEncoders: ['h264_nvenc'] }, { gpu: false }).encoder).toBe('libx264')
    expect(resolvePreset('prores', caps).ext).toBe('.mov')
  })
  it('refuses unknown presets and missing encoders', () => {
    expect(() => resolvePreset('vp9', caps)).toThrow(UnknownPresetError)
    expect(() => resolvePreset('hevc', caps)).toThrow(/needs the libx265 encoder/)
  })
  it('gives inter-frame presets a keyframe grid and intra-only ones none', () => {
    expect(gopFrames(resolvePreset('h264'), { num: 30000, den: 1001 })).toBe(60)
    expect(gopFrames(resolvePreset('ffv1'), { num: 25, den: 1 })).toBeUndefined()
  })
})

describe('progress', () => {
  it('formats a bar with frames, fps, ETA and chunks', () => {
    expect(formatProgress({ framesDone: 150, frames: 600, fps: 42.5, etaSeconds: 10.6, chunksDone: 1, chunks: 7 }, 10))
      .toBe('[###.......]  25%  150/600 frames  42.5 fps  ETA 0:11  chunks 1/7')
    expect(clock(3725)).toBe('1:02:05')
  })
})

describe('runPool', () => {
  it('runs at most `limit` at once and rethrows the first failure after running tasks end', async () => {
    let running = 0
    let peak = 0
    const finished: number[] = []
    const task = (i: number, fail = false) => async () => {
      running++; peak = Math.max(peak, running)
      await new Promise((r) => setTimeout(r, 5))
      running--
      if (fail) throw new Error(`task ${i} failed`)
      finished.push(i)
    }
    await runPool([task(0), task(1), task(2), task(3)], 2)
    expect(peak).toBe(2)
    expect(finished.sort()).toEqual([0, 1, 2, 3])
    await expect(runPool([task(4), task(5, true), task(6), task(7)], 2)).rejects.toThrow('task 5 failed')
    expect(running).toBe(0)
  })
})
