/**
 * The burst controller: the autoscaler (coordinator/autoscaler.ts) wired into a running agent.
 * It runs on the member that holds the farm key (only it can mint the single-use invites a rented
 * machine joins with) and only when the state dir has a cloud.json. The daemon starts it:
 *
 *   const burst = new BurstController({ config, providers: { local }, members: () => agent.nodes(), jobs: () => records,
 *     invite: () => token, bootstrap: () => addrs, pause: (peerId, paused) => farm.control(…), log })
 *   burst.start()                       // a tick every tickMs (default 10 s)
 *   await burst.scale({ provider: 'local', count: 2, spot: false })     // POST /v1/cloud/scale
 *   burst.status()                      // /v1/status `cloud`: spend, rate, instances, notes
 *   await burst.stop()                  // timers only: rented machines are given back by stop({ terminate: true })
 *
 * Each tick: interruption notices first (the node is drained: the coordinator is asked to pause
 * that peer, so it gets no new chunks; when the machine is gone the member is declared dead and
 * its chunks go back to the queue), then the providers' lists (a machine gone is metered to its
 * end), then the autoscaler's input from this member's replica of the job records (frames left,
 * preset, size, deadline, queued and leased chunks) and the live members (fps from their benchmark,
 * or the configured expected fps until it arrives; slots; busy/idle since; $/h), then `decide` and
 * its actions: launch (one invite per instance, boot script with this member's addresses and the
 * price-table rate as the agent's --cost-per-hour) and terminate. Every instance is metered per
 * second from launch to termination with coordinator/cost.ts (billing minimums included); the
 * budget the autoscaler sees is what this member has metered in the budget period (kept in the
 * store across restarts) plus the running machines.
 */
import { randomBytes } from 'node:crypto'
import { z } from 'zod'
import { decide, type Decision, type PendingLaunch, type ScalerNode, type ScalerJob, type ScalerState } from '../coordinator/autoscaler.ts'
import { bootstrapScript } from '../coordinator/cloud/bootstrap.ts'
import { budgetPeriodStart, candidatesOf, scalerConfigOf, type CloudConfig } from '../coordinator/cloud/config.ts'
import { bundledPrices, findPrice } from '../coordinator/cloud/prices.ts'
import { PROVIDERS, type CloudProvider, type Instance, type PriceRow, type ProviderName } from '../coordinator/cloud/provider.ts'
import { Meter } from '../coordinator/cost.ts'
import { probeSpeedFactor } from '../coordinator/estimate.ts'
import { TERMINAL_STATUSES as TERMINAL, type JobRecord } from '../protocol/messages/jobs.ts'

/** A member as /v1/nodes shows it (the fields the controller reads). */
export interface BurstMember {
  peerId: string
  name: string
  state: string
  location: string
  accepting?: boolean
  load?: { runningChunks?: number }
  info?: { bench?: Record<string, number>; slots?: number; costPerHour?: number }
}

export interface BurstDeps {
  config: CloudConfig
  providers: Partial<Record<ProviderName, CloudProvider>>
  members: () => BurstMember[]
  jobs: () => JobRecord[]
  /** A single-use join token (this member holds the farm key). */
  invite: () => string
  /** Multiaddrs a new machine dials to meet the farm. */
  bootstrap: () => string[]
  /** Ask the coordinator to pause (drain) or resume a peer. */
  pause: (peerId: string, paused: boolean) => Promise<void>
  log: (line: string) => void
  /** Spend already metered in the current budget period (from the store), and a sink for updates. */
  spend?: { load: () => { periodStartMs: number; usd: number } | undefined; save: (v: { periodStartMs: number; usd: number }) => void }
  tickMs?: number
  now?: () => number
}

interface Rented {
  inst: Instance
  name: string
  provider: ProviderName
  priceUsdPerHour: number
  spot: boolean
  launchedMs: number
  peerId?: string
  terminatedMs?: number
  draining?: { noticedMs: number; terminateAtMs: number }
  terminating?: boolean
}

export class BurstError extends Error {
  override name = 'BurstError'
  constructor (readonly code: 'bad-request' | 'refused' | 'provider', message: string) { super(message) }
}

export const ScaleRequestSchema = z.object({
  provider: z.enum(PROVIDERS),
  count: z.number().int('count must be a whole number').min(1, 'count must be 1–100').max(100, 'count must be 1–100'),
  instanceType: z.string().min(2).max(64).optional(),
  spot: z.boolean().default(false)
}).strict()

