/**
 * Distributed rendering on one member: the pieces every agent runs, wired to its libp2p node.
 *
 *   const farm = new FarmServices({ node, store, tools, caps, stateDir, … })
 *   await farm.start()
 *   const record = await farm.submit({ timeline, output, preset: 'ffv1' })   // POST /v1/jobs
 *
 * - Leadership: the coordinator election (coordinator/election.ts over '/renderswarm/election/1').
 * - Coordinator: active on the elected member only (agent/coordinator.ts).
 * - Worker: renders leased chunks (agent/worker.ts).
 * - Owner: the jobs submitted here; receives segments, joins, writes the output (agent/owner.ts).
 * - Assets and segments move between members by hash (agent/transfer.ts).
 * - Every member keeps each job record the coordinator pushes ('/renderswarm/status/1') in
 *   SQLite and passes job events to its local API's SSE stream. A push can be lost (a cut link,
 *   a frozen or restarting member), so a record that is still open here and has not been heard
 *   of for REFRESH_MS is asked of the coordinator ('get-job'): a job does not look running
 *   forever on a member that missed its end. A member also catches up on jobs it never heard
 *   of (submitted while it was restarting or cut off, and perhaps ended before it was back):
 *   it asks which jobs changed lately ('list-jobs') when it learns the coordinator and every
 *   CATCH_UP_MS, and fetches those it lacks or holds an older copy of.
 */
import path from 'node:path'
import { WireError } from '../protocol/errors.ts'
import { MAX_FRAME_BYTES, PROTOCOLS } from '../protocol/ids.ts'
import { AckSchema, JobListReplySchema, JobReplySchema, StatusPushSchema, TERMINAL_STATUSES as TERMINAL, type JobRecord, type JobSpec, type StatusPush } from '../protocol/messages/jobs.ts'
import type { NodeInfo } from '../protocol/messages/membership.ts'
import { AssetCache } from './assets.ts'
import { Coordinator, type NodeView } from './coordinator.ts'
import type { FfmpegCapabilities, FfmpegTools } from './ffmpeg.ts'
import { Leadership } from './leadership.ts'
import type { FarmNode } from './node.ts'
import { Owner } from './owner.ts'
import type { Store } from './store.ts'
import { AssetService, SegmentService } from './transfer.ts'
import { Worker } from './worker.ts'

export interface FarmServicesDeps {
  node: FarmNode
  store: Store
  tools: FfmpegTools
  caps: FfmpegCapabilities
  stateDir: string
  name: string
  info: NodeInfo
  slots: number
  costPerHour: number
  accepting: () => boolean
  log: (line: string) => void
  /** Pushes an event to the local API's SSE subscribers. */
  emit: (type: string, data: unknown) => void
  leaseMs?: number
  chunkSeconds?: number
  minPieceSeconds?: number
  speculateAfterMs?: number
}

/**
 * A member that has not finished its first benchmark still takes work: it counts as this
 * slow (frames per second at the 1280x720 reference) until its figure arrives.
 */
export const PROVISIONAL_FPS = 5
const withProvisional = (bench: Record<string, number>): Record<string, number> => ({ ffv1: PROVISIONAL_FPS, h264: PROVISIONAL_FPS, hevc: PROVISIONAL_FPS, prores: PROVISIONAL_FPS, ...bench })

/** An open record not pushed here for this long is asked of the coordinator. */
const REFRESH_MS = 10_000
/** Records asked for per round (every REFRESH_MS / 2). */
const REFRESH_BATCH = 20
/** How often a member asks which jobs changed, and how far back: a day when it learns a coordinator, CATCH_UP_WINDOW_MS otherwise. */
const CATCH_UP_MS = 60_000
const CATCH_UP_WINDOW_MS = 15 * 60_000
const CATCH_UP_START_WINDOW_MS = 24 * 3600_000
const CATCH_UP_BATCH = 100

export interface JobProgressView { jobId: string; framesDone: number; frames: number; fps: number; chunks: Array<{ id: string; status: string; node?: string | undefined; framesDone: number }>; atMs: number }

