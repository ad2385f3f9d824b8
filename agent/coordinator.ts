/**
 * The coordinator's runtime: on the member elected for the current term it accepts jobs,
 * estimates and plans them, leases chunks to workers, follows their progress, and keeps every
 * member's copy of each job record current. On every other member it only answers
 * 'not-coordinator'.
 *
 *   const coord = new Coordinator({ node, store, log, nodes, term, isLeader, broadcast })
 *   await coord.start()                  // serves '/renderswarm/submit/1'
 *   coord.lead(term)                     // elected: rebuild the queue from the stored records
 *   coord.follow()                       // another member leads
 *
 * The pure parts live in coordinator/: scheduler (who renders what), estimate (time and
 * cost, chunk count), planner (frame ranges on keyframes). A job's record is persisted and
 * pushed to every member before the submit is answered, and again on every change, so a
 * successor elected after this one dies can go on from its own copy (chunks already done
 * stay done). Messages naming an older term are refused ('stale-term').
 *
 * Failures: a failed attempt's reason is kept on its chunk (and listed when the job fails);
 * a job whose owner is offline is 'paused' (no new leases; chunks in flight finish and wait on
 * their workers) and goes on when the owner is back; a straggling chunk at the end of a job
 * gets a backup copy on an idle node, and the first result stops the other.
 */
import { WireError } from '../protocol/errors.ts'
import { MAX_FRAME_BYTES, PROTOCOLS } from '../protocol/ids.ts'
import { CoordinatorRequestSchema, LeaseReplySchema, AckSchema, MAX_LISTED_JOBS, pieceId, plannedChunkId, TERMINAL_STATUSES as TERMINAL, type ChunkRecord, type CoordinatorRequest, type JobRecord, type JobSpec, type StatusPush } from '../protocol/messages/jobs.ts'
import { parseSnapshot, TimelineError } from '../protocol/timeline.ts'
import { checkMaxCost, CostExceededError, estimate, EstimateError, jobFps, probeSpeedFactor, type Estimate, type EstimateNode } from '../coordinator/estimate.ts'
import type { SchedChunk } from '../coordinator/scheduler.ts'
import { planChunks } from '../coordinator/planner.ts'
import { DEFAULT_SPLIT_MIN_MS, Scheduler, type Lease, type SchedNode } from '../coordinator/scheduler.ts'
import type { FarmNode } from './node.ts'
import { gopFrames, resolvePreset } from './render/presets.ts'
import type { Store } from './store.ts'

/** What the coordinator knows of each live member (itself included). */
export interface NodeView {
  peerId: string
  name: string
  slots: number
  encoders: string[]
  gpu: boolean
  fps: Record<string, number>
  accepting: boolean
  costPerHour: number
  /** The machine (and CPU set) it runs on: members with one host id share its cores (agent/hardware.ts). */
  host?: { id: string; cores: number } | undefined
}

export interface CoordinatorDeps {
  node: FarmNode
  store: Store
  log: (line: string) => void
  /** Live members (self included) as this node sees them. */
  nodes: () => NodeView[]
  /** Sends a status push to every live member (self included); resolves when all answered or timed out. */
  broadcast: (msg: StatusPush, timeoutMs: number) => Promise<void>
  /** Throws WireError('stale-term') for an older term; adopts a newer one. */
  checkTerm: (term: number) => void
  leaseMs?: number
  /** Render time a chunk should take on a typical node (coordinator/estimate.ts chunkCount). Default 30 s. */
  chunkSeconds?: number
  /** The shortest piece, in its node's time, a chunk is cut to when leased (coordinator/scheduler.ts split, decision 41); 0 never cuts. Default 4 s. */
  minPieceSeconds?: number
  /** Straggler backups: a chunk must have run this long first (default 10 s); tail backups (a free node that would finish a copy well first, scheduler.ts tailBackups) do not wait for it; 0 turns all backups off. */
  speculateAfterMs?: number
  tickMs?: number
  /**
   * A job's record goes to every member (and the store) at once when its status changes, and
   * otherwise at most this often while its chunks move (default 1000 ms). Each push is the
   * whole record, so pushing on every lease and result made replication, not the scheduler, the
   * farm's dispatch limit (bench/dispatch). A successor coordinator's copy is at most this old;
   * the owner's segment report marks what it already holds as done.
   */
  replicateMs?: number
  now?: () => number
}

/**
 * The estimate's measured fixed costs (decisions 29 and 39, bench/estimate's phases): a chunk's
 * round beyond ffmpeg's start-up, submit to first lease beyond the owner's preparation (measured
 * 0.01–0.08 s over eight jobs), the owner's join/mux/validation (0.23–0.37 s).
 */
const CHUNK_ROUND_SECONDS = 0.3
const SUBMIT_SECONDS = 0.05
const FINISH_SECONDS = 0.3
/** The software encoder of each preset: every chunk of a job uses the same one, so chunks match. */
const ENCODER: Record<JobSpec['preset'], string> = { ffv1: 'ffv1', h264: 'libx264', hevc: 'libx265', prores: 'prores_ks' }

