import { describe, expect, it } from 'vitest'
import { checkMaxCost, chunkCount, CostExceededError, estimate, EstimateError, hostShares, hostSpeeds, jobFps, MAX_CHUNKS, MAX_SPEED_FACTOR, MIN_SPEED_FACTOR, probeSpeedFactor, type Estimate, type EstimateInput, type EstimateNode } from '../../coordinator/estimate.ts'
import { medianPoint, probeRanges } from '../../agent/probe.ts'

const NOW = Date.UTC(2025, 0, 1)
function node (peerId: string, over: Partial<EstimateNode> = {}): EstimateNode {
  return { peerId, fps: { h264: 60 }, slots: 1, costPerHour: 0, accepting: true, ...over }
}
/** A at 60 fps ($3.60/h), B at 30 fps ($0.036/h), and two nodes that must not count. */
const FARM: EstimateNode[] = [
  node('A', { costPerHour: 3.6 }),
  node('B', { fps: { h264: 30 }, costPerHour: 0.036, slots: 4 }),
  node('busy', { fps: { h264: 1000 }, costPerHour: 100, accepting: false }),
  node('proresOnly', { fps: { prores: 500 }, costPerHour: 100 })
]
const input = (over: Partial<EstimateInput> = {}): EstimateInput => ({ frames: 900, width: 1280, height: 720, preset: 'h264', nodes: FARM, nowMs: NOW, ...over })

describe('jobFps', () => {
  it('scales the 1280x720 benchmark by pixel count', () => {
    expect(jobFps(60, 1280, 720)).toBe(60)
    expect(jobFps(60, 640, 360)).toBe(240)
    expect(jobFps(60, 1920, 1080)).toBeCloseTo(26.6667, 4)
    expect(jobFps(60, 3840, 2160)).toBeCloseTo(6.6667, 4)
  })
  it('is 0 without a benchmark and refuses a nonsense frame size', () => {
    expect(jobFps(0, 1920, 1080)).toBe(0)
    expect(jobFps(-5, 1920, 1080)).toBe(0)
    expect(jobFps(Number.NaN, 1920, 1080)).toBe(0)
    expect(() => jobFps(60, 0, 1080)).toThrow(EstimateError)
    expect(() => jobFps(60, 1920.5, 1080)).toThrow(/frame size/)
  })
})

