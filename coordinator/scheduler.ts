/**
 * The farm's job/chunk scheduler (pure: no I/O; time, term and lease tokens come from the caller).
 *
 *   const s = new Scheduler({ leaseMs: 15_000 })
 *   s.addJob({ id: 'j1', priority: 'normal', createdMs: now, preset: 'h264',
 *              encoders: ['libx264', 'h264_nvenc'], needsGpu: false, chunks: planChunks(600, 8) })
 *   s.expire(now)                                    // first reclaim leases whose holders went quiet
 *   for (const lease of s.assign(nodes, term, now)) send(lease.node, lease)
 *   s.renew(lease.leaseToken, now, framesDone)       // on progress; false → tell the worker to stop
 *   s.complete(lease.chunkId, lease.leaseToken)      // 'done' | 'duplicate' | 'stale'
 *
 * Order. Jobs are served by priority (urgent > high > normal > low), then deadline (earliest
 * first; a job with a deadline before one without), then age (createdMs), then id. Priority is
 * strict: while a job has a queued chunk and a free node that may take it, no job of a lower
 * priority gets that node. Jobs that tie on priority and deadline (or both have none) share
 * fairly: each free slot goes to the one with the fewest live leases, then the older, so two
 * normal jobs submitted together both progress.
 *
 * Placement. A node is eligible for a job when it is accepting, not paused, has a free slot
 * (slots − live leases), has one of the job's encoders, has a GPU if the job needs one, and has
 * not failed this job's chunks `maxFailuresPerNode` times. The fastest eligible node for the
 * job's preset (benchmark fps × pace, missing = 0; then peerId) takes the next chunk, so a fast
 * node with several slots takes several. A job's chunks go out in index order; paused and failed
 * jobs get none.
 *
 * Pace. A benchmark is one moment: a workstation whose owner is working, or a machine shared with
 * other agents, renders well below it. Each node's pace is the rate its latest lease's progress
 * shows (`renew` with new frames done, once the lease has run PACE_AFTER_MS) over what its benchmark
 * promised for that job, within [0.05, 4]; 1 until known, and not kept in snapshots (a successor
 * learns it again within seconds). Placement, tail placement and the choice of a backup node use
 * benchmark × pace; straggler detection compares progress with the benchmark alone.
 *
 * Tail placement (option `tailHold`, off by default). Near the end of the queue the fastest-free
 * rule can hand a slow node a chunk that it finishes long after every other node is done (a node
 * a quarter of the median speed, with a 30 s chunk, ends the job 90 s late). With tailHold, a
 * free node is passed over when its benchmark time for the chunk is longer than the farm's drain
 * time for that preset (all open work over the accepting nodes' summed fps) and the faster busy
 * nodes, each after its current lease (from its progress), can finish every queued chunk of that
 * size before this node would finish one, ×1.1. It then stays idle (or takes other work) and is
 * asked again on the next call. bench/sim measures the effect.
 *
 * Splitting (option `split`, off by default; decision 41). Chunks are planned at submit for
 * the whole job, but which work is left at the farm's end is only known then: the longest jobs
 * are still cutting planned-size chunks, and a slow node's last chunk holds up the finish. With
 * split, a chunk never leased before is cut when it is leased, so that the node gets about half
 * the farm's drain time for that preset (guided self-scheduling: big pieces while there is much
 * to do, small ones at the end), never less than `split.minMs` of its time and never off the
 * job's `align` grid (keyframe interval). The rest goes back into the queue as a new chunk right
 * after it. Both pieces get new ids from `split.id(jobId, start, end)`: an id names one frame
 * range, so a successor whose copy of the job split it elsewhere cannot confuse the two.
 * A chunk leased before (a retry, a reopened one) is not cut, nor is one leased to a node that
 * is half the farm's speed or more on its own (the rest would wait for that node anyway), nor any
 * chunk of a job that already has 20,000. `takeSplits()` hands the caller each split to apply to
 * its own records.
 *
 * Leases and retries (one policy, in `retry`). A lease lasts `leaseMs` from when it was given
 * or last renewed; it is live while now < expiresAt. A failure report, or an expiry swept by
 * `expire`, counts one attempt and one failure against that node; a chunk that has failed
 * `maxAttempts` times is failed, and so is its job. A lost node's leases go back without
 * counting (the machine failed, not the chunk). A result from any lease ever given for a chunk
 * is accepted while the chunk is not done (a slow worker's late but good segment); once done,
 * the same lease again is 'duplicate' and any other is 'stale'.
 *
 * Stragglers (`speculate`). Once a job has nothing left in the queue, a leased chunk whose
 * progress says it will take more than `slowFactor` times what its node's benchmark predicts
 * gets a second, backup lease on an idle node that should finish first. Whichever result comes
 * first makes the chunk done (the caller stops the other); a backup that fails, expires or
 * loses its node is just dropped, and a primary that does so hands the chunk to its backup
 * instead of the queue (the failure still counts against the primary's node).
 */
import { randomUUID } from 'node:crypto'
import { z } from 'zod'

export const PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const
export type Priority = typeof PRIORITIES[number]
export type ChunkStatus = 'queued' | 'leased' | 'done' | 'failed'
export type JobStatus = 'queued' | 'running' | 'done' | 'failed'

export interface SchedChunk {
  id: string
  jobId: string
  index: number
  start: number
  end: number
  status: ChunkStatus
  /** Leased: the holder. Done: who rendered it. Failed: the last node that tried. */
  node?: string | undefined
  leaseToken?: string | undefined
  leaseExpiresMs?: number | undefined
  /** The coordinator term the current lease was given in. */
  term?: number | undefined
  /** Failed attempts (failure reports and expired leases). */
  attempts: number
  framesDone: number
  /** One entry per failure, so a node that failed twice appears twice. */
  failedOn: string[]
  /** When the current lease was given. */
  leasedMs?: number | undefined
  /** A speculative copy of a straggling chunk, on another node. */
  backup?: Backup | undefined
}

export interface Backup { node: string; leaseToken: string; leaseExpiresMs: number; term: number; leasedMs: number; framesDone: number }

export interface SchedJob {
  id: string
  priority: Priority
  deadlineMs?: number | undefined
  createdMs: number
  preset: string
  /** encoders a node must have, any one of them */
  encoders: string[]
  needsGpu: boolean
  paused: boolean
  /** This job's frames per second on a node = the node's benchmark fps for the preset × fpsScale (resolution). Default 1. */
  fpsScale: number
  /** Chunk boundaries only on multiples of this many frames (the keyframe interval); a split keeps to it. Default 1. */
  align: number
  chunks: SchedChunk[]
}

export interface SchedNode { peerId: string; slots: number; encoders: string[]; gpu: boolean; fps: Record<string, number>; accepting: boolean; paused: boolean }

export interface Lease { jobId: string; chunkId: string; index: number; start: number; end: number; node: string; term: number; leaseToken: string; expiresAt: number }

