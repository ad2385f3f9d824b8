/**
 * The simulator's discrete-event core: simulated nodes render chunks that a policy hands out, on a
 * simulated clock (no timers, no sleeps), with the farm's real failure detector (MembershipTable).
 *
 *   const r = simulate(scenario, farmPolicy())   // or equalSplit(), fixedChunks(120)
 *   r.makespanMs, r.lowerBoundMs, r.covered       // covered: frame ranges whose results were taken
 *
 * Time. A chunk of f frames on node i takes (f / jobFps_i + overhead) × noise, where jobFps_i is
 * the node's true speed for the job's frame size (benchmark fps × `speed`, the part of its
 * benchmark the machine really gives, e.g. 0.3 for a workstation its owner is using) and noise is
 * a per-chunk slowdown ≥ 1.
 *
 * Dispatch, as agent/coordinator.ts does it since 4e61342. A result, a new job (and, in the
 * policy's own terms, whatever else it leases on at once) asks for a dispatch pass at that same
 * instant (the runtime's requestTick → leaseFree on setImmediate: requests in one turn make one
 * pass). The coordinator is one thread, and a pass over a big queue is not free (Scheduler.assign
 * walks every open chunk twice), so requests that come in within Scenario.dispatchMs after a pass
 * began are served together by the next pass, dispatchMs after it (the first request after a quiet
 * spell is served at once). The periodic tick still runs on
 * the 200 ms grid for what only it does: progress (renew), lease expiry, the failure detector,
 * straggler backups and the autoscaler, and it leases too (leaseFree), which is when a node that
 * joined or a lease that was refused gets work in the runtime. Ticks are simulated on grid points
 * where something happened since the last one (a result, a join, a loss), and every 5 s while work
 * runs; a grid point where nothing changed would find nothing to do except a backup that became
 * due, which this delays to the next tick that runs (at most 5 s, usually 200 ms on a busy farm).
 * Leases go out with no network delay (as before).
 *
 * Membership. Every up node heartbeats every second (its own phase); a node that crashes or is
 * interrupted stops, and the policy hears `lost` only when the MembershipTable declares it dead
 * (3.25 s of silence by default). A node that joins says hello and is a member from then on.
 * A lease sent to a node that is down is refused after the runtime's 5 s request timeout.
 */
import { MembershipTable } from '../../coordinator/membership.ts'
import { seeded } from '../../test/helpers/prng.ts'
import { jobFps } from '../../coordinator/estimate.ts'

/** Deterministic PRNG (mulberry32, the tests' own); every random draw in a run comes from one seeded stream. */
export const rng: (seed: number) => () => number = seeded
/** A standard normal draw (Box–Muller). */
export function normal (r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r())
}

export interface SimNode {
  id: string
  /** Benchmark fps (1280x720 reference, preset h264): what the scheduler and planner see. */
  benchFps: number
  /** True speed / benchmark (1 for a dedicated machine). */
  speed: number
  /** When it joins the farm (0: there from the start). */
  joinMs: number
  /** When it crashes or is interrupted (undefined: stays). */
  leaveMs?: number | undefined
  cloud?: { instanceId: string; instanceType: string; spot: boolean; launchedMs: number; costPerHour: number } | undefined
}

export interface SimJob {
  id: string
  frames: number
  width: number
  height: number
  submitMs: number
  /** Keyframe interval: chunk boundaries fall on multiples of it (h264: 2 s of frames). */
  align: number
  deadlineMs?: number | undefined
}

export interface Scenario {
  name: string
  seed: number
  nodes: SimNode[]
  jobs: SimJob[]
  /** Fixed cost of one chunk, seconds (docs/benchmarks.md "Render overhead": ≈ 0.28 s). */
  overheadS: number
  /** Per-chunk slowdown: 1 + |N(0, noise)|. */
  noise: number
  tickMs: number
  /**
   * The coordinator runs one dispatch pass at a time: a pass that starts at t serves every request
   * made until t + dispatchMs in one more pass then (0: a pass for every instant with a request).
   */
  dispatchMs?: number | undefined
  /** Stop after this much simulated time (a policy that never finishes is an error). */
  limitMs: number
  /** A spot machine launched by the autoscaler is interrupted with chance 1/2, at a uniform time this long after it joins. Default 1 h. */
  spotWindowMs?: number | undefined
}

