/**
 * The autoscaler's policy core (spec M26): given the farm, the queue, the cloud config, prices and
 * launches still booting, decides what to launch and what to give back. Pure: no I/O, no clock
 * (`nowMs` comes in), no provider calls — the coordinator runs it on a tick and carries `state`
 * from one decision to the next.
 *
 *   let state: ScalerState = {}
 *   every tick:
 *     const d = decide({ nowMs, nodes, jobs, pending, prices: bundledPrices(), config, state })
 *     state = d.state
 *     if (d.launch) await providers[d.launch.provider].launch(d.launch.count, d.launch.instanceType, { spot: d.launch.spot, ... })
 *     for (const t of d.terminate ?? []) await providers[…].terminate(t.ids)
 *     d.notes                        // why, in words (shown by `cloud status`, logged)
 *
 * Policies, in the order they are tried (at most one launch per tick):
 * 1. Budget guard: when what is billed so far plus the running machines' next `budgetGuardMs`
 *    would pass the farm budget, every cloud machine is terminated, cooldown and billing minimums
 *    notwithstanding, and nothing is launched.
 * 2. Scale-in: a cloud node idle for `idleMs` whose billing minimum has run is terminated, keeping
 *    `minNodes`; one whose paid minimum has not elapsed waits (it is paid for anyway).
 * 3. Min nodes: fewer cloud nodes (running + booting) than `minNodes` → launch the difference.
 * 4. Deadline at risk: jobs are predicted in queue order (priority, deadline, age) with
 *    `predictFinish` on the farm's speed (booting machines join at launch + `bootMs`); a job is at
 *    risk when finish × (1 + deadlineMargin) passes its deadline. For each candidate instance type
 *    the fewest nodes that bring every deadline inside the margin; the cheapest such launch that
 *    fits the caps wins; none when the farm already meets every deadline. When no count can, the
 *    most the caps allow, to shorten the miss (said in notes).
 * 5. Queue length: queued chunks per node above `queue.chunksPerNode` for `queue.forMs` → enough
 *    nodes to bring it back to the threshold. 6. Utilisation: busy slots / slots at or above
 *    `utilisation.above` for `utilisation.forMs` with chunks queued → one node. Both act only while
 *    a job without a (future) deadline has chunks queued: a job with a deadline is policy 4's, which
 *    knows whether burst is needed at all — so nothing is launched when every deadline is met.
 * Every launch: cooldown since the last action, max nodes (running + booting + new), the hourly cost
 * cap (the cloud machines' $/h after the launch), and the budget: spent + the running and booting
 * machines kept for the horizon + the new ones for the horizon (billing minimum included, via
 * cost.ts) must stay within the cap. Horizon = the queue's predicted end with the new nodes ×
 * HIGH_FACTOR + idleMs + cooldownMs (the time a node may linger idle before it is given back).
 * Spot when the price table's saving is ≥ spot.minSavings and the type's known interruption risk is
 * ≤ spot.maxInterruptionRisk; on-demand otherwise (an unknown risk counts as too high).
 */
import { BILLING, chargeUsd, type BillingRule } from './cost.ts'
import { HIGH_FACTOR, jobFps, predictFinish } from './estimate.ts'
import { findPrice } from './cloud/prices.ts'
import type { PriceRow, ProviderName } from './cloud/provider.ts'

export { predictFinish }

export const PRIORITY_RANK = { low: 0, normal: 1, high: 2, urgent: 3 } as const
export type Priority = keyof typeof PRIORITY_RANK

export interface ScalerNode {
  peerId: string
  location: 'lan' | 'cloud'
  /** Cloud nodes: the provider's instance id (what terminate takes) and the provider. */
  instanceId?: string
  provider?: ProviderName
  /** Benchmark fps at the 1280x720 reference, per preset. */
  fps: Record<string, number>
  slots: number
  /** Chunks running on it now. */
  busySlots: number
  /** Since when it has run nothing (undefined while busy). */
  idleSinceMs?: number
  /** Cloud nodes: when the instance was launched (billing starts there). */
  launchedMs?: number
  costPerHour: number
  spot?: boolean
  /** Alive and taking work. */
  accepting: boolean
}