/** What addJob takes: a job's scheduling fields and its planned chunk ranges. */
export type JobInput = Omit<SchedJob, 'paused' | 'chunks' | 'fpsScale' | 'align'> & {
  paused?: boolean | undefined
  fpsScale?: number | undefined
  align?: number | undefined
  chunks: ReadonlyArray<{ id: string; index: number; start: number; end: number }>
}

export interface SchedulerOptions {
  /** Lease length from when it is given or renewed. Default 15 000 ms. */
  leaseMs?: number
  /** Failed attempts after which a chunk (and its job) is failed. Default 3. */
  maxAttempts?: number
  /** Failures of a job's chunks after which a node gets no more of that job. Default 2. */
  maxFailuresPerNode?: number
  /** Lease tokens; must be unique. Default crypto.randomUUID. */
  token?: () => string
  /** A chunk is a straggler only after running this long. Default 10 000 ms. */
  speculateAfterMs?: number
  /** ... and when its projected time is over this many times its node's benchmark prediction. Default 2. */
  slowFactor?: number
  /** Tail placement (see the header): pass over a slow free node at the end of the queue when faster nodes would finish the work sooner. Default false. */
  tailHold?: boolean
  /** Tail backups (see the header): at a job's tail, back up any chunk a free node would finish well before its holder, not only stragglers. Default false. */
  tailBackups?: boolean
  /** Splitting at lease time (see the header). Default off. */
  split?: SplitOptions
}

export interface SplitOptions {
  /** No piece shorter than this much of its node's time (per-chunk start-up is paid once per piece). */
  minMs: number
  /** The id of a piece [start, end) of a job: the same range must always get the same id, and no planned chunk may have it. */
  id: (jobId: string, start: number, end: number) => string
}

/** A chunk cut at lease time: `from` is gone, `into` (in frame order) replaces it. */
export interface Split { jobId: string; from: string; into: [{ id: string; index: number; start: number; end: number }, { id: string; index: number; start: number; end: number }] }

export class SchedulerError extends Error {
  override readonly name = 'SchedulerError'
}

interface Chunk extends SchedChunk {
  /** Every lease ever given for this chunk (late results are accepted from any). */
  history: Array<{ token: string; node: string }>
  /** The token whose result made the chunk done. */
  doneToken?: string | undefined
}
interface Job extends Omit<SchedJob, 'chunks'> { chunks: Chunk[] }
interface Issued {
  job: Job
  chunk: Chunk
  node: string
  /** The job fps the node's benchmark promised when this lease was given (pace samples compare progress with it). */
  benchFps?: number
}

/** A node's job fps for this job by its benchmark alone (0 without one). */
function benchFps (n: SchedNode, j: Job): number {
  const f = n.fps[j.preset]
  return f !== undefined && Number.isFinite(f) && f > 0 ? f * j.fpsScale : 0
}

const RANK: Record<Priority, number> = { urgent: 0, high: 1, normal: 2, low: 3 }
const FORMAT = 'renderswarm.scheduler/1'

/** A lease's progress says something about its node's pace once it has run this long (start-up is most of a shorter one). */
export const PACE_AFTER_MS = 2000
/** Paces are kept within these bounds (a node 20× off its benchmark is as good as stopped; 4× over it is a benchmark taken under load). */
const PACE_MIN = 0.05
const PACE_MAX = 4

/** Tail placement: a faster node must finish a chunk this many times sooner for a slower free node to be passed over. */
const TAIL_MARGIN = 1.1
/** Splitting: the runtime's floor on a piece, in its node's time (per-chunk start-up is about 0.3 s; docs/benchmarks.md). */
export const DEFAULT_SPLIT_MIN_MS = 4000
/** Splitting: a piece is about the drain time over this (guided self-scheduling; bench/sim: 2 left 1,000 × 10 at 1.68 × LB, 3 gives 1.41, 4 gives 1.32 but 1,000 × 100 1.093). */
const SPLIT_SHARE = 3
/** Splitting: a node's first piece (its pace unknown) is at most this many times split.minMs. */
const PROBATION = 2
/** The open work behind the drain time is summed again after this long (ms of the caller's clock). */
const WORK_TTL_MS = 1000
/** Splitting: a job with this many chunks is not cut further (a job record holds at most 100,000). */
const SPLIT_MAX_CHUNKS = 20_000
/** Splitting: only a chunk this many times the piece it would leave is cut (a small remainder is not worth a second start-up). */
const SPLIT_SLACK = 1.5
const cmpStr = (a: string, b: string): number => a < b ? -1 : a > b ? 1 : 0
const deadlineOf = (j: Job): number => j.deadlineMs ?? Number.POSITIVE_INFINITY
const sameClass = (a: Job, b: Job): boolean => a.priority === b.priority && deadlineOf(a) === deadlineOf(b)
function byOrder (a: Job, b: Job): number {
  if (a.priority !== b.priority) return RANK[a.priority] - RANK[b.priority]
  const da = deadlineOf(a); const db = deadlineOf(b)
  if (da !== db) return da < db ? -1 : 1
  return a.createdMs - b.createdMs || cmpStr(a.id, b.id)
}

/** Job status, derived from its chunks. */
function statusOf (job: Job): JobStatus {
  let done = 0
  let started = false
  for (const c of job.chunks) {
    switch (c.status) {
      case 'failed': return 'failed'
      case 'done': done++; started = true; break
      case 'leased': started = true; break
      case 'queued': break
    }
  }
  return done === job.chunks.length ? 'done' : started ? 'running' : 'queued'
}

function copyChunk (c: Chunk): SchedChunk {
  const { history: _h, doneToken: _d, ...rest } = c
  return { ...rest, failedOn: [...c.failedOn], ...(c.backup !== undefined ? { backup: { ...c.backup } } : {}) }
}
function copyJob (j: Job): SchedJob {
  return { ...j, encoders: [...j.encoders], chunks: j.chunks.map(copyChunk) }
}
function leaseOf (job: Job, c: Chunk): Lease {
  return { jobId: job.id, chunkId: c.id, index: c.index, start: c.start, end: c.end, node: c.node!, term: c.term!, leaseToken: c.leaseToken!, expiresAt: c.leaseExpiresMs! }
}
function backupLeaseOf (job: Job, c: Chunk, b: Backup): Lease {
  return { jobId: job.id, chunkId: c.id, index: c.index, start: c.start, end: c.end, node: b.node, term: b.term, leaseToken: b.leaseToken, expiresAt: b.leaseExpiresMs }
}
/** Live leases of a chunk, the primary first. */
function liveLeases (job: Job, c: Chunk): Lease[] {
  if (c.status !== 'leased') return []
  return c.backup === undefined ? [leaseOf(job, c)] : [leaseOf(job, c), backupLeaseOf(job, c, c.backup)]
}
function positiveInt (name: string, v: number | undefined, dflt: number): number {
  const x = v ?? dflt
  if (!Number.isInteger(x) || x < 1) throw new SchedulerError(`${name} must be a whole number ≥ 1 (got ${x})`)
  return x
}

