import { describe, expect, it } from 'vitest'
import { Scheduler, SchedulerError, type JobInput, type Lease, type SchedNode, type SchedulerOptions } from '../../coordinator/scheduler.ts'

/** A scheduler with predictable tokens t1, t2, … */
function mk (opts: SchedulerOptions = {}): Scheduler {
  let i = 0
  return new Scheduler({ leaseMs: 1000, token: () => `t${++i}`, ...opts })
}
function chunks (jobId: string, n: number, frames = 10): JobInput['chunks'] {
  return Array.from({ length: n }, (_, i) => ({ id: `${jobId}-c${i}`, index: i, start: i * frames, end: (i + 1) * frames }))
}
function job (id: string, over: Partial<JobInput> = {}): JobInput {
  return { id, priority: 'normal', createdMs: 0, preset: 'h264', encoders: ['libx264'], needsGpu: false, chunks: chunks(id, 4), ...over }
}
function node (peerId: string, over: Partial<SchedNode> = {}): SchedNode {
  return { peerId, slots: 1, encoders: ['libx264'], gpu: false, fps: { h264: 100 }, accepting: true, paused: false, ...over }
}
const who = (leases: Lease[]): string[] => leases.map((l) => `${l.chunkId}@${l.node}`)

describe('Scheduler: order', () => {
  it('leases an urgent job first even when it was submitted last', () => {
    const s = mk()
    s.addJob(job('low', { priority: 'low', createdMs: 1 }))
    s.addJob(job('normal', { priority: 'normal', createdMs: 2 }))
    s.addJob(job('high', { priority: 'high', createdMs: 3 }))
    s.addJob(job('urgent', { priority: 'urgent', createdMs: 4, chunks: chunks('urgent', 2) }))
    expect(s.jobs().map((j) => j.id)).toEqual(['urgent', 'high', 'normal', 'low'])
    expect(who(s.assign([node('A')], 1, 0))).toEqual(['urgent-c0@A'])
    // Strict across levels: urgent's last chunk, then all of high, before normal or low.
    expect(who(s.assign([node('A', { slots: 6 })], 1, 0))).toEqual(['urgent-c1@A', 'high-c0@A', 'high-c1@A', 'high-c2@A', 'high-c3@A'])
    expect(s.jobStatus('normal')).toBe('queued')
    expect(s.jobStatus('low')).toBe('queued')
  })

  it('orders by deadline within a priority (earliest first, none last), and priority beats deadline', () => {
    const s = mk()
    s.addJob(job('none', { createdMs: 0 }))
    s.addJob(job('late', { createdMs: 1, deadlineMs: 5000 }))
    s.addJob(job('soon', { createdMs: 2, deadlineMs: 3000 }))
    s.addJob(job('highNoDeadline', { createdMs: 3, priority: 'high' }))
    expect(s.jobs().map((j) => j.id)).toEqual(['highNoDeadline', 'soon', 'late', 'none'])
    s.pauseJob('highNoDeadline')
    // Different deadlines are not a fair-share class: 'soon' takes every slot it can use.
    expect(who(s.assign([node('A', { slots: 5 })], 1, 0))).toEqual(['soon-c0@A', 'soon-c1@A', 'soon-c2@A', 'soon-c3@A', 'late-c0@A'])
  })

  it('breaks remaining ties by age, then id', () => {
    const s = mk()
    s.addJob(job('b', { createdMs: 5 }))
    s.addJob(job('z', { createdMs: 1 }))
    s.addJob(job('a', { createdMs: 5 }))
    expect(s.jobs().map((j) => j.id)).toEqual(['z', 'a', 'b'])
  })

  it('shares slots fairly between jobs of the same class', () => {
    const s = mk()
    s.addJob(job('old', { createdMs: 0 }))
    s.addJob(job('new', { createdMs: 10 }))
    expect(who(s.assign([node('A', { slots: 4 })], 1, 0))).toEqual(['old-c0@A', 'new-c0@A', 'old-c1@A', 'new-c1@A'])
  })

  it('gives the next slots to the job with fewer live leases', () => {
    const s = mk()
    s.addJob(job('first', { createdMs: 0, chunks: chunks('first', 6) }))
    expect(s.assign([node('A', { slots: 3 })], 1, 0)).toHaveLength(3)
    s.addJob(job('second', { createdMs: 5 }))
    const more = s.assign([node('A', { slots: 3 }), node('B', { slots: 3 })], 1, 0)
    // second catches up to 3 live leases before first gets another.
    expect(more.map((l) => l.jobId)).toEqual(['second', 'second', 'second'])
    expect(s.leases({ jobId: 'first' })).toHaveLength(3)
    expect(s.leases({ jobId: 'second' })).toHaveLength(3)
  })

  it('shares fairly between jobs with the same deadline', () => {
    const s = mk()
    s.addJob(job('x', { deadlineMs: 100 }))
    s.addJob(job('y', { deadlineMs: 100, createdMs: 1 }))
    expect(s.assign([node('A', { slots: 2 })], 1, 0).map((l) => l.jobId)).toEqual(['x', 'y'])
  })

  it('lets a lower job use nodes the higher job cannot use', () => {
    const s = mk()
    s.addJob(job('gpuJob', { priority: 'urgent', needsGpu: true }))
    s.addJob(job('cpuJob', { priority: 'low' }))
    expect(who(s.assign([node('cpu'), node('gpu', { gpu: true })], 1, 0))).toEqual(['gpuJob-c0@gpu', 'cpuJob-c0@cpu'])
  })
})