export class FarmServices {
  readonly cache: AssetCache
  readonly leadership: Leadership
  readonly coordinator: Coordinator
  readonly worker: Worker
  readonly owner: Owner
  readonly assets: AssetService
  readonly segments: SegmentService
  private readonly progress = new Map<string, JobProgressView>()
  /** Network fetches of each asset by this member (the farm promises at most one per asset). */
  private readonly fetchedBySha: Record<string, number> = {}
  private readonly segmentTransfers: Array<{ bytes: number; seconds: number }> = []
  /** Lease accepted → ffmpeg started, ms (the last 1000). */
  private readonly dispatchMs: number[] = []
  private pausedPeers = new Set<string>()
  /** Open (not terminal) job records in this member's store, and when (this clock) each was last pushed or fetched. */
  private readonly open = new Map<string, number>()
  private refreshTimer: NodeJS.Timeout | undefined
  private refreshing = false
  private catchUpTimer: NodeJS.Timeout | undefined
  private catchingUp = false
  private catchUpSoon: NodeJS.Timeout | undefined

  constructor (private readonly d: FarmServicesDeps) {
    const { node, store, log } = d
    this.cache = new AssetCache(path.join(d.stateDir, 'assets'))
    this.assets = new AssetService(node, this.cache)
    this.leadership = new Leadership({ node, store, log, candidates: () => this.nodes().map((n) => ({ peerId: n.peerId, capacity: this.capacityOf(n) })) })
    this.coordinator = new Coordinator({
      node, store, log, nodes: () => this.nodes(), checkTerm: (t) => { this.leadership.checkTerm(t) },
      broadcast: async (msg, timeoutMs) => { await this.broadcast(msg, timeoutMs) },
      ...(d.leaseMs !== undefined ? { leaseMs: d.leaseMs } : {}),
      ...(d.chunkSeconds !== undefined ? { chunkSeconds: d.chunkSeconds } : {}),
      ...(d.minPieceSeconds !== undefined ? { minPieceSeconds: d.minPieceSeconds } : {}),
      ...(d.speculateAfterMs !== undefined ? { speculateAfterMs: d.speculateAfterMs } : {})
    })
    this.owner = new Owner({
      node, store, cache: this.cache, tools: d.tools, caps: d.caps, jobsDir: path.join(d.stateDir, 'jobs'), log,
      coordinator: async () => await this.leadership.waitForLeader(15_000),
      coLocated: () => d.info.host === undefined ? 1 : Math.max(1, this.nodes().filter((n) => n.slots > 0 && n.accepting && n.host?.id === d.info.host!.id).length)
    })
    this.segments = new SegmentService(node, {
      accept: (h) => this.owner.acceptSegment(h),
      onSegment: async (h, file) => { await this.owner.segmentStored(h, file) }
    })
    this.worker = new Worker({
      node, tools: d.tools, caps: d.caps, workRoot: path.join(d.stateDir, 'work'), log,
      slots: () => d.slots,
      accepting: () => d.accepting() && !this.pausedPeers.has(node.peerId.toString()),
      checkTerm: (t) => { this.leadership.checkTerm(t) },
      coordinator: () => this.leadership.leader,
      job: async (jobId) => await this.jobSpec(jobId),
      fetchAsset: async (sha, from, signal) => {
        const before = this.assets.stats().fetched
        const file = await this.assets.fetch(sha, from, { signal })
        if (this.assets.stats().fetched > before) this.fetchedBySha[sha] = (this.fetchedBySha[sha] ?? 0) + 1
        return file
      },
      sendSegment: async (owner, h, file, signal) => {
        const t0 = performance.now()
        const r = await this.segments.send(owner, h, file, { signal })
        if (r.result === 'stored' && owner !== node.peerId.toString()) this.segmentTransfers.push({ bytes: r.bytes, seconds: (performance.now() - t0) / 1000 })
        return r
      },
      onDispatch: (_lease, ms) => { this.dispatchMs.push(Math.round(ms * 10) / 10); if (this.dispatchMs.length > 1000) this.dispatchMs.shift() },
      peers: () => this.nodes().map((n) => n.peerId).filter((p) => p !== node.peerId.toString()),
      onChange: () => { d.emit('worker', { running: this.worker.running() }) }
    })
  }