export class Coordinator {
  private sched: Scheduler | undefined
  private term = 0
  private timer: NodeJS.Timeout | undefined
  private readonly records = new Map<string, JobRecord>()
  private readonly dirty = new Set<string>()
  /** Jobs whose records lag the scheduler (synced in one pass before anything reads them). */
  private readonly stale = new Set<string>()
  /** Per job: when its record was last pushed, and with which status. */
  private readonly replicated = new Map<string, { atMs: number; status: string }>()
  private flushing = false
  private flushAgain = false
  private tickQueued = false
  /** Jobs holdOrphans paused (their owner is offline). */
  private readonly held = new Set<string>()
  private readonly progressInFlight = new Set<string>()
  private readonly fps = new Map<string, Map<string, number>>()
  private paused = new Set<string>()
  /** Members that refused a lease (busy, not accepting) get no offer until then. */
  private readonly refusedUntil = new Map<string, number>()
  private lastProgressMs = 0
  private readonly now: () => number

  constructor (private readonly d: CoordinatorDeps) {
    this.now = d.now ?? Date.now
    this.paused = new Set(d.store.getJson<string[]>('paused-nodes') ?? [])
  }

  async start (): Promise<void> {
    await this.d.node.serve(PROTOCOLS.submit, MAX_FRAME_BYTES.submit, CoordinatorRequestSchema, async (msg, peer) => await this.handle(msg, peer))
  }

  /** Elected for `term`: rebuild the queue from the stored job records and start leasing. */
  lead (term: number): void {
    this.term = term
    if (this.sched !== undefined) return
    // Tail placement and tail backups on (decision 38): bench/sim measured them ahead of the plain
    // fastest-free rule on every farm it simulates; so is splitting at lease time (decision 41).
    const sched = new Scheduler({ leaseMs: this.d.leaseMs ?? 15_000, speculateAfterMs: this.d.speculateAfterMs ?? 10_000, tailHold: true, tailBackups: true, ...(this.d.minPieceSeconds !== 0 ? { split: { minMs: this.d.minPieceSeconds !== undefined ? this.d.minPieceSeconds * 1000 : DEFAULT_SPLIT_MIN_MS, id: pieceId } } : {}) })
    this.records.clear()
    for (const rec of this.d.store.listJobs<JobRecord>(10_000)) {
      if (TERMINAL.has(rec.status)) continue
      // Every open job, its chunks all finished or not: an owner that lost segments can still
      // have them reopened (a job that is only waiting for its owner's join included).
      sched.addJob({ ...schedJob(rec.spec, this.speedFactor(rec.spec)), chunks: rec.chunks.map((c) => ({ id: c.id, index: c.index, start: c.start, end: c.end })) })
      // Chunks finished under an earlier coordinator stay finished.
      for (const c of rec.chunks) if (c.status === 'done') sched.markDone(c.id, rec.spec.id)
      rec.chunks = rec.chunks.map((c) => c.status === 'done' ? c : { ...c, status: 'queued', node: undefined })
      this.records.set(rec.spec.id, rec)
    }
    this.sched = sched
    this.d.log(`coordinator for term ${term}: ${this.records.size} job(s) to go on with`)
    // The periodic tick sweeps expired leases, stragglers and progress; new work and freed slots
    // are leased at once (requestTick) rather than on the next tick.
    this.timer = setInterval(() => { this.tick() }, this.d.tickMs ?? 200)
    this.timer.unref()
  }

  follow (): void {
    clearInterval(this.timer)
    this.timer = undefined
    this.sched = undefined
    this.records.clear()
    this.stale.clear()
    this.dirty.clear()
    this.replicated.clear()
    this.held.clear()
  }

  stop (): void {
    this.follow()
  }

  /** A member is dead: its leases go back to the queue at once. */
  nodeLost (peerId: string): void {
    if (this.sched === undefined) return
    const back = this.sched.nodeLost(peerId)
    for (const c of back) this.syncJob(c.jobId)
    if (back.length > 0) this.d.log(`${back.length} chunk(s) of dead member ${peerId} back in the queue`)
    if (back.length > 0) this.requestTick()
  }