const round6 = (x: number): number => Math.round(x * 1e6) / 1e6

export class BurstController {
  private readonly meter = new Meter()
  private readonly rented = new Map<string, Rented>()
  private readonly idleSince = new Map<string, number>()
  private readonly metered = new Set<string>()
  private state: ScalerState = {}
  private notes: string[] = []
  private lastDecision: Decision | undefined
  private timer: NodeJS.Timeout | undefined
  private ticking: Promise<void> | undefined
  private prices: PriceRow[] = bundledPrices()
  private base: { periodStartMs: number; usd: number }
  private readonly now: () => number
  /** Launch and terminate calls never overlap (scale requests and ticks alike). */
  private acting: Promise<unknown> = Promise.resolve()

  constructor (private readonly d: BurstDeps) {
    this.now = d.now ?? Date.now
    const start = budgetPeriodStart(d.config.budget.period, this.now())
    const saved = d.spend?.load()
    this.base = saved !== undefined && saved.periodStartMs === start ? saved : { periodStartMs: start, usd: 0 }
  }

  start (): void {
    void this.loadPrices()
    const every = this.d.tickMs ?? 10_000
    this.timer = setInterval(() => { void this.tick() }, every)
    this.timer.unref()
  }

  /** Stops the ticks; with `terminate`, gives back every machine still rented (metered to now). */
  async stop (opts: { terminate?: boolean } = {}): Promise<void> {
    clearInterval(this.timer)
    this.timer = undefined
    await this.ticking
    await this.acting.catch(() => {})
    if (opts.terminate === true) {
      const live = [...this.rented.values()].filter((r) => r.terminatedMs === undefined)
      await this.terminate(live.map((r) => r.inst.id), 'the agent is stopping').catch((err: Error) => { this.d.log(`cloud: giving back on stop: ${err.message}`) })
    }
    this.saveSpend()
    for (const p of Object.values(this.d.providers)) await p?.close().catch(() => {})
  }

  /** Live price rows where a provider offers them (spot prices move), the bundled table for the rest. */
  private async loadPrices (): Promise<void> {
    const rows = bundledPrices()
    for (const p of Object.values(this.d.providers)) {
      if (p === undefined) continue
      try {
        const live = await p.prices()
        for (const r of live) {
          const i = rows.findIndex((x) => x.provider === r.provider && x.region === r.region && x.instanceType === r.instanceType)
          if (i >= 0) rows[i] = r
          else rows.push(r)
        }
      } catch (err) { this.d.log(`cloud: ${p.name} prices: ${(err as Error).message}; using the bundled table`) }
    }
    this.prices = rows
  }

  /** One round: notices, lists, decide, act. Ticks never overlap. */
  async tick (): Promise<Decision | undefined> {
    if (this.ticking !== undefined) { await this.ticking; return this.lastDecision }
    let out: Decision | undefined
    this.ticking = (async () => {
      try {
        await this.pollInterruptions()
        await this.reconcile()
        this.matchPeers()
        this.meterChunks()
        const now = this.now()
        const { jobs, chunkOverheadSeconds } = this.scalerJobs()
        const config = { ...this.scalerConfig(now), ...(chunkOverheadSeconds !== undefined ? { chunkOverheadSeconds } : {}) }
        const d = decide({ nowMs: now, nodes: this.scalerNodes(now), jobs, pending: this.pending(), prices: this.prices, config, state: this.state })
        this.state = d.state
        this.lastDecision = d
        const own: string[] = []
        for (const t of d.terminate ?? []) {
          try { await this.terminate(t.ids, t.why) } catch (err) { own.push(`terminate ${t.ids.join(', ')}: ${(err as Error).message}`) }
        }
        if (d.launch !== undefined) {
          try {
            await this.launch(d.launch.provider, d.launch.count, d.launch.instanceType, d.launch.spot, d.launch.priceUsdPerHour, d.launch.why)
          } catch (err) { own.push(`launch failed: ${(err as Error).message}`) }
        }
        const notes = [...d.notes, ...own, ...this.drainNotes()]
        if (notes.join('\n') !== this.notes.join('\n') && notes.length > 0) this.d.log(`cloud: ${notes.join(' | ')}`)
        this.notes = notes
        for (const n of own) this.d.log(`cloud: ${n}`)
        this.saveSpend()
        out = d
      } catch (err) {
        this.notes = [`the controller's tick failed: ${(err as Error).message}`]
        this.d.log(`cloud: tick failed: ${(err as Error).message}`)
      }
    })()
    try { await this.ticking } finally { this.ticking = undefined }
    return out
  }