describe('estimate', () => {
  it('splits frames across usable nodes by speed, adds chunk overhead and the join', () => {
    const est = estimate(input())
    // 900 frames at 60 + 30 fps = 10 s; 2 chunks (one per node) × 0.3 s / 2 nodes; + 1 s join.
    expect(est.seconds).toEqual({ low: 9.605, expected: 11.3, high: 14.69 })
    expect(est.nodes).toBe(2)
    expect(est.chunks).toBe(2)
    expect(est.framesPerSecond).toBe(90)
    expect(est.completionAt).toBe('2025-01-01T00:00:11.300Z')
    // One node alone: 900 / 60 = 15 s (+ 0.3 + 1), so B's half speed cuts 5 s, not half.
    expect(estimate(input({ nodes: [FARM[0]!] })).seconds.expected).toBe(16.3)
  })

  it('does not multiply a node’s speed by its slots', () => {
    const one = estimate(input({ nodes: FARM.map((n) => ({ ...n, slots: 1 })) }))
    const many = estimate(input({ nodes: FARM.map((n) => ({ ...n, slots: 8 })) }))
    expect(many).toEqual(one)
    expect(() => estimate(input({ nodes: [node('A', { slots: 0 })] }))).toThrow(EstimateError)
  })

  it('runs slower on bigger frames', () => {
    const est = estimate(input({ width: 1920, height: 1080 }))
    // 26.67 + 13.33 = 40 fps → 22.5 s; still 2 chunks.
    expect(est.framesPerSecond).toBe(40)
    expect(est.seconds.expected).toBe(23.8)
  })

  it('prices every used node for its render time (not the join), rounded to a millionth of a dollar', () => {
    const est = estimate(input())
    // What actualCost meters: each node's chunks, 10 s + 0.3 s here; the 1 s join is the owner's.
    // (3.6 + 0.036) $/h × 10.3 s / 3600 = 0.0104030…
    expect(est.cost).toEqual({ low: 0.008843, expected: 0.010403, high: 0.013524, currency: 'USD' })
    const free = estimate(input({ nodes: [node('local', { costPerHour: 0 })] }))
    expect(free.cost.expected).toBe(0)
  })

  it('puts only as many nodes to work as there are chunks', () => {
    // One frame: one chunk, on the fastest node; B is neither timed nor billed.
    const est = estimate(input({ frames: 1 }))
    expect(est.chunks).toBe(1)
    expect(est.nodes).toBe(1)
    expect(est.seconds.expected).toBe(1.317) // 1/60 + 0.3 + 1
    expect(est.cost.expected).toBe(Math.round(3.6 * 0.317 / 3600 * 1e6) / 1e6)
    // A GOP longer than the timeline: one chunk too.
    expect(estimate(input({ align: 1000 })).nodes).toBe(1)
  })

  it('honours the overhead, join and target options', () => {
    const est = estimate(input({ chunkOverheadSeconds: 0, joinSeconds: 0 }))
    expect(est.seconds.expected).toBe(10)
    const small = estimate(input({ frames: 9000, targetChunkSeconds: 10, chunkOverheadSeconds: 1, joinSeconds: 0 }))
    // median 45 fps × 10 s = 450 frames a chunk → 20 chunks, 10 per node: 100 s + 10 s.
    expect(small.chunks).toBe(20)
    expect(small.seconds.expected).toBe(110)
  })

  it('names the preset when no accepting node can render it', () => {
    expect(() => estimate(input({ preset: 'hevc' }))).toThrow(EstimateError)
    expect(() => estimate(input({ preset: 'hevc' }))).toThrow(/preset "hevc"/)
    expect(() => estimate(input({ nodes: [FARM[2]!] }))).toThrow(/preset "h264"/)
    expect(() => estimate(input({ nodes: [] }))).toThrow(EstimateError)
  })

  it('refuses nonsense input', () => {
    expect(() => estimate(input({ frames: 0 }))).toThrow(/frames/)
    expect(() => estimate(input({ width: -1 }))).toThrow(/frame size/)
    expect(() => estimate(input({ nodes: [node('A', { costPerHour: -1 })] }))).toThrow(/costPerHour/)
    expect(() => estimate(input({ chunkOverheadSeconds: -1 }))).toThrow(/chunkOverheadSeconds/)
    expect(() => estimate(input({ nowMs: Number.NaN }))).toThrow(/nowMs/)
  })
})