  private async handle (msg: CoordinatorRequest, peer: string): Promise<unknown> {
    if (this.sched === undefined) throw new WireError('not-coordinator', 'this member is not the coordinator; ask again once the election settles')
    const sched = this.sched
    if ('term' in msg) {
      this.d.checkTerm(msg.term)
      if (msg.term < this.term) throw new WireError('stale-term', `term ${msg.term} is older than ${this.term}`)
    }
    switch (msg.type) {
      case 'estimate': return { estimate: this.plan(msg.job).estimate }
      case 'submit': {
        if (msg.job.owner !== peer) throw new WireError('invalid-job', 'a job must be submitted by its owner')
        if (this.records.has(msg.job.id) || this.d.store.getJob(msg.job.id) !== undefined) throw new WireError('invalid-job', `job ${msg.job.id} already exists`)
        const { estimate: est, ranges } = this.plan(msg.job)
        const now = this.now()
        const record: JobRecord = {
          spec: msg.job, status: 'queued', estimate: est, acceptedMs: now, framesDone: 0, fps: 0, actualCost: 0, updatedMs: now,
          chunks: ranges.map((r) => ({ id: plannedChunkId(msg.job.id, r.index), index: r.index, start: r.start, end: r.end, status: 'queued', attempts: 0, framesDone: 0 }))
        }
        sched.addJob({ ...schedJob(msg.job, this.speedFactor(msg.job)), chunks: record.chunks.map((c) => ({ id: c.id, index: c.index, start: c.start, end: c.end })) })
        this.records.set(msg.job.id, record)
        this.d.store.putJob(msg.job.id, record, now)
        // Every member holds the record before the owner hears "accepted".
        await this.d.broadcast({ type: 'job', term: this.term, record }, 2000)
        this.d.log(`job ${msg.job.id} from ${peer}: ${record.chunks.length} chunk${record.chunks.length === 1 ? '' : 's'}, ${msg.job.priority}, estimate ${est.seconds.expected.toFixed(1)} s, $${est.cost.expected.toFixed(4)} (${est.framesPerSecond} frames/s on ${est.nodes} node${est.nodes === 1 ? '' : 's'}; probe ×${this.speedFactor(msg.job).toFixed(2)} the benchmark, ${msg.job.probe?.cores?.toFixed(2) ?? 'unmeasured'} cores a render, ${msg.job.probe?.together !== undefined ? `${msg.job.probe.together.renders} side by side worth ${msg.job.probe.together.worth.toFixed(2)}` : 'none measured side by side'})`)
        this.replicated.set(msg.job.id, { atMs: now, status: record.status })
        // Lease at once rather than on the next tick.
        this.requestTick()
        return { record }
      }
      case 'get-job': this.settle(msg.jobId); return { record: this.records.get(msg.jobId) ?? this.d.store.getJob<JobRecord>(msg.jobId) }
      case 'list-jobs': {
        // The open records as they are now (the store may hold an older copy), then the store's.
        const listed = new Map<string, number>()
        for (const rec of this.records.values()) if (rec.updatedMs >= msg.sinceMs && listed.size < MAX_LISTED_JOBS) listed.set(rec.spec.id, rec.updatedMs)
        for (const j of this.d.store.jobsSince(msg.sinceMs, MAX_LISTED_JOBS)) if (!listed.has(j.jobId) && listed.size < MAX_LISTED_JOBS) listed.set(j.jobId, j.updatedMs)
        return { jobs: [...listed].map(([jobId, updatedMs]) => ({ jobId, updatedMs })) }
      }
      case 'cancel': {
        const rec = this.records.get(msg.jobId)
        if (rec === undefined) throw new WireError('not-found', `no running job ${msg.jobId}`)
        this.settle(msg.jobId)
        sched.removeJob(msg.jobId)
        await this.finishRecord(rec, 'cancelled', 'cancelled by the user')
        await this.tellWorkers({ type: 'cancel', term: this.term, jobId: msg.jobId })
        return { ok: true }
      }
      case 'progress': {
        if (!sched.renew(msg.leaseToken, this.now(), msg.framesDone)) throw new WireError('stale-lease', `lease for ${msg.chunkId} is no longer live`)
        let m = this.fps.get(msg.jobId)
        if (m === undefined) { m = new Map(); this.fps.set(msg.jobId, m) }
        m.set(msg.chunkId, msg.fps)
        // Live figures only: members get them from the progress push, not a whole record each time.
        this.syncJob(msg.jobId, false)
        return { ok: true }
      }
      case 'chunk-done': {
        const holders = sched.leases({ jobId: msg.jobId }).filter((l) => l.chunkId === msg.chunkId && l.node !== peer).map((l) => l.node)
        const r = sched.complete(msg.chunkId, msg.leaseToken)
        if (r === 'stale') throw new WireError('stale-lease', `lease for ${msg.chunkId} is no longer live`)
        const rec = this.records.get(msg.jobId)
        const chunk = rec?.chunks.find((c) => c.id === msg.chunkId)
        if (chunk !== undefined && r === 'done') { chunk.sha256 = msg.sha256; chunk.endedMs = this.now(); chunk.node = peer }
        this.fps.get(msg.jobId)?.delete(msg.chunkId)
        this.syncJob(msg.jobId)
        // The slot is free: lease the next chunk now.
        this.requestTick()
        // The first result wins: whoever else still renders this chunk (a straggler or its backup) stops.
        if (r === 'done' && holders.length > 0) {
          this.d.log(`chunk ${msg.chunkId} done by ${this.nameOf(peer)}; stopping the other copy on ${holders.map((h) => this.nameOf(h)).join(', ')}`)
          void this.stopChunk(holders, msg.jobId, msg.chunkId)
        }
        return { ok: true }
      }
      case 'chunk-failed': {
        const r = sched.fail(msg.chunkId, msg.leaseToken, this.now())
        if (r === 'stale') return { ok: true }
        this.d.log(`chunk ${msg.chunkId} failed on ${this.nameOf(peer)}${r === 'backup-dropped' ? ' (a backup copy; the first copy goes on)' : ''}: ${msg.error}`)
        const rec = this.records.get(msg.jobId)
        if (rec !== undefined) this.noteError(rec, msg.chunkId, `${this.nameOf(peer)}: ${msg.error}`)
        if (r === 'failed' && rec !== undefined) {
          this.settle(msg.jobId)
          sched.removeJob(msg.jobId)
          await this.finishRecord(rec, 'failed', this.failureText(rec, msg.chunkId))
          await this.tellWorkers({ type: 'cancel', term: this.term, jobId: msg.jobId })
        } else {
          this.syncJob(msg.jobId)
          this.requestTick()
        }
        return { ok: true }
      }
      case 'segments': {
        const rec = this.records.get(msg.jobId)
        if (rec === undefined) return { ok: true }
        if (rec.spec.owner !== peer) throw new WireError('invalid-job', 'only the job\'s owner reports its segments')
        const stop: Array<{ node: string; chunkId: string }> = []
        const leases = sched.leases({ jobId: msg.jobId })
        for (const s of msg.chunks) {
          const live = sched.job(msg.jobId)?.chunks.find((c) => c.id === s.chunkId)
          if (live === undefined || live.status === 'done') continue
          for (const l of leases) if (l.chunkId === s.chunkId) stop.push({ node: l.node, chunkId: s.chunkId })
          if (sched.markDone(s.chunkId, msg.jobId)) {
            const chunk = rec.chunks.find((c) => c.id === s.chunkId)
            if (chunk !== undefined) { chunk.sha256 = s.sha256; chunk.endedMs ??= this.now() }
          }
        }
        // An owner that restarted without some segments: those chunks are rendered again.
        const reopened = (msg.missing ?? []).filter((chunkId) => sched.reopen(chunkId, msg.jobId))
        if (reopened.length > 0) {
          this.d.log(`job ${msg.jobId}: its owner lost ${reopened.length} finished segment(s); rendering them again`)
          for (const chunkId of reopened) {
            const chunk = rec.chunks.find((c) => c.id === chunkId)
            if (chunk !== undefined) { chunk.sha256 = undefined; chunk.endedMs = undefined; chunk.startedMs = undefined }
          }
        }
        this.syncJob(msg.jobId)
        if (reopened.length > 0) this.requestTick()
        // A chunk the owner already has is not rendered again: its current holder stops.
        if (stop.length > 0) await this.tellWorkers({ type: 'cancel-chunks', term: this.term, jobId: msg.jobId, chunkIds: [...new Set(stop.map((x) => x.chunkId))] })
        return { ok: true }
      }
      case 'job-finished': {
        const rec = this.records.get(msg.jobId)
        if (rec === undefined) return { ok: true }
        if (rec.spec.owner !== peer) throw new WireError('invalid-job', 'only the job\'s owner reports its output')
        this.settle(msg.jobId)
        sched.removeJob(msg.jobId)
        await this.finishRecord(rec, msg.ok ? 'done' : 'failed', msg.error)
        return { ok: true }
      }
      case 'pause': {
        const peers = msg.all === true ? this.d.nodes().map((n) => n.peerId) : msg.peerId !== undefined ? [msg.peerId] : []
        if (peers.length === 0) throw new WireError('schema', 'pause needs a peerId or all: true')
        for (const p of peers) { if (msg.paused) this.paused.add(p); else this.paused.delete(p) }
        if (msg.all === true && !msg.paused) this.paused.clear()
        this.d.store.setJson('paused-nodes', [...this.paused])
        if (!msg.paused) this.requestTick()
        await this.d.broadcast({ type: 'paused', term: this.term, peers: [...this.paused] }, 2000)
        return { ok: true }
      }
      case 'emergency-stop': {
        for (const n of this.d.nodes()) this.paused.add(n.peerId)
        this.d.store.setJson('paused-nodes', [...this.paused])
        for (const p of this.paused) for (const c of sched.nodeLost(p)) this.syncJob(c.jobId)
        await this.tellWorkers({ type: 'stop-all', term: this.term })
        await this.d.broadcast({ type: 'paused', term: this.term, peers: [...this.paused] }, 2000)
        return { ok: true }
      }
    }
  }