describe('Scheduler: placement', () => {
  it('matches GPU and encoder needs, and skips paused or non-accepting nodes', () => {
    const s = mk()
    s.addJob(job('g', { needsGpu: true, encoders: ['h264_nvenc'] }))
    const nodes = [
      node('cpu', { encoders: ['libx264', 'h264_nvenc'] }), // has the encoder but no GPU
      node('gpuNoEnc', { gpu: true, encoders: ['libx264'] }), // GPU but not the encoder
      node('busy', { gpu: true, encoders: ['h264_nvenc'], accepting: false }),
      node('paused', { gpu: true, encoders: ['h264_nvenc'], paused: true }),
      node('ok', { gpu: true, encoders: ['hevc_nvenc', 'h264_nvenc'], fps: {} })
    ]
    expect(who(s.assign(nodes, 1, 0))).toEqual(['g-c0@ok'])
    expect(s.assign(nodes, 1, 0)).toEqual([])
  })

  it('accepts any one of the job encoders', () => {
    const s = mk()
    s.addJob(job('j', { encoders: ['h264_nvenc', 'libx264'] }))
    expect(who(s.assign([node('A', { encoders: ['libx264'] })], 1, 0))).toEqual(['j-c0@A'])
  })

  it('gives the next chunk to the fastest free node for the preset, missing fps last, ties by peerId', () => {
    const s = mk()
    s.addJob(job('j', { chunks: chunks('j', 5) }))
    const nodes = [node('nofps', { fps: { prores: 500 } }), node('slow', { fps: { h264: 10 } }), node('fastB', { fps: { h264: 90 } }), node('fastA', { fps: { h264: 90 } })]
    expect(who(s.assign(nodes, 1, 0))).toEqual(['j-c0@fastA', 'j-c1@fastB', 'j-c2@slow', 'j-c3@nofps'])
  })

  it('fills a fast node with several slots before a slower one', () => {
    const s = mk()
    s.addJob(job('j', { chunks: chunks('j', 5) }))
    const nodes = [node('slow', { slots: 2, fps: { h264: 10 } }), node('fast', { slots: 3, fps: { h264: 50 } })]
    expect(who(s.assign(nodes, 1, 0))).toEqual(['j-c0@fast', 'j-c1@fast', 'j-c2@fast', 'j-c3@slow', 'j-c4@slow'])
    expect(s.running('fast')).toBe(3)
    expect(s.running('slow')).toBe(2)
  })

  it('never exceeds a node’s slots across calls', () => {
    const s = mk()
    s.addJob(job('j', { chunks: chunks('j', 8) }))
    const nodes = [node('A', { slots: 2 })]
    expect(s.assign(nodes, 1, 0)).toHaveLength(2)
    expect(s.assign(nodes, 1, 10)).toEqual([])
    expect(s.assign([node('A', { slots: 3 })], 1, 20)).toHaveLength(1)
    expect(s.running('A')).toBe(3)
  })

  it('gives a paused job no new leases until resumed', () => {
    const s = mk()
    s.addJob(job('j'))
    expect(s.pauseJob('j')).toBe(true)
    expect(s.job('j')!.paused).toBe(true)
    expect(s.assign([node('A')], 1, 0)).toEqual([])
    expect(s.resumeJob('j')).toBe(true)
    expect(s.assign([node('A')], 1, 0)).toHaveLength(1)
    expect(s.pauseJob('nope')).toBe(false)
  })

  it('fills a lease: token, expiry, term, chunk range; and records it on the chunk', () => {
    const s = mk({ leaseMs: 15_000 })
    s.addJob(job('j'))
    const [l] = s.assign([node('A')], 7, 1000)
    expect(l).toEqual({ jobId: 'j', chunkId: 'j-c0', index: 0, start: 0, end: 10, node: 'A', term: 7, leaseToken: 't1', expiresAt: 16_000 })
    const c = s.job('j')!.chunks[0]!
    expect(c).toMatchObject({ status: 'leased', node: 'A', leaseToken: 't1', leaseExpiresMs: 16_000, term: 7 })
    expect(s.jobStatus('j')).toBe('running')
  })

  it('leases chunks in index order even when added out of order', () => {
    const s = mk()
    s.addJob(job('j', { chunks: [{ id: 'b', index: 1, start: 10, end: 20 }, { id: 'a', index: 0, start: 0, end: 10 }] }))
    expect(s.assign([node('A', { slots: 2 })], 1, 0).map((l) => l.chunkId)).toEqual(['a', 'b'])
  })

  it('refuses a bad term, a node listed twice and a token function that repeats itself', () => {
    const s = new Scheduler({ token: () => 'same' })
    s.addJob(job('j'))
    expect(() => s.assign([node('A')], -1, 0)).toThrow(/term/)
    expect(() => s.assign([node('A'), node('A')], 1, 0)).toThrow(/listed twice/)
    expect(s.assign([node('A')], 1, 0)).toHaveLength(1)
    expect(() => s.assign([node('B')], 1, 0)).toThrow(/reused token/)
  })
})