export class Scheduler {
  readonly leaseMs: number
  readonly maxAttempts: number
  readonly maxFailuresPerNode: number
  readonly speculateAfterMs: number
  readonly slowFactor: number
  readonly tailHold: boolean
  readonly tailBackups: boolean
  readonly split: SplitOptions | undefined
  private readonly token: () => string
  /** Splits made since the last takeSplits(). */
  private splits: Split[] = []
  /** Open work per preset (reference frames) as last summed, and when (drainPlan). */
  private work: { atMs: number; byPreset: Map<string, number> } | undefined
  private readonly byId = new Map<string, Job>()
  private readonly issued = new Map<string, Issued>()
  /** Each node's observed pace: its progress rate over what its benchmark promised, from its latest lease that ran PACE_AFTER_MS (see the header). */
  private readonly paces = new Map<string, number>()

  constructor (opts: SchedulerOptions = {}) {
    this.leaseMs = positiveInt('leaseMs', opts.leaseMs, 15_000)
    this.maxAttempts = positiveInt('maxAttempts', opts.maxAttempts, 3)
    this.maxFailuresPerNode = positiveInt('maxFailuresPerNode', opts.maxFailuresPerNode, 2)
    this.token = opts.token ?? randomUUID
    this.speculateAfterMs = opts.speculateAfterMs ?? 10_000
    this.slowFactor = opts.slowFactor ?? 2
    this.tailHold = opts.tailHold === true
    this.tailBackups = opts.tailBackups === true
    this.split = opts.split
    if (this.split !== undefined && !(Number.isFinite(this.split.minMs) && this.split.minMs > 0)) throw new SchedulerError(`split.minMs must be a positive number of milliseconds (got ${this.split.minMs})`)
    if (!(this.speculateAfterMs >= 0) || !(this.slowFactor >= 1)) throw new SchedulerError(`speculateAfterMs must be ≥ 0 and slowFactor ≥ 1 (got ${this.speculateAfterMs}, ${this.slowFactor})`)
  }

  /** Adds a job with all its chunks queued. Throws on a duplicate id or a malformed job. */
  addJob (input: JobInput): void {
    const what = `adding job "${String(input.id).slice(0, 64)}"`
    if (typeof input.id !== 'string' || input.id === '') throw new SchedulerError(`${what}: the id must be a non-empty string`)
    if (this.byId.has(input.id)) throw new SchedulerError(`${what}: a job with this id already exists`)
    if (!(PRIORITIES as readonly string[]).includes(input.priority)) throw new SchedulerError(`${what}: unknown priority "${String(input.priority)}"; choose one of ${PRIORITIES.join(', ')}`)
    if (!Number.isFinite(input.createdMs)) throw new SchedulerError(`${what}: createdMs must be a number`)
    if (input.deadlineMs !== undefined && !Number.isFinite(input.deadlineMs)) throw new SchedulerError(`${what}: deadlineMs must be a number`)
    if (input.encoders.length === 0) throw new SchedulerError(`${what}: no encoders given, so no node could render it`)
    if (input.chunks.length === 0) throw new SchedulerError(`${what}: it has no chunks`)
    if (input.fpsScale !== undefined && !(Number.isFinite(input.fpsScale) && input.fpsScale > 0)) throw new SchedulerError(`${what}: fpsScale must be a positive number`)
    if (input.align !== undefined && !(Number.isInteger(input.align) && input.align >= 1)) throw new SchedulerError(`${what}: align must be a whole number ≥ 1`)
    const ids = new Set<string>()
    const indices = new Set<number>()
    for (const c of input.chunks) {
      if (typeof c.id !== 'string' || c.id === '' || ids.has(c.id)) throw new SchedulerError(`${what}: chunk ids must be non-empty and unique (got "${String(c.id)}")`)
      if (!Number.isInteger(c.index) || c.index < 0 || indices.has(c.index)) throw new SchedulerError(`${what}: chunk indices must be unique whole numbers ≥ 0 (got ${c.index})`)
      if (!Number.isInteger(c.start) || !Number.isInteger(c.end) || c.start < 0 || c.end <= c.start) throw new SchedulerError(`${what}: chunk "${c.id}" must span whole frames with start < end (got [${c.start}, ${c.end}))`)
      ids.add(c.id); indices.add(c.index)
    }
    // In frame order (a split piece's index is only unique, not in order), and not overlapping.
    const sorted = [...input.chunks].sort((a, b) => a.start - b.start)
    for (let i = 1; i < sorted.length; i++) if (sorted[i]!.start < sorted[i - 1]!.end) throw new SchedulerError(`${what}: chunks "${sorted[i - 1]!.id}" and "${sorted[i]!.id}" overlap`)
    const chunks: Chunk[] = sorted.map((c) => ({
      id: c.id, jobId: input.id, index: c.index, start: c.start, end: c.end, status: 'queued', attempts: 0, framesDone: 0, failedOn: [], history: []
    }))
    this.work = undefined
    this.byId.set(input.id, {
      id: input.id, priority: input.priority, deadlineMs: input.deadlineMs, createdMs: input.createdMs, preset: input.preset,
      encoders: [...input.encoders], needsGpu: input.needsGpu, paused: input.paused === true, fpsScale: input.fpsScale ?? 1, align: input.align ?? 1, chunks
    })
  }

  /** Cancels a job: forgets it and returns its live leases, so the caller can stop those nodes. */
  removeJob (jobId: string): Lease[] {
    const job = this.byId.get(jobId)
    if (job === undefined) return []
    const live = job.chunks.flatMap((c) => liveLeases(job, c))
    for (const c of job.chunks) for (const h of c.history) this.issued.delete(h.token)
    this.byId.delete(jobId)
    this.work = undefined
    return live
  }

  job (jobId: string): SchedJob | undefined {
    const j = this.byId.get(jobId)
    return j === undefined ? undefined : copyJob(j)
  }

  /** Copies of every job, in scheduling order (fair sharing within a class aside). */
  jobs (): SchedJob[] {
    return this.ordered().map(copyJob)
  }

  /** Live leases, optionally of one job or on one node. */
  leases (filter: { jobId?: string; node?: string } = {}): Lease[] {
    const out: Lease[] = []
    for (const job of this.ordered()) {
      if (filter.jobId !== undefined && job.id !== filter.jobId) continue
      for (const c of job.chunks) for (const l of liveLeases(job, c)) if (filter.node === undefined || l.node === filter.node) out.push(l)
    }
    return out
  }