  private drainNotes (): string[] {
    return [...this.rented.values()].filter((r) => r.draining !== undefined && r.terminatedMs === undefined)
      .map((r) => `${r.inst.id} (${r.name}): interruption notice; drained, the cloud takes it at ${new Date(r.draining!.terminateAtMs).toISOString()}`)
  }

  private async pollInterruptions (): Promise<void> {
    for (const p of Object.values(this.d.providers)) {
      if (p === undefined) continue
      let notices
      try { notices = await p.pollInterruptions() } catch (err) { this.d.log(`cloud: ${p.name} interruption notices: ${(err as Error).message}`); continue }
      for (const n of notices) {
        const r = this.rented.get(n.id)
        if (r === undefined || r.terminatedMs !== undefined || r.draining !== undefined) continue
        r.draining = { noticedMs: n.noticedMs, terminateAtMs: n.terminateAtMs }
        this.matchPeers()
        this.d.log(`cloud: ${n.id} (${r.name}) gets interrupted at ${new Date(n.terminateAtMs).toISOString()} (${n.reason}); draining it`)
        if (r.peerId !== undefined) {
          try { await this.d.pause(r.peerId, true) } catch (err) { this.d.log(`cloud: draining ${r.name}: ${(err as Error).message}`) }
        }
      }
    }
  }

  /** Machines the provider no longer runs (interrupted, or gone by hand) are metered to now. */
  private async reconcile (): Promise<void> {
    for (const p of Object.values(this.d.providers)) {
      if (p === undefined) continue
      const mine = [...this.rented.values()].filter((r) => r.provider === p.name && r.terminatedMs === undefined && r.terminating !== true)
      if (mine.length === 0) continue
      let list: Instance[]
      try { list = await p.list() } catch (err) { this.d.log(`cloud: ${p.name} list: ${(err as Error).message}`); continue }
      const byId = new Map(list.map((i) => [i.id, i]))
      for (const r of mine) {
        const i = byId.get(r.inst.id)
        if (i === undefined || i.state === 'terminated') await this.gone(r, this.now(), 'the provider ended it')
      }
    }
  }

  private async gone (r: Rented, atMs: number, why: string): Promise<void> {
    if (r.terminatedMs !== undefined) return
    r.terminatedMs = Math.max(atMs, r.launchedMs)
    this.meter.stop(r.inst.id, r.terminatedMs)
    this.d.log(`cloud: ${r.inst.id} (${r.name}) ended: ${why}; billed $${this.meter.instanceUsd(r.inst.id, r.terminatedMs).toFixed(6)}`)
    if (r.draining !== undefined && r.peerId !== undefined) await this.d.pause(r.peerId, false).catch(() => {}) // the drain is over: keep the paused list clean
  }

  /** A launched machine becomes a member when an alive cloud member carries its name. */
  private matchPeers (): void {
    const members = this.d.members()
    for (const r of this.rented.values()) {
      if (r.peerId !== undefined) continue
      const m = members.find((x) => x.name === r.name && x.location === 'cloud')
      if (m !== undefined) { r.peerId = m.peerId; this.d.log(`cloud: ${r.inst.id} joined as ${r.name} ${m.peerId}`) }
    }
  }

  /** Finished chunks on rented machines, charged to their jobs (per-job cloud cost in status). */
  private meterChunks (): void {
    const byPeer = new Map([...this.rented.values()].filter((r) => r.peerId !== undefined).map((r) => [r.peerId!, r]))
    for (const rec of this.d.jobs()) {
      for (const c of rec.chunks) {
        if (c.status !== 'done' || c.node === undefined || c.startedMs === undefined || c.endedMs === undefined) continue
        const r = byPeer.get(c.node)
        const key = `${rec.spec.id}/${c.id}`
        if (r === undefined || this.metered.has(key)) continue
        this.metered.add(key)
        const end = Math.min(c.endedMs, r.terminatedMs ?? c.endedMs)
        const start = Math.max(c.startedMs, r.launchedMs)
        if (end >= start) this.meter.chunk({ instanceId: r.inst.id, jobId: rec.spec.id, frames: c.end - c.start, startMs: start, endMs: end })
      }
    }
  }

