import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { BILLING, billableSeconds, chargeUsd, CostError, Meter, shareTime, type ChunkUse } from '../../coordinator/cost.ts'

const H = 3_600_000

describe('billing rules', () => {
  it('AWS and GCP: 60 s minimum, then per second (partial seconds billed)', () => {
    for (const p of ['aws', 'gcp'] as const) {
      expect(billableSeconds(BILLING[p], 0)).toBe(60)
      expect(billableSeconds(BILLING[p], 30_000)).toBe(60)
      expect(billableSeconds(BILLING[p], 60_000)).toBe(60)
      expect(billableSeconds(BILLING[p], 61_000)).toBe(61)
      expect(billableSeconds(BILLING[p], 61_001)).toBe(62)
      expect(billableSeconds(BILLING[p], 90_000)).toBe(90)
    }
  })
  it('Azure: whole minutes, rounded down (6 min 45 s → 6 min)', () => {
    expect(billableSeconds(BILLING.azure, (6 * 60 + 45) * 1000)).toBe(360)
    expect(billableSeconds(BILLING.azure, 59_999)).toBe(0)
    expect(billableSeconds(BILLING.azure, 60_000)).toBe(60)
    expect(billableSeconds(BILLING.azure, 119_999)).toBe(60)
  })
  it('local: per second, no minimum', () => {
    expect(billableSeconds(BILLING.local, 0)).toBe(0)
    expect(billableSeconds(BILLING.local, 1500)).toBe(2)
  })
  it('charges price × billed seconds', () => {
    expect(chargeUsd(BILLING.aws, 3.6, 10_000)).toBe(0.06) // 60 s minimum at $3.6/h = $0.06
    expect(chargeUsd(BILLING.aws, 1.006, H)).toBe(1.006)
    expect(chargeUsd(BILLING.azure, 0.6, 150_000)).toBe(0.02) // 2 min at $0.6/h
  })
  it('refuses a negative or non-finite run time', () => {
    expect(() => billableSeconds(BILLING.aws, -1)).toThrow(CostError)
    expect(() => billableSeconds(BILLING.aws, Number.NaN)).toThrow(/non-negative/)
  })
  it('never bills less than it ran (up-rounding rules), never more than one increment over (property)', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 10 * H }), (ms) => {
      const s = billableSeconds(BILLING.aws, ms)
      return s >= ms / 1000 && s >= 60 && s < Math.max(60, ms / 1000) + 1
    }))
    fc.assert(fc.property(fc.integer({ min: 0, max: 10 * H }), (ms) => {
      const s = billableSeconds(BILLING.azure, ms)
      return s <= ms / 1000 && s > ms / 1000 - 60 && s % 60 === 0
    }))
  })
})

