/**
 * What the simulator compares: the farm (the real Scheduler, planner, chunk sizing and autoscaler,
 * driven the way agent/coordinator.ts and agent/cloud-burst.ts drive them) and two baselines.
 *
 *   farmPolicy({ autoscale })   one tick = renew (progress) → expire → assign → speculate, as the runtime;
 *                               and between ticks, a result or a new job is followed at once by an
 *                               assign pass (agent/coordinator.ts requestTick → leaseFree)
 *   equalSplit()                each job's frames cut into one chunk per node up front
 *   fixedChunks(120)            fixed-size chunks pulled in FIFO order by idle workers (Flamenco, Deadline);
 *                               a worker asks for its next piece as soon as it is free or joins
 *
 * Baselines on failure: a lost node's chunks go to a shared queue that idle nodes pull from (each
 * whole, as a render manager would re-queue a task); nodes that join later take only from it (equal
 * split) or from the queue like everyone else (fixed chunks).
 */
import { DEFAULT_SPLIT_MIN_MS, Scheduler, type Lease, type SchedNode } from '../../coordinator/scheduler.ts'
import { pieceId } from '../../protocol/messages/jobs.ts'
import { planChunks } from '../../coordinator/planner.ts'
import { chunkCount, jobFps } from '../../coordinator/estimate.ts'
import { decide, type ScalerConfig, type ScalerJob, type ScalerNode, type ScalerState, type PendingLaunch } from '../../coordinator/autoscaler.ts'
import { bundledPrices } from '../../coordinator/cloud/prices.ts'
import type { Assignment, Launch, Member, Policy, Running, SimJob } from './engine.ts'

const PRESET = 'h264'
const ENCODER = 'libx264'

export interface FarmOptions {
  /** Target render time of a chunk on a typical node (the runtime's default 30 s). */
  chunkSeconds?: number
  /** The runtime's lease (15 s) and straggler settings (10 s, ×2). */
  leaseMs?: number
  speculateAfterMs?: number
  /** The scheduler's tail placement (coordinator/scheduler.ts tailHold). Default true, as the runtime (decision 38). */
  tailHold?: boolean
  /** The scheduler's tail backups (coordinator/scheduler.ts tailBackups). Default true, as the runtime. */
  tailBackups?: boolean
  /**
   * Chunk count floor. 'share' (the runtime since decision 41, agent/coordinator.ts chunkFloor): the
   * job's share of the farm, nodes × its work / (its work + the work still open), so a job queued
   * behind others is not cut into one piece per node. 'nodes' (before): every usable node gets at
   * least one chunk of each job.
   */
  floor?: 'nodes' | 'share'
  /** Taper (a proposal): the planned chunk size, but the job's last chunks shrink geometrically (×1/1.5) down to one keyframe interval. */
  taper?: boolean
  /** Splitting at lease time (coordinator/scheduler.ts split; the runtime's SPLIT_MIN_MS floor). Default true, as the runtime (decision 41). */
  split?: boolean
  /** Run the autoscaler (agent/cloud-burst.ts: every 10 s) with this config. */
  autoscale?: ScalerConfig | undefined
}

