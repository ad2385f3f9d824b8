import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { AutoscalerError, decide, predictFinish, predictQueue, queueOrder, type PendingLaunch, type ScalerConfig, type ScalerInput, type ScalerJob, type ScalerNode } from '../../coordinator/autoscaler.ts'
import { chargeUsd, BILLING, Meter } from '../../coordinator/cost.ts'
import { estimate } from '../../coordinator/estimate.ts'
import { bundledPrices } from '../../coordinator/cloud/prices.ts'

const NOW = 1_700_000_000_000
const S = 1000
const PRICES = bundledPrices()
// g5.xlarge us-east-1: 1.006 on-demand, 0.4081 spot (59% off); g4dn.xlarge: 0.526 / 0.2208 (58% off).

function lan (id: string, fps = 100, extra: Partial<ScalerNode> = {}): ScalerNode {
  return { peerId: id, location: 'lan', fps: { ffv1: fps }, slots: 1, busySlots: 1, costPerHour: 0, accepting: true, ...extra }
}
function cloudNode (id: string, extra: Partial<ScalerNode> = {}): ScalerNode {
  return { peerId: `p-${id}`, location: 'cloud', instanceId: id, provider: 'aws', fps: { ffv1: 100 }, slots: 1, busySlots: 1, costPerHour: 0.4081, spot: true, launchedMs: NOW - 3600 * S, accepting: true, ...extra }
}
function job (id: string, extra: Partial<ScalerJob> = {}): ScalerJob {
  return { jobId: id, framesLeft: 60_000, preset: 'ffv1', width: 1280, height: 720, priority: 'normal', createdMs: NOW - 60 * S, chunksQueued: 20, chunksLeased: 0, ...extra }
}
function config (extra: Partial<ScalerConfig> = {}): ScalerConfig {
  return {
    candidates: [{ provider: 'aws', region: 'us-east-1', instanceType: 'g5.xlarge', fps: { ffv1: 100 } }],
    minNodes: 0, maxNodes: 10, cooldownMs: 120 * S, idleMs: 300 * S, bootMs: 60 * S,
    spot: { minSavings: 0.5, maxInterruptionRisk: 0.2, interruptionRisk: { 'g5.xlarge': 0.1, 'g4dn.xlarge': 0.1 } },
    ...extra
  }
}
function input (extra: Partial<ScalerInput> = {}): ScalerInput {
  return { nowMs: NOW, nodes: [lan('l1')], jobs: [job('j1', { deadlineMs: NOW + 300 * S })], pending: [], prices: PRICES, config: config(), ...extra }
}

describe('predictFinish', () => {
  it('is the estimate\'s formula with nodes working from the start', () => {
    expect(predictFinish({ frames: 1000, fps: [30, 20], chunks: 4, chunkOverheadSeconds: 0.5, joinSeconds: 2 })).toEqual({ renderedSeconds: 1000 / 50 + 0.5 * 4 / 2, finishSeconds: 1000 / 50 + 0.5 * 4 / 2 + 2 })
    const nodes = [{ peerId: 'a', fps: { ffv1: 40 }, slots: 1, costPerHour: 0, accepting: true }, { peerId: 'b', fps: { ffv1: 25 }, slots: 2, costPerHour: 0, accepting: true }]
    const est = estimate({ frames: 3000, width: 1280, height: 720, preset: 'ffv1', nodes, nowMs: NOW })
    expect(est.seconds.expected).toBe(Math.round(predictFinish({ frames: 3000, fps: [40, 25], chunks: est.chunks }).finishSeconds * 1000) / 1000)
  })
  it('adds joining nodes from when they arrive (piecewise)', () => {
    // 100 fps for 60 s = 6000 frames, then 300 fps for the 54 000 left = 180 s → 240 s, + 0.3 × 20 / 3 overhead.
    const f = predictFinish({ frames: 60_000, fps: [100], chunks: 20, joinSeconds: 1, joining: [{ fps: 100, atSeconds: 60 }, { fps: 100, atSeconds: 60 }] })
    expect(f.renderedSeconds).toBeCloseTo(240 + 2, 9)
    expect(f.finishSeconds).toBeCloseTo(243, 9)
    // A node that would arrive after the work is done is not counted (nor its share of overhead).
    expect(predictFinish({ frames: 100, fps: [100], chunks: 1, joinSeconds: 0, joining: [{ fps: 100, atSeconds: 50 }] }).renderedSeconds).toBeCloseTo(1.3, 9)
    // Starting later (jobs ahead of it) shifts the end.
    expect(predictFinish({ frames: 100, fps: [100], chunks: 0, joinSeconds: 0, startSeconds: 10 }).renderedSeconds).toBe(11)
  })
  it('never finishes without a node that can render it; only joining nodes: after they arrive', () => {
    expect(predictFinish({ frames: 10, fps: [0], chunks: 1 }).finishSeconds).toBe(Infinity)
    expect(predictFinish({ frames: 1000, fps: [], chunks: 0, joinSeconds: 0, joining: [{ fps: 100, atSeconds: 30 }] }).renderedSeconds).toBe(40)
  })
})