describe('checkMaxCost', () => {
  const est = estimate(input())
  const priced = (expected: number): Estimate => ({ ...est, cost: { ...est.cost, expected } })

  it('throws CostExceededError naming both figures in USD', () => {
    let err: unknown
    try { checkMaxCost(est, 0.01) } catch (e) { err = e }
    expect(err).toBeInstanceOf(CostExceededError)
    const ce = err as CostExceededError
    expect(ce.code).toBe('cost-exceeded')
    expect(ce.maxCost).toBe(0.01)
    expect(ce.estimate).toBe(est)
    // Enough decimals that the figures differ on screen.
    expect(ce.message).toMatch(/\$0\.0104 USD .*\$0\.0100 USD/)
    expect(() => checkMaxCost(priced(12.5), 10)).toThrow(/\$12\.50 USD exceeds the job's maximum of \$10\.00 USD/)
  })

  it('passes at or under the limit, or without one', () => {
    expect(() => checkMaxCost(est, undefined)).not.toThrow()
    expect(() => checkMaxCost(est, 0.010403)).not.toThrow()
    expect(() => checkMaxCost(est, 1)).not.toThrow()
    expect(() => checkMaxCost(priced(0), 0)).not.toThrow()
    expect(() => checkMaxCost(est, Number.NaN)).toThrow(EstimateError)
  })
})

describe('chunkCount', () => {
  it('aims for chunks of targetChunkSeconds on a median node', () => {
    expect(chunkCount({ frames: 9000, fpsPerNode: [30, 30, 30] })).toBe(10) // 900 frames a chunk
    expect(chunkCount({ frames: 9001, fpsPerNode: [30, 30, 30] })).toBe(11)
    expect(chunkCount({ frames: 9000, fpsPerNode: [30], targetChunkSeconds: 10 })).toBe(30)
    // The median, not the mean: one very fast machine does not make chunks huge.
    expect(chunkCount({ frames: 9000, fpsPerNode: [10, 20, 40, 1000] })).toBe(10) // median 30
    expect(chunkCount({ frames: 9000, fpsPerNode: [10, 30, 1000] })).toBe(10)
  })

  it('gives every usable node at least one chunk', () => {
    expect(chunkCount({ frames: 3000, fpsPerNode: Array.from({ length: 100 }, () => 100) })).toBe(100)
    expect(chunkCount({ frames: 600, fpsPerNode: [500, 500, 500] })).toBe(3)
  })

  it('never makes more chunks than frames / align, nor fewer than one', () => {
    expect(chunkCount({ frames: 2, fpsPerNode: [1, 1, 1, 1, 1] })).toBe(2) // tiny timeline
    expect(chunkCount({ frames: 1, fpsPerNode: [0.001] })).toBe(1)
    expect(chunkCount({ frames: 600, fpsPerNode: [1] })).toBe(20)
    expect(chunkCount({ frames: 600, fpsPerNode: [1], align: 60 })).toBe(10) // whole GOPs
    expect(chunkCount({ frames: 30, fpsPerNode: [1, 1], align: 60 })).toBe(1) // GOP longer than the timeline
    expect(chunkCount({ frames: 10_000_000, fpsPerNode: [0.01] })).toBe(MAX_CHUNKS)
  })

  it('ignores nodes without a speed and refuses nonsense', () => {
    expect(chunkCount({ frames: 9000, fpsPerNode: [0, -1, Number.NaN, 30] })).toBe(10)
    expect(() => chunkCount({ frames: 9000, fpsPerNode: [0] })).toThrow(EstimateError)
    expect(() => chunkCount({ frames: 0, fpsPerNode: [30] })).toThrow(/frames/)
    expect(() => chunkCount({ frames: 10.5, fpsPerNode: [30] })).toThrow(/frames/)
    expect(() => chunkCount({ frames: 10, fpsPerNode: [30], align: 0 })).toThrow(/alignment/)
    expect(() => chunkCount({ frames: 10, fpsPerNode: [30], targetChunkSeconds: 0 })).toThrow(/targetChunkSeconds/)
  })
})

describe('calibration: the probe of the job\'s own timeline', () => {
  it('speed factor = probe fps over the owner\'s benchmark at the job\'s frame size', () => {
    // Owner benchmark 20 fps at 720p; the timeline renders 100 frames in 1 s there: 5× the benchmark.
    expect(probeSpeedFactor({ frames: 100, seconds: 1 }, 20, 1280, 720)).toBe(5)
    // At 320x180 the benchmark scales to 20 × 16 = 320 fps; a probe of 160 fps is half that.
    expect(probeSpeedFactor({ frames: 80, seconds: 0.5 }, 20, 320, 180)).toBe(0.5)
  })

  it('is 1 without a probe or an owner benchmark, and clamped to its bounds', () => {
    expect(probeSpeedFactor(undefined, 20, 1280, 720)).toBe(1)
    expect(probeSpeedFactor({ frames: 100, seconds: 1 }, undefined, 1280, 720)).toBe(1)
    expect(probeSpeedFactor({ frames: 100, seconds: 1 }, 0, 1280, 720)).toBe(1)
    expect(probeSpeedFactor({ frames: 100, seconds: 0 }, 20, 1280, 720)).toBe(1)
    expect(probeSpeedFactor({ frames: 100_000, seconds: 0.001 }, 20, 1280, 720)).toBe(MAX_SPEED_FACTOR)
    expect(probeSpeedFactor({ frames: 1, seconds: 1000 }, 20, 1280, 720)).toBe(MIN_SPEED_FACTOR)
  })

  it('scales every node\'s speed, the chunk count and the time; fixed seconds are added once and not billed', () => {
    const base = estimate(input({ chunkOverheadSeconds: 0, joinSeconds: 0 }))
    const fast = estimate(input({ chunkOverheadSeconds: 0, joinSeconds: 0, speedFactor: 2 }))
    expect(fast.framesPerSecond).toBe(180)
    expect(fast.seconds.expected).toBe(5) // 900 / 180
    expect(fast.cost.expected).toBe(Math.round(base.cost.expected / 2 * 1e6) / 1e6)
    const fixed = estimate(input({ chunkOverheadSeconds: 0, joinSeconds: 0, speedFactor: 2, fixedSeconds: 1.5 }))
    expect(fixed.seconds.expected).toBe(6.5)
    expect(fixed.cost).toEqual(fast.cost) // preparation and submit are not node time
    // Chunk sizing follows the calibrated speed: median 45 fps × 10 s = 450 frames a chunk → 20
    // chunks; twice as fast → 900 frames a chunk → 10.
    expect(estimate(input({ frames: 9000, targetChunkSeconds: 10 })).chunks).toBe(20)
    expect(estimate(input({ frames: 9000, targetChunkSeconds: 10, speedFactor: 2 })).chunks).toBe(10)
  })

  it('refuses a nonsense factor or fixed time', () => {
    expect(() => estimate(input({ speedFactor: 0 }))).toThrow(/speedFactor/)
    expect(() => estimate(input({ speedFactor: Number.NaN }))).toThrow(/speedFactor/)
    expect(() => estimate(input({ fixedSeconds: -1 }))).toThrow(/fixedSeconds/)
  })

  it('probes up to three ranges spread over the timeline, inside it and without repeats', () => {
    expect(probeRanges(600, 15)).toEqual([{ start: 93, end: 108 }, { start: 293, end: 308 }, { start: 493, end: 508 }])
    expect(probeRanges(20, 15)).toEqual([{ start: 0, end: 6 }, { start: 7, end: 13 }, { start: 13, end: 19 }])
    expect(probeRanges(2, 15)).toEqual([{ start: 0, end: 1 }, { start: 1, end: 2 }])
    expect(probeRanges(1, 15)).toEqual([{ start: 0, end: 1 }])
    for (const d of [1, 2, 3, 7, 44, 175, 300, 9000]) {
      for (const r of probeRanges(d, 15)) { expect(r.start).toBeGreaterThanOrEqual(0); expect(r.end).toBeLessThanOrEqual(d); expect(r.end).toBeGreaterThan(r.start) }
    }
    expect(() => probeRanges(0, 15)).toThrow(/duration/)
  })

  it('takes the median point\'s speed, so one disturbed run does not decide', () => {
    const fast = { frames: 14, seconds: 0.2 }; const mid = { frames: 14, seconds: 0.4 }; const slow = { frames: 14, seconds: 3 }
    expect(medianPoint([slow, fast, mid])).toBe(mid)
    expect(medianPoint([fast, slow])).toBe(slow)
    expect(medianPoint([fast])).toBe(fast)
    expect(() => medianPoint([])).toThrow(/no probe points/)
  })
})

describe('co-located agents: nodes on one host share its cores', () => {
  const host = (id: string, cores: number): EstimateNode['host'] => ({ id, cores })
  it('splits a host\'s cores among the nodes rendering on it at once, by the cores a render keeps busy', () => {
    const two = host('aaaaaaaaaaaaaaaa', 2)
    // Three agents on 2 cores, a render filling both: each gets a third.
    expect(hostShares([{ host: two }, { host: two }, { host: two }], 2)).toEqual([1 / 3, 1 / 3, 1 / 3])
    // A render that keeps one core busy: 2 cores for 3 renders, 2/3 each.
    expect(hostShares([{ host: two }, { host: two }, { host: two }], 1)).toEqual([2 / 3, 2 / 3, 2 / 3])
    // 1.25 cores a render, 2 nodes on 4 cores: room for both.
    expect(hostShares([{ host: host('bbbbbbbbbbbbbbbb', 4) }, { host: host('bbbbbbbbbbbbbbbb', 4) }], 1.25)).toEqual([1, 1])
    // Without the probe's figure a render fills its host; a render that wants more than the host has gets the host.
    expect(hostShares([{ host: two }, { host: two }])).toEqual([0.5, 0.5])
    expect(hostShares([{ host: two }, { host: two }], 8)).toEqual([0.5, 0.5])
  })
  it('sizes a host by renders measured side by side when the probe has that figure', () => {
    const two = host('aaaaaaaaaaaaaaaa', 2)
    const three = [{ host: two }, { host: two }, { host: two }]
    const close = (got: number[], want: number[]): void => { expect(got).toHaveLength(want.length); got.forEach((g, i) => { expect(g).toBeCloseTo(want[i]!, 9) }) }
    // 1.3 cores a render on 2 cores says ×1.54 for the host; three side by side measured ×0.75: that decides.
    close(hostShares(three, 1.3), three.map(() => 2 / 1.3 / 3))
    close(hostShares(three, 1.3, { renders: 3, worth: 0.75 }), [0.25, 0.25, 0.25])
    // Two measured (×1.05) where three will render: past what the cores allow, the host does what two did.
    close(hostShares(three, 1.3, { renders: 2, worth: 1.05 }), [0.35, 0.35, 0.35])
    // Renders that fill the host: the measured figure is the host's capacity, more than the cores say too.
    close(hostShares([{ host: two }, { host: two }], 2, { renders: 2, worth: 1.4 }), [0.7, 0.7])
    // A 16-core host, 2 cores a render: room for 8 by the cores, each doing what each of two did side by side.
    const big = host('dddddddddddddddd', 16)
    close(hostShares(Array.from({ length: 8 }, () => ({ host: big })), 2, { renders: 2, worth: 1.6 }), Array.from({ length: 8 }, () => 0.8))
    close(hostShares(Array.from({ length: 4 }, () => ({ host: big })), 2, { renders: 2, worth: 2 }), [1, 1, 1, 1])
    // Alone on its host, a node is not slowed whatever was measured.
    expect(hostShares([{ host: two }, { host: host('cccccccccccccccc', 2) }], 1.3, { renders: 2, worth: 0.5 })).toEqual([1, 1])
    expect(() => hostShares(three, 1.3, { renders: 1, worth: 1 })).toThrow(/together must be 2 or more renders/)
    expect(() => hostShares(three, 1.3, { renders: 2, worth: 3 })).toThrow(EstimateError)
    expect(() => hostShares(three, 1.3, { renders: 2, worth: Number.NaN })).toThrow(EstimateError)
    // The estimate: three agents on 2 cores whose renders together do one render's worth go as fast as one.
    const nodes3 = ['A', 'B', 'C'].map((id) => node(id, { host: two }))
    expect(estimate(input({ nodes: nodes3, renderCores: 1.3, together: { renders: 3, worth: 1 } })).framesPerSecond).toBe(60)
    expect(estimate(input({ nodes: nodes3, renderCores: 1.3 })).framesPerSecond).toBeCloseTo(92.31, 1)
  })
  it('changes nothing for one agent per machine or nodes without a host', () => {
    expect(hostShares([{ host: host('aaaaaaaaaaaaaaaa', 2) }, { host: host('cccccccccccccccc', 2) }, {}], 2)).toEqual([1, 1, 1])
    const farm = [node('A', { host: host('aaaaaaaaaaaaaaaa', 8) }), node('B', { fps: { h264: 30 }, host: host('cccccccccccccccc', 8) })]
    expect(estimate(input({ nodes: farm }))).toEqual(estimate(input({ nodes: farm.map((n) => ({ ...n, host: undefined })) })))
    expect(() => hostShares([{}], 0)).toThrow(EstimateError)
  })
  it('predicts three agents on one 2-core host from one agent\'s speed, time and cost alike', () => {
    const two = host('aaaaaaaaaaaaaaaa', 2)
    const three = ['A', 'B', 'C'].map((id) => node(id, { host: two, costPerHour: 1 }))
    // Alone: 900 frames at 60 fps = 15 s + 0.3 s (one chunk) + 1 s join.
    const one = estimate(input({ nodes: [three[0]!] }))
    expect(one.seconds.expected).toBe(16.3)
    // Three at once, a render filling both cores: 20 fps each, 60 in all, as fast as one alone;
    // the chunks' fixed cost is not shared: 15 + 0.3 × 3 / 3 + 1 = 16.3 s.
    const shared = estimate(input({ nodes: three, renderCores: 2 }))
    expect(shared.chunks).toBe(3)
    expect(shared.framesPerSecond).toBe(60)
    expect(shared.seconds.expected).toBe(16.3)
    // Each of the three is busy 15.3 s at $1/h: 3 × 15.3 / 3600.
    expect(shared.cost.expected).toBe(0.01275)
    // The old model (a machine each) predicted 3× the speed and a third of the time.
    const apart = estimate(input({ nodes: three.map((n, i) => ({ ...n, host: host(`${i}`.repeat(16), 2) })), renderCores: 2 }))
    expect(apart.framesPerSecond).toBe(180)
    expect(apart.seconds.expected).toBe(6.3)
    // A render keeping one core busy: 2/3 share, 120 fps in all: 7.5 + 0.3 + 1 s.
    const light = estimate(input({ nodes: three, renderCores: 1 }))
    expect(light.framesPerSecond).toBe(120)
    expect(light.seconds.expected).toBe(8.8)
    expect(light.cost.expected).toBe(Math.round(3 * 7.8 / 3600 * 1e6) / 1e6)
  })
  it('sizes chunks on the shared speeds: a chunk of the target time takes that long with every node at work', () => {
    const two = host('aaaaaaaaaaaaaaaa', 2)
    const three = ['A', 'B', 'C'].map((id) => node(id, { host: two }))
    // 60 fps alone, 20 fps each with three renders filling the 2 cores: 600 frames a 30 s chunk, 15 chunks.
    expect(estimate(input({ frames: 9000, nodes: three, renderCores: 2 })).chunks).toBe(15)
    // A machine each: 1800 frames a chunk, 5 chunks.
    expect(estimate(input({ frames: 9000, nodes: three.map((n, i) => ({ ...n, host: host(`${i}`.repeat(16), 2) })), renderCores: 2 })).chunks).toBe(5)
    // A render keeping one core busy: 40 fps each, 1200 frames a chunk, 8 chunks.
    expect(estimate(input({ frames: 9000, nodes: three, renderCores: 1 })).chunks).toBe(8)
  })
  it('shares only among the nodes put to work, and counts fixed seconds once', () => {
    const two = host('aaaaaaaaaaaaaaaa', 2)
    const pair = [node('A', { host: two }), node('B', { host: two })]
    // Two chunks (one per node) on one 2-core host, a render filling it: 30 fps each, 60 in all;
    // 2 + 30/60 + 0.3 × 2 / 2 + 1 = 3.8 s.
    const both = estimate(input({ frames: 30, nodes: pair, renderCores: 2, fixedSeconds: 2 }))
    expect([both.nodes, both.chunks, both.framesPerSecond, both.seconds.expected]).toEqual([2, 2, 60, 3.8])
    // One whole GOP, so one chunk: one node at work, alone on the host: 2 + 30/60 + 0.3 + 1 = 3.8 s.
    const one = estimate(input({ frames: 30, nodes: pair, renderCores: 2, fixedSeconds: 2, align: 30 }))
    expect([one.nodes, one.chunks, one.framesPerSecond, one.seconds.expected]).toEqual([1, 1, 60, 3.8])
  })
  it('gives nodes on one host one speed: the owner\'s when it is there, else their median', () => {
    const two = host('aaaaaaaaaaaaaaaa', 2)
    const other = host('cccccccccccccccc', 8)
    const u = (peerId: string, fps: number, h?: EstimateNode['host']): { node: EstimateNode; fps: number } => ({ node: node(peerId, { host: h }), fps })
    const list = [u('A', 23, two), u('B', 30, two), u('C', 31, two), u('D', 90, other), u('E', 12)]
    expect(hostSpeeds(list, 'A').map((x) => x.fps)).toEqual([23, 23, 23, 90, 12])
    expect(hostSpeeds(list).map((x) => x.fps)).toEqual([30, 30, 30, 90, 12])
    expect(hostSpeeds(list, 'D').map((x) => x.fps)).toEqual([30, 30, 30, 90, 12])
    // Three agents benchmarked at 23, 30 and 31 fps on one 2-core host; the owner A probed 46 fps
    // (factor 2): each renders at 46 × 1/3, 46 in all, whatever the others' benchmarks said.
    const three = [node('A', { fps: { h264: 23 }, host: two }), node('B', { fps: { h264: 30 }, host: two }), node('C', { fps: { h264: 31 }, host: two })]
    const est = estimate(input({ frames: 460, nodes: three, speedFactor: 2, renderCores: 2, owner: 'A' }))
    expect(est.framesPerSecond).toBe(46)
    expect(est.seconds.expected).toBe(11.3)
  })
  it('names a host by machine, boot and CPU set: agents pinned to different cores are different hosts', async () => {
    const { hostInfo } = await import('../../agent/hardware.ts')
    const files = (cpus: string, boot = 'b00t'): (f: string) => string => (f) => ({ '/etc/machine-id': 'm4ch1ne', '/proc/sys/kernel/random/boot_id': boot, '/proc/self/status': `Name:\tnode\nCpus_allowed_list:\t${cpus}\n` } as Record<string, string>)[f] ?? ''
    const a = hostInfo(files('0-1'))
    expect(a.id).toMatch(/^[0-9a-f]{16}$/)
    expect(hostInfo(files('0-1')).id).toBe(a.id)
    expect(hostInfo(files('0')).id).not.toBe(a.id)
    expect(hostInfo(files('0-1', 'another boot')).id).not.toBe(a.id)
    expect(a.cores).toBeGreaterThanOrEqual(1)
  })
})

describe('probeTimeline (real ffmpeg)', () => {
  it('renders a few frames of the timeline, measures start-up apart, and leaves nothing behind', async () => {
    const { locateFfmpeg } = await import('../../agent/ffmpeg.ts')
    const { loadTimelineFile } = await import('../../agent/timeline-file.ts')
    const { probeTimeline } = await import('../../agent/probe.ts')
    const { resolvePreset } = await import('../../agent/render/presets.ts')
    const { bundledFontPath } = await import('../../agent/sample.ts')
    const { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } = await import('node:fs/promises')
    const os = await import('node:os')
    const path = await import('node:path')
    const tools = await locateFfmpeg()
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rs-test-probe-'))
    try {
      await copyFile(bundledFontPath(), path.join(dir, 'font.ttf'))
      const file = path.join(dir, 'timeline.json')
      await writeFile(file, JSON.stringify({
        schema: 'farm.timeline/1', fps: { num: 25, den: 1 }, width: 320, height: 180, duration: 100, assets: { font: { path: 'font.ttf' } },
        video: [
          { clips: [{ id: 'bg', type: 'color', color: '#304050', start: 0, length: 100 }] },
          { clips: [{ id: 't', type: 'text', text: 'probe', font: 'font', size: 32, color: '#FFFFFF', x: 10, y: 10, start: 0, length: 100 }] }
        ]
      }))
      const loaded = await loadTimelineFile(file, { ffprobe: tools.ffprobe })
      const work = path.join(dir, 'work')
      await mkdir(work)
      const t0 = performance.now()
      const { result: p, busy } = await probeTimeline({ timeline: loaded.snapshot, media: loaded.media, sources: loaded.sources, preset: resolvePreset('ffv1'), ffmpeg: tools.ffmpeg, tmpDir: work, framesPerPoint: 10, budgetMs: 60_000 })
      const probeMs = performance.now() - t0
      // The median of three points of 10 frames or more (a point rendered in under 0.5 s is run
      // longer, here up to the 33 frames a third of the timeline holds); each run's first frame
      // is counted as start-up.
      expect(p.frames).toBeGreaterThanOrEqual(9)
      expect(p.frames).toBeLessThanOrEqual(32)
      expect(p.seconds).toBeGreaterThan(0)
      expect(p.startSeconds).toBeGreaterThan(0)
      expect(p.seconds).toBeLessThan(30)
      // ffmpeg's CPU seconds over its wall seconds (left out when no core stood idle beside it):
      // some of a core at least, at most every core and a margin.
      // A busy run is one without a cores figure (on Linux, where both are measured).
      expect(busy && p.cores !== undefined).toBe(false)
      if (process.platform === 'linux') expect(busy).toBe(p.cores === undefined)
      if (p.cores !== undefined) {
        expect(p.cores).toBeGreaterThan(0)
        expect(p.cores).toBeLessThanOrEqual(os.cpus().length * 1.5)
      }
      // Two renders side by side (the default), measured with the cores (a spare core beside the
      // probe) on a machine of two cores or more, unless the points took half the probe's 10 s
      // limit: within [0.25, 2] renders' worth.
      if (p.together !== undefined) expect(p.cores !== undefined && os.cpus().length >= 2).toBe(true)
      else if (probeMs < 4000) expect(p.cores === undefined || os.cpus().length < 2).toBe(true)
      if (p.together !== undefined) {
        expect(p.together.renders).toBe(2)
        expect(p.together.worth).toBeGreaterThanOrEqual(0.25)
        expect(p.together.worth).toBeLessThanOrEqual(2)
      }
      expect(await readdir(work)).toEqual([])
      // A budget already spent still renders one point.
      const one = await probeTimeline({ timeline: loaded.snapshot, media: loaded.media, sources: loaded.sources, preset: resolvePreset('ffv1'), ffmpeg: tools.ffmpeg, tmpDir: work, framesPerPoint: 10, budgetMs: 0 })
      expect(one.result.frames).toBeGreaterThanOrEqual(9)
      expect(one.result.frames).toBeLessThanOrEqual(32)
      expect(await readdir(work)).toEqual([])
      // Past its overall limit it gives up (the owner then estimates from the benchmark alone).
      await expect(probeTimeline({ timeline: loaded.snapshot, media: loaded.media, sources: loaded.sources, preset: resolvePreset('ffv1'), ffmpeg: tools.ffmpeg, tmpDir: work, limitMs: 1 })).rejects.toThrow(/cancel/)
      expect(await readdir(work)).toEqual([])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 60_000)
})
