/** Locating ffmpeg: config → env → PATH → bundled; probing what it can do. Real binaries. */
import { afterAll, describe, expect, it } from 'vitest'
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { bundledPath, FfmpegNotFoundError, locateFfmpeg, probeFfmpeg } from '../../agent/ffmpeg.ts'
import { cleanupTmp, tmpDir } from '../helpers/media.ts'

afterAll(cleanupTmp)

describe('locateFfmpeg', () => {
  it('prefers configured paths, then FFMPEG_PATH/FFPROBE_PATH, then PATH, then the bundled build', async () => {
    const dir = await tmpDir('locate')
    const onPath = path.join(dir, 'bin')
    await mkdir(onPath)
    await symlink(bundledPath('ffmpeg')!, path.join(onPath, 'ffmpeg'))
    await symlink(bundledPath('ffprobe')!, path.join(onPath, 'ffprobe'))
    const env = { PATH: onPath }
    expect((await locateFfmpeg({ env })).ffmpegSource).toBe('path')
    expect((await locateFfmpeg({ env })).ffmpeg).toBe(path.join(onPath, 'ffmpeg'))
    const envTools = await locateFfmpeg({ env: { ...env, FFMPEG_PATH: bundledPath('ffmpeg'), FFPROBE_PATH: bundledPath('ffprobe') } })
    expect([envTools.ffmpegSource, envTools.ffprobeSource]).toEqual(['env', 'env'])
    const configured = await locateFfmpeg({ env: { ...env, FFMPEG_PATH: '/nonexistent' }, ffmpegPath: path.join(onPath, 'ffmpeg') })
    expect(configured.ffmpegSource).toBe('config')
    expect((await locateFfmpeg({ env: { PATH: path.join(dir, 'empty') } })).ffmpegSource).toBe('bundled')
  })

  it('refuses a configured or FFMPEG_PATH binary that is not executable, naming it', async () => {
    const dir = await tmpDir('locate-bad')
    const notExec = path.join(dir, 'ffmpeg')
    await writeFile(notExec, 'not a program')
    await chmod(notExec, 0o644)
    await expect(locateFfmpeg({ ffmpegPath: notExec })).rejects.toThrow(FfmpegNotFoundError)
    await expect(locateFfmpeg({ env: { FFMPEG_PATH: '/no/such/ffmpeg' } })).rejects.toThrow(/FFMPEG_PATH="\/no\/such\/ffmpeg" is not an executable file/)
  })
})

describe('probeFfmpeg', () => {
  it('reads version, encoders and filters of the bundled build', async () => {
    const caps = await probeFfmpeg({ ffmpeg: bundledPath('ffmpeg')! }, { checkGpu: true })
    expect(caps.version).not.toBe('unknown')
    for (const e of ['libx264', 'libx265', 'ffv1', 'prores_ks', 'aac']) expect(caps.encoders.has(e)).toBe(true)
    for (const f of ['overlay', 'fade', 'drawtext', 'alphamerge', 'lut3d', 'amix']) expect(caps.filters.has(f)).toBe(true)
    // No GPU here: listed NVENC encoders that cannot open a device are not offered.
    expect(caps.gpuEncoders.every((e) => caps.encoders.has(e))).toBe(true)
  })

  it('reports a binary that does not run as not found', async () => {
    const dir = await tmpDir('probe-bad')
    const fake = path.join(dir, 'ffmpeg')
    await writeFile(fake, '#!/bin/sh\nexit 3\n')
    await chmod(fake, 0o755)
    await expect(probeFfmpeg({ ffmpeg: fake })).rejects.toThrow(FfmpegNotFoundError)
  })
})
