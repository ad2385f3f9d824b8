/**
 * What rented machines cost, metered per second from launch to termination as each cloud bills
 * it, and who used it: cost per job, per frame, per hour, and a farm-wide budget check. Pure:
 * every time comes from the caller.
 *
 *   const meter = new Meter()
 *   meter.start({ id: 'i-1', provider: 'aws', priceUsdPerHour: 0.41 }, launchedMs)
 *   meter.chunk({ instanceId: 'i-1', jobId: 'j1', frames: 250, startMs, endMs })   // per finished chunk
 *   meter.stop('i-1', terminatedMs)
 *   meter.job('j1')            // { usd, frames, usdPerFrame, seconds }
 *   meter.totalUsd(nowMs)      // as billed, minimums and rounding included
 *   meter.wouldExceed(20, { provider: 'aws', priceUsdPerHour: 0.41, count: 4, durationMs: 3_600_000 }, nowMs)
 *
 * Billing rules (BILLING, with sources). AWS (Linux) and GCP bill per second with a 60 s minimum
 * from each start; Azure bills whole minutes run, rounding the seconds down (its own example:
 * 6 min 45 s is billed as 6 min). A running instance is priced as if stopped now.
 *
 * Attribution. A job is charged for the time its chunks ran on an instance at that instance's
 * price; when several chunks run at once on one instance (slots > 1) each second is split evenly
 * among them, so an instance is never charged twice for the same second. What is billed but no
 * chunk used (boot, idle, billing minimums and rounding) is `overheadUsd`, reported per farm,
 * not hidden in jobs: Σ jobs + overhead = total.
 */
import type { ProviderName } from './cloud/provider.ts'

export interface BillingRule {
  /** Every start is billed at least this long. */
  minimumSeconds: number
  /** Billing granularity. */
  incrementSeconds: number
  /** A partial increment: billed ('up') or dropped ('down'). */
  rounding: 'up' | 'down'
  source: string
}

export const BILLING: Readonly<Record<ProviderName, BillingRule>> = {
  aws: { minimumSeconds: 60, incrementSeconds: 1, rounding: 'up', source: 'https://aws.amazon.com/ec2/pricing/ (per-second billing, 60 s minimum, Linux)' },
  gcp: { minimumSeconds: 60, incrementSeconds: 1, rounding: 'up', source: 'https://cloud.google.com/compute/vm-instance-pricing#billing_model (1 min minimum, then 1 s increments)' },
  azure: { minimumSeconds: 0, incrementSeconds: 60, rounding: 'down', source: 'https://azure.microsoft.com/en-us/resources/knowledge-center/if-my-virtual-machine-ran-for-6-minutes-and-45/ (billed per full minute)' },
  local: { minimumSeconds: 0, incrementSeconds: 1, rounding: 'up', source: 'this studio\'s own machines' }
}

export class CostError extends Error {
  override name = 'CostError'
}

/** Seconds billed for a run of `runMs` under `rule`. */
export function billableSeconds (rule: BillingRule, runMs: number): number {
  if (!Number.isFinite(runMs) || runMs < 0) throw new CostError(`run time must be a non-negative number of ms (got ${String(runMs)})`)
  const s = runMs / 1000
  const inc = rule.incrementSeconds
  // 1e-9: a run of exactly 90.000 s must not become 91 s through float error.
  const steps = rule.rounding === 'up' ? Math.ceil(s / inc - 1e-9) : Math.floor(s / inc + 1e-9)
  return Math.max(rule.minimumSeconds, Math.max(0, steps) * inc)
}

export function chargeUsd (rule: BillingRule, priceUsdPerHour: number, runMs: number): number {
  return round6(billableSeconds(rule, runMs) * priceUsdPerHour / 3600)
}

function round6 (x: number): number {
  return Math.round(x * 1e6) / 1e6
}

export interface MeteredInstance { id: string; provider: ProviderName; priceUsdPerHour: number }
export interface ChunkUse { instanceId: string; jobId: string; frames: number; startMs: number; endMs: number }
export interface JobCost { usd: number; frames: number; usdPerFrame: number; seconds: number }
export interface PlannedLaunch { provider: ProviderName; priceUsdPerHour: number; count: number; durationMs: number }
export interface BudgetCheck { exceeds: boolean; budgetUsd: number; spentUsd: number; runningUsd: number; plannedUsd: number; totalUsd: number }