  /** Validates a job and works out its estimate and chunks (throws 'invalid-job' / 'cost-exceeded'). */
  private plan (spec: JobSpec): { estimate: Estimate; ranges: Array<{ index: number; start: number; end: number }> } {
    let timeline
    try {
      timeline = parseSnapshot(spec.timeline)
    } catch (err) {
      if (err instanceof TimelineError) throw new WireError('invalid-job', `timeline: ${err.message}`)
      throw err
    }
    const now = this.now()
    if (spec.deadlineMs !== undefined && spec.deadlineMs <= now) throw new WireError('invalid-job', `the deadline ${new Date(spec.deadlineMs).toISOString()} is in the past`)
    const preset = resolvePreset(spec.preset)
    const usable = this.d.nodes().filter((n) => n.slots > 0 && n.encoders.includes(ENCODER[spec.preset]) && !this.paused.has(n.peerId))
    const nodes: EstimateNode[] = usable.map((n) => ({ peerId: n.peerId, fps: n.fps, slots: n.slots, costPerHour: n.costPerHour, accepting: true, host: n.host }))
    const align = gopFrames(preset, timeline.fps)
    // Calibration (decision 29): the owner's probe of this timeline against the owner's benchmark;
    // the measured fixed costs (bench/estimate): ffmpeg's start-up as the probe saw it plus the
    // rest of a chunk's round (fetch from cache, segment check, hand-over, report), the owner's
    // preparation plus submit and first lease, and the owner's join, mux and validation; the
    // cores a render keeps busy, so members on one host split its cores (coordinator/estimate.ts hostShares).
    const speedFactor = this.speedFactor(spec)
    const calibrated = spec.probe !== undefined ? { speedFactor, chunkOverheadSeconds: spec.probe.startSeconds + CHUNK_ROUND_SECONDS, fixedSeconds: spec.probe.prepareSeconds + SUBMIT_SECONDS, joinSeconds: FINISH_SECONDS, renderCores: spec.probe.cores, together: spec.probe.together, owner: spec.owner } : {}
    let est: Estimate
    try {
      est = estimate({ frames: timeline.duration, width: timeline.width, height: timeline.height, preset: spec.preset, nodes, nowMs: now, align, chunkFloor: this.chunkFloor(spec, nodes.length), ...calibrated, ...(this.d.chunkSeconds !== undefined ? { targetChunkSeconds: this.d.chunkSeconds } : {}) })
    } catch (err) {
      if (err instanceof EstimateError) throw new WireError('invalid-job', err.message)
      throw err
    }
    try {
      checkMaxCost(est, spec.maxCost)
    } catch (err) {
      if (err instanceof CostExceededError) throw new WireError('cost-exceeded', err.message)
      throw err
    }
    // The estimate's chunk count (estimate.ts chunkCount, on the nodes' shared speeds): what the editor was shown is what runs.
    const ranges = planChunks(timeline.duration, est.chunks, { align })
    return { estimate: { ...est, chunks: ranges.length }, ranges }
  }