describe('Scheduler: leases', () => {
  it('renews a live lease and records progress; refuses unknown, expired and superseded tokens', () => {
    const s = mk()
    s.addJob(job('j'))
    const [l] = s.assign([node('A')], 1, 0)
    expect(s.renew(l!.leaseToken, 500, 4)).toBe(true)
    expect(s.job('j')!.chunks[0]).toMatchObject({ leaseExpiresMs: 1500, framesDone: 4 })
    expect(s.renew(l!.leaseToken, 600, 999)).toBe(true)
    expect(s.job('j')!.chunks[0]!.framesDone).toBe(10) // clamped to the chunk's length
    expect(s.renew('nope', 700)).toBe(false)
    expect(s.renew(l!.leaseToken, 1600)).toBe(false) // ran out at 1600, not swept yet
    expect(s.job('j')!.chunks[0]!.leaseExpiresMs).toBe(1600)
  })

  it('expires leases past expiresAt: back to queued, one attempt, a failure on that node', () => {
    const s = mk()
    s.addJob(job('j'))
    const [a, b] = s.assign([node('A'), node('B')], 1, 0)
    s.renew(b!.leaseToken, 500)
    expect(s.expire(999)).toEqual([])
    const back = s.expire(1000)
    expect(back).toHaveLength(1)
    expect(back[0]).toMatchObject({ id: a!.chunkId, jobId: 'j', status: 'queued', attempts: 1, failedOn: ['A'], leaseToken: undefined, node: undefined })
    expect(s.running('A')).toBe(0)
    expect(s.running('B')).toBe(1)
    expect(s.renew(a!.leaseToken, 1001)).toBe(false)
    // Re-leased with a new token, first in index order.
    const [again] = s.assign([node('C')], 1, 1000)
    expect(again).toMatchObject({ chunkId: a!.chunkId, node: 'C', leaseToken: 't3' })
  })

  it('completes once: a repeat is duplicate, an unknown token or wrong chunk is stale', () => {
    const s = mk()
    s.addJob(job('j', { chunks: chunks('j', 1) }))
    const [l] = s.assign([node('A')], 1, 0)
    expect(s.complete('j-c1', l!.leaseToken)).toBe('stale')
    expect(s.complete(l!.chunkId, 'forged')).toBe('stale')
    expect(s.complete(l!.chunkId, l!.leaseToken)).toBe('done')
    expect(s.complete(l!.chunkId, l!.leaseToken)).toBe('duplicate')
    expect(s.job('j')!.chunks[0]).toMatchObject({ status: 'done', node: 'A', framesDone: 10, leaseToken: undefined })
    expect(s.jobStatus('j')).toBe('done')
    expect(s.running('A')).toBe(0)
    expect(s.renew(l!.leaseToken, 10)).toBe(false)
    expect(s.fail(l!.chunkId, l!.leaseToken, 10)).toBe('stale')
  })

  it('accepts a late result from an expired lease while the chunk is not done, then refuses the new holder', () => {
    const s = mk()
    s.addJob(job('j', { chunks: chunks('j', 1) }))
    const [old] = s.assign([node('A')], 1, 0)
    s.expire(1000)
    const [now] = s.assign([node('B')], 1, 1000)
    expect(s.complete(old!.chunkId, old!.leaseToken)).toBe('done')
    expect(s.job('j')!.chunks[0]!.node).toBe('A')
    expect(s.running('B')).toBe(0)
    expect(s.renew(now!.leaseToken, 1100)).toBe(false)
    expect(s.complete(now!.chunkId, now!.leaseToken)).toBe('stale')
  })

  it('refuses a late result once another lease completed the chunk', () => {
    const s = mk()
    s.addJob(job('j', { chunks: chunks('j', 1) }))
    const [old] = s.assign([node('A')], 1, 0)
    s.expire(1000)
    const [now] = s.assign([node('B')], 1, 1000)
    expect(s.complete(now!.chunkId, now!.leaseToken)).toBe('done')
    expect(s.complete(old!.chunkId, old!.leaseToken)).toBe('stale')
    expect(s.job('j')!.chunks[0]!.node).toBe('B')
  })

  it('tells chunks of different jobs with the same id apart by token', () => {
    const s = mk()
    const same = [{ id: 'c0', index: 0, start: 0, end: 10 }]
    s.addJob(job('x', { chunks: same }))
    s.addJob(job('y', { chunks: same, createdMs: 1 }))
    const [lx, ly] = s.assign([node('A', { slots: 2 })], 1, 0)
    expect(lx!.jobId).toBe('x')
    expect(s.complete('c0', ly!.leaseToken)).toBe('done')
    expect(s.jobStatus('y')).toBe('done')
    expect(s.jobStatus('x')).toBe('running')
    expect(() => s.markDone('c0')).toThrow(/name the job/)
  })

  it('requeues a failed chunk, and fails it (and the job) after maxAttempts', () => {
    const s = mk({ maxAttempts: 3, maxFailuresPerNode: 10 })
    s.addJob(job('j', { chunks: chunks('j', 2) }))
    const nodes = [node('A')]
    for (let attempt = 1; attempt <= 2; attempt++) {
      const [l] = s.assign(nodes, 1, 0)
      expect(l!.chunkId).toBe('j-c0')
      expect(s.fail('j-c0', 'forged', 0)).toBe('stale')
      expect(s.fail(l!.chunkId, l!.leaseToken, 0)).toBe('requeued')
      expect(s.fail(l!.chunkId, l!.leaseToken, 0)).toBe('stale') // already handled
      expect(s.job('j')!.chunks[0]).toMatchObject({ status: 'queued', attempts: attempt })
    }
    const [l] = s.assign(nodes, 1, 0)
    expect(s.fail(l!.chunkId, l!.leaseToken, 0)).toBe('failed')
    expect(s.job('j')!.chunks[0]).toMatchObject({ status: 'failed', attempts: 3, failedOn: ['A', 'A', 'A'] })
    expect(s.jobStatus('j')).toBe('failed')
    expect(s.assign(nodes, 1, 0)).toEqual([]) // a failed job gets nothing more
    expect(s.complete(l!.chunkId, l!.leaseToken)).toBe('stale')
  })

  it('fails a chunk whose leases keep expiring', () => {
    const s = mk({ maxAttempts: 2 })
    s.addJob(job('j', { chunks: chunks('j', 1) }))
    s.assign([node('A')], 1, 0)
    expect(s.expire(1000)[0]!.status).toBe('queued')
    s.assign([node('B')], 1, 1000)
    expect(s.expire(2000)[0]).toMatchObject({ status: 'failed', attempts: 2, failedOn: ['A', 'B'] })
    expect(s.jobStatus('j')).toBe('failed')
  })

  it('stops giving a job to a node that failed its chunks maxFailuresPerNode times', () => {
    const s = mk({ maxAttempts: 5, maxFailuresPerNode: 2 })
    s.addJob(job('j'))
    s.addJob(job('other', { createdMs: 1, priority: 'low' }))
    const fast = node('fast', { fps: { h264: 1000 } })
    for (let i = 0; i < 2; i++) {
      const [l] = s.assign([fast], 1, 0)
      expect(l!.jobId).toBe('j')
      expect(s.fail(l!.chunkId, l!.leaseToken, 0)).toBe('requeued')
    }
    // fast is now out for j (two failures, on any of its chunks) but still takes other work.
    expect(who(s.assign([fast], 1, 0))).toEqual(['other-c0@fast'])
    expect(who(s.assign([node('slow', { fps: { h264: 1 } })], 1, 0))).toEqual(['j-c0@slow'])
  })

  it('puts a lost node’s leases back at once without counting an attempt', () => {
    const s = mk()
    s.addJob(job('j'))
    s.addJob(job('k', { createdMs: 1 }))
    const leases = s.assign([node('A', { slots: 2 }), node('B', { fps: { h264: 1 } })], 1, 0)
    expect(who(leases)).toEqual(['j-c0@A', 'k-c0@A', 'j-c1@B'])
    const back = s.nodeLost('A')
    expect(back.map((c) => c.id)).toEqual(['j-c0', 'k-c0'])
    for (const c of back) expect(c).toMatchObject({ status: 'queued', attempts: 0, failedOn: [], node: undefined })
    expect(s.running('A')).toBe(0)
    expect(s.running('B')).toBe(1)
    expect(s.nodeLost('A')).toEqual([])
    expect(s.renew(leases[0]!.leaseToken, 10)).toBe(false)
  })

  it('releases a lease that never started without counting an attempt', () => {
    const s = mk()
    s.addJob(job('j'))
    const [l] = s.assign([node('A')], 1, 0)
    expect(s.release(l!.chunkId, 'forged')).toBe(false)
    expect(s.release(l!.chunkId, l!.leaseToken)).toBe(true)
    expect(s.release(l!.chunkId, l!.leaseToken)).toBe(false)
    expect(s.job('j')!.chunks[0]).toMatchObject({ status: 'queued', attempts: 0, failedOn: [] })
  })

  it('cancels a job: returns its live leases and forgets its tokens', () => {
    const s = mk()
    s.addJob(job('j'))
    const leases = s.assign([node('A', { slots: 2 }), node('B')], 3, 0)
    s.complete(leases[0]!.chunkId, leases[0]!.leaseToken)
    const live = s.removeJob('j')
    expect(live).toEqual(leases.slice(1))
    expect(live.map((l) => l.node).sort()).toEqual(['A', 'B'])
    expect(s.job('j')).toBeUndefined()
    expect(s.jobStatus('j')).toBeUndefined()
    expect(s.running('A')).toBe(0)
    expect(s.complete(leases[1]!.chunkId, leases[1]!.leaseToken)).toBe('stale')
    expect(s.removeJob('j')).toEqual([])
  })

  it('derives job status: queued → running → done', () => {
    const s = mk()
    s.addJob(job('j', { chunks: chunks('j', 2) }))
    expect(s.jobStatus('j')).toBe('queued')
    const leases = s.assign([node('A', { slots: 2 })], 1, 0)
    expect(s.jobStatus('j')).toBe('running')
    s.complete(leases[0]!.chunkId, leases[0]!.leaseToken)
    expect(s.jobStatus('j')).toBe('running')
    s.complete(leases[1]!.chunkId, leases[1]!.leaseToken)
    expect(s.jobStatus('j')).toBe('done')
  })

  it('restores chunks finished under an earlier coordinator', () => {
    const s = mk()
    s.addJob(job('j', { chunks: chunks('j', 2) }))
    expect(s.markDone('j-c0')).toBe(true)
    expect(s.markDone('j-c0')).toBe(false)
    expect(s.markDone('nope')).toBe(false)
    expect(s.assign([node('A', { slots: 2 })], 1, 0).map((l) => l.chunkId)).toEqual(['j-c1'])
  })

  it('marks a leased chunk done when its segment is already at the owner; the lease ends and its late result is not taken', () => {
    const s = mk()
    s.addJob(job('j', { chunks: chunks('j', 1) }))
    const [lease] = s.assign([node('A')], 1, 0)
    expect(s.markDone('j-c0', 'j')).toBe(true)
    expect(s.running('A')).toBe(0)
    expect(s.jobStatus('j')).toBe('done')
    expect(s.renew(lease!.leaseToken, 1)).toBe(false)
    expect(s.complete('j-c0', lease!.leaseToken)).toBe('stale')
  })
})