describe('queue prediction', () => {
  it('serves jobs by priority, then deadline, then age, one after another', () => {
    const jobs = [job('old', { createdMs: 1 }), job('late', { deadlineMs: NOW + 9e6 }), job('soon', { deadlineMs: NOW + 1e6 }), job('urgent', { priority: 'urgent' })]
    expect(queueOrder(jobs).map((j) => j.jobId)).toEqual(['urgent', 'soon', 'late', 'old'])
    const f = predictQueue([job('a', { framesLeft: 1000, chunksQueued: 0 }), job('b', { framesLeft: 500, chunksQueued: 0, createdMs: NOW })], [lan('l1', 100)], [], { joinSeconds: 0 })
    expect(f.map((x) => [x.job.jobId, x.renderedSeconds])).toEqual([['a', 10], ['b', 15]])
  })
  it('a job no node can render holds no one up', () => {
    const f = predictQueue([job('x', { preset: 'h264', createdMs: 0 }), job('y', { framesLeft: 1000, chunksQueued: 0 })], [lan('l1', 100)], [], { joinSeconds: 0 })
    expect(f[0]!.finishSeconds).toBe(Infinity)
    expect(f[1]!.renderedSeconds).toBe(10)
  })
})

describe('deadline at risk', () => {
  it('launches the fewest nodes that bring the deadline inside the margin', () => {
    const d = decide(input())
    // Local: 600 s + overhead > 300 s. One g5 joining at 60 s: 60 + 270 + 3 + 1 = 334 s (misses);
    // two: 60 + 180 + 2 + 1 = 243 s, × 1.15 = 279 s ≤ 300 s.
    expect(d.launch).toMatchObject({ provider: 'aws', region: 'us-east-1', instanceType: 'g5.xlarge', count: 2, reason: 'deadline', spot: true, priceUsdPerHour: 0.4081 })
    expect(d.launch!.why).toMatch(/j1 would miss their deadline/)
    expect(d.state.lastActionMs).toBe(NOW)
    const one = predictQueue(input().jobs, input().nodes, [{ fps: { ffv1: 100 }, atSeconds: 60 }])
    expect(one[0]!.finishSeconds * 1.15).toBeGreaterThan(300)
  })
  it('launches nothing when the farm as it is meets the deadline', () => {
    const d = decide(input({ jobs: [job('j1', { deadlineMs: NOW + 800 * S })] }))
    expect(d.launch).toBeUndefined()
    expect(d.terminate).toBeUndefined()
    expect(d.state.lastActionMs).toBeUndefined()
  })
  it('counts machines still booting: no second launch for the same deadline', () => {
    const pending: PendingLaunch[] = [{ ids: ['i-a', 'i-b'], provider: 'aws', region: 'us-east-1', instanceType: 'g5.xlarge', spot: true, launchedMs: NOW - 10 * S, priceUsdPerHour: 0.4081 }]
    expect(decide(input({ pending })).launch).toBeUndefined()
    // One booting: one more is enough.
    expect(decide(input({ pending: [{ ...pending[0]!, ids: ['i-a'] }] })).launch?.count).toBe(1)
  })
  it('picks the type that meets it for the least money', () => {
    // g4dn (T4) is about half the price; at 40 fps it needs 5 nodes (5 × 0.2208 = 1.104/h) vs 2 × g5 (0.816/h);
    // at 90 fps two do (0.442/h).
    const cand = [{ provider: 'aws' as const, region: 'us-east-1', instanceType: 'g4dn.xlarge', fps: { ffv1: 40 } }, { provider: 'aws' as const, region: 'us-east-1', instanceType: 'g5.xlarge', fps: { ffv1: 100 } }]
    expect(decide(input({ config: config({ candidates: cand }) })).launch).toMatchObject({ instanceType: 'g5.xlarge', count: 2 })
    const fast = [{ ...cand[0]!, fps: { ffv1: 90 } }, cand[1]!]
    expect(decide(input({ config: config({ candidates: fast }) })).launch).toMatchObject({ instanceType: 'g4dn.xlarge', count: 2 })
  })
  it('takes the expected fps from the GPU model when the type has none', () => {
    const c = config({ candidates: [{ provider: 'gcp', region: 'us-central1', instanceType: 'g2-standard-4' }], defaultFpsByGpu: { 'NVIDIA L4': { ffv1: 100 } }, spot: { minSavings: 0.5, maxInterruptionRisk: 0.2, interruptionRisk: {} } })
    expect(decide(input({ config: c })).launch).toMatchObject({ provider: 'gcp', instanceType: 'g2-standard-4', count: 2, spot: false, priceUsdPerHour: 0.70683228 })
    const none = decide(input({ config: { ...c, defaultFpsByGpu: {} } }))
    expect(none.launch).toBeUndefined()
    expect(none.notes.join('\n')).toMatch(/g2-standard-4: no expected fps .*NVIDIA L4/)
  })
  it('a deadline no count can meet: as many as the caps allow, and says so', () => {
    const d = decide(input({ config: config({ maxNodes: 1 }) }))
    expect(d.launch).toMatchObject({ count: 1, reason: 'deadline' })
    expect(d.notes.join('\n')).toMatch(/cannot meet their deadline even with 1 more node/)
  })
  it('a passed deadline starts no burst', () => {
    const d = decide(input({ jobs: [job('j1', { deadlineMs: NOW - 1 })] }))
    expect(d.launch).toBeUndefined()
    expect(d.notes.join('\n')).toMatch(/j1: its deadline has passed/)
  })
})