  async start (): Promise<void> {
    const { node } = this.d
    // Jobs this member owned before a restart, before any worker can offer their segments.
    await this.owner.start()
    await node.serve(PROTOCOLS.status, MAX_FRAME_BYTES.status * 64, StatusPushSchema, async (msg) => { await this.onStatus(msg); return { ok: true } })
    await this.assets.start()
    await this.segments.start()
    await this.worker.start()
    await this.coordinator.start()
    this.leadership.addEventListener('leader', (e) => {
      const { term, leader, self } = (e as CustomEvent<{ term: number; leader: string | undefined; self: boolean }>).detail
      if (self) this.coordinator.lead(term)
      else this.coordinator.follow()
      this.d.emit('leader', { term, leader: leader ?? null })
      if (leader !== undefined) void this.owner.reportSegments(leader)
      this.loadOpen()
      if (leader !== undefined && !self) void this.catchUp(CATCH_UP_START_WINDOW_MS)
    })
    node.addEventListener('member', (e) => {
      const t = (e as CustomEvent<{ peerId: string; to: string }>).detail
      if (t.to === 'dead') this.coordinator.nodeLost(t.peerId)
      // Members coming (back) alive: this member may be the one that was away. Catch up shortly after.
      if (t.to === 'alive' && this.catchUpSoon === undefined) {
        this.catchUpSoon = setTimeout(() => { this.catchUpSoon = undefined; void this.catchUp(CATCH_UP_START_WINDOW_MS) }, 2000)
        this.catchUpSoon.unref()
      }
    })
    await this.leadership.start()
    this.loadOpen()
    this.refreshTimer = setInterval(() => { void this.refreshReplicas() }, REFRESH_MS / 2)
    this.refreshTimer.unref()
    this.catchUpTimer = setInterval(() => { void this.catchUp(CATCH_UP_WINDOW_MS) }, CATCH_UP_MS)
    this.catchUpTimer.unref()
  }

  /** Fetches the jobs that changed in the last windowMs which this member lacks or holds an older copy of. */
  private async catchUp (windowMs: number): Promise<void> {
    const leader = this.leadership.leader
    if (leader === undefined || this.leadership.isLeader || this.catchingUp) return
    this.catchingUp = true
    try {
      const { jobs } = await this.d.node.request(leader, PROTOCOLS.submit, { type: 'list-jobs', sinceMs: Math.max(0, Date.now() - windowMs) }, JobListReplySchema, { timeoutMs: 5000 })
      let fetched = 0
      for (const j of jobs) {
        if ((this.d.store.jobUpdated(j.jobId) ?? -1) >= j.updatedMs) continue
        // Paced and bounded, well inside the coordinator's per-peer stream rate (peer-limits.ts): the rest on the next round.
        if (fetched >= CATCH_UP_BATCH) break
        if (fetched > 0) await new Promise((resolve) => setTimeout(resolve, 20))
        if (await this.fetchNewer(leader, j.jobId)) fetched++
      }
      if (fetched > 0) this.d.log(`caught up on ${fetched} job record(s) from the coordinator`)
    } catch (err) {
      this.d.log(`catching up on job records from the coordinator: ${(err as Error).message}`)
    } finally {
      this.catchingUp = false
    }
  }

  /** Notes the open records in the store (at start, and when the coordinator changes). */
  private loadOpen (): void {
    for (const rec of this.d.store.listJobs<JobRecord>(10_000)) if (!TERMINAL.has(rec.status) && !this.open.has(rec.spec.id)) this.open.set(rec.spec.id, 0)
  }

  /** Asks the coordinator for the open records not heard of for REFRESH_MS (the coordinator's own are the truth). */
  private async refreshReplicas (): Promise<void> {
    const leader = this.leadership.leader
    if (leader === undefined || this.leadership.isLeader || this.refreshing) return
    this.refreshing = true
    try {
      const now = Date.now()
      const due = [...this.open].filter(([, at]) => now - at > REFRESH_MS).slice(0, REFRESH_BATCH)
      for (const [jobId] of due) {
        this.open.set(jobId, now)
        await this.fetchNewer(leader, jobId)
      }
    } catch (err) {
      this.d.log(`asking the coordinator for job records: ${(err as Error).message}`)
    } finally {
      this.refreshing = false
    }
  }

  /** Asks the coordinator for a job's record and applies it when it is newer than the copy here (an unchanged one raises no event). True when applied. */
  private async fetchNewer (leader: string, jobId: string): Promise<boolean> {
    const { record } = await this.d.node.request(leader, PROTOCOLS.submit, { type: 'get-job', jobId }, JobReplySchema, { maxBytes: MAX_FRAME_BYTES.submit, timeoutMs: 5000 })
    if (record === undefined || record.spec.id !== jobId || record.updatedMs <= (this.d.store.jobUpdated(jobId) ?? -1)) return false
    await this.applyRecord(record)
    return true
  }