  /**
   * Hands out as many new leases as free slots allow, by the rules above. Leases that have
   * run out still hold their slot until `expire` sweeps them, so call that first.
   */
  assign (nodes: readonly SchedNode[], term: number, nowMs: number): Lease[] {
    if (!Number.isInteger(term) || term < 0) throw new SchedulerError(`assigning chunks: term must be a whole number ≥ 0 (got ${term})`)
    if (!Number.isFinite(nowMs)) throw new SchedulerError(`assigning chunks: nowMs must be a number (got ${nowMs})`)
    const free = this.freeSlots(nodes, 'assigning chunks')
    // Only nodes with a free slot can take a chunk; a farm of 1,000 busy nodes has few per call.
    const open = nodes.filter((n) => free.get(n.peerId)! >= 1)
    if (open.length === 0) return []
    // One pass over each job's chunks: failed or not, anything queued, live leases, failures per node.
    const order: Job[] = []
    const live = new Map<string, number>()
    const excluded = new Map<string, Set<string>>()
    for (const j of this.ordered()) {
      if (j.paused) continue
      let queued = false; let failed = false; let leased = 0; let failures = false
      for (const c of j.chunks) {
        if (c.status === 'queued') queued = true
        else if (c.status === 'leased') leased++
        else if (c.status === 'failed') failed = true
        if (c.failedOn.length > 0) failures = true
      }
      if (failed || !queued) continue
      order.push(j)
      live.set(j.id, leased)
      excluded.set(j.id, failures ? this.excludedNodes(j) : new Set())
    }
    // Nothing goes back to the queue during assign, so each job's next queued chunk only moves forward.
    const cursor = new Map(order.map((j) => [j.id, 0]))
    const nextQueued = (j: Job): Chunk | undefined => {
      let i = cursor.get(j.id)!
      while (i < j.chunks.length && j.chunks[i]!.status !== 'queued') i++
      cursor.set(j.id, i)
      return j.chunks[i]
    }
    const fpsOf = (n: SchedNode, j: Job): number => { const f = n.fps[j.preset]; return f !== undefined && Number.isFinite(f) ? f * this.pace(n.peerId) : 0 }
    // Free nodes fastest first for each preset (then peerId): the first eligible one is the best.
    const sorted = new Map<string, SchedNode[]>()
    const byPreset = (j: Job): SchedNode[] => {
      let l = sorted.get(j.preset)
      if (l === undefined) {
        const f = (n: SchedNode): number => fpsOf(n, j)
        l = [...open].sort((a, b) => f(b) - f(a) || cmpStr(a.peerId, b.peerId))
        sorted.set(j.preset, l)
      }
      return l
    }
    const eligible = (n: SchedNode, j: Job): boolean => !excluded.get(j.id)!.has(n.peerId) && (!j.needsGpu || n.gpu) && j.encoders.some((e) => n.encoders.includes(e))
    const held = new Map<string, Set<string>>()
    // Within one call a node only ever drops out for a job (its slots fill, the job holds it back;
    // eligibility does not change), so each job's scan of the sorted nodes resumes where it stopped:
    // at the end of a big farm's queue, with most nodes free and held back, rescanning from the
    // start for every pick cost seconds per call.
    const nodeAt = new Map<string, number>()
    const bestNode = (j: Job): SchedNode | undefined => {
      const h = held.get(j.id)
      const list = byPreset(j)
      let i = nodeAt.get(j.id) ?? 0
      while (i < list.length && (free.get(list[i]!.peerId)! < 1 || h?.has(list[i]!.peerId) === true || !eligible(list[i]!, j))) i++
      nodeAt.set(j.id, i)
      return list[i]
    }
    const { drainOf, capacityOf } = this.drainPlan(nodes, nowMs)
    const tail = this.tailHold ? this.tailPlan(nodes, free, nowMs, drainOf) : undefined
    const out: Lease[] = []
    for (;;) {
      let pick: { job: Job; chunk: Chunk; node: SchedNode } | undefined
      // Walk the classes in order; within the first class that can use a free slot, the job
      // with the fewest live leases wins (ties: the earlier in order, i.e. the older).
      for (let i = 0; i < order.length && pick === undefined;) {
        let k = i
        while (k < order.length && sameClass(order[i]!, order[k]!)) k++
        for (let x = i; x < k; x++) {
          const job = order[x]!
          if (pick !== undefined && live.get(job.id)! >= live.get(pick.job.id)!) continue
          const chunk = nextQueued(job)
          const node = chunk === undefined ? undefined : bestNode(job)
          if (chunk !== undefined && node !== undefined) pick = { job, chunk, node }
        }
        i = k
      }
      if (pick === undefined) return out
      const { job, node } = pick
      let chunk = pick.chunk
      if (tail !== undefined && tail.holdBack(job, chunk, node, (m) => m.peerId !== node.peerId && eligible(m, job))) {
        // Every chunk this job has left goes sooner to a faster node once it frees up.
        let h = held.get(job.id)
        if (h === undefined) { h = new Set(); held.set(job.id, h) }
        h.add(node.peerId)
        continue
      }
      // A node with the farm to itself (the rest of it slower than it alone) keeps whole chunks: the
      // rest of a cut chunk would wait for it anyway.
      if (this.split !== undefined && chunk.history.length === 0 && capacityOf(job.preset) >= 2 * fpsOf(node, job)) {
        const cut = this.cutAt(job, chunk, fpsOf(node, job) * job.fpsScale, drainOf(job.preset), this.paces.has(node.peerId))
        if (cut !== undefined) pick.chunk = chunk = this.splitChunk(job, chunk, cut)
      }
      const token = this.token()
      if (typeof token !== 'string' || token === '' || this.issued.has(token)) throw new SchedulerError(`assigning chunk ${chunk.id} of job ${job.id}: the token function returned an empty or reused token`)
      Object.assign(chunk, { status: 'leased', node: node.peerId, leaseToken: token, leaseExpiresMs: nowMs + this.leaseMs, term, framesDone: 0, leasedMs: nowMs })
      chunk.history.push({ token, node: node.peerId })
      this.issued.set(token, { job, chunk, node: node.peerId, benchFps: benchFps(node, job) })
      free.set(node.peerId, free.get(node.peerId)! - 1)
      live.set(job.id, live.get(job.id)! + 1)
      tail?.leased(job, chunk, node)
      out.push(leaseOf(job, chunk))
    }
  }