  private fpsOf (provider: ProviderName, instanceType: string): Record<string, number> | undefined {
    const c = candidatesOf(this.d.config).find((k) => k.provider === provider && k.instanceType === instanceType)
    if (c?.fps !== undefined) return c.fps
    const gpu = findPrice(this.prices, provider, c?.region ?? '', instanceType)?.gpu.model
    return gpu !== undefined ? this.d.config.gpuFps[gpu] as Record<string, number> | undefined : undefined
  }

  private scalerNodes (now: number): ScalerNode[] {
    const leased = new Map<string, number>()
    for (const rec of this.d.jobs()) {
      if (TERMINAL.has(rec.status)) continue
      for (const c of rec.chunks) if (c.status === 'leased' && c.node !== undefined) leased.set(c.node, (leased.get(c.node) ?? 0) + 1)
    }
    const byPeer = new Map([...this.rented.values()].filter((r) => r.peerId !== undefined && r.terminatedMs === undefined).map((r) => [r.peerId!, r]))
    const out: ScalerNode[] = []
    for (const m of this.d.members()) {
      if (m.state !== 'alive') continue
      const busy = Math.max(m.load?.runningChunks ?? 0, leased.get(m.peerId) ?? 0)
      if (busy > 0) this.idleSince.delete(m.peerId)
      else if (!this.idleSince.has(m.peerId)) this.idleSince.set(m.peerId, now)
      const r = byPeer.get(m.peerId)
      const bench = m.info?.bench ?? {}
      const fps = r !== undefined && Object.keys(bench).length === 0 ? (this.fpsOf(r.provider, r.inst.instanceType) ?? {}) : bench
      const idle = this.idleSince.get(m.peerId)
      out.push({
        peerId: m.peerId,
        // Cloud machines this controller did not rent are capacity like any other; only its own can be given back.
        location: r !== undefined ? 'cloud' : 'lan',
        ...(r !== undefined ? { instanceId: r.inst.id, provider: r.provider, launchedMs: r.launchedMs, spot: r.spot } : {}),
        fps, slots: m.info?.slots ?? 1, busySlots: busy, ...(idle !== undefined ? { idleSinceMs: idle } : {}),
        costPerHour: r !== undefined ? r.priceUsdPerHour : (m.info?.costPerHour ?? 0),
        accepting: (m.accepting ?? true) && r?.draining === undefined
      })
    }
    // A rented machine that joined and then vanished from the live members still bills: keep it
    // visible (not accepting) so the autoscaler can give it back.
    const alive = new Set(out.map((n) => n.peerId))
    for (const r of byPeer.values()) {
      if (alive.has(r.peerId!)) continue
      out.push({ peerId: r.peerId!, location: 'cloud', instanceId: r.inst.id, provider: r.provider, launchedMs: r.launchedMs, spot: r.spot, fps: {}, slots: 1, busySlots: 0, idleSinceMs: this.idleSince.get(r.peerId!) ?? now, costPerHour: r.priceUsdPerHour, accepting: false })
    }
    return out
  }

  /**
   * Unfinished jobs. A job whose owner probed its timeline (spec.probe, decision 29) renders at
   * probe fps / the owner's benchmark of the benchmark speed; the autoscaler predicts from
   * benchmark speeds, so such a job counts as frames ÷ that factor, and the probe's start-up per
   * chunk is the chunk overhead.
   */
  private scalerJobs (): { jobs: ScalerJob[]; chunkOverheadSeconds?: number } {
    const out: ScalerJob[] = []
    let overhead: number | undefined
    const bench = new Map(this.d.members().map((m) => [m.peerId, m.info?.bench ?? {}]))
    for (const rec of this.d.jobs()) {
      if (TERMINAL.has(rec.status)) continue
      const s = rec.spec
      const left = rec.chunks.length === 0
        ? s.timeline.duration
        : rec.chunks.reduce((n, c) => n + (c.status === 'done' ? 0 : Math.max(0, c.end - c.start - (c.status === 'leased' ? c.framesDone : 0))), 0)
      const factor = probeSpeedFactor(s.probe, bench.get(s.owner)?.[s.preset], s.timeline.width, s.timeline.height)
      const framesLeft = Math.ceil(left / factor)
      if (s.probe !== undefined) overhead = Math.max(overhead ?? 0, s.probe.startSeconds + 0.3)
      out.push({
        jobId: s.id, framesLeft, preset: s.preset, width: s.timeline.width, height: s.timeline.height,
        ...(s.deadlineMs !== undefined ? { deadlineMs: s.deadlineMs } : {}),
        priority: s.priority, createdMs: s.createdMs,
        chunksQueued: rec.chunks.filter((c) => c.status === 'queued').length,
        chunksLeased: rec.chunks.filter((c) => c.status === 'leased').length
      })
    }
    return { jobs: out, ...(overhead !== undefined ? { chunkOverheadSeconds: overhead } : {}) }
  }