export interface Member { id: string; benchFps: number; cloud?: SimNode['cloud'] }
export interface Running { node: string; token: string; jobId: string; start: number; end: number; framesDone: number; sinceMs: number }
export interface Assignment { node: string; token: string; jobId: string; chunkId: string; start: number; end: number }
/** Cloud machines asked for: they join after bootMs; a spot machine may be interrupted (Scenario.spotWindowMs). */
export interface Launch { atMs: number; count: number; benchFps: number; instanceType: string; spot: boolean; costPerHour: number; bootMs: number }

export interface Policy {
  readonly name: string
  submit: (job: SimJob, now: number, members: readonly Member[]) => void
  /** One tick: new leases to send. `running` is every chunk being rendered, with its progress. */
  tick: (now: number, members: readonly Member[], running: readonly Running[]) => Assignment[]
  /**
   * A dispatch pass between ticks, at the instant of the events in `why` (all of this instant's):
   * free slots get work now. A policy that leases only on its tick leaves it out.
   */
  dispatch?: (now: number, members: readonly Member[], why: ReadonlySet<DispatchWhy>) => Assignment[]
  /** A result arrived. accepted: it counts (first result of that range); stop: other copies to end. */
  done: (now: number, node: string, token: string) => { accepted: boolean; stop: string[] }
  /** The failure detector declared this node dead. */
  lost: (now: number, node: string) => void
  /** A lease could not be delivered (the node is down). */
  refused: (now: number, token: string) => void
  /** Cloud launches the policy asks for now (the farm's autoscaler); the engine boots them. */
  launches?: (now: number, members: readonly Member[], running: readonly Running[]) => Launch[]
  /** True when every job is done. */
  finished: () => boolean
  /** Per job: when its last chunk's result was taken. */
  jobEnds: () => Map<string, number>
}

/** What asked for a dispatch pass: a result came in, a job was submitted, a node joined, a lease was refused. */
export type DispatchWhy = 'result' | 'submit' | 'join' | 'refused'

export interface SimResult {
  policy: string
  makespanMs: number
  /** Frame ranges whose results were accepted, per job (for the exactly-once check). */
  covered: Map<string, Array<[number, number]>>
  chunksRendered: number
  chunksWasted: number
  nodesLost: number
  nodesJoined: number
  /** Every node that was up at some point, with when (the bound is computed over them). */
  nodes: SimNode[]
  launches: Launch[]
  events: number
  /** Dispatch passes run between ticks (the policy's `dispatch`), and ticks. */
  dispatches: number
  ticks: number
}

interface Task { node: string; token: string; jobId: string; start: number; end: number; startMs: number; endMs: number; msPerFrame: number; epoch: number }
type Ev =
  | { t: number; seq: number; kind: 'tick' | 'keepalive' | 'dispatch' }
  | { t: number; seq: number; kind: 'finish'; token: string; epoch: number }
  | { t: number; seq: number; kind: 'join' | 'leave'; node: string }
  | { t: number; seq: number; kind: 'submit'; job: SimJob }
  | { t: number; seq: number; kind: 'refuse'; token: string }

type NoSeq<T> = T extends unknown ? Omit<T, 'seq'> : never

/** A binary min-heap on (t, seq). */
class Heap {
  private readonly a: Ev[] = []
  get size (): number { return this.a.length }
  push (e: Ev): void {
    const a = this.a
    a.push(e)
    let i = a.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (less(a[p]!, a[i]!)) break
      ;[a[p], a[i]] = [a[i]!, a[p]!]
      i = p
    }
  }
  pop (): Ev | undefined {
    const a = this.a
    const top = a[0]
    const last = a.pop()
    if (a.length > 0 && last !== undefined) {
      a[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1; const r = l + 1
        let m = i
        if (l < a.length && less(a[l]!, a[m]!)) m = l
        if (r < a.length && less(a[r]!, a[m]!)) m = r
        if (m === i) break
        ;[a[m], a[i]] = [a[i]!, a[m]!]
        i = m
      }
    }
    return top
  }
}
const less = (x: Ev, y: Ev): boolean => x.t < y.t || (x.t === y.t && x.seq < y.seq)