  /** This timeline's speed over the benchmark: the owner's probe against the owner's benchmark (1 without either). */
  private speedFactor (spec: JobSpec): number {
    const owner = this.d.nodes().find((n) => n.peerId === spec.owner)
    const { width, height } = spec.timeline as { width: number; height: number }
    return probeSpeedFactor(spec.probe, owner?.fps[spec.preset], width, height)
  }

  /**
   * Leases free slots as soon as this turn's work is done: a freed slot or a new job does not
   * wait for the next tick (it waited up to tickMs, and dispatch ran at slots per tick). Many
   * requests in one turn make one pass.
   */
  private requestTick (): void {
    if (this.tickQueued) return
    this.tickQueued = true
    setImmediate(() => { this.tickQueued = false; this.leaseFree(this.now(), this.d.nodes()) })
  }

  /** Gives every free slot a chunk (sched.assign) and sends the leases; returns the scheduler's view of the nodes. */
  private leaseFree (now: number, live: NodeView[]): SchedNode[] {
    const nodes: SchedNode[] = live.map((n) => ({ peerId: n.peerId, slots: n.slots, encoders: n.encoders, gpu: n.gpu, fps: n.fps, accepting: n.accepting && (this.refusedUntil.get(n.peerId) ?? 0) <= now, paused: this.paused.has(n.peerId) }))
    const sched = this.sched
    if (sched === undefined) return nodes
    const leases = sched.assign(nodes, this.term, now)
    this.applySplits(sched)
    for (const lease of leases) {
      const rec = this.records.get(lease.jobId)
      // Records list chunks in index order: no search per lease.
      const at = rec?.chunks[lease.index]
      const chunk = at?.id === lease.chunkId ? at : rec?.chunks.find((c) => c.id === lease.chunkId)
      if (rec === undefined || chunk === undefined) continue
      chunk.startedMs = now
      rec.startedMs ??= now
      this.syncJob(lease.jobId)
      void this.sendLease(lease, chunk)
    }
    return nodes
  }