describe('Scheduler: jobs in and out', () => {
  it('refuses duplicate ids and malformed jobs', () => {
    const s = mk()
    s.addJob(job('j'))
    expect(() => s.addJob(job('j'))).toThrow(/already exists/)
    expect(() => s.addJob(job('e', { chunks: [] }))).toThrow(/no chunks/)
    expect(() => s.addJob(job('e', { encoders: [] }))).toThrow(/no encoders/)
    expect(() => s.addJob(job('e', { priority: 'asap' as never }))).toThrow(/unknown priority "asap"/)
    expect(() => s.addJob(job('e', { chunks: [{ id: 'a', index: 0, start: 0, end: 1 }, { id: 'a', index: 1, start: 1, end: 2 }] }))).toThrow(/unique/)
    expect(() => s.addJob(job('e', { chunks: [{ id: 'a', index: 0, start: 5, end: 5 }] }))).toThrow(/start < end/)
    expect(() => s.addJob(job('e', { chunks: [{ id: 'a', index: -1, start: 0, end: 5 }] }))).toThrow(SchedulerError)
    expect(() => new Scheduler({ maxAttempts: 0 })).toThrow(/maxAttempts/)
    expect(s.jobs().map((j) => j.id)).toEqual(['j'])
  })

  it('hands out copies', () => {
    const s = mk()
    const input = job('j')
    s.addJob(input)
    ;(input.chunks as unknown as Array<{ start: number }>)[0]!.start = 99
    const copy = s.job('j')!
    copy.chunks[0]!.status = 'done'
    copy.encoders.push('x')
    s.jobs()[0]!.paused = true
    expect(s.job('j')!.chunks[0]).toMatchObject({ status: 'queued', start: 0 })
    expect(s.job('j')!.encoders).toEqual(['libx264'])
    expect(s.assign([node('A')], 1, 0)).toHaveLength(1)
  })

  it('round-trips through JSON mid-flight, and the successor honours old tokens', () => {
    const s = mk({ maxAttempts: 5 })
    s.addJob(job('j', { deadlineMs: 9000, createdMs: 3, chunks: chunks('j', 4) }))
    s.addJob(job('k', { priority: 'high', needsGpu: true, encoders: ['h264_nvenc'], paused: true }))
    const [l0, l1, l2] = s.assign([node('A', { slots: 3 })], 2, 0)
    s.complete(l0!.chunkId, l0!.leaseToken)
    s.fail(l1!.chunkId, l1!.leaseToken, 5)
    s.renew(l2!.leaseToken, 100, 3)
    const data = JSON.parse(JSON.stringify(s.toJSON())) as unknown
    let i = 100
    const t = Scheduler.fromJSON(data, { leaseMs: 1000, token: () => `n${++i}` })
    expect(t.jobs()).toEqual(s.jobs())
    expect(t.toJSON()).toEqual(JSON.parse(JSON.stringify(s.toJSON())))
    expect(t.running('A')).toBe(1)
    expect(t.complete(l0!.chunkId, l0!.leaseToken)).toBe('duplicate')
    expect(t.renew(l2!.leaseToken, 200, 5)).toBe(true)
    // A late result from the failed lease is still welcome: that chunk is not done.
    expect(t.complete(l1!.chunkId, l1!.leaseToken)).toBe('done')
    expect(t.job('j')!.chunks[1]!.node).toBe('A')
    expect(t.assign([node('B')], 3, 300)).toMatchObject([{ chunkId: 'j-c3', term: 3, leaseToken: 'n101' }])
    // The original is unaffected by what the successor did.
    expect(s.job('j')!.chunks[1]!.status).toBe('queued')
  })

  it('refuses garbage in fromJSON', () => {
    const s = mk()
    s.addJob(job('j'))
    s.assign([node('A')], 1, 0)
    const good = JSON.parse(JSON.stringify(s.toJSON())) as { jobs: Array<Record<string, unknown> & { chunks: Array<Record<string, unknown>> }> }
    const variant = (f: (d: typeof good) => void): unknown => { const d = structuredClone(good); f(d); return d }
    for (const bad of [
      null, 42, 'x', {}, [],
      { format: 'renderswarm.scheduler/2', jobs: [] },
      variant((d) => { d.jobs[0]!.priority = 'asap' }),
      variant((d) => { d.jobs[0]!.chunks = [] }),
      variant((d) => { d.jobs[0]!.extra = 1 }),
      variant((d) => { d.jobs.push(structuredClone(d.jobs[0]!)) }), // duplicate job id
      variant((d) => { delete d.jobs[0]!.chunks[0]!.leaseToken }), // leased without a token
      variant((d) => { d.jobs[0]!.chunks[1]!.leaseToken = 'zzz' }), // queued with a token
      variant((d) => { d.jobs[0]!.chunks[0]!.history = [] }), // token not in history
      variant((d) => { d.jobs[0]!.chunks[0]!.attempts = -1 }),
      variant((d) => { d.jobs[0]!.chunks[0]!.jobId = 'other' }),
      variant((d) => { d.jobs[0]!.chunks[1]!.framesDone = 11 }),
      variant((d) => { d.jobs[0]!.chunks[1]!.history = d.jobs[0]!.chunks[0]!.history }) // one token twice
    ]) {
      expect(() => Scheduler.fromJSON(bad), JSON.stringify(bad)?.slice(0, 200)).toThrow(SchedulerError)
    }
    expect(() => Scheduler.fromJSON(good)).not.toThrow()
    expect(() => Scheduler.fromJSON({ format: 'renderswarm.scheduler/1', jobs: [] })).not.toThrow()
  })
})