interface Run extends MeteredInstance { launchedMs: number; terminatedMs?: number; chunks: ChunkUse[] }

export class Meter {
  private readonly runs = new Map<string, Run>()
  private readonly rules: Record<ProviderName, BillingRule>

  constructor (opts: { rules?: Partial<Record<ProviderName, BillingRule>> } = {}) {
    this.rules = { ...BILLING, ...opts.rules }
  }

  start (inst: MeteredInstance, launchedMs: number): void {
    if (this.runs.has(inst.id)) throw new CostError(`instance ${inst.id} is already metered`)
    if (!Number.isFinite(inst.priceUsdPerHour) || inst.priceUsdPerHour < 0) throw new CostError(`instance ${inst.id}: price must be a non-negative number of USD per hour (got ${String(inst.priceUsdPerHour)})`)
    if (!Number.isFinite(launchedMs)) throw new CostError(`instance ${inst.id}: launchedMs must be a time`)
    this.runs.set(inst.id, { ...inst, launchedMs, chunks: [] })
  }

  stop (id: string, terminatedMs: number): void {
    const r = this.get(id)
    if (r.terminatedMs !== undefined) return // a second termination report changes nothing
    if (!(terminatedMs >= r.launchedMs)) throw new CostError(`instance ${id}: terminated at ${terminatedMs}, before its launch at ${r.launchedMs}`)
    r.terminatedMs = terminatedMs
  }

  /** A finished (or abandoned) chunk's time on an instance; clipped to the instance's life. */
  chunk (use: ChunkUse): void {
    const r = this.get(use.instanceId)
    if (!(use.endMs >= use.startMs)) throw new CostError(`chunk of job ${use.jobId} on ${use.instanceId}: endMs ${use.endMs} is before startMs ${use.startMs}`)
    if (!Number.isInteger(use.frames) || use.frames < 0) throw new CostError(`chunk of job ${use.jobId}: frames must be a whole number ≥ 0 (got ${String(use.frames)})`)
    r.chunks.push({ ...use })
  }

  /** What one instance costs so far, as billed (a running one as if stopped at nowMs). */
  instanceUsd (id: string, nowMs: number): number {
    const r = this.get(id)
    return chargeUsd(this.rules[r.provider], r.priceUsdPerHour, this.endOf(r, nowMs) - r.launchedMs)
  }

  totalUsd (nowMs: number): number {
    let sum = 0
    for (const id of this.runs.keys()) sum += this.instanceUsd(id, nowMs)
    return round6(sum)
  }

  /** USD per hour of the instances running now. */
  hourlyRateUsd (): number {
    let sum = 0
    for (const r of this.runs.values()) if (r.terminatedMs === undefined) sum += r.priceUsdPerHour
    return round6(sum)
  }

  running (): string[] {
    return [...this.runs.values()].filter((r) => r.terminatedMs === undefined).map((r) => r.id)
  }

  /** Per job: attributed USD, frames rendered on metered instances, USD per frame, chunk seconds. */
  jobs (nowMs: number): Map<string, JobCost> {
    const out = new Map<string, JobCost>()
    const add = (job: string, usd: number, frames: number, seconds: number): void => {
      const c = out.get(job) ?? { usd: 0, frames: 0, usdPerFrame: 0, seconds: 0 }
      c.usd += usd; c.frames += frames; c.seconds += seconds
      out.set(job, c)
    }
    for (const r of this.runs.values()) {
      const end = this.endOf(r, nowMs)
      const usdPerMs = r.priceUsdPerHour / 3_600_000
      for (const [job, ms] of shareTime(r.chunks, r.launchedMs, end)) add(job, ms * usdPerMs, 0, ms / 1000)
      for (const c of r.chunks) add(c.jobId, 0, c.frames, 0)
    }
    for (const c of out.values()) {
      c.usd = round6(c.usd)
      c.seconds = Math.round(c.seconds * 1000) / 1000
      c.usdPerFrame = c.frames > 0 ? Math.round(c.usd / c.frames * 1e9) / 1e9 : 0
    }
    return out
  }