  /**
   * Expiry, leasing and straggler backups, all synchronous, so leases go out without waiting on
   * any network round; replication follows on its own (flushSoon) and never holds up a lease.
   */
  private tick (): void {
    const sched = this.sched
    if (sched === undefined) return
    const now = this.now()
    for (const c of sched.expire(now)) {
      const rec = this.records.get(c.jobId)
      const node = c.failedOn.at(-1)
      const why = `${this.nameOf(node ?? '?')}: no progress for ${((this.d.leaseMs ?? 15_000) / 1000).toFixed(0)} s (hung, or cut off); the lease ran out`
      this.d.log(`lease on ${c.id} expired (${why}); ${c.status === 'failed' ? 'the chunk has failed too often' : 'back in the queue'}`)
      if (rec !== undefined) {
        this.noteError(rec, c.id, why)
        if (c.status === 'failed') {
          this.settle(c.jobId)
          sched.removeJob(c.jobId)
          void this.finishRecord(rec, 'failed', this.failureText(rec, c.id)).then(async () => { await this.tellWorkers({ type: 'cancel', term: this.term, jobId: c.jobId }) })
          continue
        }
      }
      this.syncJob(c.jobId)
    }
    const live = this.d.nodes()
    this.holdOrphans(live)
    const nodes = this.leaseFree(now, live)
    this.failUnplaceable(sched, live)
    if ((this.d.speculateAfterMs ?? 10_000) > 0) {
      const backups = sched.speculate(nodes, this.term, now)
      if (backups.length > 0) this.settle()
      for (const lease of backups) {
        const chunk = this.records.get(lease.jobId)?.chunks.find((c) => c.id === lease.chunkId)
        if (chunk === undefined) continue
        const frames = chunk.end - chunk.start
        const elapsed = (now - (chunk.startedMs ?? now)) / 1000
        const left = chunk.framesDone > 0 ? (frames - chunk.framesDone) / (chunk.framesDone / elapsed) : Number.POSITIVE_INFINITY
        this.d.log(`chunk ${lease.chunkId} is straggling on ${this.nameOf(chunk.node ?? '?')} (${chunk.framesDone}/${frames} frames in ${elapsed.toFixed(1)} s; at that rate it needs ${Number.isFinite(left) ? left.toFixed(1) : 'unbounded'} s more); a backup copy goes to ${this.nameOf(lease.node)}`)
        void this.sendLease(lease, chunk)
      }
    }
    if (now - this.lastProgressMs >= 500) {
      this.lastProgressMs = now
      this.settle()
      for (const rec of this.records.values()) {
        // One progress push per job at a time: on a member slower than the cadence they piled up
        // as open streams until its peer limits cut the coordinator off (bench/dispatch).
        if (rec.status !== 'running' || this.progressInFlight.has(rec.spec.id)) continue
        const jobId = rec.spec.id
        this.progressInFlight.add(jobId)
        void this.d.broadcast({ type: 'progress', term: this.term, jobId: rec.spec.id, framesDone: rec.framesDone, frames: rec.spec.timeline.duration, fps: rec.fps, chunks: rec.chunks.map((c) => ({ id: c.id, status: c.status, ...(c.node !== undefined ? { node: c.node } : {}), framesDone: c.framesDone })) }, 1000).finally(() => { this.progressInFlight.delete(jobId) })
      }
    }
    this.flushSoon()
  }

  private async sendLease (lease: Lease, chunk: ChunkRecord): Promise<void> {
    try {
      const reply = await this.d.node.request(lease.node, PROTOCOLS.chunk, { type: 'lease', lease: { jobId: lease.jobId, chunkId: lease.chunkId, index: chunk.index, start: chunk.start, end: chunk.end, term: lease.term, leaseToken: lease.leaseToken, expiresAt: lease.expiresAt } }, LeaseReplySchema, { timeoutMs: 5000 })
      if (!reply.accepted) throw new Error(reply.reason ?? 'refused')
    } catch (err) {
      this.d.log(`lease of ${lease.chunkId} to ${lease.node} not taken: ${(err as Error).message}`)
      // Back in the queue without counting an attempt; that node gets no offer for a while.
      this.sched?.release(lease.chunkId, lease.leaseToken)
      this.refusedUntil.set(lease.node, this.now() + 2000)
      this.syncJob(lease.jobId)
    }
  }

  /**
   * Notes that the scheduler's view of a job moved, and (unless only progress moved) that its
   * record is to be replicated. The copy into the record happens once, in settle(), before
   * anything reads the record: copying a whole job per lease and per result cost O(chunks) each.
   */
  private syncJob (jobId: string, replicate = true): void {
    this.stale.add(jobId)
    if (replicate) this.dirty.add(jobId)
  }

  /** A live job's record status, from the scheduler. */
  private recordStatus (jobId: string): JobRecord['status'] {
    const status = this.sched?.jobStatus(jobId)
    return this.held.has(jobId) && status !== 'done' ? 'paused' : status === 'done' ? 'joining' : status === 'running' ? 'running' : status === 'failed' ? 'failed' : 'queued'
  }

  /** Brings the records of one job (or of every job) up to the scheduler's view. */
  private settle (jobId?: string): void {
    if (jobId !== undefined) {
      if (this.stale.delete(jobId)) this.copyFromScheduler(jobId)
      return
    }
    for (const id of this.stale) this.copyFromScheduler(id)
    this.stale.clear()
  }

  /**
   * A job's share of the nodes, as its chunk floor (decision 41): nodes × its work / (its work +
   * the work still open in the farm's other jobs), in benchmark-seconds-comparable units (frames
   * over each job's speed scale). An idle farm: every node. A job behind others gets fewer, bigger
   * chunks; the scheduler cuts them as the farm drains.
   */
  private chunkFloor (spec: JobSpec, nodes: number): number | undefined {
    if (nodes < 1) return undefined
    const work = (s: JobSpec, frames: number): number => { const k = schedJob(s, this.speedFactor(s)).fpsScale ?? 1; return frames / (k > 0 ? k : 1) }
    const mine = work(spec, (spec.timeline as { duration: number }).duration)
    let open = 0
    for (const rec of this.records.values()) {
      if (TERMINAL.has(rec.status) || rec.spec.id === spec.id) continue
      let frames = 0
      for (const c of rec.chunks) if (c.status !== 'done') frames += Math.max(0, c.end - c.start - c.framesDone)
      if (frames > 0) open += work(rec.spec, frames)
    }
    return Math.max(1, Math.min(nodes, Math.ceil(nodes * mine / (mine + open))))
  }