describe('spot or on-demand', () => {
  it('spot when the saving is large enough and the type\'s interruption risk low enough', () => {
    expect(decide(input()).launch).toMatchObject({ spot: true, priceUsdPerHour: 0.4081 })
    const risky = config({ spot: { minSavings: 0.5, maxInterruptionRisk: 0.2, interruptionRisk: { 'g5.xlarge': 0.25 } } })
    expect(decide(input({ config: risky })).launch).toMatchObject({ spot: false, priceUsdPerHour: 1.006 })
    const greedy = config({ spot: { minSavings: 0.6, maxInterruptionRisk: 0.2, interruptionRisk: { 'g5.xlarge': 0.1 } } })
    expect(decide(input({ config: greedy })).launch).toMatchObject({ spot: false })
    const unknown = config({ spot: { minSavings: 0.5, maxInterruptionRisk: 0.2, interruptionRisk: {} } })
    expect(decide(input({ config: unknown })).launch).toMatchObject({ spot: false })
  })
})

describe('caps', () => {
  it('hourly cost cap: never launches past it', () => {
    const d = decide(input({ config: config({ hourlyCostCapUsd: 0.5 }) }))
    expect(d.launch).toBeUndefined()
    expect(d.notes.join('\n')).toMatch(/hourly cost cap: 2 × g5\.xlarge at \$0\.4081\/h would bring the cloud rate to \$0\.8162\/h, over the \$0\.50\/h cap/)
    expect(decide(input({ config: config({ hourlyCostCapUsd: 0.82 }) })).launch?.count).toBe(2)
    // Running cloud machines count towards the rate.
    expect(decide(input({ nodes: [lan('l1'), cloudNode('i-1', { fps: {} })], config: config({ hourlyCostCapUsd: 0.82 }) })).launch).toBeUndefined()
  })
  it('max nodes: running + booting + new never pass it', () => {
    const nodes = [lan('l1'), ...['i-1', 'i-2', 'i-3'].map((id) => cloudNode(id, { fps: {} }))]
    expect(decide(input({ nodes, config: config({ maxNodes: 3 }) })).launch).toBeUndefined()
    expect(decide(input({ nodes, config: config({ maxNodes: 4 }) })).launch?.count).toBe(1)
  })
  it('budget blocks a deadline launch and says why', () => {
    // Two g5 spot for ~(243 × 1.3 + 300 + 120) s ≈ 736 s each ≈ $0.167 together.
    const d = decide(input({ config: config({ budget: { capUsd: 1, spentUsd: 0.9 } }) }))
    expect(d.launch).toBeUndefined()
    expect(d.notes.join('\n')).toMatch(/deadline: job\(s\) j1 at risk; the cheapest launch that meets it is blocked — budget: 2 × g5\.xlarge for up to \d+ s would bring worst-case spend to \$1\.0\d+, over the \$1\.00 cap \(\$0\.90 spent\)/)
    const ok = decide(input({ config: config({ budget: { capUsd: 1.2, spentUsd: 0.9 } }) }))
    expect(ok.launch?.count).toBe(2)
    expect(ok.launch!.worstCaseUsd).toBeCloseTo(0.9 + 2 * chargeUsd(BILLING.aws, 0.4081, ok.launch!.horizonMs), 6)
    expect(ok.launch!.horizonMs).toBe(Math.ceil(predictQueue(input().jobs, input().nodes, [{ fps: { ffv1: 100 }, atSeconds: 60 }, { fps: { ffv1: 100 }, atSeconds: 60 }])[0]!.renderedSeconds * 1.3 * 1000) + 300 * S + 120 * S)
  })
  it('cooldown: no action until it has passed since the last one', () => {
    const d = decide(input({ state: { lastActionMs: NOW - 60 * S } }))
    expect(d.launch).toBeUndefined()
    expect(d.notes.join('\n')).toMatch(/cooldown: no action until 60 s from now/)
    expect(decide(input({ state: { lastActionMs: NOW - 120 * S } })).launch?.count).toBe(2)
  })
})