  /**
   * Tail placement (option tailHold; see the header). Work left and speeds are in reference
   * frames: a chunk of f frames takes f / (fps × fpsScale) seconds on a node. Computed once per
   * `assign`, lazily: the farm's drain time per preset (open work / the accepting nodes' summed
   * fps) and, for every busy node, when it should be free (its earliest-ending lease, from the
   * rate its progress shows, else its benchmark).
   */
  private tailPlan (nodes: readonly SchedNode[], free: Map<string, number>, nowMs: number, drainOf: (preset: string) => number): { holdBack: (job: Job, chunk: Chunk, node: SchedNode, alt: (m: SchedNode) => boolean) => boolean; leased: (job: Job, chunk: Chunk, node: SchedNode) => void } {
    const byId = new Map(nodes.map((n) => [n.peerId, n]))
    const fps = (n: SchedNode | undefined, j: Job): number => n === undefined ? 0 : benchFps(n, j) * this.pace(n.peerId)
    let freeAt: Map<string, number> | undefined
    /** Chunks queued in all jobs when the first verdict was reached, those leased in this call since, and verdicts reached in this call. */
    let queued: number | undefined
    let leasedHere = 0
    const verdict = new Map<string, boolean>()
    const init = (): Map<string, number> => {
      if (freeAt !== undefined) return freeAt
      freeAt = new Map()
      for (const job of this.byId.values()) {
        for (const c of job.chunks) {
          if (c.status !== 'leased') continue
          const leases: Array<{ node: string; leasedMs: number | undefined; framesDone: number }> = [{ node: c.node!, leasedMs: c.leasedMs, framesDone: c.framesDone }]
          if (c.backup !== undefined) leases.push(c.backup)
          for (const l of leases) {
            const elapsed = Math.max(0, (nowMs - (l.leasedMs ?? nowMs)) / 1000)
            const v = fps(byId.get(l.node), job)
            const left = c.end - c.start - l.framesDone
            const s = l.framesDone > 0 && elapsed > 0 ? left * elapsed / l.framesDone : v > 0 ? Math.max(0, (c.end - c.start) / v - elapsed) : Number.POSITIVE_INFINITY
            freeAt.set(l.node, Math.min(freeAt.get(l.node) ?? Number.POSITIVE_INFINITY, s))
          }
        }
      }
      return freeAt
    }
    // Busy nodes: the faster of them may take the work a slow free node is passed over for.
    let busy: SchedNode[] | undefined
    return {
      holdBack: (job, chunk, node, alt) => {
        const frames = chunk.end - chunk.start
        const v = fps(node, job)
        const t = v > 0 ? frames / v : Number.POSITIVE_INFINITY
        if (!(t > drainOf(job.preset))) return false
        if (queued === undefined) {
          queued = 0
          for (const j of this.byId.values()) if (!j.paused) for (const c of j.chunks) if (c.status === 'queued') queued++
        }
        const queuedLeft = queued - leasedHere
        const at = init()
        // Busy: a slot of its own and every slot taken (a node with no slots, an owner's workstation
        // that does not render, is never going to take the work).
        busy ??= nodes.filter((m) => m.slots >= 1 && free.get(m.peerId)! < 1 && m.accepting && !m.paused)
        const key = `${node.peerId}|${frames}|${job.preset}|${job.fpsScale}`
        const known = verdict.get(key)
        if (known !== undefined) return known
        // How many chunks of this size the faster busy nodes can finish, each after the work it
        // has, before this node would finish one (with the margin). If that covers every queued
        // chunk, this node is not needed now.
        const by = t / TAIL_MARGIN
        let room = 0
        for (const m of busy) {
          const vm = fps(m, job)
          if (vm <= v || !alt(m)) continue
          const left = by - (at.get(m.peerId) ?? 0)
          if (left > 0) room += Math.floor(left * vm / frames)
          if (room >= queuedLeft) break
        }
        const hold = room >= queuedLeft
        verdict.set(key, hold)
        return hold
      },
      leased: (job, chunk, node) => {
        if (queued !== undefined) leasedHere++
        if (freeAt === undefined) return
        const v = fps(node, job)
        if (free.get(node.peerId)! < 1) {
          freeAt.set(node.peerId, Math.min(freeAt.get(node.peerId) ?? Number.POSITIVE_INFINITY, v > 0 ? (chunk.end - chunk.start) / v : Number.POSITIVE_INFINITY))
          busy?.push(node)
        }
      }
    }
  }

  /**
   * The farm's drain time per preset, worked out lazily once per `assign`: the open work (queued,
   * and what leased chunks have left) of unpaused jobs, in reference frames, over the summed
   * fps (benchmark × pace) of the accepting nodes. Leases given in the same call do not change it.
   */
  private drainPlan (nodes: readonly SchedNode[], nowMs: number): { drainOf: (preset: string) => number; capacityOf: (preset: string) => number } {
    let drain: Map<string, number> | undefined
    const capacity = new Map<string, number>()
    const drainOf = (preset: string): number => {
      if (drain === undefined) {
        drain = new Map()
        // The open work is summed over every chunk: at most once per WORK_TTL_MS (a coordinator
        // of a big farm assigns on every result), and again when jobs come, go, pause or resume.
        let work = this.work?.atMs !== undefined && nowMs - this.work.atMs < WORK_TTL_MS && nowMs >= this.work.atMs ? this.work.byPreset : undefined
        if (work === undefined) {
          work = new Map()
          for (const job of this.byId.values()) {
            if (job.paused) continue
            let w = 0
            for (const c of job.chunks) if (c.status === 'queued' || c.status === 'leased') w += c.end - c.start - c.framesDone
            work.set(job.preset, (work.get(job.preset) ?? 0) + w / job.fpsScale)
          }
          this.work = { atMs: nowMs, byPreset: work }
        }
        for (const [p, w] of work) {
          let cap = 0
          for (const n of nodes) { const f = n.fps[p]; if (n.accepting && !n.paused && n.slots >= 1 && f !== undefined && Number.isFinite(f) && f > 0) cap += f * this.pace(n.peerId) }
          drain.set(p, cap > 0 ? w / cap : Number.POSITIVE_INFINITY)
          capacity.set(p, cap)
        }
      }
      return drain.get(preset) ?? Number.POSITIVE_INFINITY
    }
    return { drainOf, capacityOf: (preset) => { drainOf(preset); return capacity.get(preset) ?? 0 } }
  }

  /**
   * Where to cut a chunk about to be leased to a node rendering `v` job frames a second (see
   * Splitting in the header): after about half the drain time's worth of its frames, at least
   * split.minMs' worth, on the align grid; undefined when the chunk is not half as long again.
   */
  private cutAt (job: Job, chunk: Chunk, v: number, drainS: number, paced: boolean): number | undefined {
    const frames = chunk.end - chunk.start
    if (!(v > 0) || !Number.isFinite(drainS) || job.chunks.length >= SPLIT_MAX_CHUNKS) return undefined
    const minS = this.split!.minMs / 1000
    // A node whose pace is not known yet (its first lease) may be far slower than its benchmark
    // (a workstation in use): a short piece first, sized properly once its progress shows its pace.
    const targetS = Math.max(minS, Math.min(drainS / SPLIT_SHARE, paced ? Number.POSITIVE_INFINITY : minS * PROBATION))
    if (frames / v < targetS * SPLIT_SLACK) return undefined
    const a = job.align
    // Cuts on the grid counted from frame 0 (the keyframes), inside the chunk by at least one step.
    const cut = Math.round((chunk.start + targetS * v) / a) * a
    const first = Math.ceil((chunk.start + 1) / a) * a
    const last = Math.floor((chunk.end - 1) / a) * a
    if (first > last) return undefined
    return Math.min(last, Math.max(first, cut))
  }

  /** Replaces a queued chunk by its two pieces, in place; returns the first. */
  private splitChunk (job: Job, chunk: Chunk, cut: number): Chunk {
    const at = job.chunks.indexOf(chunk)
    let index = 0
    for (const c of job.chunks) index = Math.max(index, c.index + 1)
    const piece = (start: number, end: number, i: number): Chunk => {
      const id = this.split!.id(job.id, start, end)
      if (typeof id !== 'string' || id === '' || job.chunks.some((c) => c.id === id)) throw new SchedulerError(`splitting chunk ${chunk.id} of job ${job.id}: the id function returned an empty or existing id "${String(id)}"`)
      return { id, jobId: job.id, index: i, start, end, status: 'queued', attempts: chunk.attempts, framesDone: 0, failedOn: [...chunk.failedOn], history: [] }
    }
    const a = piece(chunk.start, cut, index)
    const b = piece(cut, chunk.end, index + 1)
    job.chunks.splice(at, 1, a, b)
    this.splits.push({ jobId: job.id, from: chunk.id, into: [{ id: a.id, index: a.index, start: a.start, end: a.end }, { id: b.id, index: b.index, start: b.start, end: b.end }] })
    return a
  }