describe('Scheduler: stragglers', () => {
  // Chunks of 100 frames; node fps 100 → a chunk should take 1 s on any node here.
  const big = (id: string, n: number): JobInput => job(id, { chunks: chunks(id, n, 100) })
  const spec = (): Scheduler => mk({ leaseMs: 60_000, speculateAfterMs: 2000, slowFactor: 2 })

  it('backs up a chunk running far slower than its benchmark on an idle node, once the queue is empty', () => {
    const s = spec()
    s.addJob(big('j', 2))
    const [a, b] = s.assign([node('A'), node('B'), node('C')], 1, 0)
    s.complete(b!.chunkId, b!.leaseToken)
    // A is at 10 of 100 frames after 5 s: projected 50 s against a predicted 1 s.
    expect(s.renew(a!.leaseToken, 5000, 10)).toBe(true)
    const backups = s.speculate([node('A'), node('B'), node('C')], 1, 5000)
    expect(who(backups)).toEqual([`${a!.chunkId}@B`])
    expect(s.leases({ jobId: 'j' }).map((l) => l.node)).toEqual(['A', 'B'])
    expect(s.running('B')).toBe(1)
    // One backup per chunk: a second call adds none, and C keeps its slot.
    expect(s.speculate([node('A'), node('B'), node('C')], 1, 6000)).toEqual([])
  })

  it('leaves alone: chunks within the factor, young chunks, jobs with queued work, nodes too slow to win', () => {
    const s = spec()
    s.addJob(big('j', 3))
    const [a, b] = s.assign([node('A'), node('B')], 1, 0)
    expect(s.renew(a!.leaseToken, 5000, 1)).toBe(true)
    // j-c2 is still queued: no backups while there is queued work (there is no free node anyway).
    expect(s.speculate([node('A'), node('B')], 1, 5000)).toEqual([])
    s.complete(b!.chunkId, b!.leaseToken)
    const [c] = s.assign([node('A'), node('B')], 1, 5000)
    // c is young (started at 5000); a projects 30 s (20 frames in 6 s) against 1 s, but the only
    // idle node, C, would need 100 s for a copy: it could not win.
    expect(s.renew(a!.leaseToken, 6000, 20)).toBe(true)
    const slowC = node('C', { fps: { h264: 1 } })
    expect(s.speculate([node('A'), node('B'), slowC], 1, 6000)).toEqual([])
    // Within the factor: 90 of 100 frames after 2.1 s projects 2.33 s < 3 × 1 s.
    const t = mk({ leaseMs: 60_000, speculateAfterMs: 2000, slowFactor: 3 })
    t.addJob(big('k', 1))
    const [k] = t.assign([node('A'), node('B')], 1, 0)
    t.renew(k!.leaseToken, 2100, 90)
    expect(t.speculate([node('A'), node('B')], 1, 2100)).toEqual([])
    expect(c).toBeDefined()
  })

  it('first result wins: the backup’s result makes the chunk done and the primary’s later one is stale', () => {
    const s = spec()
    s.addJob(big('j', 1))
    const [a] = s.assign([node('A'), node('B')], 1, 0)
    s.renew(a!.leaseToken, 5000, 5)
    const [bk] = s.speculate([node('A'), node('B')], 1, 5000)
    expect(s.renew(bk!.leaseToken, 5500, 50)).toBe(true)
    expect(s.complete(bk!.chunkId, bk!.leaseToken)).toBe('done')
    expect(s.job('j')!.chunks[0]).toMatchObject({ status: 'done', node: 'B' })
    expect(s.job('j')!.chunks[0]!.backup).toBeUndefined()
    expect(s.complete(a!.chunkId, a!.leaseToken)).toBe('stale')
    expect(s.jobStatus('j')).toBe('done')
    expect(s.running('A') + s.running('B')).toBe(0)
  })

  it('a failing or lost backup is dropped; a failing or lost primary hands the chunk to its backup', () => {
    const s = spec()
    s.addJob(big('j', 2))
    const nodes = [node('A'), node('B'), node('C'), node('D')]
    const [a0, a1] = s.assign(nodes, 1, 0)
    s.renew(a0!.leaseToken, 5000, 1)
    s.renew(a1!.leaseToken, 5000, 1)
    const [b0, b1] = s.speculate(nodes, 1, 5000)
    expect(b0!.node).not.toBe(a0!.node)
    // Backup of chunk 0 fails: dropped, nothing counted, primary goes on.
    expect(s.fail(b0!.chunkId, b0!.leaseToken, 5100)).toBe('backup-dropped')
    expect(s.job('j')!.chunks[0]).toMatchObject({ status: 'leased', node: a0!.node, attempts: 0 })
    // Primary of chunk 1 fails: one attempt against its node, the backup carries on as the lease.
    expect(s.fail(a1!.chunkId, a1!.leaseToken, 5100)).toBe('requeued')
    expect(s.job('j')!.chunks[1]).toMatchObject({ status: 'leased', node: b1!.node, leaseToken: b1!.leaseToken, attempts: 1, failedOn: [a1!.node] })
    expect(s.renew(b1!.leaseToken, 5200, 40)).toBe(true)
    // The backup holder dies now that it is the primary: back to the queue, no attempt.
    s.nodeLost(b1!.node)
    expect(s.job('j')!.chunks[1]).toMatchObject({ status: 'queued', attempts: 1 })
  })

  it('expires a quiet backup without counting; an expired primary promotes its backup', () => {
    const s = mk({ leaseMs: 6000, speculateAfterMs: 2000 })
    s.addJob(big('j', 1))
    const [a] = s.assign([node('A'), node('B')], 1, 0)
    s.renew(a!.leaseToken, 3000, 1)
    const [b] = s.speculate([node('A'), node('B')], 1, 3000)
    expect(b).toBeDefined()
    // A goes quiet; B renews: at 9000 A's lease (renewed to 9000) expires and B carries the chunk.
    s.renew(b!.leaseToken, 8000, 60)
    expect(s.expire(9000)).toHaveLength(1)
    expect(s.job('j')!.chunks[0]).toMatchObject({ status: 'leased', node: 'B', attempts: 1 })
    expect(s.complete(b!.chunkId, b!.leaseToken)).toBe('done')
  })

  it('survives a JSON round trip with a backup in flight', () => {
    const s = spec()
    s.addJob({ ...big('j', 1), fpsScale: 0.5 })
    const [a] = s.assign([node('A'), node('B')], 1, 0)
    s.renew(a!.leaseToken, 5000, 2)
    const [b] = s.speculate([node('A'), node('B')], 1, 5000)
    const t = Scheduler.fromJSON(JSON.parse(JSON.stringify(s.toJSON())))
    expect(t.jobs()).toEqual(s.jobs())
    expect(t.complete(b!.chunkId, b!.leaseToken)).toBe('done')
  })
})

