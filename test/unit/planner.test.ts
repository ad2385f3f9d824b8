import { describe, expect, it } from 'vitest'
import { planChunks, PlanError } from '../../coordinator/planner.ts'

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