  /** Launched, not yet a member. */
  private pending (): PendingLaunch[] {
    const out: PendingLaunch[] = []
    for (const r of this.rented.values()) {
      if (r.peerId !== undefined || r.terminatedMs !== undefined || r.draining !== undefined) continue
      out.push({ ids: [r.inst.id], provider: r.provider, region: r.inst.region, instanceType: r.inst.instanceType, spot: r.spot, launchedMs: r.launchedMs, priceUsdPerHour: r.priceUsdPerHour })
    }
    return out
  }

  private scalerConfig (now: number) {
    return scalerConfigOf(this.d.config, { spentUsd: this.spentUsd(now) })
  }

  /** Billed in the budget period: earlier runs of this agent plus every machine metered now. */
  spentUsd (now = this.now()): number {
    const start = budgetPeriodStart(this.d.config.budget.period, now)
    if (start !== this.base.periodStartMs) this.base = { periodStartMs: start, usd: -this.meter.totalUsd(now) } // a new period: count from here
    return round6(Math.max(0, this.base.usd + this.meter.totalUsd(now)))
  }

  private saveSpend (): void {
    if (this.d.spend === undefined) return
    this.d.spend.save({ periodStartMs: this.base.periodStartMs, usd: this.spentUsd() })
  }

  private async serial<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.acting.then(fn, fn)
    this.acting = run.catch(() => {})
    return await run
  }

  private async launch (provider: ProviderName, count: number, instanceType: string, spot: boolean, priceUsdPerHour: number, why: string): Promise<Rented[]> {
    return await this.serial(async () => {
      const p = this.d.providers[provider]
      if (p === undefined) throw new BurstError('refused', `${provider} is configured but this agent has no client for it`)
      const names = Array.from({ length: count }, () => `cloud-${randomBytes(4).toString('hex')}`)
      const bootstrap = this.d.bootstrap()
      const scripts = names.map((name) => bootstrapScript({ token: this.d.invite(), bootstrap, name, costPerHour: priceUsdPerHour }))
      const insts = await p.launch(count, instanceType, { spot, userData: scripts, tags: { role: 'burst' } })
      const now = this.now()
      const out: Rented[] = []
      insts.forEach((inst, i) => {
        const name = inst.tags.name ?? names[i]!
        const launchedMs = Math.min(now, inst.launchedMs)
        const r: Rented = { inst, name, provider, priceUsdPerHour, spot, launchedMs }
        this.rented.set(inst.id, r)
        this.meter.start({ id: inst.id, provider, priceUsdPerHour }, launchedMs)
        out.push(r)
      })
      this.d.log(`cloud: launched ${insts.map((i) => i.id).join(', ')} (${count} × ${provider} ${instanceType}, ${spot ? 'spot' : 'on-demand'}, $${priceUsdPerHour}/h): ${why}`)
      return out
    })
  }

  private async terminate (ids: string[], why: string): Promise<void> {
    await this.serial(async () => {
      const byProvider = new Map<ProviderName, Rented[]>()
      for (const id of ids) {
        const r = this.rented.get(id)
        if (r === undefined || r.terminatedMs !== undefined) continue
        r.terminating = true
        byProvider.set(r.provider, [...(byProvider.get(r.provider) ?? []), r])
      }
      for (const [name, rs] of byProvider) {
        const p = this.d.providers[name]
        if (p === undefined) continue
        try {
          await p.terminate(rs.map((r) => r.inst.id))
        } finally {
          for (const r of rs) r.terminating = false
        }
        for (const r of rs) await this.gone(r, this.now(), `terminated: ${why}`)
      }
    })
  }

  /** POST /v1/cloud/scale: N more machines now, within maxNodes and the budget. */
  async scale (body: unknown): Promise<{ launched: Array<{ id: string; name: string; provider: ProviderName; instanceType: string; spot: boolean; priceUsdPerHour: number }> }> {
    const r = ScaleRequestSchema.safeParse(body)
    if (!r.success) {
      const issue = r.error.issues[0]!
      throw new BurstError('bad-request', `${issue.path.length > 0 ? issue.path.join('.') : '(body)'}: ${issue.message}`)
    }
    const req = r.data
    const cands = candidatesOf(this.d.config).filter((k) => k.provider === req.provider)
    if (cands.length === 0) throw new BurstError('refused', `provider ${req.provider} is not configured in cloud.json (configured: ${[...new Set(candidatesOf(this.d.config).map((k) => k.provider))].join(', ')})`)
    const cand = req.instanceType === undefined ? cands[0]! : cands.find((k) => k.instanceType === req.instanceType)
    if (cand === undefined) throw new BurstError('refused', `instanceType ${req.instanceType!} is not one of ${req.provider}'s configured types: ${cands.map((k) => k.instanceType).join(', ')}`)
    const row = findPrice(this.prices, cand.provider, cand.region, cand.instanceType)
    if (row === undefined) throw new BurstError('refused', `${cand.provider} ${cand.region} ${cand.instanceType} is not in the price table; it cannot be metered`)
    const price = req.spot ? row.spotPerHour : row.onDemandPerHour
    const live = [...this.rented.values()].filter((x) => x.terminatedMs === undefined).length
    if (live + req.count > this.d.config.maxNodes) throw new BurstError('refused', `${live} cloud machine(s) run and ${req.count} more would pass maxNodes ${this.d.config.maxNodes}; nothing was launched`)
    const now = this.now()
    const cap = this.d.config.hourlyCostCap
    if (cap !== undefined && this.meter.hourlyRateUsd() + req.count * price > cap) throw new BurstError('refused', `${req.count} × $${price}/h would bring the cloud machines to $${round6(this.meter.hourlyRateUsd() + req.count * price)}/h, over the hourly cap of $${cap}; nothing was launched`)
    // At least until the idle threshold gives them back (and their boot), for the new ones and the running ones.
    const horizonMs = (this.d.config.bootSeconds + this.d.config.idleSeconds) * 1000
    const check = this.meter.checkBudget(Math.max(0, this.d.config.budget.amount - this.base.usd), { provider: cand.provider, priceUsdPerHour: price, count: req.count, durationMs: horizonMs }, now)
    if (check.exceeds) throw new BurstError('refused', `budget: ${req.count} × ${cand.instanceType} for at least ${Math.round(horizonMs / 1000)} s would bring spend to $${round6(this.base.usd + check.totalUsd)}, over the $${this.d.config.budget.amount} ${this.d.config.budget.period} budget ($${this.spentUsd(now)} spent); nothing was launched`)
    let rs: Rented[]
    try {
      rs = await this.launch(cand.provider, req.count, cand.instanceType, req.spot, price, 'requested (cloud scale)')
    } catch (err) {
      if (err instanceof BurstError) throw err
      throw new BurstError('provider', (err as Error).message)
    }
    this.state = { ...this.state, lastActionMs: now }
    return { launched: rs.map((x) => ({ id: x.inst.id, name: x.name, provider: x.provider, instanceType: x.inst.instanceType, spot: x.spot, priceUsdPerHour: x.priceUsdPerHour })) }
  }

  /** The local provider (tests and demos simulate interruptions through it). */
  provider (name: ProviderName): CloudProvider | undefined {
    return this.d.providers[name]
  }

  /** /v1/status `cloud`. */
  status (): Record<string, unknown> {
    const now = this.now()
    const jobs: Record<string, unknown> = {}
    for (const [id, c] of this.meter.jobs(now)) jobs[id] = c
    return {
      spentUsd: this.spentUsd(now),
      hourlyRateUsd: this.meter.hourlyRateUsd(),
      budget: { amount: this.d.config.budget.amount, period: this.d.config.budget.period, periodStart: new Date(this.base.periodStartMs).toISOString() },
      instances: [...this.rented.values()].map((r) => ({
        id: r.inst.id, provider: r.provider, instanceType: r.inst.instanceType, spot: r.spot, name: r.name, priceUsdPerHour: r.priceUsdPerHour,
        state: r.terminatedMs !== undefined ? 'terminated' : r.draining !== undefined ? 'draining' : r.peerId !== undefined ? 'joined' : 'booting',
        ...(r.peerId !== undefined ? { peerId: r.peerId } : {}),
        ...(r.inst.tags.pid !== undefined ? { pid: Number(r.inst.tags.pid) } : {}),
        launchedAt: new Date(r.launchedMs).toISOString(),
        ...(r.terminatedMs !== undefined ? { terminatedAt: new Date(r.terminatedMs).toISOString() } : {}),
        usd: this.meter.instanceUsd(r.inst.id, now)
      })),
      jobs,
      notes: this.notes
    }
  }
}