  job (jobId: string, nowMs: number): JobCost {
    return this.jobs(nowMs).get(jobId) ?? { usd: 0, frames: 0, usdPerFrame: 0, seconds: 0 }
  }

  /** Billed but used by no chunk: boot, idle time, minimums, rounding. */
  overheadUsd (nowMs: number): number {
    let attributed = 0
    for (const c of this.jobs(nowMs).values()) attributed += c.usd
    return round6(Math.max(0, this.totalUsd(nowMs) - attributed))
  }

  /**
   * Would launching `planned` for its duration take the farm past `budgetUsd`? Counts what is
   * billed so far, the running instances kept for the same duration, and the new ones with
   * their billing minimum.
   */
  checkBudget (budgetUsd: number, planned: PlannedLaunch, nowMs: number): BudgetCheck {
    if (!Number.isFinite(budgetUsd) || budgetUsd < 0) throw new CostError(`budget must be a non-negative number of USD (got ${String(budgetUsd)})`)
    if (!Number.isInteger(planned.count) || planned.count < 0) throw new CostError(`planned count must be a whole number ≥ 0 (got ${String(planned.count)})`)
    if (!Number.isFinite(planned.durationMs) || planned.durationMs < 0) throw new CostError(`planned duration must be ≥ 0 ms (got ${String(planned.durationMs)})`)
    if (!Number.isFinite(planned.priceUsdPerHour) || planned.priceUsdPerHour < 0) throw new CostError(`planned price must be ≥ 0 USD per hour (got ${String(planned.priceUsdPerHour)})`)
    const spentUsd = this.totalUsd(nowMs)
    let runningUsd = 0
    for (const r of this.runs.values()) {
      if (r.terminatedMs !== undefined) continue
      const rule = this.rules[r.provider]
      runningUsd += chargeUsd(rule, r.priceUsdPerHour, nowMs + planned.durationMs - r.launchedMs) - chargeUsd(rule, r.priceUsdPerHour, nowMs - r.launchedMs)
    }
    const plannedUsd = round6(planned.count * chargeUsd(this.rules[planned.provider], planned.priceUsdPerHour, planned.durationMs))
    const totalUsd = round6(spentUsd + runningUsd + plannedUsd)
    return { exceeds: totalUsd > budgetUsd, budgetUsd, spentUsd, runningUsd: round6(runningUsd), plannedUsd, totalUsd }
  }

  wouldExceed (budgetUsd: number, planned: PlannedLaunch, nowMs: number): boolean {
    return this.checkBudget(budgetUsd, planned, nowMs).exceeds
  }

  private get (id: string): Run {
    const r = this.runs.get(id)
    if (r === undefined) throw new CostError(`instance ${id} is not metered`)
    return r
  }

  private endOf (r: Run, nowMs: number): number {
    return Math.max(r.launchedMs, r.terminatedMs ?? nowMs)
  }
}

/**
 * Splits the time in [from, to) among jobs: at each moment the chunks running share it evenly.
 * Returns ms per job.
 */
export function shareTime (chunks: ChunkUse[], from: number, to: number): Map<string, number> {
  const edges: Array<{ t: number; d: 1 | -1; job: string }> = []
  for (const c of chunks) {
    const s = Math.max(c.startMs, from); const e = Math.min(c.endMs, to)
    if (e <= s) continue
    edges.push({ t: s, d: 1, job: c.jobId }, { t: e, d: -1, job: c.jobId })
  }
  edges.sort((a, b) => a.t - b.t || a.d - b.d)
  const active = new Map<string, number>() // job → chunks running now
  let n = 0
  let last = from
  const out = new Map<string, number>()
  for (const e of edges) {
    if (e.t > last && n > 0) {
      const span = e.t - last
      for (const [job, k] of active) out.set(job, (out.get(job) ?? 0) + span * k / n)
    }
    last = e.t
    const k = (active.get(e.job) ?? 0) + e.d
    if (k === 0) active.delete(e.job); else active.set(e.job, k)
    n += e.d
  }
  return out
}