describe('Meter', () => {
  it('meters from launch to termination, per provider rule', () => {
    const m = new Meter()
    m.start({ id: 'a', provider: 'aws', priceUsdPerHour: 1.2 }, 1000)
    m.start({ id: 'z', provider: 'azure', priceUsdPerHour: 0.6 }, 1000)
    expect(m.instanceUsd('a', 1000 + 30_000)).toBe(0.02) // minimum 60 s × 1.2/3600
    expect(m.instanceUsd('z', 1000 + 30_000)).toBe(0)
    m.stop('a', 1000 + 1800_000)
    expect(m.instanceUsd('a', 1000 + 10 * H)).toBe(0.6) // stopped: later "now" changes nothing
    expect(m.instanceUsd('z', 1000 + H + 59_000)).toBe(0.6)
    expect(m.totalUsd(1000 + H + 59_000)).toBe(1.2)
    expect(m.hourlyRateUsd()).toBe(0.6)
    expect(m.running()).toEqual(['z'])
    m.stop('a', 1000 + 5 * H) // a second report is ignored
    expect(m.instanceUsd('a', 0)).toBe(0.6)
  })

  it('charges a job for its chunks at the instance price and splits concurrent chunks evenly', () => {
    const m = new Meter()
    m.start({ id: 'i', provider: 'local', priceUsdPerHour: 3.6 }, 0) // $0.001 per second
    m.chunk({ instanceId: 'i', jobId: 'A', frames: 100, startMs: 10_000, endMs: 30_000 })
    m.chunk({ instanceId: 'i', jobId: 'B', frames: 50, startMs: 20_000, endMs: 40_000 })
    m.stop('i', 50_000)
    const a = m.job('A', 50_000); const b = m.job('B', 50_000)
    // A alone 10–20 s, shared 20–30 s; B shared 20–30 s, alone 30–40 s.
    expect(a).toEqual({ usd: 0.015, frames: 100, usdPerFrame: 0.00015, seconds: 15 })
    expect(b).toEqual({ usd: 0.015, frames: 50, usdPerFrame: 0.0003, seconds: 15 })
    expect(m.totalUsd(50_000)).toBe(0.05)
    expect(m.overheadUsd(50_000)).toBe(0.02) // 0–10 s boot and 40–50 s idle
    expect(m.job('nope', 50_000)).toEqual({ usd: 0, frames: 0, usdPerFrame: 0, seconds: 0 })
  })

  it('clips chunk time to the instance life and counts a job across instances', () => {
    const m = new Meter()
    m.start({ id: 'x', provider: 'local', priceUsdPerHour: 3.6 }, 0)
    m.start({ id: 'y', provider: 'local', priceUsdPerHour: 7.2 }, 0)
    m.chunk({ instanceId: 'x', jobId: 'J', frames: 10, startMs: -5000, endMs: 5000 })
    m.chunk({ instanceId: 'y', jobId: 'J', frames: 10, startMs: 0, endMs: 10_000 })
    m.stop('x', 4000)
    expect(m.job('J', 20_000)).toEqual({ usd: 0.004 + 0.02, frames: 20, usdPerFrame: 0.0012, seconds: 14 })
  })

  it('Σ jobs + overhead = total, and no job gets more than the instance was billed (property)', () => {
    const chunk = fc.record({ job: fc.constantFrom('A', 'B', 'C'), start: fc.integer({ min: 0, max: 600_000 }), len: fc.integer({ min: 0, max: 300_000 }), frames: fc.integer({ min: 0, max: 500 }) })
    fc.assert(fc.property(fc.array(chunk, { maxLength: 12 }), fc.integer({ min: 1, max: 1_000_000 }), fc.constantFrom('aws', 'gcp', 'azure', 'local' as const), (cs, life, provider) => {
      const m = new Meter()
      m.start({ id: 'i', provider, priceUsdPerHour: 2.5 }, 0)
      for (const c of cs) m.chunk({ instanceId: 'i', jobId: c.job, frames: c.frames, startMs: c.start, endMs: c.start + c.len })
      m.stop('i', life)
      let sum = 0
      for (const j of m.jobs(life).values()) sum += j.usd
      const total = m.totalUsd(life)
      const busyCap = 2.5 * life / H
      return sum <= busyCap + 1e-5 && (provider === 'azure' || Math.abs(sum + m.overheadUsd(life) - total) < 1e-5)
    }))
  })

  it('budget: billed so far + running kept for the horizon + the planned launch with its minimum', () => {
    const m = new Meter()
    m.start({ id: 'r', provider: 'aws', priceUsdPerHour: 1 }, 0)
    const now = 30 * 60_000
    const c = m.checkBudget(2, { provider: 'aws', priceUsdPerHour: 0.5, count: 2, durationMs: H }, now)
    expect(c).toEqual({ exceeds: true, budgetUsd: 2, spentUsd: 0.5, runningUsd: 1, plannedUsd: 1, totalUsd: 2.5 })
    expect(m.wouldExceed(2.5, { provider: 'aws', priceUsdPerHour: 0.5, count: 2, durationMs: H }, now)).toBe(false)
    // Billing minimum: 4 instances for 10 s are billed 60 s each.
    expect(m.checkBudget(100, { provider: 'gcp', priceUsdPerHour: 3.6, count: 4, durationMs: 10_000 }, now).plannedUsd).toBe(0.24)
    m.stop('r', now)
    expect(m.checkBudget(100, { provider: 'aws', priceUsdPerHour: 0, count: 0, durationMs: H }, now + H).runningUsd).toBe(0)
  })

  it('refuses bad input with the problem named', () => {
    const m = new Meter()
    expect(() => m.start({ id: 'a', provider: 'aws', priceUsdPerHour: -1 }, 0)).toThrow(/price must be a non-negative/)
    m.start({ id: 'a', provider: 'aws', priceUsdPerHour: 1 }, 1000)
    expect(() => m.start({ id: 'a', provider: 'aws', priceUsdPerHour: 1 }, 0)).toThrow(/already metered/)
    expect(() => m.stop('b', 0)).toThrow(/b is not metered/)
    expect(() => m.stop('a', 500)).toThrow(/before its launch/)
    expect(() => m.chunk({ instanceId: 'a', jobId: 'j', frames: 1, startMs: 5, endMs: 4 })).toThrow(/before startMs/)
    expect(() => m.chunk({ instanceId: 'a', jobId: 'j', frames: 1.5, startMs: 4, endMs: 5 })).toThrow(/frames/)
    expect(() => m.checkBudget(-1, { provider: 'aws', priceUsdPerHour: 1, count: 1, durationMs: 1 }, 0)).toThrow(/budget/)
    expect(() => m.checkBudget(1, { provider: 'aws', priceUsdPerHour: 1, count: -1, durationMs: 1 }, 0)).toThrow(/count/)
  })
})

describe('shareTime', () => {
  it('gives a lone chunk all its time and splits overlaps', () => {
    const c = (jobId: string, startMs: number, endMs: number): ChunkUse => ({ instanceId: 'i', jobId, frames: 0, startMs, endMs })
    expect(shareTime([c('A', 0, 10)], 0, 100)).toEqual(new Map([['A', 10]]))
    expect(shareTime([c('A', 0, 10), c('A', 0, 10)], 0, 100)).toEqual(new Map([['A', 10]]))
    expect(shareTime([c('A', 0, 10), c('B', 0, 10), c('B', 0, 10)], 0, 100)).toEqual(new Map([['A', 10 / 3], ['B', 20 / 3]]))
    expect(shareTime([c('A', 0, 10), c('B', 10, 20)], 0, 100)).toEqual(new Map([['A', 10], ['B', 10]]))
    expect(shareTime([c('A', 50, 150)], 0, 100)).toEqual(new Map([['A', 50]]))
  })
})
