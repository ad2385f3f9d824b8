import { describe, expect, it } from 'vitest'
import os from 'node:os'
import { parseNvidiaSmi, probeGpus, probeHardware, sampleLoad } from '../../agent/hardware.ts'

describe('hardware probe', () => {
  it('reads this machine (no GPU here is normal, never an error)', async () => {
    const hw = await probeHardware({ gpuTimeoutMs: 3000 })
    expect(hw.cpu.cores).toBeGreaterThanOrEqual(1)
    expect(hw.memBytes).toBe(os.totalmem())
    expect(Array.isArray(hw.gpus)).toBe(true)
    const load = await sampleLoad()
    expect(load.cpuPct).toBeGreaterThanOrEqual(0)
    expect(load.cpuPct).toBeLessThanOrEqual(100)
    expect(load.memTotalBytes).toBe(os.totalmem())
  })

  it('parses nvidia-smi output for one or several GPUs', () => {
    const one = { nvidia_smi_log: { driver_version: '550.54', gpu: { product_name: 'NVIDIA H200', fb_memory_usage: { total: '143771 MiB' }, utilization: { gpu_util: '37 %' } } } }
    expect(parseNvidiaSmi(one)).toEqual([{ model: 'NVIDIA H200', vramBytes: 143771 * 1024 * 1024, driver: '550.54', utilPct: 37 }])
    const two = { nvidia_smi_log: { gpu: [one.nvidia_smi_log.gpu, { product_name: 'RTX 4090', fb_memory_usage: { total: 'N/A' }, utilization: { gpu_util: '250 %' } }] } }
    expect(parseNvidiaSmi(two).map((g) => [g.model, g.vramBytes, g.utilPct])).toEqual([['NVIDIA H200', 143771 * 1024 * 1024, 37], ['RTX 4090', 0, 100]])
  })

  it('treats garbage, a failing nvidia-smi and a hung one as no GPU', async () => {
    for (const junk of [undefined, null, 'text', { nvidia_smi_log: 'x' }, { nvidia_smi_log: { gpu: [null, 5] } }]) expect(parseNvidiaSmi(junk)).toEqual([])
    expect(await probeGpus({ nvidiaSmi: (cb) => { cb(new Error('nvidia-smi: not found')) } })).toEqual([])
    expect(await probeGpus({ nvidiaSmi: (cb) => { cb('NVIDIA-SMI has failed') } })).toEqual([])
    expect(await probeGpus({ nvidiaSmi: () => { throw new Error('boom') } })).toEqual([])
    const started = Date.now()
    expect(await probeGpus({ nvidiaSmi: () => {}, gpuTimeoutMs: 200 })).toEqual([])
    expect(Date.now() - started).toBeLessThan(2000)
  })
})