export interface ScalerJob {
  jobId: string
  framesLeft: number
  preset: string
  width: number
  height: number
  deadlineMs?: number
  priority: Priority
  createdMs: number
  chunksQueued: number
  chunksLeased: number
}

/** Instances launched that have not joined the farm yet (booting). */
export interface PendingLaunch {
  ids: string[]
  provider: ProviderName
  region: string
  instanceType: string
  spot: boolean
  launchedMs: number
  priceUsdPerHour: number
}

/** An instance type the autoscaler may launch; `fps` (reference fps per preset) if measured. */
export interface ScalerCandidate { provider: ProviderName; region: string; instanceType: string; fps?: Record<string, number> }

export interface ScalerConfig {
  candidates: readonly ScalerCandidate[]
  /** Expected reference fps per preset by GPU model (the price table's gpu.model), for types without `fps`. */
  defaultFpsByGpu?: Record<string, Record<string, number>>
  minNodes: number
  maxNodes: number
  cooldownMs: number
  idleMs: number
  /** Launch to first chunk. */
  bootMs: number
  /** USD per hour of all cloud machines together. */
  hourlyCostCapUsd?: number
  /** The farm budget for the period and what has been billed in it so far (running machines included). */
  budget?: { capUsd: number; spentUsd: number }
  spot: { minSavings: number; maxInterruptionRisk: number; interruptionRisk: Record<string, number> }
  queue?: { chunksPerNode: number; forMs: number }
  utilisation?: { above: number; forMs: number }
  /** Default 0.15. */
  deadlineMargin?: number
  /** Most nodes in one launch. Default 10. */
  maxLaunch?: number
  /** Default 60 s. */
  budgetGuardMs?: number
  billing?: Partial<Record<ProviderName, BillingRule>>
  chunkOverheadSeconds?: number
  joinSeconds?: number
}

export interface ScalerState { lastActionMs?: number; queueHighSinceMs?: number; utilHighSinceMs?: number }

export interface ScalerInput {
  nowMs: number
  nodes: readonly ScalerNode[]
  jobs: readonly ScalerJob[]
  pending: readonly PendingLaunch[]
  prices: readonly PriceRow[]
  config: ScalerConfig
  state?: ScalerState
}

export type LaunchReason = 'min-nodes' | 'deadline' | 'queue' | 'utilisation'
export interface LaunchAction {
  provider: ProviderName
  region: string
  instanceType: string
  count: number
  spot: boolean
  priceUsdPerHour: number
  reason: LaunchReason
  why: string
  /** What the budget check assumed: how long, and the worst-case farm spend with this launch. */
  horizonMs: number
  worstCaseUsd: number
}
export interface TerminateAction { ids: string[]; reason: 'idle' | 'budget'; why: string }
export interface Decision { launch?: LaunchAction; terminate?: TerminateAction[]; notes: string[]; state: ScalerState }

export class AutoscalerError extends Error {
  override name = 'AutoscalerError'
}

const PER_SECOND: BillingRule = { minimumSeconds: 0, incrementSeconds: 1, rounding: 'up', source: 'unknown provider: per second' }
const usd = (x: number): string => `$${x.toFixed(4).replace(/0{1,2}$/, '')}`
const secs = (ms: number): string => `${Math.ceil(ms / 1000)} s`

interface Candidate { provider: ProviderName; region: string; instanceType: string; fps: Record<string, number>; spot: boolean; price: number }
export interface JobFinish { job: ScalerJob; renderedSeconds: number; finishSeconds: number }
export interface Joining { fps: Record<string, number>; atSeconds: number }

function checkConfig (c: ScalerConfig): void {
  const bad = (field: string, v: unknown): never => { throw new AutoscalerError(`autoscaler config: ${field} is out of range (got ${String(v)})`) }
  if (!Number.isInteger(c.minNodes) || c.minNodes < 0) bad('minNodes', c.minNodes)
  if (!Number.isInteger(c.maxNodes) || c.maxNodes < c.minNodes) bad('maxNodes (must be ≥ minNodes)', c.maxNodes)
  for (const k of ['cooldownMs', 'idleMs', 'bootMs'] as const) if (!Number.isFinite(c[k]) || c[k] < 0) bad(k, c[k])
  if (c.budget !== undefined && !(c.budget.capUsd >= 0 && c.budget.spentUsd >= 0)) bad('budget', JSON.stringify(c.budget))
  if (c.hourlyCostCapUsd !== undefined && !(c.hourlyCostCapUsd >= 0)) bad('hourlyCostCapUsd', c.hourlyCostCapUsd)
}

