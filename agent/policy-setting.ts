/**
 * Workstation etiquette (M33, agent/availability.ts) as a setting that changes at run time: the
 * tray's "Render only when idle" and `POST /v1/policy` set it, and it survives restarts.
 *
 *   let policy = loadPolicy(store, flagsPolicy)                     // on start
 *   policy = updatePolicy(store, policy, flagsPolicy, { when: 'idle' })   // POST /v1/policy body
 *   describePolicy(policy)                                          // { when, maxCpuPct, schedule? } for the API
 *
 * The agent's flags (--when, --schedule, --max-cpu) and a change at run time are both the
 * user's choices, and the later one wins: a change is stored with the flags it overrode, and
 * an agent started with other flags than those (someone edited the service) drops it.
 * A bad body throws PolicyError naming the field.
 */
import { z } from 'zod'
import { parsePolicy, PolicyError, type Policy, type Window } from './availability.ts'
import type { Store } from './store.ts'

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const

export const PolicyUpdateSchema = z.object({
  when: z.enum(['always', 'idle', 'schedule']).optional(),
  schedule: z.string().max(500, 'must be at most 500 characters').optional(),
  maxCpuPct: z.number().int('must be a whole number').min(1, 'must be 1–100').max(100, 'must be 1–100').optional()
}).strict().refine((b) => b.when !== undefined || b.schedule !== undefined || b.maxCpuPct !== undefined, 'give at least one of when, schedule, maxCpuPct')
export type PolicyUpdate = z.infer<typeof PolicyUpdateSchema>

export interface PolicyView { when: Policy['when']; maxCpuPct: number; schedule?: string }

interface Stored { input: { when: Policy['when']; schedule?: string | undefined; maxCpuPct: number }; flags: string }

const hhmm = (min: number): string => `${String(Math.floor(min / 60)).padStart(2, '0')}:${String(min % 60).padStart(2, '0')}`

/** Windows back to the text parseSchedule reads ("mon-fri 19:00-07:00, sat-sun"). */
export function formatSchedule (windows: Window[]): string {
  return windows.map((w) => {
    const days = [...w.days]
    // A window's days are one run, possibly across Saturday→Sunday: start where the day before is not in it.
    const first = days.length === 7 ? 0 : days.find((d) => !w.days.has((d + 6) % 7))!
    const last = days.length === 7 ? 6 : (first + days.length - 1) % 7
    const range = first === last ? DAYS[first]! : `${DAYS[first]!}-${DAYS[last]!}`
    return w.fromMin === 0 && w.toMin === 1440 ? range : `${range} ${hhmm(w.fromMin)}-${hhmm(w.toMin)}`
  }).join(', ')
}

export function describePolicy (p: Policy): PolicyView {
  return { when: p.when, maxCpuPct: p.maxCpuPct, ...(p.windows.length > 0 ? { schedule: formatSchedule(p.windows) } : {}) }
}

const fingerprint = (p: Policy): string => JSON.stringify(describePolicy(p))

/** The policy in force at start: a stored change made over these same flags, else the flags. */
export function loadPolicy (store: Store, flags: Policy): Policy {
  const saved = store.getJson<Stored>('policy')
  if (saved === undefined) return flags
  if (saved.flags !== fingerprint(flags)) { store.deleteKey('policy'); return flags }
  try {
    return parsePolicy({ ...saved.input, idleCpuPct: flags.idleCpuPct, idleForMs: flags.idleForMs })
  } catch {
    store.deleteKey('policy')
    return flags
  }
}

/** Applies a change (fields left out keep their value), stores it, and returns the new policy. */
export function updatePolicy (store: Store, current: Policy, flags: Policy, body: unknown): Policy {
  const parsed = PolicyUpdateSchema.safeParse(body)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    throw new PolicyError(`${issue.path.length > 0 ? issue.path.join('.') : 'policy'}: ${issue.message}`)
  }
  const b = parsed.data
  const when = b.when ?? current.when
  const schedule = b.schedule ?? (current.windows.length > 0 ? formatSchedule(current.windows) : undefined)
  if (when === 'schedule' && (schedule === undefined || schedule.trim() === '')) throw new PolicyError('schedule: "when": "schedule" needs the render windows, e.g. "mon-fri 19:00-07:00, sat-sun"')
  const maxCpuPct = b.maxCpuPct ?? current.maxCpuPct
  let next: Policy
  try {
    next = parsePolicy({ when, ...(schedule !== undefined ? { schedule } : {}), maxCpuPct, idleCpuPct: current.idleCpuPct, idleForMs: current.idleForMs })
  } catch (err) {
    if (err instanceof PolicyError) throw new PolicyError(err.message.replace(/^--schedule/, 'schedule'))
    throw err
  }
  store.setJson('policy', { input: { when, ...(schedule !== undefined ? { schedule } : {}), maxCpuPct }, flags: fingerprint(flags) } satisfies Stored)
  return next
}
