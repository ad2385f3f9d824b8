/** The etiquette policy as a run-time setting: schedule text round trip, field errors, and which of flags or change wins. */
import { afterEach, describe, expect, it } from 'vitest'
import { parsePolicy, parseSchedule, PolicyError } from '../../agent/availability.ts'
import { describePolicy, formatSchedule, loadPolicy, updatePolicy } from '../../agent/policy-setting.ts'
import { Store } from '../../agent/store.ts'

let store: Store | undefined
afterEach(() => { store?.close(); store = undefined })

describe('formatSchedule', () => {
  it.each([
    'mon-fri 19:00-07:00', 'sat-sun', 'fri-mon', 'wed', 'sun-sat', 'mon-fri 19:00-07:00, sat-sun', 'sat-tue 00:30-24:00', 'thu 08:05-09:10'
  ])('writes "%s" back as text that parses to the same windows', (text) => {
    const w = parseSchedule(text)
    expect(parseSchedule(formatSchedule(w))).toEqual(w)
  })
  it('keeps the user\'s spelling for ordinary windows', () => {
    expect(formatSchedule(parseSchedule('mon-fri 19:00-07:00, sat-sun'))).toBe('mon-fri 19:00-07:00, sat-sun')
    expect(formatSchedule(parseSchedule('fri-mon'))).toBe('fri-mon')
  })
})

describe('updatePolicy and loadPolicy', () => {
  const flags = parsePolicy({ when: 'always', maxCpuPct: 80 })

  it('changes only the fields given, stores the change, and a restart with the same flags keeps it', () => {
    store = Store.open(':memory:')
    const idle = updatePolicy(store, flags, flags, { when: 'idle' })
    expect(describePolicy(idle)).toEqual({ when: 'idle', maxCpuPct: 80 })
    expect(describePolicy(loadPolicy(store, parsePolicy({ when: 'always', maxCpuPct: 80 })))).toEqual({ when: 'idle', maxCpuPct: 80 })
    const sched = updatePolicy(store, idle, flags, { when: 'schedule', schedule: 'sat-sun', maxCpuPct: 50 })
    expect(describePolicy(sched)).toEqual({ when: 'schedule', maxCpuPct: 50, schedule: 'sat-sun' })
    // Back to always: the windows are kept for a later switch to schedule.
    const always = updatePolicy(store, sched, flags, { when: 'always' })
    expect(describePolicy(updatePolicy(store, always, flags, { when: 'schedule' }))).toEqual({ when: 'schedule', maxCpuPct: 50, schedule: 'sat-sun' })
  })

  it('drops a stored change when the agent starts with other flags (the later choice wins)', () => {
    store = Store.open(':memory:')
    updatePolicy(store, flags, flags, { when: 'idle' })
    const edited = parsePolicy({ when: 'schedule', schedule: 'mon-fri 19:00-07:00' })
    expect(loadPolicy(store, edited)).toBe(edited)
    expect(store.getJson('policy')).toBeUndefined()
    expect(loadPolicy(store, flags)).toBe(flags)
  })

  it.each([
    [{ when: 'sometimes' }, /^when: /],
    [{ maxCpuPct: 0 }, /^maxCpuPct: must be 1–100/],
    [{ maxCpuPct: 50.5 }, /^maxCpuPct: must be a whole number/],
    [{ when: 'idle', colour: 'red' }, /Unrecognized key.*colour/],
    [{}, /give at least one of when, schedule, maxCpuPct/],
    ['idle', /^policy: /],
    [{ when: 'schedule' }, /^schedule: .*needs the render windows/],
    [{ when: 'schedule', schedule: 'weekends' }, /^schedule: "weekends" should look like/],
    [{ schedule: 'x'.repeat(501) }, /^schedule: must be at most 500/]
  ])('refuses %j naming the problem, and stores nothing', (body, message) => {
    store = Store.open(':memory:')
    expect(() => updatePolicy(store!, flags, flags, body)).toThrow(PolicyError)
    expect(() => updatePolicy(store!, flags, flags, body)).toThrow(message)
    expect(store.getJson('policy')).toBeUndefined()
  })
})