/** Jobs in the order the scheduler serves them: priority, then deadline, then age. */
export function queueOrder (jobs: readonly ScalerJob[]): ScalerJob[] {
  return [...jobs].sort((a, b) => PRIORITY_RANK[b.priority] - PRIORITY_RANK[a.priority] ||
    (a.deadlineMs ?? Infinity) - (b.deadlineMs ?? Infinity) || a.createdMs - b.createdMs || (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0))
}

/**
 * Each job's predicted end (seconds from now), jobs served one after another in queue order by the
 * accepting nodes, with `joining` machines adding their speed from when they boot. A job no node can
 * render ends at Infinity and holds no one up.
 */
export function predictQueue (jobs: readonly ScalerJob[], nodes: readonly ScalerNode[], joining: readonly Joining[], opts: { chunkOverheadSeconds?: number | undefined; joinSeconds?: number | undefined } = {}): JobFinish[] {
  let cursor = 0
  const out: JobFinish[] = []
  for (const job of queueOrder(jobs)) {
    const fps = nodes.filter((n) => n.accepting && n.slots >= 1).map((n) => jobFps(n.fps[job.preset] ?? 0, job.width, job.height))
    const f = predictFinish({
      frames: Math.max(0, job.framesLeft), fps, chunks: Math.max(0, job.chunksQueued + job.chunksLeased), startSeconds: cursor,
      joining: joining.map((j) => ({ fps: jobFps(j.fps[job.preset] ?? 0, job.width, job.height), atSeconds: j.atSeconds })),
      ...(opts.chunkOverheadSeconds !== undefined ? { chunkOverheadSeconds: opts.chunkOverheadSeconds } : {}),
      ...(opts.joinSeconds !== undefined ? { joinSeconds: opts.joinSeconds } : {})
    })
    out.push({ job, ...f })
    if (Number.isFinite(f.renderedSeconds)) cursor = f.renderedSeconds
  }
  return out
}

