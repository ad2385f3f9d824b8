import { describe, expect, it } from 'vitest'
import { coverageProblem, lowerBound, simulate, type Scenario, type SimNode } from '../../bench/sim/engine.ts'
import { equalSplit, farmPolicy, fixedChunks } from '../../bench/sim/policies.ts'
import { burstConfig, makeScenario } from '../../bench/sim/scenarios.ts'

const small = (seed = 7): Scenario => makeScenario({ name: 'small', nodes: 8, jobs: 3, seed })
const all = () => [farmPolicy(), farmPolicy({ tailHold: false, tailBackups: false }), equalSplit(), fixedChunks(120)]

describe('bench/sim: every policy on a small heterogeneous farm', () => {
  for (const make of [() => farmPolicy(), () => farmPolicy({ tailHold: false, tailBackups: false }), () => equalSplit(), () => fixedChunks(120)]) {
    const name = make().name
    it(`${name}: takes every frame exactly once and never beats the lower bound`, () => {
      const sc = small()
      const r = simulate(sc, make())
      expect(coverageProblem(sc.jobs, r.covered)).toBeUndefined()
      expect(r.makespanMs).toBeGreaterThanOrEqual(lowerBound(r.nodes, sc.jobs, sc.overheadS))
    })
  }

  it('the coverage check itself finds a frame range taken twice or missing', () => {
    const sc = small()
    const job = sc.jobs[0]!
    const twice = new Map([[job.id, [[0, 120], [60, job.frames]] as Array<[number, number]>]])
    expect(coverageProblem([job], twice)).toMatch(/taken twice/)
    expect(coverageProblem([job], new Map([[job.id, [[0, 120]] as Array<[number, number]>]]))).toMatch(/missing/)
  })

  it('is deterministic for a seed, and another seed gives another farm', () => {
    const a = simulate(small(7), farmPolicy())
    const b = simulate(small(7), farmPolicy())
    expect(b.makespanMs).toBe(a.makespanMs)
    expect(b.chunksRendered).toBe(a.chunksRendered)
    expect(simulate(small(8), farmPolicy()).makespanMs).not.toBe(a.makespanMs)
  })
})

describe('bench/sim: failures and joins', () => {
  it('a node that crashes mid-chunk is declared dead by the detector and its chunk is rendered elsewhere', () => {
    for (const policy of all()) {
      const sc = small()
      const victim = sc.nodes[0]!
      victim.leaveMs = 20_000
      const r = simulate(sc, policy)
      expect(r.nodesLost).toBe(1)
      expect(r.chunksWasted).toBeGreaterThanOrEqual(1)
      expect(coverageProblem(sc.jobs, r.covered), policy.name).toBeUndefined()
    }
  })

  it('a node that joins late takes work in the farm and in the fixed-chunk pull', () => {
    for (const policy of [farmPolicy(), fixedChunks(120)]) {
      const sc = small()
      const late: SimNode = { id: 'late', benchFps: 200, speed: 1, joinMs: 30_000 }
      sc.nodes.push(late)
      const starts: string[] = []
      const tick = policy.tick
      policy.tick = (now, m, running) => { const out = tick(now, m, running); for (const a of out) starts.push(a.node); return out }
      const dispatch = policy.dispatch
      if (dispatch !== undefined) policy.dispatch = (now, m, why) => { const out = dispatch(now, m, why); for (const a of out) starts.push(a.node); return out }
      simulate(sc, policy)
      expect(starts, policy.name).toContain('late')
    }
  })

  it('with jobs at risk of their deadline the autoscaler rents machines that join after the boot delay', () => {
    const sc = makeScenario({ name: 'burst', nodes: 10, jobs: 2, seed: 3, churn: true })
    const r = simulate(sc, farmPolicy({ autoscale: burstConfig(10) }))
    expect(r.launches.length).toBeGreaterThan(0)
    const cloud = r.nodes.filter((n) => n.cloud !== undefined)
    expect(cloud.length).toBeGreaterThan(0)
    for (const n of cloud) expect(n.joinMs - n.cloud!.launchedMs).toBe(burstConfig(10).bootMs)
    expect(coverageProblem(sc.jobs, r.covered)).toBeUndefined()
  })
})

describe('bench/sim: dispatch at once (agent/coordinator.ts requestTick → leaseFree)', () => {
  // One node, no noise: every chunk starts the instant the one before it ends, so the makespan is
  // exactly the chunks' render time plus one overhead each. Leasing only on the 200 ms tick would
  // add the wait to the next tick after every chunk (2.28 s chunks end off the grid).
  const one = (frames = 7200): Scenario => ({
    name: 'one', seed: 1, nodes: [{ id: 'n0', benchFps: 60, speed: 1, joinMs: 0 }],
    jobs: [{ id: 'j', frames, width: 1280, height: 720, submitMs: 0, align: 60 }], overheadS: 0.28, noise: 0, tickMs: 200, limitMs: 3_600_000
  })
  for (const make of [() => farmPolicy(), () => farmPolicy({ tailHold: false, tailBackups: false }), () => fixedChunks(120)]) {
    it(`${make().name}: a freed node gets its next chunk without waiting for the tick`, () => {
      const r = simulate(one(), make())
      expect(r.chunksRendered).toBeGreaterThan(1)
      expect(r.dispatches).toBeGreaterThan(0)
      expect(r.makespanMs).toBeCloseTo((7200 / 60 + 0.28 * r.chunksRendered) * 1000, 6)
    })
  }

  it('a policy without dispatch leases only on the tick grid', () => {
    const p = fixedChunks(120)
    delete (p as { dispatch?: unknown }).dispatch
    const r = simulate(one(600), p)
    expect(r.dispatches).toBe(0)
    // 5 pieces of 2.28 s, each but the first waiting for the next 200 ms grid point.
    expect(r.makespanMs).toBeCloseTo(2400 * 4 + 2280, 6)
  })
})

describe('bench/sim: the lower bound', () => {
  it('equal split on identical nodes with no noise finishes exactly at the bound', () => {
    const nodes: SimNode[] = Array.from({ length: 4 }, (_, i) => ({ id: `n${i}`, benchFps: 60, speed: 1, joinMs: 0 }))
    const sc: Scenario = { name: 'even', seed: 1, nodes, jobs: [{ id: 'j', frames: 4 * 600, width: 1280, height: 720, submitMs: 0, align: 60 }], overheadS: 0.28, noise: 0, tickMs: 200, limitMs: 3_600_000 }
    const r = simulate(sc, equalSplit())
    const lb = lowerBound(nodes, sc.jobs, sc.overheadS)
    expect(lb).toBeCloseTo((2400 / 240 + 0.28) * 1000, 6)
    expect(r.makespanMs).toBeCloseTo(lb, 6)
  })

  it('counts a node only while it is up', () => {
    const jobs = [{ id: 'j', frames: 6000, width: 1280, height: 720, submitMs: 0, align: 60 }]
    const steady: SimNode[] = [{ id: 'a', benchFps: 100, speed: 1, joinMs: 0 }, { id: 'b', benchFps: 100, speed: 1, joinMs: 0 }]
    expect(lowerBound(steady, jobs, 0)).toBeCloseTo(30_000, 3)
    // b is up only for the first 10 s: 1000 frames from b, 5000 from a → 50 s.
    const leaving: SimNode[] = [steady[0]!, { ...steady[1]!, leaveMs: 10_000 }]
    expect(lowerBound(leaving, jobs, 0)).toBeCloseTo(50_000, 3)
  })
})