/** The farm as agent/coordinator.ts runs it. */
export function farmPolicy (opts: FarmOptions = {}): Policy {
  let tok = 0
  const sched = new Scheduler({ leaseMs: opts.leaseMs ?? 15_000, speculateAfterMs: opts.speculateAfterMs ?? 10_000, tailHold: opts.tailHold !== false, tailBackups: opts.tailBackups !== false, token: () => `f${++tok}`, ...(opts.split !== false ? { split: { minMs: DEFAULT_SPLIT_MIN_MS, id: pieceId } } : {}) })
  const jobs = new Map<string, SimJob>()
  const ends = new Map<string, number>()
  const refusedUntil = new Map<string, number>()
  const leaseJob = new Map<string, { jobId: string; chunkId: string; node: string }>()
  /** Every lease given per chunk (a straggler and its backup), so a result can stop the other copy. */
  const holders = new Map<string, Set<string>>()
  let open = 0
  // Autoscaler state (agent/cloud-burst.ts).
  let scaler: ScalerState = {}
  let lastScaleMs = -Infinity
  const pending: Array<PendingLaunch & { fps: number }> = []
  const idleSince = new Map<string, number>()
  const prices = bundledPrices()

  // The scheduler's view of the members; rebuilt when the member list changes or a refusal is in force.
  let viewOf: readonly Member[] | undefined
  let view: SchedNode[] = []
  const schedNodes = (now: number, members: readonly Member[]): SchedNode[] => {
    for (const [id, until] of refusedUntil) if (until <= now) refusedUntil.delete(id)
    if (members === viewOf && refusedUntil.size === 0) return view
    viewOf = refusedUntil.size === 0 ? members : undefined
    view = members.map((m) => ({
      peerId: m.id, slots: 1, encoders: [ENCODER], gpu: false, fps: { [PRESET]: m.benchFps }, accepting: (refusedUntil.get(m.id) ?? 0) <= now, paused: false
    }))
    return view
  }
  const leased = (l: Lease): Assignment => {
    leaseJob.set(l.leaseToken, { jobId: l.jobId, chunkId: l.chunkId, node: l.node })
    let h = holders.get(l.chunkId)
    if (h === undefined) { h = new Set(); holders.set(l.chunkId, h) }
    h.add(l.leaseToken)
    return { node: l.node, token: l.leaseToken, jobId: l.jobId, chunkId: l.chunkId, start: l.start, end: l.end }
  }
  const finishIfDone = (jobId: string, now: number): void => {
    if (sched.jobStatus(jobId) !== 'done') return
    ends.set(jobId, now)
    sched.removeJob(jobId)
    open--
  }

  return {
    name: `farm${opts.floor === 'nodes' ? '+nodes' : ''}${opts.split === false ? '−split' : ''}${opts.tailHold === false ? '−tailHold' : ''}${opts.tailBackups === false ? '−tailBackups' : ''}${opts.taper === true ? '+taper' : ''}`,
    submit (job, now, members) {
      // agent/coordinator.ts plan(): chunk count from the live members' job fps, keyframe-aligned ranges.
      const fps = members.map((m) => jobFps(m.benchFps, job.width, job.height)).filter((f) => f > 0)
      // agent/coordinator.ts chunkFloor: the job's share of the nodes, by its work over all open work.
      let floor: number | undefined
      if (opts.floor !== 'nodes' && fps.length > 1) {
        const ref = (j: SimJob, frames: number): number => frames / jobFps(1, j.width, j.height)
        let queued = 0
        for (const j of sched.jobs()) { const spec = jobs.get(j.id)!; for (const c of j.chunks) if (c.status !== 'done') queued += ref(spec, c.end - c.start - c.framesDone) }
        const mine = ref(job, job.frames)
        floor = Math.max(1, Math.min(fps.length, Math.ceil(fps.length * mine / (mine + queued))))
      }
      const count = chunkCount({ frames: job.frames, fpsPerNode: fps, align: job.align, floor, ...(opts.chunkSeconds !== undefined ? { targetChunkSeconds: opts.chunkSeconds } : {}) })
      const ranges = opts.taper === true ? tapered(job.frames, count, job.align) : planChunks(job.frames, count, { align: job.align })
      jobs.set(job.id, job)
      open++
      sched.addJob({
        id: job.id, priority: 'normal', createdMs: job.submitMs, preset: PRESET, encoders: [ENCODER], needsGpu: false,
        fpsScale: jobFps(1, job.width, job.height), align: job.align, ...(job.deadlineMs !== undefined ? { deadlineMs: job.deadlineMs } : {}),
        chunks: ranges.map((r) => ({ id: `${job.id}-${r.index}`, index: r.index, start: r.start, end: r.end }))
      })
    },
    tick (now, members, running) {
      for (const r of running) sched.renew(r.token, now, r.framesDone)
      for (const c of sched.expire(now)) if (c.status === 'failed') throw new Error(`farm: chunk ${c.id} failed ${c.attempts} times`)
      const nodes = schedNodes(now, members)
      const out = [...sched.assign(nodes, 1, now), ...sched.speculate(nodes, 1, now)].map(leased)
      const busy = new Set(running.map((r) => r.node))
      for (const a of out) busy.add(a.node)
      for (const m of members) { if (busy.has(m.id)) idleSince.delete(m.id); else if (!idleSince.has(m.id)) idleSince.set(m.id, now) }
      return out
    },
    // agent/coordinator.ts: a result (chunk-done) and a new job call requestTick, which leases free
    // slots (assign only: expiry, backups and progress stay on the tick). A node that joins and a
    // refused lease wait for the tick.
    dispatch (now, members, why) {
      if (!why.has('result') && !why.has('submit')) return []
      if (open === 0) return []
      return sched.assign(schedNodes(now, members), 1, now).map(leased)
    },
    done (now, _node, token) {
      const l = leaseJob.get(token)
      if (l === undefined) return { accepted: false, stop: [] }
      // The other copy of this chunk (a straggler or its backup), if any, is told to stop.
      const r = sched.complete(l.chunkId, token)
      leaseJob.delete(token)
      if (r !== 'done') return { accepted: false, stop: [] }
      const others = [...(holders.get(l.chunkId) ?? [])].filter((x) => x !== token)
      holders.delete(l.chunkId)
      for (const o of others) leaseJob.delete(o)
      finishIfDone(l.jobId, now)
      return { accepted: true, stop: others }
    },
    lost (_now, node) { sched.nodeLost(node) },
    refused (now, token) {
      const l = leaseJob.get(token)
      if (l === undefined) return
      sched.release(l.chunkId, token)
      leaseJob.delete(token)
      // As sendLease: that node gets no offer for 2 s.
      refusedUntil.set(l.node, now + 2000)
    },
    launches (now, members, running) {
      const c = opts.autoscale
      if (c === undefined || now - lastScaleMs < 10_000) return []
      lastScaleMs = now
      // Launches that have joined are members now.
      const joinedIds = new Set(members.map((m) => m.id))
      for (let i = pending.length - 1; i >= 0; i--) if (now >= pending[i]!.launchedMs + c.bootMs || pending[i]!.ids.every((id) => joinedIds.has(id))) pending.splice(i, 1)
      const busyNodes = new Map<string, number>()
      for (const r of running) busyNodes.set(r.node, (busyNodes.get(r.node) ?? 0) + 1)
      const nodes: ScalerNode[] = members.map((m) => ({
        peerId: m.id, location: m.cloud !== undefined ? 'cloud' : 'lan', fps: { [PRESET]: m.benchFps }, slots: 1, busySlots: busyNodes.get(m.id) ?? 0,
        ...(idleSince.has(m.id) ? { idleSinceMs: idleSince.get(m.id)! } : {}), costPerHour: m.cloud?.costPerHour ?? 0, accepting: true,
        ...(m.cloud !== undefined ? { instanceId: m.cloud.instanceId, provider: 'aws' as const, launchedMs: m.cloud.launchedMs, spot: m.cloud.spot } : {})
      }))
      const sj: ScalerJob[] = []
      for (const j of sched.jobs()) {
        const spec = jobs.get(j.id)!
        sj.push({
          jobId: j.id, framesLeft: j.chunks.reduce((s, ch) => s + (ch.status === 'done' ? 0 : ch.end - ch.start - ch.framesDone), 0), preset: PRESET, width: spec.width, height: spec.height,
          ...(spec.deadlineMs !== undefined ? { deadlineMs: spec.deadlineMs } : {}), priority: 'normal', createdMs: spec.submitMs,
          chunksQueued: j.chunks.filter((ch) => ch.status === 'queued').length, chunksLeased: j.chunks.filter((ch) => ch.status === 'leased').length
        })
      }
      const d = decide({ nowMs: now, nodes, jobs: sj, pending, prices, config: c, state: scaler })
      scaler = d.state
      if (d.launch === undefined) return []
      const cand = c.candidates.find((k) => k.instanceType === d.launch!.instanceType)
      const fps = cand?.fps?.[PRESET] ?? 0
      pending.push({ ids: Array.from({ length: d.launch.count }, (_, k) => `p${now}-${k}`), provider: d.launch.provider, region: d.launch.region, instanceType: d.launch.instanceType, spot: d.launch.spot, launchedMs: now, priceUsdPerHour: d.launch.priceUsdPerHour, fps })
      return [{ atMs: now, count: d.launch.count, benchFps: fps, instanceType: d.launch.instanceType, spot: d.launch.spot, costPerHour: d.launch.priceUsdPerHour, bootMs: c.bootMs }]
    },
    finished: () => open === 0 && jobs.size > 0,
    jobEnds: () => ends
  }
}