export function decide (input: ScalerInput): Decision {
  const { nowMs, config: c } = input
  if (!Number.isFinite(nowMs)) throw new AutoscalerError(`nowMs must be a time (got ${String(nowMs)})`)
  checkConfig(c)
  const state: ScalerState = { ...input.state }
  const notes: string[] = []
  const rules = { ...BILLING, ...c.billing }
  const ruleOf = (p: ProviderName | undefined): BillingRule => p === undefined ? PER_SECOND : rules[p]
  const cloud = input.nodes.filter((n) => n.location === 'cloud')
  const booting = input.pending.reduce((s, p) => s + p.ids.length, 0)
  const cloudCount = cloud.length + booting

  // What keeping every cloud machine (running and booting) for `ms` more adds to the bill.
  const keepUsd = (ms: number): number => {
    let sum = 0
    for (const n of cloud) {
      const since = nowMs - (n.launchedMs ?? nowMs)
      sum += chargeUsd(ruleOf(n.provider), n.costPerHour, Math.max(0, since) + ms) - chargeUsd(ruleOf(n.provider), n.costPerHour, Math.max(0, since))
    }
    for (const p of input.pending) {
      const since = Math.max(0, nowMs - p.launchedMs)
      sum += p.ids.length * (chargeUsd(ruleOf(p.provider), p.priceUsdPerHour, since + ms) - chargeUsd(ruleOf(p.provider), p.priceUsdPerHour, since))
    }
    return sum
  }

  // 1. Budget guard.
  if (c.budget !== undefined) {
    const guardMs = c.budgetGuardMs ?? 60_000
    const next = c.budget.spentUsd + keepUsd(guardMs)
    if (next > c.budget.capUsd && cloudCount > 0) {
      const ids = [...cloud.flatMap((n) => n.instanceId !== undefined ? [n.instanceId] : []), ...input.pending.flatMap((p) => p.ids)]
      const why = `budget: spent ${usd(c.budget.spentUsd)} and the cloud machines' next ${secs(guardMs)} would pass the ${usd(c.budget.capUsd)} cap; every cloud machine is given back`
      notes.push(why)
      state.lastActionMs = nowMs
      return { ...(ids.length > 0 ? { terminate: [{ ids, reason: 'budget' as const, why }] } : {}), notes, state }
    }
  }

  const cooling = state.lastActionMs !== undefined && nowMs - state.lastActionMs < c.cooldownMs
  const active = input.nodes.filter((n) => n.accepting && n.slots >= 1)

  // Policy timers run every tick, whatever else happens, so "for a duration" is measured truly.
  const queued = input.jobs.reduce((s, j) => s + Math.max(0, j.chunksQueued), 0)
  const liveDeadline = (j: ScalerJob): boolean => j.deadlineMs !== undefined && j.deadlineMs > nowMs
  const openEnded = input.jobs.some((j) => !liveDeadline(j) && j.chunksQueued > 0)
  const perNode = queued / Math.max(1, active.length + booting)
  if (c.queue !== undefined && openEnded && perNode > c.queue.chunksPerNode) state.queueHighSinceMs ??= nowMs
  else delete state.queueHighSinceMs
  const slots = active.reduce((s, n) => s + n.slots, 0)
  const util = slots > 0 ? active.reduce((s, n) => s + Math.min(n.busySlots, n.slots), 0) / slots : 0
  if (c.utilisation !== undefined && openEnded && util >= c.utilisation.above) state.utilHighSinceMs ??= nowMs
  else delete state.utilHighSinceMs

  if (cooling) {
    notes.push(`cooldown: no action until ${secs(state.lastActionMs! + c.cooldownMs - nowMs)} from now`)
    return { notes, state }
  }

  // 2. Scale-in.
  const idle = cloud
    .filter((n) => n.instanceId !== undefined && n.busySlots === 0 && n.idleSinceMs !== undefined && nowMs - n.idleSinceMs >= c.idleMs)
    .sort((a, b) => a.idleSinceMs! - b.idleSinceMs! || (a.instanceId! < b.instanceId! ? -1 : 1))
  const paid = idle.filter((n) => {
    const minMs = ruleOf(n.provider).minimumSeconds * 1000
    const ok = nowMs - (n.launchedMs ?? -Infinity) >= minMs
    if (!ok) notes.push(`${n.instanceId!}: idle, kept until its paid minimum of ${secs(minMs)} has run`)
    return ok
  })
  const give = paid.slice(0, Math.max(0, cloudCount - c.minNodes))
  if (paid.length > give.length) notes.push(`${paid.length - give.length} idle cloud node(s) kept for minNodes ${c.minNodes}`)
  if (give.length > 0) {
    const why = `idle for ${secs(c.idleMs)} or more`
    state.lastActionMs = nowMs
    return { terminate: [{ ids: give.map((n) => n.instanceId!), reason: 'idle', why }], notes, state }
  }

  // Launch candidates, priced, with spot chosen.
  const candidates: Candidate[] = []
  for (const k of c.candidates) {
    const row = findPrice([...input.prices], k.provider, k.region, k.instanceType)
    if (row === undefined) { notes.push(`${k.provider} ${k.region} ${k.instanceType}: not in the price table; not launched`); continue }
    const fps = k.fps ?? c.defaultFpsByGpu?.[row.gpu.model]
    if (fps === undefined) { notes.push(`${k.instanceType}: no expected fps (give fps for it, or for its GPU ${row.gpu.model}); not launched`); continue }
    const savings = row.onDemandPerHour > 0 ? 1 - row.spotPerHour / row.onDemandPerHour : 0
    const risk = c.spot.interruptionRisk[k.instanceType]
    const spot = savings >= c.spot.minSavings && risk !== undefined && risk <= c.spot.maxInterruptionRisk
    candidates.push({ provider: k.provider, region: k.region, instanceType: k.instanceType, fps, spot, price: spot ? row.spotPerHour : row.onDemandPerHour })
  }
  const room = Math.min(c.maxNodes - cloudCount, c.maxLaunch ?? 10, 100)
  const rateNow = cloud.reduce((s, n) => s + n.costPerHour, 0) + input.pending.reduce((s, p) => s + p.ids.length * p.priceUsdPerHour, 0)
  const fpsOf = (p: PendingLaunch): Record<string, number> =>
    c.candidates.find((k) => k.provider === p.provider && k.instanceType === p.instanceType)?.fps ??
    c.defaultFpsByGpu?.[findPrice([...input.prices], p.provider, p.region, p.instanceType)?.gpu.model ?? ''] ?? {}
  const bootAt = (launchedMs: number): number => Math.max(0, (launchedMs + c.bootMs - nowMs) / 1000)
  const pendingJoin: Joining[] = input.pending.flatMap((p) => p.ids.map(() => ({ fps: fpsOf(p), atSeconds: bootAt(p.launchedMs) })))
  const opts = { chunkOverheadSeconds: c.chunkOverheadSeconds, joinSeconds: c.joinSeconds }
  const withNew = (cand: Candidate | undefined, k: number): JobFinish[] =>
    predictQueue(input.jobs, input.nodes, cand === undefined ? pendingJoin : [...pendingJoin, ...Array.from({ length: k }, () => ({ fps: cand.fps, atSeconds: bootAt(nowMs) }))], opts)
  const horizonMs = (f: JobFinish[]): number => {
    const end = f.reduce((m, x) => Number.isFinite(x.renderedSeconds) ? Math.max(m, x.renderedSeconds) : m, 0)
    return Math.ceil(end * HIGH_FACTOR * 1000) + c.idleMs + c.cooldownMs
  }
  /** Why a launch may not go ahead (cap or budget), or undefined and its worst case. */
  const fits = (cand: Candidate, k: number, hMs: number): { block?: string; worstCaseUsd: number } => {
    if (k > room) return { block: `max nodes: ${cloudCount} cloud node(s) and ${k} more would pass maxNodes ${c.maxNodes}`, worstCaseUsd: NaN }
    if (c.hourlyCostCapUsd !== undefined && rateNow + k * cand.price > c.hourlyCostCapUsd + 1e-9) {
      return { block: `hourly cost cap: ${k} × ${cand.instanceType} at ${usd(cand.price)}/h would bring the cloud rate to ${usd(rateNow + k * cand.price)}/h, over the ${usd(c.hourlyCostCapUsd)}/h cap`, worstCaseUsd: NaN }
    }
    const worst = (c.budget?.spentUsd ?? 0) + keepUsd(hMs) + k * chargeUsd(ruleOf(cand.provider), cand.price, hMs)
    if (c.budget !== undefined && worst > c.budget.capUsd) {
      return { block: `budget: ${k} × ${cand.instanceType} for up to ${secs(hMs)} would bring worst-case spend to ${usd(worst)}, over the ${usd(c.budget.capUsd)} cap (${usd(c.budget.spentUsd)} spent)`, worstCaseUsd: worst }
    }
    return { worstCaseUsd: worst }
  }
  const launch = (cand: Candidate, k: number, hMs: number, worst: number, reason: LaunchReason, why: string): Decision => {
    state.lastActionMs = nowMs
    if (reason === 'queue') delete state.queueHighSinceMs
    if (reason === 'utilisation') delete state.utilHighSinceMs
    notes.push(`launch ${k} × ${cand.provider} ${cand.instanceType} (${cand.spot ? 'spot' : 'on-demand'}, ${usd(cand.price)}/h): ${why}`)
    return { launch: { provider: cand.provider, region: cand.region, instanceType: cand.instanceType, count: k, spot: cand.spot, priceUsdPerHour: cand.price, reason, why, horizonMs: hMs, worstCaseUsd: Math.round(worst * 1e6) / 1e6 }, notes, state }
  }
  /** The largest count ≤ want that passes every cap, for the cheapest-per-frame candidate. */
  const bestEffort = (want: number, preset: string | undefined, reason: LaunchReason, why: string): Decision | undefined => {
    const perFrame = (x: Candidate): number => x.price / Math.max(1e-9, preset === undefined ? 1 : (x.fps[preset] ?? 0))
    const usable = candidates.filter((x) => preset === undefined || (x.fps[preset] ?? 0) > 0).sort((a, b) => perFrame(a) - perFrame(b) || a.price - b.price)
    let lastBlock: string | undefined
    for (const cand of usable) {
      for (let k = Math.min(want, room); k >= 1; k--) {
        const hMs = horizonMs(withNew(cand, k))
        const f = fits(cand, k, hMs)
        if (f.block === undefined) return launch(cand, k, hMs, f.worstCaseUsd, reason, why)
        lastBlock ??= f.block
      }
    }
    notes.push(`${reason}: ${lastBlock ?? (room < 1 ? `maxNodes ${c.maxNodes} reached` : 'no instance type can render this work')}; not launched`)
    return undefined
  }

  // 3. Min nodes.
  if (cloudCount < c.minNodes) {
    const d = bestEffort(c.minNodes - cloudCount, undefined, 'min-nodes', `${cloudCount} cloud node(s), minNodes is ${c.minNodes}`)
    if (d !== undefined) return d
  }

  // 4. Deadline at risk.
  const margin = c.deadlineMargin ?? 0.15
  const meets = (f: JobFinish): boolean => !liveDeadline(f.job) || nowMs + f.finishSeconds * (1 + margin) * 1000 <= f.job.deadlineMs!
  const local = withNew(undefined, 0)
  for (const j of input.jobs) if (j.deadlineMs !== undefined && j.deadlineMs <= nowMs) notes.push(`job ${j.jobId}: its deadline has passed; no burst for it`)
  const risky = local.filter((f) => !meets(f))
  if (risky.length > 0) {
    const names = risky.map((f) => f.job.jobId).join(', ')
    const options: Array<{ cand: Candidate; k: number; hMs: number; cost: number }> = []
    for (const cand of candidates) {
      for (let k = 1; k <= Math.min(room, 100); k++) {
        const f = withNew(cand, k)
        if (f.every(meets)) { const hMs = horizonMs(f); options.push({ cand, k, hMs, cost: k * chargeUsd(ruleOf(cand.provider), cand.price, hMs) }); break }
      }
    }
    options.sort((a, b) => a.cost - b.cost || a.k - b.k)
    const blocks: string[] = []
    for (const o of options) {
      const f = fits(o.cand, o.k, o.hMs)
      if (f.block === undefined) return launch(o.cand, o.k, o.hMs, f.worstCaseUsd, 'deadline', `job(s) ${names} would miss their deadline on the farm as it is; ${o.k} node(s) bring every deadline inside a ${Math.round(margin * 100)}% margin`)
      blocks.push(f.block)
    }
    if (options.length > 0) {
      notes.push(`deadline: job(s) ${names} at risk; the cheapest launch that meets it is blocked — ${blocks[0]!}`)
    } else {
      notes.push(`deadline: job(s) ${names} cannot meet their deadline even with ${Math.max(0, room)} more node(s) of any configured type`)
      const preset = risky[0]!.job.preset
      const d = bestEffort(room, preset, 'deadline', `job(s) ${names} will miss their deadline; the most nodes the caps allow shorten the miss`)
      if (d !== undefined) return d
    }
    return { notes, state }
  }

  // 5. Queue length. 6. Utilisation.
  const mainPreset = (): string | undefined => {
    const by = new Map<string, number>()
    for (const j of input.jobs) by.set(j.preset, (by.get(j.preset) ?? 0) + j.chunksQueued)
    return [...by.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]?.[0]
  }
  if (c.queue !== undefined && state.queueHighSinceMs !== undefined && nowMs - state.queueHighSinceMs >= c.queue.forMs) {
    const want = Math.max(1, Math.ceil(queued / Math.max(1e-9, c.queue.chunksPerNode)) - (active.length + booting))
    const d = bestEffort(want, mainPreset(), 'queue', `${queued} chunks queued, ${perNode.toFixed(1)} per node for ${secs(nowMs - state.queueHighSinceMs)} (threshold ${c.queue.chunksPerNode})`)
    if (d !== undefined) return d
  }
  if (c.utilisation !== undefined && state.utilHighSinceMs !== undefined && nowMs - state.utilHighSinceMs >= c.utilisation.forMs) {
    const d = bestEffort(1, mainPreset(), 'utilisation', `${Math.round(util * 100)}% of slots busy for ${secs(nowMs - state.utilHighSinceMs)} with ${queued} chunk(s) queued`)
    if (d !== undefined) return d
  }
  return { notes, state }
}