export class SimError extends Error {
  override readonly name = 'SimError'
}

const HEARTBEAT_MS = 1000
/** A lease to a node that does not answer is given up after the runtime's request timeout. */
const REQUEST_TIMEOUT_MS = 5000
/** Ticks also come this often while work runs, so leases are renewed (lease 15 s) and the detector runs. */
const KEEPALIVE_MS = 5000

export function simulate (sc: Scenario, policy: Policy): SimResult {
  const r = rng(sc.seed ^ 0x5bd1e995)
  const heap = new Heap()
  let seq = 0
  const push = (e: NoSeq<Ev>): void => { heap.push({ ...e, seq: seq++ } as Ev) }
  const nodes = new Map<string, SimNode>()
  const phase = new Map<string, number>()
  const up = new Set<string>()
  const epoch = new Map<string, number>()
  const busy = new Map<string, Task>() // node → task
  const tasks = new Map<string, Task>() // token → task
  const jobs = new Map(sc.jobs.map((j) => [j.id, j]))
  const members = new MembershipTable({ heartbeatMs: HEARTBEAT_MS })
  const covered = new Map<string, Array<[number, number]>>(sc.jobs.map((j) => [j.id, []]))
  const launches: Launch[] = []
  let rendered = 0; let wasted = 0; let lost = 0; let joined = 0; let events = 0; let dispatches = 0; let tickCount = 0
  const ticks = new Set<number>()
  let keepaliveAt = -1
  /** The reasons gathered for the dispatch pass pending at this instant (empty: none pending). */
  const why = new Set<DispatchWhy>()
  let lastPassMs = -Infinity
  const requestDispatch = (t: number, reason: DispatchWhy): void => {
    if (policy.dispatch === undefined) return
    if (why.size === 0) push({ t: Math.max(t, lastPassMs + (sc.dispatchMs ?? 0)), kind: 'dispatch' })
    why.add(reason)
  }
  const requestTick = (t: number): void => {
    const at = Math.ceil(t / sc.tickMs) * sc.tickMs
    if (ticks.has(at)) return
    ticks.add(at)
    push({ t: at, kind: 'tick' })
  }
  const addNode = (n: SimNode): void => {
    if (nodes.has(n.id)) throw new SimError(`node ${n.id} is listed twice`)
    nodes.set(n.id, n)
    phase.set(n.id, Math.floor(r() * HEARTBEAT_MS))
    epoch.set(n.id, 0)
    push({ t: n.joinMs, kind: 'join', node: n.id })
    if (n.leaveMs !== undefined) push({ t: n.leaveMs, kind: 'leave', node: n.id })
  }
  for (const n of sc.nodes) addNode(n)
  for (const j of sc.jobs) push({ t: j.submitMs, kind: 'submit', job: j })

  // Who is a member changes only on a tick (the detector) or a join; dispatch passes in between share one list.
  let memberCache: Member[] | undefined
  const memberList = (): Member[] => {
    if (memberCache !== undefined) return memberCache
    const out: Member[] = []
    for (const id of nodes.keys()) {
      if (!members.isAlive(id)) continue
      const n = nodes.get(id)!
      out.push({ id, benchFps: n.benchFps, ...(n.cloud !== undefined ? { cloud: n.cloud } : {}) })
    }
    memberCache = out
    return out
  }
  const runningList = (now: number): Running[] => {
    const out: Running[] = []
    for (const t of busy.values()) {
      if (!up.has(t.node)) continue // a dead machine reports nothing
      const f = Math.max(0, Math.min(t.end - t.start, Math.floor((now - t.startMs) / t.msPerFrame)))
      out.push({ node: t.node, token: t.token, jobId: t.jobId, start: t.start, end: t.end, framesDone: f, sinceMs: t.startMs })
    }
    return out
  }
  const stopTask = (token: string): void => {
    const t = tasks.get(token)
    if (t === undefined) return
    tasks.delete(token)
    if (busy.get(t.node)?.token === token) busy.delete(t.node)
    wasted++
  }

  /** Sends a policy's new leases: a node that is up starts rendering; one that is down refuses after the request timeout. */
  const start = (now: number, leases: readonly Assignment[]): void => {
    for (const a of leases) {
      const node = nodes.get(a.node)
      const job = jobs.get(a.jobId)
      if (node === undefined || job === undefined) throw new SimError(`${policy.name} leased ${a.chunkId} to unknown node ${a.node} or job ${a.jobId}`)
      if (busy.has(a.node)) throw new SimError(`${policy.name} leased ${a.chunkId} to ${a.node}, which is busy with ${busy.get(a.node)!.token}`)
      if (!up.has(a.node)) {
        tasks.set(a.token, { node: a.node, token: a.token, jobId: a.jobId, start: a.start, end: a.end, startMs: now, endMs: Infinity, msPerFrame: Infinity, epoch: -1 })
        push({ t: now + REQUEST_TIMEOUT_MS, kind: 'refuse', token: a.token })
        continue
      }
      const fps = jobFps(node.benchFps, job.width, job.height) * node.speed
      const slow = 1 + Math.abs(normal(r)) * sc.noise
      const renderMs = ((a.end - a.start) / fps) * 1000 * slow
      const dur = renderMs + sc.overheadS * 1000 * slow
      const t: Task = { node: a.node, token: a.token, jobId: a.jobId, start: a.start, end: a.end, startMs: now + sc.overheadS * 1000 * slow, endMs: now + dur, msPerFrame: renderMs / (a.end - a.start), epoch: epoch.get(a.node)! }
      busy.set(a.node, t)
      tasks.set(a.token, t)
      push({ t: t.endMs, kind: 'finish', token: a.token, epoch: t.epoch })
    }
  }

  let now = 0
  for (;;) {
    const e = heap.pop()
    if (e === undefined) break
    now = e.t
    events++
    if (now > sc.limitMs) throw new SimError(`${sc.name} / ${policy.name}: not finished after ${sc.limitMs / 1000} s of simulated time`)
    switch (e.kind) {
      case 'submit': {
        policy.submit(e.job, now, memberList())
        requestDispatch(now, 'submit')
        requestTick(now)
        break
      }
      case 'join': {
        up.add(e.node)
        members.joined(e.node, now)
        memberCache = undefined
        joined++
        requestDispatch(now, 'join')
        requestTick(now)
        break
      }
      case 'leave': {
        if (!up.has(e.node)) break
        up.delete(e.node)
        epoch.set(e.node, epoch.get(e.node)! + 1)
        const t = busy.get(e.node)
        if (t !== undefined) { busy.delete(e.node); tasks.delete(t.token); wasted++ }
        lost++
        // The detector notices after its timeouts; make sure a tick runs then.
        requestTick(now + members.deadMs + HEARTBEAT_MS)
        break
      }
      case 'finish': {
        const t = tasks.get(e.token)
        if (t === undefined || t.epoch !== epoch.get(t.node)) break
        tasks.delete(t.token)
        busy.delete(t.node)
        rendered++
        const res = policy.done(now, t.node, t.token)
        if (res.accepted) covered.get(t.jobId)!.push([t.start, t.end])
        else wasted++
        for (const s of res.stop) stopTask(s)
        requestDispatch(now, 'result')
        requestTick(now)
        break
      }
      case 'refuse': {
        if (!tasks.has(e.token)) break
        tasks.delete(e.token)
        policy.refused(now, e.token)
        requestDispatch(now, 'refused')
        requestTick(now)
        break
      }
      case 'keepalive':
        // Only the latest keepalive counts: any tick since pushed it further out.
        if (e.t !== keepaliveAt) break
        requestTick(now)
        break
      case 'dispatch': {
        dispatches++
        lastPassMs = now
        const reasons = new Set(why)
        why.clear()
        start(now, policy.dispatch!(now, memberList(), reasons))
        break
      }
      case 'tick': {
        ticks.delete(now)
        tickCount++
        memberCache = undefined
        for (const id of up) {
          const p = phase.get(id)!
          members.heard(id, Math.floor((now - p) / HEARTBEAT_MS) * HEARTBEAT_MS + p)
        }
        for (const tr of members.tick(now)) {
          if (tr.to === 'dead') { policy.lost(now, tr.peerId); members.remove(tr.peerId) }
        }
        const ml = memberList()
        const running = runningList(now)
        for (const l of policy.launches?.(now, ml, running) ?? []) {
          launches.push(l)
          for (let k = 0; k < l.count; k++) {
            const id = `cloud-${launches.length}-${k}`
            const interrupted = l.spot && r() < 0.5
            addNode({
              id, benchFps: l.benchFps, speed: 1, joinMs: now + l.bootMs,
              leaveMs: interrupted ? now + l.bootMs + Math.floor(r() * (sc.spotWindowMs ?? 3_600_000)) : undefined,
              cloud: { instanceId: id, instanceType: l.instanceType, spot: l.spot, launchedMs: now, costPerHour: l.costPerHour }
            })
          }
        }
        start(now, policy.tick(now, ml, running))
        if (!policy.finished() && (busy.size > 0 || tasks.size > 0)) { keepaliveAt = now + KEEPALIVE_MS; push({ t: keepaliveAt, kind: 'keepalive' }) }
        break
      }
    }
    if (policy.finished() && [...jobs.values()].every((j) => j.submitMs <= now)) break
  }
  if (!policy.finished()) throw new SimError(`${sc.name} / ${policy.name}: ran out of events with jobs unfinished (no node can take the work?)`)
  let makespan = 0
  for (const t of policy.jobEnds().values()) makespan = Math.max(makespan, t)
  return { policy: policy.name, makespanMs: makespan, covered, chunksRendered: rendered, chunksWasted: wasted, nodesLost: lost, nodesJoined: joined, nodes: [...nodes.values()], launches, events, dispatches, ticks: tickCount }
}

