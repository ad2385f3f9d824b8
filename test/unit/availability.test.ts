import { describe, expect, it } from 'vitest'
import { accepting, inSchedule, parsePolicy, parseSchedule, PolicyError } from '../../agent/availability.ts'

const at = (iso: string): Date => new Date(iso)

describe('availability policy', () => {
  it('schedules, including windows past midnight and whole days', () => {
    const w = parseSchedule('mon-fri 19:00-07:00, sat-sun')
    expect(inSchedule(w, at('2026-11-30T20:00:00'))).toBe(true) // Monday evening
    expect(inSchedule(w, at('2026-12-01T06:59:00'))).toBe(true) // Tuesday early (Monday's window)
    expect(inSchedule(w, at('2026-12-01T07:00:00'))).toBe(false)
    expect(inSchedule(w, at('2026-12-01T12:00:00'))).toBe(false)
    expect(inSchedule(w, at('2026-11-29T12:00:00'))).toBe(true) // Sunday
    expect(inSchedule(parseSchedule('fri-mon'), at('2026-11-29T03:00:00'))).toBe(true)
    expect(inSchedule(parseSchedule('fri-mon'), at('2026-12-02T03:00:00'))).toBe(false)
  })

  it('idle mode waits for the user to leave the CPU alone', () => {
    const p = parsePolicy({ when: 'idle', idleCpuPct: 25, idleForMs: 60_000 })
    const now = new Date()
    expect(accepting(p, { now, otherCpuPct: 60, quietForMs: 0 })).toEqual({ accepting: false, reason: 'its user is busy (CPU 60% ≥ 25%)' })
    expect(accepting(p, { now, otherCpuPct: 5, quietForMs: 30_000 })).toEqual({ accepting: false, reason: 'waiting for 30 s more of idle' })
    expect(accepting(p, { now, otherCpuPct: 5, quietForMs: 61_000 })).toEqual({ accepting: true })
    expect(accepting(parsePolicy({}), { now, otherCpuPct: 99, quietForMs: 0 })).toEqual({ accepting: true })
  })

  it('refuses bad settings clearly', () => {
    expect(() => parsePolicy({ when: 'sometimes' })).toThrow(/--when must be always, idle or schedule/)
    expect(() => parsePolicy({ when: 'schedule' })).toThrow(/needs --schedule/)
    expect(() => parsePolicy({ maxCpuPct: 0 })).toThrow(/--max-cpu must be 1–100/)
    expect(() => parseSchedule('someday')).toThrow(PolicyError)
    expect(() => parseSchedule('mon 25:00-26:00')).toThrow(/bad time/)
    expect(() => parseSchedule('mon 10:00-10:00')).toThrow(/empty window/)
    expect(() => parseSchedule('x'.repeat(600))).toThrow(/too long/)
  })
})