  /** The chunks split since the last call, oldest first (the caller applies them to its job records). */
  takeSplits (): Split[] {
    const out = this.splits
    this.splits = []
    return out
  }

  /**
   * Backup leases for stragglers (see the header). Call after `assign`, so queued work always
   * goes first: only jobs with no queued chunk are looked at. A leased chunk is a straggler
   * once it has run `speculateAfterMs` and its projected time (from its progress so far) is over
   * `slowFactor` × what its node's benchmark predicts; it gets a backup on the fastest idle
   * eligible node only if that node should finish a fresh copy before the straggler finishes.
   */
  speculate (nodes: readonly SchedNode[], term: number, nowMs: number): Lease[] {
    if (!Number.isInteger(term) || term < 0) throw new SchedulerError(`speculating: term must be a whole number ≥ 0 (got ${term})`)
    const free = this.freeSlots(nodes, 'speculating')
    const out: Lease[] = []
    // A backup needs a free slot; a busy farm has none to offer, whatever its jobs' state.
    if (![...free.values()].some((k) => k >= 1)) return out
    const byId = new Map(nodes.map((n) => [n.peerId, n]))
    for (const job of this.ordered()) {
      if (job.paused || statusOf(job) !== 'running' || job.chunks.some((c) => c.status === 'queued')) continue
      const excluded = this.excludedNodes(job)
      const speed = (peerId: string): number => {
        const n = byId.get(peerId)
        return n === undefined ? 0 : benchFps(n, job)
      }
      /** What a backup node is expected to do: its benchmark at the pace it has shown. */
      const expected = (peerId: string): number => speed(peerId) * this.pace(peerId)
      // The free nodes that may render this job, fastest (benchmark × pace) first; worked out once per job.
      let candidates: Array<{ n: SchedNode; v: number }> | undefined
      for (const c of job.chunks) {
        if (c.status !== 'leased' || c.backup !== undefined || c.leasedMs === undefined) continue
        const elapsed = nowMs - c.leasedMs
        const frames = c.end - c.start
        let remaining: number
        if (this.tailBackups) {
          // From its progress once that says something, else from its holder's benchmark at its pace.
          const measured = elapsed >= PACE_AFTER_MS && c.framesDone > 0
          const rate = measured ? c.framesDone / (elapsed / 1000) : expected(c.node!)
          remaining = rate > 0 ? (frames - c.framesDone) / rate - (measured ? 0 : elapsed / 1000) : Number.POSITIVE_INFINITY
        } else {
          if (elapsed < this.speculateAfterMs) continue
          const rate = c.framesDone / (elapsed / 1000) // frames per second so far
          remaining = rate > 0 ? (frames - c.framesDone) / rate : Number.POSITIVE_INFINITY
          const predicted = speed(c.node!) > 0 ? frames / speed(c.node!) : undefined
          if (predicted === undefined || elapsed / 1000 + remaining <= this.slowFactor * predicted) continue
        }
        candidates ??= nodes
          .filter((n) => (free.get(n.peerId) ?? 0) >= 1 && !excluded.has(n.peerId) && (!job.needsGpu || n.gpu) && job.encoders.some((e) => n.encoders.includes(e)))
          .map((n) => ({ n, v: expected(n.peerId) }))
          .sort((a, b) => b.v - a.v || cmpStr(a.n.peerId, b.n.peerId))
        let best: { n: SchedNode; v: number } | undefined
        for (const x of candidates) {
          if (x.n.peerId !== c.node && free.get(x.n.peerId)! >= 1) { best = x; break }
        }
        if (best === undefined || best.v <= 0) continue
        // The copy must be expected to win with room to spare, or it only burns a machine.
        if (frames / best.v * 1.25 >= remaining) continue
        const bestNode = best.n
        const token = this.token()
        if (typeof token !== 'string' || token === '' || this.issued.has(token)) throw new SchedulerError(`speculating on chunk ${c.id}: the token function returned an empty or reused token`)
        c.backup = { node: bestNode.peerId, leaseToken: token, leaseExpiresMs: nowMs + this.leaseMs, term, leasedMs: nowMs, framesDone: 0 }
        c.history.push({ token, node: bestNode.peerId })
        this.issued.set(token, { job, chunk: c, node: bestNode.peerId, benchFps: speed(bestNode.peerId) })
        free.set(bestNode.peerId, free.get(bestNode.peerId)! - 1)
        out.push(backupLeaseOf(job, c, c.backup))
      }
    }
    return out
  }

  /** A node's observed pace (1 until a lease of it has run PACE_AFTER_MS with progress). */
  pace (peerId: string): number {
    return this.paces.get(peerId) ?? 1
  }

  /** Progress on a lease that has run long enough: the node's pace is its rate over its benchmark's promise. */
  private sample (hit: Issued, leasedMs: number | undefined, framesDone: number, nowMs: number): void {
    if (hit.benchFps === undefined || !(hit.benchFps > 0) || leasedMs === undefined || framesDone <= 0) return
    const elapsed = nowMs - leasedMs
    if (!(elapsed >= PACE_AFTER_MS)) return
    const pace = framesDone / (elapsed / 1000) / hit.benchFps
    this.paces.set(hit.node, Math.min(PACE_MAX, Math.max(PACE_MIN, pace)))
  }

  /** Progress on a live lease: extends it to now + leaseMs. False when the token is not live. */
  renew (leaseToken: string, nowMs: number, framesDone?: number): boolean {
    const hit = this.issued.get(leaseToken)
    if (hit === undefined) return false
    const c = hit.chunk
    const frames = (): number | undefined => framesDone !== undefined && Number.isFinite(framesDone) ? Math.min(c.end - c.start, Math.max(0, Math.floor(framesDone))) : undefined
    if (c.status === 'leased' && c.backup?.leaseToken === leaseToken && nowMs < c.backup.leaseExpiresMs) {
      const before = c.backup.framesDone
      c.backup.leaseExpiresMs = Math.max(c.backup.leaseExpiresMs, nowMs + this.leaseMs)
      c.backup.framesDone = frames() ?? c.backup.framesDone
      if (c.backup.framesDone > before) this.sample(hit, c.backup.leasedMs, c.backup.framesDone, nowMs)
      return true
    }
    if (c.status !== 'leased' || c.leaseToken !== leaseToken || !(nowMs < c.leaseExpiresMs!)) return false
    const before = c.framesDone
    c.leaseExpiresMs = Math.max(c.leaseExpiresMs!, nowMs + this.leaseMs)
    c.framesDone = frames() ?? c.framesDone
    // Only new frames say how fast the node renders: a renewal that keeps a lease alive while
    // media is fetched or the segment is handed over (agent/worker.ts) is not a pace sample.
    if (c.framesDone > before) this.sample(hit, c.leasedMs, c.framesDone, nowMs)
    return true
  }