describe('queue length and utilisation', () => {
  const open = [job('j1', { chunksQueued: 30 })] // no deadline
  it('queue above the threshold for the duration: enough nodes to bring it back', () => {
    const c = config({ queue: { chunksPerNode: 5, forMs: 60 * S } })
    const first = decide(input({ jobs: open, config: c }))
    expect(first.launch).toBeUndefined()
    expect(first.state.queueHighSinceMs).toBe(NOW)
    const later = decide(input({ nowMs: NOW + 59 * S, jobs: open, config: c, state: first.state }))
    expect(later.launch).toBeUndefined()
    const due = decide(input({ nowMs: NOW + 60 * S, jobs: open, config: c, state: later.state }))
    // 30 queued / 5 per node = 6 nodes; 1 there → 5.
    expect(due.launch).toMatchObject({ count: 5, reason: 'queue' })
    expect(due.state.queueHighSinceMs).toBeUndefined()
    // The queue dropping below resets the clock.
    const dropped = decide(input({ nowMs: NOW + 30 * S, jobs: [job('j1', { chunksQueued: 3 })], config: c, state: first.state }))
    expect(dropped.state.queueHighSinceMs).toBeUndefined()
  })
  it('acts only for work without a deadline (a job whose deadline the farm meets starts nothing)', () => {
    const c = config({ queue: { chunksPerNode: 5, forMs: 0 }, utilisation: { above: 0.5, forMs: 0 } })
    const d = decide(input({ jobs: [job('j1', { chunksQueued: 30, deadlineMs: NOW + 3600 * S })], config: c }))
    expect(d.launch).toBeUndefined()
    expect(d.state.queueHighSinceMs).toBeUndefined()
  })
  it('utilisation at or above the threshold for the duration with work queued: one node', () => {
    const c = config({ utilisation: { above: 0.9, forMs: 120 * S } })
    const jobs = [job('j1', { chunksQueued: 2 })]
    const s1 = decide(input({ jobs, config: c }))
    expect(s1.state.utilHighSinceMs).toBe(NOW)
    const d = decide(input({ nowMs: NOW + 120 * S, jobs, config: c, state: s1.state }))
    expect(d.launch).toMatchObject({ count: 1, reason: 'utilisation' })
    // Idle slots: no.
    expect(decide(input({ nodes: [lan('l1', 100, { busySlots: 0 })], jobs, config: c, state: s1.state, nowMs: NOW + 600 * S })).launch).toBeUndefined()
    // Nothing queued: no.
    expect(decide(input({ jobs: [job('j1', { chunksQueued: 0, chunksLeased: 1 })], config: c, state: s1.state, nowMs: NOW + 600 * S })).launch).toBeUndefined()
  })
})