describe('Scheduler: reopen', () => {
  it('puts a done chunk back in the queue when its segment was lost, without counting an attempt', () => {
    const s = mk()
    s.addJob(job('j', { chunks: chunks('j', 1) }))
    const [l] = s.assign([node('A')], 1, 0)
    s.complete(l!.chunkId, l!.leaseToken)
    expect(s.jobStatus('j')).toBe('done')
    expect(s.reopen(l!.chunkId, 'j')).toBe(true)
    expect(s.job('j')!.chunks[0]).toMatchObject({ status: 'queued', attempts: 0 })
    expect(s.reopen(l!.chunkId, 'j')).toBe(false)
    expect(s.reopen('nope', 'j')).toBe(false)
    expect(who(s.assign([node('B')], 2, 10))).toEqual(['j-c0@B'])
  })
})

describe('Scheduler: excluded nodes', () => {
  it('names the nodes a job no longer goes to (so the coordinator can fail a job no live node may take)', () => {
    const s = mk({ maxFailuresPerNode: 2, maxAttempts: 5 })
    s.addJob(job('j', { chunks: chunks('j', 3) }))
    expect(s.excluded('j')).toEqual([])
    const [a] = s.assign([node('A')], 1, 0)
    s.fail(a!.chunkId, a!.leaseToken, 1)
    expect(s.excluded('j')).toEqual([])
    const [b] = s.assign([node('A')], 1, 2)
    s.fail(b!.chunkId, b!.leaseToken, 3)
    expect(s.excluded('j')).toEqual(['A'])
    // A gets nothing more of j: with A the only node, the job would wait forever.
    expect(s.assign([node('A')], 1, 4)).toEqual([])
    expect(s.excluded('nope')).toEqual([])
  })
})

describe('Scheduler: tail placement (tailHold)', () => {
  const nodes = (): SchedNode[] => [node('fast', { fps: { h264: 100 } }), node('slow', { fps: { h264: 10 } })]

  it('passes a slow free node over when a faster busy node finishes the last chunk sooner', () => {
    const s = mk({ leaseMs: 60_000, tailHold: true })
    s.addJob(job('j', { chunks: chunks('j', 2, 100) }))
    // fast takes c0 (1 s); slow would need 10 s for c1, fast 1 s after its current chunk.
    expect(who(s.assign(nodes(), 1, 0))).toEqual(['j-c0@fast'])
    expect(s.running('slow')).toBe(0)
    expect(s.complete('j-c0', 't1')).toBe('done')
    expect(who(s.assign(nodes(), 1, 1000))).toEqual(['j-c1@fast'])
  })

  it('a node with no slots (an owner that does not render) is not waited for, however fast its benchmark', () => {
    const s = mk({ leaseMs: 60_000, tailHold: true })
    s.addJob(job('j', { chunks: chunks('j', 2, 100) }))
    // Three 10 fps nodes drain the 200 frames in 6.7 s; a chunk takes one 10 s. The owner's
    // 1000 fps must not count as a busy node that would finish it sooner.
    const owner = node('owner', { slots: 0, fps: { h264: 1000 } })
    const ten = ['a', 'b', 'c'].map((id) => node(id, { fps: { h264: 10 } }))
    expect(who(s.assign([owner, ...ten], 1, 0))).toEqual(['j-c0@a', 'j-c1@b'])
  })

  it('without tailHold the slow node takes the chunk at once (the default)', () => {
    const s = mk({ leaseMs: 60_000 })
    s.addJob(job('j', { chunks: chunks('j', 2, 100) }))
    expect(who(s.assign(nodes(), 1, 0))).toEqual(['j-c0@fast', 'j-c1@slow'])
  })

  it('still gives a slow node work while the queue is long enough to keep everyone busy', () => {
    const s = mk({ leaseMs: 60_000, tailHold: true })
    s.addJob(job('j', { chunks: chunks('j', 40, 100) }))
    expect(who(s.assign(nodes(), 1, 0))).toEqual(['j-c0@fast', 'j-c1@slow'])
  })

  it('uses the progress of a busy node: one that is behind its benchmark is not waited for', () => {
    const s = mk({ leaseMs: 60_000, tailHold: true })
    s.addJob(job('j', { chunks: chunks('j', 2, 100) }))
    expect(who(s.assign([node('fast', { fps: { h264: 100 } })], 1, 0))).toEqual(['j-c0@fast'])
    // 5 s in, fast has done 10 of 100 frames: 45 s more at that rate, so slow (10 s) goes now.
    expect(s.renew('t1', 5000, 10)).toBe(true)
    expect(who(s.assign(nodes(), 1, 5000))).toEqual(['j-c1@slow'])
  })
})

