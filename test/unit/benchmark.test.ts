import { afterAll, describe, expect, it } from 'vitest'
import path from 'node:path'
import { benchmark, benchmarkKey } from '../../agent/benchmark.ts'
import { locateFfmpeg, probeFfmpeg } from '../../agent/ffmpeg.ts'
import { probeHardware } from '../../agent/hardware.ts'
import { Store } from '../../agent/store.ts'
import { cleanupTmp, tmpDir } from '../helpers/media.ts'

afterAll(cleanupTmp)

describe('self-benchmark', () => {
  it('measures fps per preset with real ffmpeg, caches it per (hardware, ffmpeg build), re-runs on demand', async () => {
    const tools = await locateFfmpeg()
    const caps = await probeFfmpeg(tools)
    const hw = await probeHardware()
    const store = Store.open(path.join(await tmpDir('bench'), 'state.db'))
    const first = await benchmark(tools, caps, hw, store, { presets: ['ffv1'] })
    expect(first.cached).toBe(false)
    expect(first.fps.ffv1).toBeGreaterThan(0)
    const again = await benchmark(tools, caps, hw, store, { presets: ['ffv1'] })
    expect(again).toEqual({ ...first, cached: true })
    const forced = await benchmark(tools, caps, hw, store, { presets: ['ffv1'], force: true })
    expect(forced.cached).toBe(false)
    // Another ffmpeg build or other hardware is another figure.
    expect(benchmarkKey(hw, { build: 'ffmpeg version 9' })).not.toBe(first.key)
    expect(benchmarkKey({ ...hw, cpu: { ...hw.cpu, cores: hw.cpu.cores + 1 } }, caps)).not.toBe(first.key)
    store.close()
  })
})
