import { describe, expect, it } from 'vitest'
import { planChunks, PlanError, tileRanges } from '../../coordinator/planner.ts'
import { pieceId, pieceRange, plannedChunkId } from '../../protocol/messages/jobs.ts'

const covers = (plan: Array<{ start: number; end: number }>, duration: number): void => {
  expect(plan[0]!.start).toBe(0)
  expect(plan.at(-1)!.end).toBe(duration)
  for (let i = 1; i < plan.length; i++) expect(plan[i]!.start).toBe(plan[i - 1]!.end)
  for (const c of plan) expect(c.end).toBeGreaterThan(c.start)
}

describe('planChunks', () => {
  it('splits into near-equal contiguous ranges', () => {
    const plan = planChunks(600, 7)
    expect(plan.map((c) => [c.start, c.end])).toEqual([[0, 86], [86, 171], [171, 257], [257, 343], [343, 429], [429, 514], [514, 600]])
    covers(plan, 600)
  })
  it('never makes more chunks than frames, nor empty chunks', () => {
    expect(planChunks(3, 10)).toEqual([{ index: 0, start: 0, end: 1 }, { index: 1, start: 1, end: 2 }, { index: 2, start: 2, end: 3 }])
    expect(planChunks(1, 1)).toEqual([{ index: 0, start: 0, end: 1 }])
  })
  it('puts boundaries on keyframes when aligned', () => {
    const plan = planChunks(600, 7, { align: 60 })
    expect(plan.map((c) => c.start)).toEqual([0, 60, 180, 240, 360, 420, 540])
    covers(plan, 600)
    // Shorter than the requested chunks × GOP: fewer chunks, still aligned.
    expect(planChunks(175, 7, { align: 50 }).map((c) => c.start)).toEqual([0, 50, 100, 150])
  })
  it('moves boundaries out of windows that are not chunk-safe', () => {
    const plan = planChunks(100, 4, { avoid: [[20, 30], [45, 60]] })
    for (const c of plan) for (const [s, e] of [[20, 30], [45, 60]] as const) expect(c.start > s && c.start < e).toBe(false)
    expect(plan.map((c) => c.start)).toEqual([0, 20, 45, 75])
    covers(plan, 100)
  })
  it('refuses nonsense', () => {
    expect(() => planChunks(0, 1)).toThrow(PlanError)
    expect(() => planChunks(10, 0)).toThrow(/chunk count/)
    expect(() => planChunks(10, 2.5)).toThrow(PlanError)
    expect(() => planChunks(10, 2, { align: 0 })).toThrow(/alignment/)
  })
})

describe('tileRanges (an owner joining planned chunks and pieces cut at lease time)', () => {
  const r = (start: number, end: number, id = `${start}-${end}`) => ({ id, start, end })
  it('chains ranges from 0 to the end in frame order, whatever order they come in', () => {
    expect(tileRanges([r(200, 300), r(0, 100), r(100, 200)], 300)?.map((x) => x.id)).toEqual(['0-100', '100-200', '200-300'])
  })
  it('is undefined while frames are missing, and never takes two overlapping ranges', () => {
    expect(tileRanges([r(0, 100), r(150, 300)], 300)).toBeUndefined()
    expect(tileRanges([r(0, 100), r(100, 200)], 300)).toBeUndefined()
    expect(tileRanges([], 10)).toBeUndefined()
    // A whole chunk and pieces of it (two coordinators cut it differently): some exact chain.
    const chain = tileRanges([r(0, 100), r(100, 400, 'whole'), r(100, 250), r(250, 400), r(120, 400)], 400)!
    for (let i = 1; i < chain.length; i++) expect(chain[i]!.start).toBe(chain[i - 1]!.end)
    expect(chain[0]!.start).toBe(0)
    expect(chain.at(-1)!.end).toBe(400)
    // Pieces that only chain through each other.
    expect(tileRanges([r(0, 50), r(50, 250), r(0, 120), r(120, 300), r(250, 300)], 300)?.map((x) => x.id)).toEqual(['0-120', '120-300'])
  })
})

describe('chunk ids: planned chunks and pieces', () => {
  it('names a piece by its job and frame range, and reads it back only for that job', () => {
    const job = '0f6c1d2e-3a4b-4c5d-8e9f-001122334455'
    expect(plannedChunkId(job, 7)).toBe(`${job}-7`)
    expect(pieceId(job, 120, 480)).toBe(`${job}-r120-480`)
    expect(pieceRange(job, pieceId(job, 120, 480))).toEqual({ start: 120, end: 480 })
    expect(pieceRange(job, plannedChunkId(job, 7))).toBeUndefined()
    expect(pieceRange('another-job', pieceId(job, 120, 480))).toBeUndefined()
    for (const bad of [`${job}-r480-120`, `${job}-r5-5`, `${job}-r01-5`, `${job}-r1-2-3`, `${job}-r-1-5`, `${job}-r1-9999999999999`]) expect(pieceRange(job, bad), bad).toBeUndefined()
    // Ids stay within the wire's 64 characters for any job id and frame count the schema allows.
    expect(pieceId('x'.repeat(64), 999_999_999, 1_000_000_000).length).toBeLessThanOrEqual(64)
  })
})