/**
 * The lower bound on makespan, in ms (jobs all submitted at 0):
 *   LB = max(T_cap, T_unit), where
 *   T_cap  = the least T with Σ_i v_i · max(0, up_i(T) − o) ≥ W: node i renders at its true speed
 *            v_i (reference frames/s, noise-free), only while it is up (up_i(T) = its time up within
 *            [0, T]: from its join, to its crash or interruption), and pays at least one chunk's
 *            fixed cost o if it renders anything; W = Σ_jobs frames × (pixels / 1280·720).
 *            With every node up throughout: W / Σ v_i + o.
 *   T_unit = the smallest piece a job can be cut into (one keyframe interval) on the fastest node, + o.
 * Noise only slows chunks (factor ≥ 1), so no schedule beats LB; work lost to crashes is not in W.
 */
export function lowerBound (nodes: readonly SimNode[], jobs: readonly SimJob[], overheadS: number): number {
  const ref = (j: SimJob): number => jobFps(1, j.width, j.height)
  const W = jobs.reduce((s, j) => s + j.frames / ref(j), 0)
  const v = nodes.map((n) => ({ v: n.benchFps * n.speed, from: n.joinMs / 1000, to: n.leaveMs === undefined ? Infinity : n.leaveMs / 1000 }))
  const done = (T: number): number => v.reduce((s, n) => s + n.v * Math.max(0, Math.min(T, n.to) - n.from - overheadS), 0)
  let lo = 0; let hi = 1
  while (done(hi) < W) { hi *= 2; if (hi > 1e9) throw new SimError('lower bound: the nodes never finish the work') }
  for (let k = 0; k < 60; k++) { const m = (lo + hi) / 2; if (done(m) >= W) hi = m; else lo = m }
  const fastest = Math.max(...nodes.map((n) => n.benchFps * n.speed))
  const unit = Math.max(...jobs.map((j) => j.align / ref(j) / fastest)) + overheadS
  return Math.max(hi, unit) * 1000
}

/** Checks that every job's frames were taken exactly once; returns the first problem, or undefined. */
export function coverageProblem (jobs: readonly SimJob[], covered: Map<string, Array<[number, number]>>): string | undefined {
  for (const j of jobs) {
    const rs = [...(covered.get(j.id) ?? [])].sort((a, b) => a[0] - b[0])
    let at = 0
    for (const [s, e] of rs) {
      if (s !== at) return `job ${j.id}: ${s < at ? `frames [${s}, ${at}) taken twice` : `frames [${at}, ${s}) missing`}`
      at = e
    }
    if (at !== j.frames) return `job ${j.id}: frames [${at}, ${j.frames}) missing`
  }
  return undefined
}
