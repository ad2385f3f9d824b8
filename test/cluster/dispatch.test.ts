/**
 * The coordinator's dispatch on real libp2p in one process (the farm bench/dispatch.ts measures):
 * workers that finish every lease at once, several jobs of many chunks. Every chunk is leased,
 * reported done exactly once, and the stored records end 'done' with every chunk done; no worker
 * is ever offered more leases than it has slots. Counts only, never timings.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { startDispatchFarm, type DispatchFarm } from '../../bench/dispatch.ts'
import { waitFor } from '../helpers/wait.ts'

let farm: DispatchFarm | undefined
afterEach(async () => { await farm?.stop(); farm = undefined })

describe('coordinator dispatch', () => {
  it('leases every chunk of several jobs and takes each result exactly once', async () => {
    farm = await startDispatchFarm({ workers: 6, slots: 2, heartbeatMs: 2000 })
    const f = farm
    const jobs = [await f.submit('a', 120), await f.submit('b', 90), await f.submit('c', 60)]
    const all = jobs.flat()
    expect(new Set(all).size).toBe(270)
    expect(await f.waitAllDone(90_000)).toBe(true)
    // Each chunk's result was taken once (a second report of the same chunk would be refused as stale or counted twice here).
    expect(f.completed.size).toBe(all.length)
    expect([...f.completed.values()].every((n) => n === 1)).toBe(true)
    expect(all.every((id) => f.completed.has(id))).toBe(true)
    // Every lease a worker took was for a chunk of these jobs, and no worker was offered past its slots.
    const leased = new Set(f.leases.map((l) => l.chunkId))
    expect(all.every((id) => leased.has(id))).toBe(true)
    expect(f.leases.every((l) => leased.has(l.chunkId) && all.includes(l.chunkId))).toBe(true)
    expect(f.refused).toBe(0)
    // The owner reported each job finished: the stored records say done, every chunk done with its hash.
    const ids = [...new Set(f.leases.map((l) => l.jobId))]
    expect(ids).toHaveLength(3)
    await waitFor(() => ids.every((id) => f.record(id)?.status === 'done'), 20_000, 'every job record to be done')
    for (const id of ids) {
      const rec = f.record(id)!
      expect(rec.chunks.every((c) => c.status === 'done' && c.sha256 !== undefined && c.node !== undefined)).toBe(true)
      expect(rec.framesDone).toBe(rec.spec.timeline.duration)
    }
  }, 180_000)
})