describe('Scheduler: pace (observed speed over the benchmark)', () => {
  it('is 1 until a lease has run 2 s with progress, then the rate over the benchmark, within [0.05, 4]', () => {
    const s = mk({ leaseMs: 60_000 })
    s.addJob(job('j', { chunks: chunks('j', 3, 1000) }))
    const [a] = s.assign([node('A')], 1, 0)
    expect(s.pace('A')).toBe(1)
    // 1.5 s in: start-up is most of that, nothing learned.
    s.renew(a!.leaseToken, 1500, 10)
    expect(s.pace('A')).toBe(1)
    // 3 s in, 105 frames: 35 fps against a benchmark of 100.
    s.renew(a!.leaseToken, 3000, 105)
    expect(s.pace('A')).toBeCloseTo(0.35, 6)
    s.renew(a!.leaseToken, 4000, 1000)
    expect(s.pace('A')).toBe(2.5)
    // Renewals with no new frames (the worker keeping its lease while it hands the segment over)
    // renew the lease but are not samples: 1000 frames in 40 s would say 0.25.
    expect(s.renew(a!.leaseToken, 40_000, 1000)).toBe(true)
    expect(s.pace('A')).toBe(2.5)
    s.complete(a!.chunkId, a!.leaseToken)
    const [b] = s.assign([node('A')], 1, 40_000)
    s.renew(b!.leaseToken, 46_000, 1)
    expect(s.pace('A')).toBe(0.05)
    expect(s.pace('nobody')).toBe(1)
  })

  it('places by benchmark × pace: a workstation in use at 0.35 of its benchmark ranks below a slower machine at full pace', () => {
    const a = node('A', { fps: { h264: 100 } })
    const b = node('B', { fps: { h264: 50 } })
    const s = mk({ leaseMs: 60_000 })
    s.addJob(job('j', { chunks: chunks('j', 3, 1000) }))
    expect(who(s.assign([a], 1, 0))).toEqual(['j-c0@A'])
    s.renew('t1', 3000, 105)
    s.complete('j-c0', 't1')
    // Both free, one chunk each: B (50 fps) now comes before A (100 × 0.35).
    expect(who(s.assign([a, b], 1, 3000))).toEqual(['j-c1@B', 'j-c2@A'])
    // Without a sample the benchmark decides.
    const t = mk({ leaseMs: 60_000 })
    t.addJob(job('k', { chunks: chunks('k', 1, 1000) }))
    expect(who(t.assign([a, b], 1, 0))).toEqual(['k-c0@A'])
  })
})

describe('Scheduler: tail backups (tailBackups)', () => {
  const fast = node('fast', { fps: { h264: 100 } })
  const slow = node('slow', { fps: { h264: 10 } })
  it("at a job's tail, backs up a chunk a free node would finish well before its holder, without waiting for it to straggle", () => {
    const s = mk({ leaseMs: 60_000, tailBackups: true })
    s.addJob(job('j', { chunks: chunks('j', 2, 100) }))
    expect(who(s.assign([fast, slow], 1, 0))).toEqual(['j-c0@fast', 'j-c1@slow'])
    expect(s.complete('j-c0', 't1')).toBe('done')
    // 0.5 s in, slow needs 9.5 s more by its benchmark; fast would take 1 s (×1.25 < 9.5).
    expect(who(s.speculate([fast, slow], 1, 500))).toEqual(['j-c1@fast'])
    // The default waits for speculateAfterMs and 2× its benchmark.
    const d = mk({ leaseMs: 60_000 })
    d.addJob(job('j', { chunks: chunks('j', 2, 100) }))
    d.assign([fast, slow], 1, 0)
    d.complete('j-c0', 't1')
    expect(d.speculate([fast, slow], 1, 500)).toEqual([])
  })

  it('leaves a chunk alone when the free node would not win by the margin, or the job still has queued work', () => {
    const s = mk({ leaseMs: 60_000, tailBackups: true })
    const peer = node('peer', { fps: { h264: 90 } })
    s.addJob(job('j', { chunks: chunks('j', 2, 100) }))
    s.assign([fast, peer], 1, 0)
    s.complete('j-c0', 't1')
    // peer needs 100/90 − 0.2 ≈ 0.91 s more; fast 1 s × 1.25: no.
    expect(s.speculate([fast, peer], 1, 200)).toEqual([])
    const q = mk({ leaseMs: 60_000, tailBackups: true })
    q.addJob(job('k', { chunks: chunks('k', 3, 100) }))
    q.assign([slow], 1, 0)
    expect(q.speculate([fast, slow], 1, 500)).toEqual([])
  })
})