  /**
   * A chunk's result. 'done' when accepted (from the current lease, or a late one from an
   * earlier lease of this chunk while it is not done yet: any holder of the chunk since is
   * refused from then on); 'duplicate' when the same lease reports again; 'stale' when the
   * token was never given for this chunk, another lease's result was taken, or the chunk failed.
   */
  complete (chunkId: string, leaseToken: string): 'done' | 'duplicate' | 'stale' {
    const hit = this.issued.get(leaseToken)
    if (hit === undefined || hit.chunk.id !== chunkId) return 'stale'
    const c = hit.chunk
    if (c.status === 'done') return c.doneToken === leaseToken ? 'duplicate' : 'stale'
    if (c.status === 'failed') return 'stale'
    Object.assign(c, { status: 'done', node: hit.node, doneToken: leaseToken, leaseToken: undefined, leaseExpiresMs: undefined, term: undefined, framesDone: c.end - c.start, backup: undefined })
    return 'done'
  }

  /**
   * A worker reports that its lease failed. 'requeued', or 'failed' when the chunk has now
   * failed maxAttempts times (its job is then failed); 'stale' when the token is not the
   * chunk's current lease. A report after expiresAt but before `expire` swept the lease counts
   * the same (once), so the outcome does not depend on nowMs.
   */
  fail (chunkId: string, leaseToken: string, _nowMs: number): 'requeued' | 'failed' | 'stale' | 'backup-dropped' {
    const hit = this.issued.get(leaseToken)
    if (hit === undefined || hit.chunk.id !== chunkId) return 'stale'
    const c = hit.chunk
    if (c.status === 'leased' && c.backup?.leaseToken === leaseToken) { c.backup = undefined; return 'backup-dropped' }
    if (c.status !== 'leased' || c.leaseToken !== leaseToken) return 'stale'
    return this.retry(c) === 'failed' ? 'failed' : 'requeued'
  }

  /**
   * A lease that never started (the worker refused it or could not be reached): the chunk goes
   * back to the queue with no attempt counted. False when the token is not the chunk's current
   * lease. The same node may be offered the chunk again on the next `assign`; a node that keeps
   * refusing should be reported with `accepting: false` or `paused: true` until it recovers.
   */
  release (chunkId: string, leaseToken: string): boolean {
    const hit = this.issued.get(leaseToken)
    if (hit === undefined || hit.chunk.id !== chunkId || hit.chunk.status !== 'leased') return false
    if (hit.chunk.backup?.leaseToken === leaseToken) { hit.chunk.backup = undefined; return true }
    if (hit.chunk.leaseToken !== leaseToken) return false
    this.requeueOrPromote(hit.chunk)
    return true
  }

  /**
   * Marks a chunk done without a lease: a chunk finished under an earlier coordinator (when
   * rebuilding from job records), or one whose segment the owner already holds. A live lease on
   * it ends (the caller tells that node to stop). `jobId` may be left out only when the chunk id
   * is unique across jobs. False when there is no such queued or leased chunk.
   */
  markDone (chunkId: string, jobId?: string): boolean {
    const found: Chunk[] = []
    for (const job of this.byId.values()) {
      if (jobId !== undefined && job.id !== jobId) continue
      for (const c of job.chunks) if (c.id === chunkId) found.push(c)
    }
    if (found.length > 1) throw new SchedulerError(`marking chunk "${chunkId}" done: ${found.length} jobs have a chunk with this id; name the job`)
    const c = found[0]
    if (c === undefined || (c.status !== 'queued' && c.status !== 'leased')) return false
    Object.assign(c, { status: 'done', framesDone: c.end - c.start, leaseToken: undefined, leaseExpiresMs: undefined, term: undefined, backup: undefined })
    return true
  }

  /**
   * A done chunk whose segment was lost (its owner restarted without it): back to the queue, no
   * attempt counted. False when there is no such done chunk.
   */
  reopen (chunkId: string, jobId: string): boolean {
    const c = this.byId.get(jobId)?.chunks.find((x) => x.id === chunkId)
    if (c === undefined || c.status !== 'done') return false
    Object.assign(c, { status: 'queued', node: undefined, doneToken: undefined, framesDone: 0 })
    return true
  }

  /** Sweeps leases with expiresAt ≤ nowMs: each counts as a failure on its node. Returns the chunks (queued or failed). */
  expire (nowMs: number): SchedChunk[] {
    const out: SchedChunk[] = []
    for (const job of this.ordered()) {
      for (const c of job.chunks) {
        if (c.status === 'leased' && c.backup !== undefined && c.backup.leaseExpiresMs <= nowMs) c.backup = undefined
        if (c.status === 'leased' && c.leaseExpiresMs! <= nowMs) { this.retry(c); out.push(copyChunk(c)) }
      }
    }
    return out
  }

  /** A node is gone (dead member, emergency stop): its leases go back to the queue at once, no attempt counted. */
  nodeLost (peerId: string): SchedChunk[] {
    const out: SchedChunk[] = []
    for (const job of this.ordered()) {
      for (const c of job.chunks) {
        if (c.status === 'leased' && c.backup?.node === peerId) c.backup = undefined
        if (c.status !== 'leased' || c.node !== peerId) continue
        this.requeueOrPromote(c)
        out.push(copyChunk(c))
      }
    }
    return out
  }

  /**
   * A paused job keeps its live leases but gets no new ones, and its leases stop counting against
   * their nodes' slots (a job is paused while its owner is offline: its finished chunks only wait
   * on their workers). False when there is no such job.
   */
  pauseJob (jobId: string): boolean { return this.setPaused(jobId, true) }
  resumeJob (jobId: string): boolean { return this.setPaused(jobId, false) }

  /** Live leases on a node. */
  running (peerId: string): number {
    let n = 0
    for (const job of this.byId.values()) for (const c of job.chunks) if (c.status === 'leased') n += (c.node === peerId ? 1 : 0) + (c.backup?.node === peerId ? 1 : 0)
    return n
  }

  /** 'failed' if any chunk failed, 'done' when every chunk is, 'running' once any was leased or done. */
  jobStatus (jobId: string): JobStatus | undefined {
    const j = this.byId.get(jobId)
    return j === undefined ? undefined : statusOf(j)
  }

  /** Plain data for persistence and for a successor coordinator (options are not included). */
  toJSON (): SchedulerSnapshot {
    return {
      format: FORMAT,
      jobs: this.ordered().map((j) => ({ ...copyJob(j), chunks: j.chunks.map((c) => ({ ...copyChunk(c), history: c.history.map((h) => ({ ...h })), doneToken: c.doneToken })) }))
    }
  }