/** planChunks' sizes for the head of the job, then tail pieces growing back from one keyframe interval by ×1.5. */
function tapered (frames: number, count: number, align: number): Array<{ index: number; start: number; end: number }> {
  const size = Math.max(align, Math.round(frames / count / align) * align)
  const tail: number[] = []
  let left = frames
  for (let t = align; t < size && left > t; t = Math.max(t + align, Math.round((t * 1.5) / align) * align)) { tail.push(t); left -= t }
  const head = left > 0 ? planChunks(left, Math.max(1, Math.round(left / size)), { align }) : []
  const out = head.map((r) => ({ ...r }))
  let at = left
  for (const t of tail.reverse()) { out.push({ index: out.length, start: at, end: at + t }); at += t }
  return out
}

interface Piece { jobId: string; start: number; end: number }

/** A FIFO with O(1) take (Array.shift is O(n), and a 1,000-node run queues ~10⁵ pieces). */
class Fifo<T> {
  private items: T[] = []
  private head = 0
  get length (): number { return this.items.length - this.head }
  push (x: T): void { this.items.push(x) }
  shift (): T | undefined {
    if (this.head >= this.items.length) return undefined
    const x = this.items[this.head++]
    if (this.head > 1024 && this.head * 2 > this.items.length) { this.items = this.items.slice(this.head); this.head = 0 }
    return x
  }
}