  /**
   * Chunks the scheduler cut when it leased them (decision 41): each is replaced in its record by
   * its two pieces, in place, so that the record stays in frame order and is replicated with them.
   */
  private applySplits (sched: Scheduler): void {
    for (const sp of sched.takeSplits()) {
      const rec = this.records.get(sp.jobId)
      const at = rec?.chunks.findIndex((c) => c.id === sp.from) ?? -1
      if (rec === undefined || at < 0) continue
      const was = rec.chunks[at]!
      rec.chunks.splice(at, 1, ...sp.into.map((p): ChunkRecord => ({ id: p.id, index: p.index, start: p.start, end: p.end, status: 'queued', attempts: was.attempts, framesDone: 0, ...(was.errors !== undefined ? { errors: [...was.errors] } : {}) })))
      this.syncJob(sp.jobId)
    }
  }

  /** Copies the scheduler's view of a job's chunks into its record. */
  private copyFromScheduler (jobId: string): void {
    const rec = this.records.get(jobId)
    const job = this.sched?.job(jobId)
    if (rec === undefined || job === undefined) return
    const byId = new Map(job.chunks.map((c) => [c.id, c]))
    rec.chunks = rec.chunks.map((c) => {
      const s = byId.get(c.id)
      if (s === undefined) return c
      return { ...c, status: s.status, attempts: s.attempts, framesDone: s.status === 'done' ? c.end - c.start : s.framesDone, ...(s.node !== undefined ? { node: s.node } : {}) }
    })
    rec.framesDone = rec.chunks.reduce((n, c) => n + c.framesDone, 0)
    rec.fps = [...(this.fps.get(jobId)?.values() ?? [])].reduce((a, b) => a + b, 0)
    rec.status = this.recordStatus(jobId)
    if (rec.status !== 'paused') rec.note = undefined
    rec.updatedMs = this.now()
  }

  /**
   * A job whose owner is offline gets no new leases ('paused'): its segments would have nowhere
   * to go. Chunks in flight finish, and their workers keep the segments until the owner is back.
   */
  private holdOrphans (live: NodeView[]): void {
    const sched = this.sched
    if (sched === undefined) return
    const alive = new Set(live.map((n) => n.peerId))
    for (const rec of this.records.values()) {
      // Only this method pauses and resumes jobs, so it keeps its own note of which are held
      // (sched.job() would copy every chunk of every job on every tick).
      if (sched.jobStatus(rec.spec.id) === undefined) continue
      const job = { paused: this.held.has(rec.spec.id) }
      const ownerAlive = alive.has(rec.spec.owner)
      if (!ownerAlive && !job.paused) {
        sched.pauseJob(rec.spec.id)
        this.held.add(rec.spec.id)
        rec.note = `waiting for its owner ${this.nameOf(rec.spec.owner)}, which is offline; the job goes on when it is back`
        this.d.log(`job ${rec.spec.id} paused: ${rec.note}`)
        this.syncJob(rec.spec.id)
      } else if (ownerAlive && job.paused) {
        sched.resumeJob(rec.spec.id)
        this.held.delete(rec.spec.id)
        this.d.log(`job ${rec.spec.id} resumed: its owner ${this.nameOf(rec.spec.owner)} is back`)
        this.syncJob(rec.spec.id)
      }
    }
  }

  /**
   * A job with work left whose every capable live member has been excluded from it (each failed
   * its chunks twice) would wait forever: it fails, with the attempts' reasons.
   */
  private failUnplaceable (sched: Scheduler, live: NodeView[]): void {
    for (const rec of [...this.records.values()]) {
      // The cheap test first: this runs on every tick, and a copy of the job costs O(chunks).
      const capable = live.filter((n) => n.slots > 0 && n.encoders.includes(ENCODER[rec.spec.preset]))
      const excluded = new Set(sched.excluded(rec.spec.id))
      if (capable.length === 0 || !capable.every((n) => excluded.has(n.peerId))) continue
      const job = sched.job(rec.spec.id)
      if (job === undefined || job.paused || !job.chunks.some((c) => c.status === 'queued')) continue
      const worst = [...rec.chunks].sort((a, b) => (b.errors?.length ?? 0) - (a.errors?.length ?? 0))[0]
      this.settle(rec.spec.id)
      sched.removeJob(rec.spec.id)
      const why = `every machine that can render it (${capable.map((n) => n.name).join(', ')}) failed its chunks twice; ${worst !== undefined ? this.failureText(rec, worst.id) : ''}`
      void this.finishRecord(rec, 'failed', why).then(async () => { await this.tellWorkers({ type: 'cancel', term: this.term, jobId: rec.spec.id }) })
    }
  }

  private nameOf (peerId: string): string {
    return this.d.nodes().find((n) => n.peerId === peerId)?.name ?? this.d.node.list().find((m) => m.peerId === peerId)?.name ?? peerId.slice(-8)
  }

