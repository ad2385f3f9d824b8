/**
 * Workstation etiquette (M33): whether this node takes render work now (pure).
 *
 *   const policy = parsePolicy({ when: 'schedule', schedule: 'mon-fri 19:00-07:00, sat-sun', maxCpuPct: 80 })
 *   accepting(policy, { now: new Date(), otherCpuPct: 12 })   // → { accepting: true } or { accepting: false, reason }
 *
 * Modes: `always`; `idle` — only while the machine's own users leave the CPU alone (CPU use by
 * everything but renderswarm under `idleCpuPct` for `idleForMs`); `schedule` — only inside the
 * given local-time windows. `maxCpuPct` caps the share of cores a render may use (the scheduler
 * sizes work from it) and is reported, not enforced here.
 */
export type WhenMode = 'always' | 'idle' | 'schedule'
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const

export interface Window { days: Set<number>; fromMin: number; toMin: number }
export interface Policy { when: WhenMode; windows: Window[]; maxCpuPct: number; idleCpuPct: number; idleForMs: number }

export class PolicyError extends Error {
  override readonly name = 'PolicyError'
}

export function parsePolicy (o: { when?: string; schedule?: string; maxCpuPct?: number; idleCpuPct?: number; idleForMs?: number }): Policy {
  const when = (o.when ?? 'always') as WhenMode
  if (!['always', 'idle', 'schedule'].includes(when)) throw new PolicyError(`--when must be always, idle or schedule (got "${String(o.when).slice(0, 20)}")`)
  const maxCpuPct = o.maxCpuPct ?? 100
  if (!Number.isFinite(maxCpuPct) || maxCpuPct < 1 || maxCpuPct > 100) throw new PolicyError(`--max-cpu must be 1–100 (got ${maxCpuPct})`)
  if (when === 'schedule' && (o.schedule === undefined || o.schedule.trim() === '')) throw new PolicyError('--when schedule needs --schedule, e.g. "mon-fri 19:00-07:00, sat-sun"')
  return { when, windows: o.schedule !== undefined ? parseSchedule(o.schedule) : [], maxCpuPct, idleCpuPct: o.idleCpuPct ?? 25, idleForMs: o.idleForMs ?? 5 * 60_000 }
}

/** "mon-fri 19:00-07:00, sat-sun" → windows; a window past midnight belongs to the day it starts. */
export function parseSchedule (text: string): Window[] {
  if (text.length > 500) throw new PolicyError('--schedule is too long')
  return text.split(',').map((part) => part.trim()).filter((p) => p !== '').map((part) => {
    const m = /^([a-z]{3})(?:-([a-z]{3}))?(?:\s+(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2}))?$/i.exec(part)
    if (m === null) throw new PolicyError(`--schedule: "${part.slice(0, 40)}" should look like "mon-fri 19:00-07:00" or "sat-sun"`)
    const d1 = DAYS.indexOf(m[1]!.toLowerCase() as typeof DAYS[number])
    const d2 = m[2] !== undefined ? DAYS.indexOf(m[2].toLowerCase() as typeof DAYS[number]) : d1
    if (d1 < 0 || d2 < 0) throw new PolicyError(`--schedule: unknown day in "${part.slice(0, 40)}" (use sun, mon, tue, wed, thu, fri, sat)`)
    const days = new Set<number>()
    for (let d = d1; ; d = (d + 1) % 7) { days.add(d); if (d === d2) break }
    const minutes = (h?: string, mm?: string): number => {
      const v = Number(h) * 60 + Number(mm)
      if (Number(h) > 24 || Number(mm) > 59 || v > 1440) throw new PolicyError(`--schedule: bad time in "${part.slice(0, 40)}"`)
      return v
    }
    const fromMin = m[3] !== undefined ? minutes(m[3], m[4]) : 0
    const toMin = m[5] !== undefined ? minutes(m[5], m[6]) : 1440
    if (fromMin === toMin) throw new PolicyError(`--schedule: empty window in "${part.slice(0, 40)}"`)
    return { days, fromMin, toMin }
  })
}

export function inSchedule (windows: Window[], now: Date): boolean {
  const day = now.getDay()
  const min = now.getHours() * 60 + now.getMinutes()
  const yesterday = (day + 6) % 7
  return windows.some((w) => w.fromMin < w.toMin
    ? w.days.has(day) && min >= w.fromMin && min < w.toMin
    : (w.days.has(day) && min >= w.fromMin) || (w.days.has(yesterday) && min < w.toMin))
}

export interface Observed { now: Date; /** CPU % used by everything but renderswarm, and how long it has been under the idle line. */ otherCpuPct: number; quietForMs: number }

export function accepting (p: Policy, o: Observed): { accepting: boolean; reason?: string } {
  switch (p.when) {
    case 'always': return { accepting: true }
    case 'schedule': return inSchedule(p.windows, o.now) ? { accepting: true } : { accepting: false, reason: 'outside its render schedule' }
    case 'idle':
      if (o.otherCpuPct >= p.idleCpuPct) return { accepting: false, reason: `its user is busy (CPU ${Math.round(o.otherCpuPct)}% ≥ ${p.idleCpuPct}%)` }
      if (o.quietForMs < p.idleForMs) return { accepting: false, reason: `waiting for ${Math.round((p.idleForMs - o.quietForMs) / 1000)} s more of idle` }
      return { accepting: true }
  }
}