  async stop (): Promise<void> {
    clearInterval(this.refreshTimer)
    clearInterval(this.catchUpTimer)
    clearTimeout(this.catchUpSoon)
    this.leadership.stop()
    this.coordinator.stop()
    await this.worker.stopAll()
    await this.owner.stop()
  }

  /** This member's own view for scheduling. */
  private selfView (): NodeView {
    const i = this.d.info
    return { peerId: this.d.node.peerId.toString(), name: this.d.name, slots: this.d.slots, encoders: i.ffmpeg.encoders, gpu: i.gpus.length > 0, fps: withProvisional(i.bench), accepting: this.d.accepting() && !this.pausedPeers.has(this.d.node.peerId.toString()), costPerHour: this.d.costPerHour, host: i.host }
  }

  /** Live members as this node sees them, itself first. */
  nodes (): NodeView[] {
    const others = this.d.node.list().filter((m) => m.state === 'alive' && m.info !== undefined).map((m): NodeView => ({
      peerId: m.peerId, name: m.name, slots: m.info!.slots ?? 1, encoders: m.info!.ffmpeg.encoders, gpu: m.info!.gpus.length > 0,
      fps: withProvisional(m.info!.bench), accepting: m.accepting ?? true, costPerHour: m.info!.costPerHour ?? 0, host: m.info!.host
    }))
    return [this.selfView(), ...others]
  }

  /**
   * Election rank: what this member can render. A member that never renders (--slots 0, an
   * editing workstation that users switch off) ranks last, so a render node coordinates.
   */
  private capacityOf (n: NodeView): number {
    return n.slots > 0 ? Math.round(((n.fps.ffv1 ?? 0) + (n.fps.h264 ?? 0)) * 10) / 10 : 0
  }

  private async broadcast (msg: StatusPush, timeoutMs: number): Promise<void> {
    await Promise.allSettled(this.nodes().map(async (n) => {
      await this.d.node.request(n.peerId, PROTOCOLS.status, msg, AckSchema, { timeoutMs })
    }))
  }

  private async onStatus (msg: StatusPush): Promise<void> {
    this.leadership.checkTerm(msg.term)
    if (msg.type === 'job') {
      await this.applyRecord(msg.record)
    } else if (msg.type === 'progress') {
      const view = { jobId: msg.jobId, framesDone: msg.framesDone, frames: msg.frames, fps: msg.fps, chunks: msg.chunks, atMs: Date.now() }
      this.progress.set(msg.jobId, view)
      this.d.emit('progress', view)
    } else {
      this.pausedPeers = new Set(msg.peers)
      this.d.emit('paused', { peers: msg.peers })
    }
  }

  /** A record from the coordinator (pushed, or fetched by refreshReplicas): stored if newer, and acted on. */
  private async applyRecord (rec: JobRecord): Promise<void> {
    if (this.open.has(rec.spec.id)) this.open.set(rec.spec.id, Date.now())
    if (this.d.store.putJob(rec.spec.id, rec, rec.updatedMs)) {
      if (TERMINAL.has(rec.status)) {
        this.open.delete(rec.spec.id)
        this.progress.delete(rec.spec.id)
      } else this.open.set(rec.spec.id, Date.now())
      this.d.emit('job', summary(rec, this.d.store.jobOutput(rec.spec.id)))
      await this.owner.recordChanged(rec)
      if (rec.status === 'cancelled' || rec.status === 'failed') await this.worker.cancel(rec.spec.id)
    }
  }

  private async jobSpec (jobId: string): Promise<JobSpec> {
    const held = this.d.store.getJob<JobRecord>(jobId)
    if (held !== undefined) return held.spec
    const leader = this.leadership.leader
    if (leader === undefined) throw new WireError('not-found', `job ${jobId} is unknown here and no coordinator is known`)
    const reply = await this.d.node.request(leader, PROTOCOLS.submit, { type: 'get-job', jobId }, JobReplySchema, { maxBytes: MAX_FRAME_BYTES.submit })
    if (reply.record === undefined) throw new WireError('not-found', `the coordinator has no job ${jobId}`)
    this.d.store.putJob(jobId, reply.record, reply.record.updatedMs)
    return reply.record.spec
  }