  /** Keeps a failed attempt's reason on its chunk (the newest 10). */
  private noteError (rec: JobRecord, chunkId: string, error: string): void {
    const chunk = rec.chunks.find((c) => c.id === chunkId)
    if (chunk === undefined) return
    chunk.errors = [...(chunk.errors ?? []), error.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 300)].slice(-10)
  }

  /** A failed job's error: every attempt of the chunk that failed it, in order. */
  private failureText (rec: JobRecord, chunkId: string): string {
    const chunk = rec.chunks.find((c) => c.id === chunkId)
    const errors = chunk?.errors ?? []
    return `chunk ${chunk?.index ?? chunkId} failed ${errors.length} time(s): ${errors.map((e, i) => `(${i + 1}) ${e}`).join('; ')}`
  }

  private async stopChunk (nodes: string[], jobId: string, chunkId: string): Promise<void> {
    await Promise.all(nodes.map(async (n) => {
      try { await this.d.node.request(n, PROTOCOLS.chunk, { type: 'cancel-chunks', term: this.term, jobId, chunkIds: [chunkId] }, AckSchema, { timeoutMs: 3000 }) } catch (err) { this.d.log(`telling ${this.nameOf(n)} to stop chunk ${chunkId}: ${(err as Error).message}`) }
    }))
  }

  private async finishRecord (rec: JobRecord, status: 'done' | 'failed' | 'cancelled', error: string | undefined): Promise<void> {
    this.settle(rec.spec.id)
    this.stale.delete(rec.spec.id)
    this.replicated.delete(rec.spec.id)
    const now = this.now()
    rec.status = status
    rec.completedMs = now
    rec.updatedMs = now
    rec.fps = 0
    if (error !== undefined) rec.error = error.slice(0, 500)
    const cost = new Map(this.d.nodes().map((n) => [n.peerId, n.costPerHour]))
    rec.actualCost = Math.round(rec.chunks.reduce((sum, c) => sum + (c.startedMs !== undefined && c.endedMs !== undefined ? (c.endedMs - c.startedMs) / 3_600_000 * (cost.get(c.node ?? '') ?? 0) : 0), 0) * 1e6) / 1e6
    this.records.delete(rec.spec.id)
    this.fps.delete(rec.spec.id)
    this.dirty.delete(rec.spec.id)
    this.d.store.putJob(rec.spec.id, rec, now)
    this.d.log(`job ${rec.spec.id} ${status}${error !== undefined ? `: ${error}` : ''}`)
    await this.d.broadcast({ type: 'job', term: this.term, record: rec }, 2000)
  }

  /** Starts a flush unless one is running (then one more follows it). */
  private flushSoon (): void {
    if (this.flushing) { this.flushAgain = true; return }
    this.flushing = true
    void this.flush().finally(() => {
      this.flushing = false
      if (this.flushAgain) { this.flushAgain = false; this.flushSoon() }
    })
  }

  /** Persists and pushes the changed records that are due (see replicateMs); the rest wait for a later tick. */
  private async flush (): Promise<void> {
    const now = this.now()
    const every = this.d.replicateMs ?? 1000
    const due: JobRecord[] = []
    for (const id of [...this.dirty]) {
      const rec = this.records.get(id)
      if (rec === undefined) { this.dirty.delete(id); continue }
      // Whether it is due, from the scheduler's status (a scan) before the record is brought up
      // to date (a copy of every chunk).
      const last = this.replicated.get(id)
      if (last !== undefined && last.status === this.recordStatus(id) && now - last.atMs < every) continue
      this.settle(id)
      this.dirty.delete(id)
      this.replicated.set(id, { atMs: now, status: rec.status })
      this.d.store.putJob(id, rec, rec.updatedMs)
      due.push(rec)
    }
    await Promise.all(due.map(async (rec) => { await this.d.broadcast({ type: 'job', term: this.term, record: rec }, 2000) }))
  }

  private async tellWorkers (msg: { type: 'cancel'; term: number; jobId: string } | { type: 'cancel-chunks'; term: number; jobId: string; chunkIds: string[] } | { type: 'stop-all'; term: number }): Promise<void> {
    await Promise.all(this.d.nodes().map(async (n) => {
      try { await this.d.node.request(n.peerId, PROTOCOLS.chunk, msg, AckSchema, { timeoutMs: 3000 }) } catch (err) { this.d.log(`telling ${n.name} to ${msg.type}: ${(err as Error).message}`) }
    }))
  }
}

/** The scheduler's view of a job; fpsScale = frame-size scaling × the probe's speed factor (straggler checks use it). */
function schedJob (spec: JobSpec, speedFactor: number): { id: string; align: number; priority: JobSpec['priority']; deadlineMs?: number; createdMs: number; preset: string; encoders: string[]; needsGpu: boolean; fpsScale: number } {
  const { width, height } = spec.timeline as { width: number; height: number }
  const fpsScale = jobFps(1, width, height) * speedFactor
  // Pieces cut at lease time keep to the keyframe grid the plan used (decision 41).
  let align = 1
  try { align = gopFrames(resolvePreset(spec.preset), spec.timeline.fps) ?? 1 } catch { /* a preset this build lacks: frame-exact cuts */ }
  return { id: spec.id, align, priority: spec.priority, ...(spec.deadlineMs !== undefined ? { deadlineMs: spec.deadlineMs } : {}), createdMs: spec.createdMs, preset: spec.preset, encoders: [ENCODER[spec.preset]], needsGpu: false, ...(fpsScale > 0 ? { fpsScale } : {}) } as ReturnType<typeof schedJob>
}