  /** Rebuilds a scheduler from `toJSON()` output; throws SchedulerError on anything else. */
  static fromJSON (data: unknown, opts: SchedulerOptions = {}): Scheduler {
    const parsed = SnapshotSchema.safeParse(data)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      throw new SchedulerError(`loading scheduler state: ${issue === undefined ? 'invalid' : `${issue.path.join('.') || '(root)'}: ${issue.message}`}`)
    }
    const s = new Scheduler(opts)
    for (const j of parsed.data.jobs) {
      const bad = (why: string): never => { throw new SchedulerError(`loading scheduler state: job "${j.id}": ${why}`) }
      try { s.addJob(j) } catch (err) { bad((err as Error).message.replace(/^adding job "[^"]*": /, '')) }
      const job = s.byId.get(j.id)!
      for (const saved of j.chunks) {
        const c = job.chunks.find((x) => x.id === saved.id)!
        const tokens = saved.history.map((h) => h.token)
        if (saved.jobId !== j.id) bad(`chunk "${saved.id}" names job "${saved.jobId}"`)
        if (saved.framesDone > saved.end - saved.start) bad(`chunk "${saved.id}" has more frames done than it spans`)
        const leased = saved.status === 'leased'
        if (leased !== (saved.leaseToken !== undefined) || leased !== (saved.leaseExpiresMs !== undefined) || leased !== (saved.term !== undefined) || (leased && saved.node === undefined)) {
          bad(`chunk "${saved.id}" must have a node, token, expiry and term exactly when it is leased`)
        }
        if (saved.leaseToken !== undefined && !saved.history.some((h) => h.token === saved.leaseToken && h.node === saved.node)) bad(`chunk "${saved.id}": its lease is not in its history`)
        if (saved.backup !== undefined && (!leased || !saved.history.some((h) => h.token === saved.backup!.leaseToken && h.node === saved.backup!.node))) bad(`chunk "${saved.id}": a backup lease on a chunk that is not leased, or not in its history`)
        if (saved.doneToken !== undefined && (saved.status !== 'done' || !tokens.includes(saved.doneToken))) bad(`chunk "${saved.id}": a done token on a chunk that is not done, or not in its history`)
        Object.assign(c, { ...saved, failedOn: [...saved.failedOn], history: saved.history.map((h) => ({ ...h })), ...(saved.backup !== undefined ? { backup: { ...saved.backup } } : {}) })
        for (const h of saved.history) {
          if (s.issued.has(h.token)) bad(`lease token "${h.token}" appears twice`)
          s.issued.set(h.token, { job, chunk: c, node: h.node })
        }
      }
    }
    return s
  }

  private ordered (): Job[] {
    return [...this.byId.values()].sort(byOrder)
  }

  /** Nodes that get no more of this job's chunks (they failed them maxFailuresPerNode times). */
  excluded (jobId: string): string[] {
    const job = this.byId.get(jobId)
    return job === undefined ? [] : [...this.excludedNodes(job)]
  }

  /** Nodes that failed this job's chunks maxFailuresPerNode times. */
  private excludedNodes (job: Job): Set<string> {
    const count = new Map<string, number>()
    for (const c of job.chunks) for (const n of c.failedOn) count.set(n, (count.get(n) ?? 0) + 1)
    return new Set([...count].filter(([, k]) => k >= this.maxFailuresPerNode).map(([n]) => n))
  }

  /** The retry policy: one failed attempt of a leased chunk, charged to its node. */
  private retry (c: Chunk): ChunkStatus {
    c.attempts++
    c.failedOn.push(c.node!)
    if (c.attempts >= this.maxAttempts) {
      Object.assign(c, { status: 'failed', leaseToken: undefined, leaseExpiresMs: undefined, term: undefined, framesDone: 0, backup: undefined })
      return 'failed'
    }
    this.requeueOrPromote(c)
    return c.status
  }

  /** The primary lease ends: its backup (if any) carries on as the chunk's lease; else back to the queue. */
  private requeueOrPromote (c: Chunk): void {
    const b = c.backup
    if (b !== undefined) Object.assign(c, { status: 'leased', node: b.node, leaseToken: b.leaseToken, leaseExpiresMs: b.leaseExpiresMs, term: b.term, leasedMs: b.leasedMs, framesDone: b.framesDone, backup: undefined })
    else Object.assign(c, { status: 'queued', node: undefined, leaseToken: undefined, leaseExpiresMs: undefined, term: undefined, leasedMs: undefined, framesDone: 0 })
  }

  /** Free slots per node: slots − live leases (backups included); 0 when not accepting or paused. */
  private freeSlots (nodes: readonly SchedNode[], what: string): Map<string, number> {
    const held = new Map<string, number>()
    for (const job of this.byId.values()) {
      // A paused job's chunks finish and wait on their nodes (its owner is away) without a slot.
      if (job.paused) continue
      for (const c of job.chunks) {
        if (c.status !== 'leased') continue
        held.set(c.node!, (held.get(c.node!) ?? 0) + 1)
        if (c.backup !== undefined) held.set(c.backup.node, (held.get(c.backup.node) ?? 0) + 1)
      }
    }
    const free = new Map<string, number>()
    for (const n of nodes) {
      if (free.has(n.peerId)) throw new SchedulerError(`${what}: node ${n.peerId} is listed twice`)
      free.set(n.peerId, n.accepting && !n.paused ? Math.floor(n.slots) - (held.get(n.peerId) ?? 0) : 0)
    }
    return free
  }

  private setPaused (jobId: string, paused: boolean): boolean {
    const j = this.byId.get(jobId)
    if (j === undefined) return false
    if (j.paused !== paused) this.work = undefined
    j.paused = paused
    return true
  }
}

const int = z.number().int().nonnegative()
const str = z.string().min(1).max(200)
const ChunkSnapshotSchema = z.object({
  id: str,
  jobId: str,
  index: int,
  start: int,
  end: int,
  status: z.enum(['queued', 'leased', 'done', 'failed']),
  node: str.optional(),
  leaseToken: str.optional(),
  leaseExpiresMs: z.number().finite().optional(),
  term: int.optional(),
  attempts: int,
  framesDone: int,
  failedOn: z.array(str),
  leasedMs: z.number().finite().optional(),
  backup: z.object({ node: str, leaseToken: str, leaseExpiresMs: z.number().finite(), term: int, leasedMs: z.number().finite(), framesDone: int }).strict().optional(),
  history: z.array(z.object({ token: str, node: str }).strict()),
  doneToken: str.optional()
}).strict()
const JobSnapshotSchema = z.object({
  id: str,
  priority: z.enum(PRIORITIES),
  deadlineMs: z.number().finite().optional(),
  createdMs: z.number().finite(),
  preset: z.string().max(200),
  encoders: z.array(str).min(1),
  needsGpu: z.boolean(),
  paused: z.boolean(),
  fpsScale: z.number().positive().finite().optional(),
  align: z.number().int().positive().optional(),
  chunks: z.array(ChunkSnapshotSchema).min(1)
}).strict()
const SnapshotSchema = z.object({ format: z.literal(FORMAT), jobs: z.array(JobSnapshotSchema) }).strict()
export type SchedulerSnapshot = z.infer<typeof SnapshotSchema>