  // ---- local API ----

  async submit (body: unknown): Promise<Record<string, unknown>> {
    const rec = await this.owner.submit(body)
    return summary(rec, this.d.store.jobOutput(rec.spec.id))
  }

  async estimate (body: unknown): Promise<unknown> {
    return await this.owner.estimate(body)
  }

  jobs (): Array<Record<string, unknown>> {
    return this.d.store.listJobs<JobRecord>(200).map((r) => this.view(r))
  }

  job (jobId: string): Record<string, unknown> | undefined {
    const rec = this.d.store.getJob<JobRecord>(jobId)
    return rec === undefined ? undefined : this.view(rec)
  }

  /** A stored record as the API shows it, with the latest progress push over it while it runs. */
  private view (rec: JobRecord): Record<string, unknown> {
    const live = this.progress.get(rec.spec.id)
    return { ...summary(rec, this.d.store.jobOutput(rec.spec.id)), ...(live !== undefined && rec.status === 'running' ? { framesDone: live.framesDone, fps: live.fps } : {}) }
  }

  async control (msg: { type: 'cancel'; jobId: string } | { type: 'pause'; peerId?: string; all?: boolean; paused: boolean } | { type: 'emergency-stop' }): Promise<void> {
    const leader = await this.leadership.waitForLeader(10_000)
    await this.d.node.request(leader, PROTOCOLS.submit, msg, AckSchema, { timeoutMs: 10_000 })
  }

  /** For /v1/status: what this member moved and rendered. */
  stats (): Record<string, unknown> {
    const a = this.assets.stats()
    const bytes = this.segmentTransfers.reduce((n, t) => n + t.bytes, 0)
    const seconds = this.segmentTransfers.reduce((n, t) => n + t.seconds, 0)
    return {
      coordinator: { term: this.leadership.term, leader: this.leadership.leader ?? null, self: this.leadership.isLeader },
      worker: { running: this.worker.running(), holdingSegments: this.worker.holding(), chunksRendered: this.worker.rendered.length, dispatchMs: [...this.dispatchMs] },
      assets: { fetched: a.fetched, fetchedBytes: a.fetchedBytes, fetchedBySha: { ...this.fetchedBySha }, served: a.served, servedBytes: a.servedBytes, hashMismatches: a.hashMismatches },
      segments: { sent: this.segmentTransfers.length, bytes, mbPerSecond: seconds > 0 ? Math.round(bytes / seconds / 1e6 * 10) / 10 : null }
    }
  }

  pausedNodes (): string[] {
    return [...this.pausedPeers]
  }
}

/** A job as the API shows it: no timeline, no media table. */
export function summary (r: JobRecord, output: string | undefined): Record<string, unknown> {
  return {
    jobId: r.spec.id, name: r.spec.name, user: r.spec.user, owner: r.spec.owner, status: r.status, preset: r.spec.preset, priority: r.spec.priority,
    ...(r.spec.deadlineMs !== undefined ? { deadline: new Date(r.spec.deadlineMs).toISOString() } : {}),
    ...(r.spec.maxCost !== undefined ? { maxCost: r.spec.maxCost } : {}),
    ...(output !== undefined ? { output } : {}),
    frames: r.spec.timeline.duration, framesDone: r.framesDone, fps: r.fps,
    chunks: r.chunks.map((c) => ({ id: c.id, frameRange: [c.start, c.end], status: c.status, node: c.node, attempts: c.attempts, framesDone: c.framesDone, ...(c.startedMs !== undefined ? { startedAt: c.startedMs } : {}), ...(c.endedMs !== undefined ? { endedAt: c.endedMs } : {}), ...(c.errors !== undefined ? { errors: c.errors } : {}) })),
    estimate: r.estimate, actualCost: r.actualCost, error: r.error, ...(r.note !== undefined ? { note: r.note } : {}),
    createdAt: new Date(r.spec.createdMs).toISOString(),
    ...(r.acceptedMs !== undefined ? { acceptedAt: r.acceptedMs } : {}),
    ...(r.startedMs !== undefined ? { startedAt: new Date(r.startedMs).toISOString() } : {}),
    ...(r.completedMs !== undefined ? { completedAt: new Date(r.completedMs).toISOString() } : {})
  }
}