/** Boundaries at round(k·frames/n) snapped to the keyframe interval; empty pieces dropped. */
function cut (job: SimJob, n: number): Piece[] {
  const edges = [0]
  for (let k = 1; k < n; k++) {
    const e = Math.round((k * job.frames) / n / job.align) * job.align
    if (e > edges.at(-1)! && e < job.frames) edges.push(e)
  }
  edges.push(job.frames)
  return edges.slice(1).map((e, i) => ({ jobId: job.id, start: edges[i]!, end: e }))
}

/** Shared bookkeeping of the two baselines: per-node lists, a shared queue, one copy per piece. */
function baseline (name: string, place: (job: SimJob, members: readonly Member[], own: Map<string, Fifo<Piece>>, shared: Fifo<Piece>) => number): Policy {
  const own = new Map<string, Fifo<Piece>>()
  const shared = new Fifo<Piece>()
  const live = new Map<string, { node: string; piece: Piece }>()
  const left = new Map<string, number>()
  const ends = new Map<string, number>()
  let tok = 0
  let submitted = 0
  const requeue = (p: Piece): void => { shared.push(p) }
  /** Nodes holding a piece (every live lease, whether or not its node is still up). */
  const busy = new Map<string, number>()
  const hold = (node: string, d: number): void => { const n = (busy.get(node) ?? 0) + d; if (n > 0) busy.set(node, n); else busy.delete(node) }
  let idsOf: readonly Member[] | undefined
  let ids: string[] = []
  /** Every idle member (by id) takes its next piece: its own list first, then the shared queue. */
  const pull = (members: readonly Member[]): Assignment[] => {
    if (members !== idsOf) { ids = members.map((m) => m.id).sort(); idsOf = members }
    const out: Assignment[] = []
    for (const id of ids) {
      if (busy.has(id)) continue
      const mine = own.get(id)
      const p = mine !== undefined && mine.length > 0 ? mine.shift()! : shared.shift()
      if (p === undefined) continue
      const token = `${name[0]}${++tok}`
      live.set(token, { node: id, piece: p })
      hold(id, 1)
      out.push({ node: id, token, jobId: p.jobId, chunkId: `${p.jobId}@${p.start}`, start: p.start, end: p.end })
    }
    return out
  }
  return {
    name,
    submit (job, _now, members) {
      submitted++
      left.set(job.id, place(job, members, own, shared))
    },
    tick: (_now, members) => pull(members),
    // A worker asks for its next piece as soon as it is free (or has joined, or a piece came back).
    dispatch: (_now, members) => pull(members),
    done (now, _node, token) {
      const l = live.get(token)
      if (l === undefined) return { accepted: false, stop: [] }
      live.delete(token)
      hold(l.node, -1)
      const n = left.get(l.piece.jobId)! - 1
      left.set(l.piece.jobId, n)
      if (n === 0) ends.set(l.piece.jobId, now)
      return { accepted: true, stop: [] }
    },
    lost (_now, node) {
      for (const [token, l] of [...live]) if (l.node === node) { live.delete(token); hold(node, -1); requeue(l.piece) }
      const mine = own.get(node)
      for (let p = mine?.shift(); p !== undefined; p = mine?.shift()) requeue(p)
      own.delete(node)
    },
    refused (_now, token) {
      const l = live.get(token)
      if (l === undefined) return
      live.delete(token)
      hold(l.node, -1)
      requeue(l.piece)
    },
    finished: () => submitted > 0 && [...left.values()].every((n) => n === 0),
    jobEnds: () => ends
  }
}

/** Equal split: each job's frames in one keyframe-aligned piece per member (as of submit), up front, round robin. */
export function equalSplit (): Policy {
  // Keyframe alignment can leave fewer pieces than nodes; the next job starts where this one stopped.
  let next = 0
  return baseline('equal-split', (job, members, own) => {
    const ids = members.map((m) => m.id).sort()
    const pieces = cut(job, ids.length)
    pieces.forEach((p, i) => { const id = ids[(next + i) % ids.length]!; const l = own.get(id) ?? new Fifo<Piece>(); l.push(p); own.set(id, l) })
    next = (next + pieces.length) % Math.max(1, ids.length)
    return pieces.length
  })
}

/** Fixed-size chunks (`frames` each, keyframe-aligned) in FIFO order, pulled by idle workers. */
export function fixedChunks (frames: number): Policy {
  return baseline(`fixed-${frames}`, (job, _members, _own, shared) => {
    const size = Math.max(job.align, Math.round(frames / job.align) * job.align)
    let n = 0
    for (let s = 0; s < job.frames; s += size, n++) shared.push({ jobId: job.id, start: s, end: Math.min(job.frames, s + size) })
    return n
  })
}

export type { Launch, Running }