describe('min nodes and scale-in', () => {
  const quiet = { jobs: [] as ScalerJob[] }
  it('keeps minNodes cloud nodes', () => {
    const d = decide(input({ ...quiet, config: config({ minNodes: 2 }) }))
    expect(d.launch).toMatchObject({ count: 2, reason: 'min-nodes' })
  })
  it('gives back a cloud node idle past the threshold, not before', () => {
    const n = cloudNode('i-1', { busySlots: 0, idleSinceMs: NOW - 300 * S })
    expect(decide(input({ ...quiet, nodes: [lan('l1'), n] })).terminate).toEqual([{ ids: ['i-1'], reason: 'idle', why: 'idle for 300 s or more' }])
    expect(decide(input({ ...quiet, nodes: [lan('l1'), { ...n, idleSinceMs: NOW - 299 * S }] })).terminate).toBeUndefined()
    expect(decide(input({ ...quiet, nodes: [lan('l1'), { ...n, busySlots: 1 }] })).terminate).toBeUndefined()
    // LAN machines are never given back.
    expect(decide(input({ ...quiet, nodes: [lan('l1', 100, { busySlots: 0, idleSinceMs: 0 })] })).terminate).toBeUndefined()
  })
  it('respects the billing minimum: an idle node whose paid minute has not run stays', () => {
    const n = cloudNode('i-1', { busySlots: 0, idleSinceMs: NOW - 20 * S, launchedMs: NOW - 40 * S })
    const d = decide(input({ ...quiet, nodes: [lan('l1'), n], config: config({ idleMs: 10 * S }) }))
    expect(d.terminate).toBeUndefined()
    expect(d.notes.join('\n')).toMatch(/i-1: idle, kept until its paid minimum of 60 s has run/)
    expect(decide(input({ ...quiet, nowMs: NOW + 20 * S, nodes: [lan('l1'), n], config: config({ idleMs: 10 * S }) })).terminate?.[0]!.ids).toEqual(['i-1'])
  })
  it('keeps minNodes even when idle; cooldown delays scale-in', () => {
    const nodes = [lan('l1'), cloudNode('i-1', { busySlots: 0, idleSinceMs: NOW - 900 * S }), cloudNode('i-2', { busySlots: 0, idleSinceMs: NOW - 600 * S })]
    expect(decide(input({ ...quiet, nodes, config: config({ minNodes: 1 }) })).terminate?.[0]!.ids).toEqual(['i-1'])
    expect(decide(input({ ...quiet, nodes, state: { lastActionMs: NOW - 1 } })).terminate).toBeUndefined()
  })
  it('over budget: every cloud machine goes, busy or booting, minimums and cooldown notwithstanding', () => {
    const nodes = [lan('l1'), cloudNode('i-1', { launchedMs: NOW - 10 * S }), cloudNode('i-2', { busySlots: 0, idleSinceMs: NOW })]
    const pending: PendingLaunch[] = [{ ids: ['i-3'], provider: 'aws', region: 'us-east-1', instanceType: 'g5.xlarge', spot: true, launchedMs: NOW, priceUsdPerHour: 0.4081 }]
    // The next minute of three machines at 0.4081/h ≈ $0.0204 (i-1 and i-3 still inside their paid minute add less).
    const d = decide(input({ nodes, pending, state: { lastActionMs: NOW - 1 }, config: config({ budget: { capUsd: 5, spentUsd: 4.995 } }) }))
    expect(d.terminate).toEqual([{ ids: ['i-1', 'i-2', 'i-3'], reason: 'budget', why: expect.stringMatching(/budget: spent \$4\.995 and the cloud machines' next 60 s would pass the \$5\.00 cap/) as unknown }])
    expect(d.launch).toBeUndefined()
    expect(decide(input({ nodes, pending, config: config({ budget: { capUsd: 5, spentUsd: 4.9 } }) })).terminate).toBeUndefined()
  })
})

describe('config checks', () => {
  it('refuses a config it cannot act on, naming the field', () => {
    expect(() => decide(input({ config: config({ minNodes: 3, maxNodes: 2 }) }))).toThrow(AutoscalerError)
    expect(() => decide(input({ config: config({ minNodes: 3, maxNodes: 2 }) }))).toThrow(/maxNodes \(must be ≥ minNodes\)/)
    expect(() => decide(input({ config: config({ cooldownMs: -1 }) }))).toThrow(/cooldownMs/)
    expect(() => decide(input({ nowMs: Number.NaN }))).toThrow(/nowMs/)
  })
})

// Random farms, queues and configs for the properties.
const arbNode = fc.record({ fps: fc.integer({ min: 0, max: 200 }), slots: fc.integer({ min: 0, max: 2 }), busy: fc.integer({ min: 0, max: 2 }) })
const arbCloud = fc.record({ fps: fc.integer({ min: 0, max: 200 }), busy: fc.integer({ min: 0, max: 1 }), ageS: fc.integer({ min: 0, max: 7200 }), idleS: fc.option(fc.integer({ min: 0, max: 3600 }), { nil: undefined }), price: fc.constantFrom(0.2208, 0.4081, 1.006) })
const arbJob = fc.record({ frames: fc.integer({ min: 1, max: 500_000 }), chunks: fc.integer({ min: 0, max: 50 }), deadlineS: fc.option(fc.integer({ min: 1, max: 20_000 }), { nil: undefined }), priority: fc.constantFrom('low', 'normal', 'high', 'urgent' as const), preset: fc.constantFrom('ffv1', 'h264') })
const arbWorld = fc.record({
  lan: fc.array(arbNode, { maxLength: 4 }),
  cloud: fc.array(arbCloud, { maxLength: 4 }),
  pending: fc.integer({ min: 0, max: 3 }),
  jobs: fc.array(arbJob, { minLength: 1, maxLength: 4 }),
  maxNodes: fc.integer({ min: 0, max: 12 }),
  minNodes: fc.integer({ min: 0, max: 3 }),
  cap: fc.option(fc.double({ min: 0, max: 50, noNaN: true }), { nil: undefined }),
  spentOther: fc.double({ min: 0, max: 20, noNaN: true }),
  hourlyCap: fc.option(fc.double({ min: 0, max: 10, noNaN: true }), { nil: undefined }),
  queue: fc.boolean(),
  fps: fc.integer({ min: 1, max: 300 })
})
type World = typeof arbWorld extends fc.Arbitrary<infer T> ? T : never

function build (w: World): { inp: ScalerInput; meter: Meter } {
  const meter = new Meter()
  const nodes: ScalerNode[] = w.lan.map((n, i) => lan(`l${i}`, n.fps, { slots: n.slots, busySlots: Math.min(n.busy, n.slots), idleSinceMs: n.busy === 0 ? NOW - 60 * S : undefined }))
  w.cloud.forEach((n, i) => {
    const id = `i-${i}`
    nodes.push(cloudNode(id, { fps: { ffv1: n.fps, h264: n.fps / 2 }, busySlots: n.busy, launchedMs: NOW - n.ageS * S, idleSinceMs: n.busy === 0 ? NOW - (n.idleS ?? 0) * S : undefined, costPerHour: n.price }))
    meter.start({ id, provider: 'aws', priceUsdPerHour: n.price }, NOW - n.ageS * S)
  })
  const pending: PendingLaunch[] = w.pending > 0 ? [{ ids: Array.from({ length: w.pending }, (_, i) => `p-${i}`), provider: 'aws', region: 'us-east-1', instanceType: 'g5.xlarge', spot: true, launchedMs: NOW - 30 * S, priceUsdPerHour: 0.4081 }] : []
  for (const id of pending[0]?.ids ?? []) meter.start({ id, provider: 'aws', priceUsdPerHour: 0.4081 }, NOW - 30 * S)
  const jobs = w.jobs.map((j, i) => job(`j${i}`, { framesLeft: j.frames, chunksQueued: j.chunks, preset: j.preset, priority: j.priority, createdMs: NOW - i * S, ...(j.deadlineS !== undefined ? { deadlineMs: NOW + j.deadlineS * S } : {}) }))
  const cfg = config({
    candidates: [{ provider: 'aws', region: 'us-east-1', instanceType: 'g5.xlarge', fps: { ffv1: w.fps, h264: w.fps / 2 } }, { provider: 'aws', region: 'us-east-1', instanceType: 'g4dn.xlarge', fps: { ffv1: w.fps / 2 } }],
    maxNodes: Math.max(w.maxNodes, w.minNodes), minNodes: w.minNodes,
    ...(w.cap !== undefined ? { budget: { capUsd: w.cap, spentUsd: w.spentOther + meter.totalUsd(NOW) } } : {}),
    ...(w.hourlyCap !== undefined ? { hourlyCostCapUsd: w.hourlyCap } : {}),
    ...(w.queue ? { queue: { chunksPerNode: 2, forMs: 0 }, utilisation: { above: 0.5, forMs: 0 } } : {})
  })
  return { inp: { nowMs: NOW, nodes, jobs, pending, prices: PRICES, config: cfg }, meter }
}

describe('properties', () => {
  it('a launch never takes worst-case spend past the budget (checked by cost.ts\'s Meter)', () => {
    fc.assert(fc.property(arbWorld, (w) => {
      const { inp, meter } = build(w)
      const d = decide(inp)
      if (d.launch === undefined || w.cap === undefined) return
      // What the Meter says: spent so far (other + metered machines), the running and booting ones kept for the horizon, the new ones with their minimum.
      const check = meter.checkBudget(Math.max(0, w.cap - w.spentOther), { provider: d.launch.provider, priceUsdPerHour: d.launch.priceUsdPerHour, count: d.launch.count, durationMs: d.launch.horizonMs }, NOW)
      expect(check.totalUsd).toBeLessThanOrEqual(w.cap - w.spentOther + 1e-5)
      expect(w.spentOther + check.totalUsd).toBeCloseTo(d.launch.worstCaseUsd, 4)
      // The horizon covers the queue's predicted end with the new nodes, with idle and cooldown time.
      expect(d.launch.horizonMs).toBeGreaterThanOrEqual(inp.config.idleMs + inp.config.cooldownMs)
    }), { numRuns: 300 })
  })
  it('never more cloud nodes than maxNodes; never past the hourly cap', () => {
    fc.assert(fc.property(arbWorld, (w) => {
      const { inp } = build(w)
      const d = decide(inp)
      if (d.launch === undefined) return
      const cloud = inp.nodes.filter((n) => n.location === 'cloud')
      expect(cloud.length + w.pending + d.launch.count).toBeLessThanOrEqual(inp.config.maxNodes)
      expect(d.launch.count).toBeGreaterThanOrEqual(1)
      if (inp.config.hourlyCostCapUsd !== undefined) {
        const rate = cloud.reduce((s, n) => s + n.costPerHour, 0) + w.pending * 0.4081 + d.launch.count * d.launch.priceUsdPerHour
        expect(rate).toBeLessThanOrEqual(inp.config.hourlyCostCapUsd + 1e-9)
      }
    }), { numRuns: 300 })
  })
  it('never launches when the farm as it is meets every deadline (and minNodes is met)', () => {
    let checked = 0
    fc.assert(fc.property(arbWorld, (w) => {
      const { inp } = build({ ...w, minNodes: 0, jobs: w.jobs.map((j) => ({ ...j, deadlineS: j.deadlineS ?? 20_000 })) })
      const joining = (inp.pending[0]?.ids ?? []).map(() => ({ fps: { ffv1: w.fps, h264: w.fps / 2 }, atSeconds: 30 }))
      const meets = predictQueue(inp.jobs, inp.nodes, joining).every((f) => NOW + f.finishSeconds * 1.15 * 1000 <= f.job.deadlineMs!)
      if (!meets) return
      checked++
      expect(decide(inp).launch).toBeUndefined()
    }), { numRuns: 400 })
    expect(checked).toBeGreaterThan(10)
  })
  it('launches for a deadline only when the farm as it is would miss one', () => {
    fc.assert(fc.property(arbWorld, (w) => {
      const { inp } = build({ ...w, minNodes: 0, queue: false })
      const d = decide(inp)
      if (d.launch === undefined) return
      expect(d.launch.reason).toBe('deadline')
      const joining = (inp.pending[0]?.ids ?? []).map(() => ({ fps: { ffv1: w.fps, h264: w.fps / 2 }, atSeconds: 30 }))
      const late = predictQueue(inp.jobs, inp.nodes, joining).filter((f) => f.job.deadlineMs !== undefined && NOW + f.finishSeconds * 1.15 * 1000 > f.job.deadlineMs)
      expect(late.length).toBeGreaterThan(0)
    }), { numRuns: 300 })
  })
})

describe('a simulated run (property)', () => {
  it('metered spend never passes the budget while demand outruns it', () => {
    const arb = fc.record({
      lanFps: fc.integer({ min: 1, max: 100 }), cloudFps: fc.integer({ min: 20, max: 300 }), cap: fc.integer({ min: 0, max: 500 }).map((c) => c / 100),
      jobs: fc.array(fc.record({ frames: fc.integer({ min: 1000, max: 200_000 }), deadlineS: fc.integer({ min: 60, max: 3600 }) }), { minLength: 1, maxLength: 3 }),
      price: fc.constantFrom(0.4081, 1.006), queue: fc.boolean()
    })
    let runsThatLaunched = 0
    let runsCutByBudget = 0
    fc.assert(fc.property(arb, (w) => {
      const meter = new Meter()
      const tickMs = 30 * S
      const cand = config({
        candidates: [{ provider: 'aws', region: 'us-east-1', instanceType: 'g5.xlarge', fps: { ffv1: w.cloudFps } }],
        maxNodes: 8, idleMs: 120 * S, cooldownMs: 60 * S,
        // price: which g5 price the run pays — spot (0.4081) or, with an unreachable saving threshold, on-demand (1.006).
        spot: { minSavings: w.price === 1.006 ? 0.99 : 0.5, maxInterruptionRisk: 0.2, interruptionRisk: { 'g5.xlarge': 0.1 } },
        ...(w.queue ? { queue: { chunksPerNode: 1, forMs: 0 } } : {})
      })
      const left = w.jobs.map((j) => j.frames)
      const open: Array<ScalerJob & { i: number }> = []
      let cloudNodes: ScalerNode[] = []
      let pending: PendingLaunch[] = []
      let state = {}
      let seq = 0
      let cut = false
      for (let t = 0; t < 120; t++) {
        const now = NOW + t * tickMs
        // Booted machines join; work done since the last tick.
        for (const p of pending.filter((x) => x.launchedMs + cand.bootMs <= now)) for (const id of p.ids) cloudNodes.push(cloudNode(id, { launchedMs: p.launchedMs, costPerHour: p.priceUsdPerHour, fps: { ffv1: w.cloudFps } }))
        pending = pending.filter((x) => x.launchedMs + cand.bootMs > now)
        let budgetFrames = (w.lanFps + cloudNodes.length * w.cloudFps) * tickMs / 1000
        for (let i = 0; i < left.length && budgetFrames > 0; i++) { const d = Math.min(left[i]!, budgetFrames); left[i]! -= d; budgetFrames -= d }
        const busy = left.some((f) => f > 0)
        cloudNodes = cloudNodes.map((n) => ({ ...n, busySlots: busy ? 1 : 0, idleSinceMs: busy ? undefined : (n.idleSinceMs ?? now) }))
        open.length = 0
        w.jobs.forEach((j, i) => { if (left[i]! > 0) open.push({ ...job(`j${i}`, { framesLeft: left[i]!, chunksQueued: Math.ceil(left[i]! / 1000), deadlineMs: NOW + j.deadlineS * S, createdMs: NOW + i }), i }) })
        const spent = meter.totalUsd(now)
        expect(spent).toBeLessThanOrEqual(w.cap + 1e-6)
        const d = decide({ nowMs: now, nodes: [lan('l1', w.lanFps), ...cloudNodes], jobs: open, pending, prices: PRICES, config: { ...cand, budget: { capUsd: w.cap, spentUsd: spent } }, state })
        state = d.state
        for (const tr of d.terminate ?? []) {
          for (const id of tr.ids) meter.stop(id, now)
          cloudNodes = cloudNodes.filter((n) => !tr.ids.includes(n.instanceId!))
          pending = pending.map((p) => ({ ...p, ids: p.ids.filter((id) => !tr.ids.includes(id)) })).filter((p) => p.ids.length > 0)
        }
        if ((d.terminate ?? []).some((x) => x.reason === 'budget') || d.notes.some((n) => /budget: .* over the/.test(n))) cut = true
        if (d.launch !== undefined) {
          if (seq === 0) runsThatLaunched++
          const ids = Array.from({ length: d.launch.count }, () => `i-${seq++}`)
          for (const id of ids) meter.start({ id, provider: 'aws', priceUsdPerHour: d.launch.priceUsdPerHour }, now)
          pending.push({ ids, provider: 'aws', region: 'us-east-1', instanceType: d.launch.instanceType, spot: d.launch.spot, launchedMs: now, priceUsdPerHour: d.launch.priceUsdPerHour })
        }
      }
      expect(meter.totalUsd(NOW + 120 * tickMs)).toBeLessThanOrEqual(w.cap + 1e-6)
      if (cut) runsCutByBudget++
    }), { numRuns: 150 })
    // The runs did burst, and the budget did bind (else the property would say little).
    expect(runsThatLaunched).toBeGreaterThan(40)
    expect(runsCutByBudget).toBeGreaterThan(10)
  })
})
