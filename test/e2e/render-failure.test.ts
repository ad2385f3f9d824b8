/**
 * When a render cannot finish, it says why and leaves nothing behind: no partial output, no
 * work dir, and an existing output untouched. Real processes: small wrapper scripts around
 * the bundled ffmpeg stand in for a reduced ffmpeg build, a crashing one and a hung one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { bundledPath, type FfmpegTools } from '../../agent/ffmpeg.ts'
import { runInvocation, RenderError } from '../../agent/render/run.ts'
import { renderTimeline } from '../../agent/render/local-render.ts'
import { writeSample } from '../../agent/sample.ts'
import { cleanupTmp, tmpDir } from '../helpers/media.ts'

let dir: string
let sample: string
const real = bundledPath('ffmpeg')!
const probe = bundledPath('ffprobe')!

async function wrapper (name: string, body: string): Promise<FfmpegTools> {
  const file = path.join(dir, 'bin', name)
  await mkdir(path.dirname(file), { recursive: true })
  await writeFile(file, `#!/bin/sh\n${body}\n`)
  await chmod(file, 0o755)
  return { ffmpeg: file, ffprobe: probe, ffmpegSource: 'config', ffprobeSource: 'config' }
}

beforeAll(async () => {
  dir = await tmpDir('fail')
  sample = await writeSample(path.join(dir, 'sample'), { ffmpeg: real })
})
afterAll(cleanupTmp)

async function expectNothingLeft (work: string, outDir: string, keep: string[] = []): Promise<void> {
  expect(await readdir(work)).toEqual([])
  expect((await readdir(outDir)).sort()).toEqual(keep.sort())
}

describe('failed renders leave nothing behind', () => {
  it('an ffmpeg without a needed filter is refused before rendering, naming the filter', async () => {
    const tools = await wrapper('no-drawtext', `case "$*" in *-filters*) "${real}" "$@" | grep -v ' drawtext ' ;; *) exec "${real}" "$@" ;; esac`)
    const work = path.join(dir, 'work1'); const out = path.join(dir, 'out1')
    await mkdir(work); await mkdir(out)
    await expect(renderTimeline({ timeline: sample, out: path.join(out, 'x.mkv'), preset: 'ffv1', chunks: 2, parallel: 2, tools, workRoot: work, cacheDir: path.join(dir, 'cache'), gpu: false }))
      .rejects.toThrow(/lacks the filter\(s\) drawtext that this timeline needs/)
    await expectNothingLeft(work, out)
  })

  it('an ffmpeg that crashes on one chunk fails the render with its message; the old output survives', async () => {
    const tools = await wrapper('crash-on-chunk-2', `case "$*" in *seg-0002*) echo "simulated encoder crash" >&2; exit 1 ;; *) exec "${real}" "$@" ;; esac`)
    const work = path.join(dir, 'work2'); const out = path.join(dir, 'out2')
    await mkdir(work); await mkdir(out)
    await writeFile(path.join(out, 'x.mkv'), 'previous render')
    await expect(renderTimeline({ timeline: sample, out: path.join(out, 'x.mkv'), preset: 'ffv1', chunks: 4, parallel: 2, tools, workRoot: work, cacheDir: path.join(dir, 'cache'), gpu: false }))
      .rejects.toThrow(/ffmpeg failed: simulated encoder crash/)
    await expectNothingLeft(work, out, ['x.mkv'])
    expect(await readFile(path.join(out, 'x.mkv'), 'utf8')).toBe('previous render')
  })

  it('a hung ffmpeg is killed at its time limit', async () => {
    const tools = await wrapper('hang', 'exec sleep 60')
    const started = Date.now()
    await expect(runInvocation({ inputs: [], global: [], outputs: [{ options: [], file: path.join(dir, 'never.mkv') }], files: [] }, { ffmpeg: tools.ffmpeg, timeoutMs: 500 }))
      .rejects.toThrow(RenderError)
    expect(Date.now() - started).toBeLessThan(10_000)
  })
})