describe('Scheduler: splitting at lease time (split)', () => {
  const split = { minMs: 4000, id: (j: string, s: number, e: number) => `${j}-r${s}-${e}` }
  const ranges = (s: Scheduler, id: string): string[] => s.job(id)!.chunks.map((c) => `${c.start}-${c.end}:${c.status}`)

  it('cuts a big chunk to about a third of the farm drain time of its node; the rest stays queued right after it', () => {
    const s = mk({ split })
    // Two chunks of 4000 frames; four nodes of 100 frames/s: drain 8000 / 400 = 20 s, so pieces of about 6.7 s (670 frames on the 10-frame grid).
    s.addJob(job('j', { align: 10, chunks: [{ id: 'a', index: 0, start: 0, end: 4000 }, { id: 'b', index: 1, start: 4000, end: 8000 }] }))
    const leases = s.assign(['A', 'B', 'C', 'D'].map((p) => node(p)), 1, 0)
    expect(leases.map((l) => `${l.chunkId}@${l.node}`)).toEqual(['j-r0-670@A', 'j-r670-1340@B', 'j-r1340-2010@C', 'j-r2010-2680@D'])
    expect(ranges(s, 'j')).toEqual(['0-670:leased', '670-1340:leased', '1340-2010:leased', '2010-2680:leased', '2680-4000:queued', '4000-8000:queued'])
    const splits = s.takeSplits()
    expect(splits.map((x) => `${x.from}→${x.into.map((p) => `${p.id}#${p.index}`).join('+')}`)).toEqual([
      'a→j-r0-670#2+j-r670-4000#3', 'j-r670-4000→j-r670-1340#4+j-r1340-4000#5', 'j-r1340-4000→j-r1340-2010#6+j-r2010-4000#7', 'j-r2010-4000→j-r2010-2680#8+j-r2680-4000#9'
    ])
    expect(s.takeSplits()).toEqual([])
    // Results come back by the pieces' ids; the job is done when every piece is.
    for (const l of leases) expect(s.complete(l.chunkId, l.leaseToken)).toBe('done')
    expect(s.jobStatus('j')).toBe('running')
  })

  it('cuts only on the align grid, inside the chunk, and never below minMs of the node’s time', () => {
    const s = mk({ split })
    // 3 nodes at 30 frames/s, two chunks of 1800 frames (60 s): drain 3600/90 = 40 s → a third is 13.3 s, but a
    // node's first piece (its pace unknown) is at most 2 × minMs = 8 s = 240 frames, on a 70-frame grid → 210.
    s.addJob(job('j', { align: 70, chunks: [{ id: 'a', index: 0, start: 0, end: 1800 }, { id: 'b', index: 1, start: 1800, end: 3600 }] }))
    const three = [node('A', { fps: { h264: 30 } }), node('B', { fps: { h264: 30 } }), node('C', { fps: { h264: 30 } })]
    const [first] = s.assign(three, 1, 0)
    expect([first!.start, first!.end]).toEqual([0, 210])
    // Its progress shows A's pace: A's next piece is sized on the drain time, longer than a first one.
    expect(s.renew(first!.leaseToken, 900, 27)).toBe(true)
    expect(s.renew(first!.leaseToken, 1800, 54)).toBe(true)
    expect(s.renew(first!.leaseToken, 2500, 75)).toBe(true)
    expect(s.pace('A')).toBeCloseTo(1, 5)
    expect(s.complete(first!.chunkId, first!.leaseToken)).toBe('done')
    const [next] = s.assign(three, 1, 2600)
    expect(next!.node).toBe('A')
    expect(next!.end - next!.start).toBeGreaterThan(240)
    // Every cut is on the grid (the planned boundary at 1800 is the plan's own).
    const cuts = s.job('j')!.chunks.map((c) => c.start).filter((x) => x !== 0 && x !== 1800)
    expect(cuts.length).toBeGreaterThan(1)
    for (const x of cuts) expect(x % 70).toBe(0)
    // A farm nearly drained: the target is drain / 2, but never under minMs (4 s = 400 frames at 100/s).
    const t = mk({ split })
    t.addJob(job('k', { chunks: [{ id: 'x', index: 0, start: 0, end: 900 }] }))
    const l = t.assign([node('A'), node('B'), node('C'), node('D')], 1, 0)
    // drain 900/400 = 2.25 s → 4 s floor = 400 frames; the rest (500 frames, 5 s) is under 1.5 × 4 s: kept whole.
    expect(l.map((x) => [x.start, x.end])).toEqual([[0, 400], [400, 900]])
  })

  it('does not cut a chunk leased before, a chunk for a node with half the farm’s speed, or anything without the option', () => {
    const s = mk({ split })
    s.addJob(job('j', { chunks: [{ id: 'a', index: 0, start: 0, end: 4000 }, { id: 'b', index: 1, start: 4000, end: 8000 }] }))
    // One node alone: nobody else could take the rest.
    expect(s.assign([node('A')], 1, 0).map((l) => [l.start, l.end])).toEqual([[0, 4000]])
    // A fast node with slow company (100 of 150 frames/s) takes its chunk whole; the slow one's is
    // cut: its first piece, 8 s at 50 frames/s.
    const w = mk({ split })
    w.addJob(job('j', { chunks: [{ id: 'a', index: 0, start: 0, end: 4000 }, { id: 'b', index: 1, start: 4000, end: 8000 }] }))
    expect(w.assign([node('A'), node('F', { fps: { h264: 50 } })], 1, 0).map((l) => [l.node, l.start, l.end])).toEqual([['A', 0, 4000], ['F', 4000, 4400]])
    const u = mk({ split })
    u.addJob(job('j', { chunks: [{ id: 'a', index: 0, start: 0, end: 4000 }, { id: 'b', index: 1, start: 4000, end: 8000 }] }))
    const first = u.assign([node('A'), node('B'), node('C'), node('D')], 1, 0)[0]!
    expect(first.end).toBe(667)
    // Released (the worker refused it): leased before, so offered whole next time.
    expect(u.release(first.chunkId, first.leaseToken)).toBe(true)
    expect(u.assign([node('E'), node('A', { slots: 0 }), node('B', { slots: 0 }), node('C', { slots: 0 }), node('D', { slots: 0 })], 1, 0).map((l) => [l.chunkId, l.start, l.end])).toEqual([['j-r0-667', 0, 667]])
    const plain = mk()
    plain.addJob(job('j', { chunks: [{ id: 'a', index: 0, start: 0, end: 4000 }, { id: 'b', index: 1, start: 4000, end: 8000 }] }))
    expect(plain.assign(['A', 'B', 'C', 'D'].map((p) => node(p)), 1, 0).map((l) => l.chunkId)).toEqual(['a', 'b'])
    expect(plain.takeSplits()).toEqual([])
  })

  it('refuses an id function that reuses an id, keeps pieces across a snapshot, and refuses overlapping chunks', () => {
    const bad = mk({ split: { minMs: 4000, id: () => 'same' } })
    bad.addJob(job('j', { chunks: [{ id: 'a', index: 0, start: 0, end: 4000 }, { id: 'b', index: 1, start: 4000, end: 8000 }] }))
    expect(() => bad.assign(['A', 'B', 'C', 'D'].map((p) => node(p)), 1, 0)).toThrow(/empty or existing id "same"/)
    const s = mk({ split })
    s.addJob(job('j', { align: 10, chunks: [{ id: 'a', index: 0, start: 0, end: 4000 }, { id: 'b', index: 1, start: 4000, end: 8000 }] }))
    s.assign(['A', 'B', 'C', 'D'].map((p) => node(p)), 1, 0)
    const back = Scheduler.fromJSON(JSON.parse(JSON.stringify(s.toJSON())), { split })
    expect(ranges(back, 'j')).toEqual(ranges(s, 'j'))
    expect(back.job('j')!.align).toBe(10)
    expect(() => mk().addJob(job('o', { chunks: [{ id: 'a', index: 0, start: 0, end: 100 }, { id: 'b', index: 1, start: 90, end: 200 }] }))).toThrow(/chunks "a" and "b" overlap/)
    expect(() => new Scheduler({ split: { minMs: 0, id: split.id } })).toThrow(/split.minMs must be a positive number/)
  })
})
