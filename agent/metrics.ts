/**
 * The farm's figures (spec M32), computed once and shown two ways: Prometheus `/metrics` and the
 * `metrics` object of `/v1/status` (`renderswarm status --json`), so the two never disagree.
 *
 *   const figures = new FarmFigures()
 *   figures.observe('job', jobSummary)                  // the agent's events feed its counters
 *   const f = figures.compute({ jobs, nodes, paused, nowMs, selfUptimeSeconds })   // → Figures
 *   registerFarmMetrics(registry, () => figures.compute(readInputs()))            // read at scrape time
 *
 * Inputs are the shapes the local API already serves: the jobs of `/v1/jobs` (agent/farm.ts
 * summary(), with live fps) and the members of `/v1/nodes` (agent/daemon.ts nodes()). Every
 * member keeps a replica of each job record, so any agent gives farm-wide figures.
 *
 * Counters (jobs succeeded/failed/cancelled, chunks completed, chunk errors and retries, frames
 * rendered, total cost, and per node completed/failed chunks) only ever grow: FarmFigures adds
 * what changed since it last saw each job or chunk, from the job and progress events and the
 * job list read at each scrape. They start from the jobs this member holds when the agent
 * starts. A chunk error is one failed attempt (a failure report or an expired lease), charged
 * to the node that held it (named by the chunk's per-attempt errors, "name: reason", else
 * worked out from the records seen); a retry is an error whose chunk went back to the queue.
 * Averages and ratios (frame time, job time, deadline misses) are over the jobs listed (the
 * newest 200). Costs use each member's `--cost-per-hour` until cloud metering lands.
 */
import { Counter, Gauge, type Registry } from 'prom-client'
import { TERMINAL_STATUSES as TERMINAL } from '../protocol/messages/jobs.ts'

/** A job as `/v1/jobs` shows it (the fields the figures use). */
export interface JobFacts {
  jobId: string
  status: string
  frames: number
  framesDone: number
  fps: number
  actualCost: number
  deadline?: string | undefined
  startedAt?: string | undefined
  completedAt?: string | undefined
  chunks: Array<{ id: string; status: string; node?: string | undefined; attempts: number; framesDone: number; frameRange?: [number, number]; startedAt?: number | undefined; endedAt?: number | undefined; errors?: string[] | undefined }>
}

/** A member as `/v1/nodes` shows it (the fields the figures use). */
export interface NodeFacts {
  peerId: string
  name: string
  self?: boolean
  state: string
  lastHeardMs?: number
  accepting?: boolean
  load?: { cpuPct?: number; memUsedBytes?: number; memTotalBytes?: number; gpuPct?: number; runningChunks?: number } | undefined
  info?: { cpu?: { cores?: number }; slots?: number; costPerHour?: number } | undefined
}

export interface FigureInputs {
  jobs: JobFacts[]
  nodes: NodeFacts[]
  /** Peer ids the coordinator has paused. */
  paused: string[]
  nowMs: number
  selfUptimeSeconds: number
}

export interface NodeFigures {
  peerId: string; name: string; self: boolean; state: string; accepting: boolean; paused: boolean
  cpuPct: number; gpuPct: number; memUsedBytes: number; memTotalBytes: number; cores: number; slots: number; costPerHour: number
  activeChunks: number; completedChunks: number; failedChunks: number
  uptimeSeconds: number; lastHeartbeatSeconds: number
}

export interface Figures {
  /** Frames per second across the jobs running now. */
  fps: number
  /** Mean render time of one frame on one node, over the chunks finished in the listed jobs. */
  averageFrameSeconds: number
  /** Chunks waiting for a node (the scheduler's queue); jobs by status. */
  queueLength: number
  jobs: Record<typeof JOB_STATES[number], number>
  activeNodes: number
  totalNodes: number
  /** Mean CPU / GPU use of the live members (GPU over those that report one), memory summed. */
  cpuPct: number
  gpuPct: number
  memUsedBytes: number
  memTotalBytes: number
  /** USD per hour of the live members that render (slots > 0). */
  hourlyRateUsd: number
  totalCostUsd: number
  /** Cost of the finished jobs over their frames. */
  costPerFrameUsd: number
  counters: { jobsSucceeded: number; jobsFailed: number; jobsCancelled: number; chunksCompleted: number; chunkErrors: number; chunkRetries: number; framesRendered: number }
  /** success: jobs done / jobs ended (done + failed); error: failed attempts / attempts that ended; retry: retries / chunks completed. */
  rates: { success: number; error: number; retry: number }
  /** Mean seconds from a job's start to its completion, over done jobs listed. */
  averageJobSeconds: number
  /** Of the ended jobs listed that had a deadline, the share that failed or finished after it. */
  deadlineMissRate: number
  nodes: NodeFigures[]
}

const JOB_STATES = ['queued', 'running', 'joining', 'paused', 'done', 'failed', 'cancelled'] as const
/** Jobs and chunks remembered for counting; the oldest are forgotten past this (a job list shows the newest 200). */
const MAX_TRACKED = 20_000

interface ChunkSeen { node: string | undefined; attempts: number; frames: number; done: boolean; failed: boolean }

const round = (n: number, digits = 6): number => { const k = 10 ** digits; return Math.round(n * k) / k }
const num = (v: unknown): number => typeof v === 'number' && Number.isFinite(v) ? v : 0
const iso = (s: string | undefined): number | undefined => { if (s === undefined) return undefined; const t = Date.parse(s); return Number.isNaN(t) ? undefined : t }

export class FarmFigures {
  private readonly chunks = new Map<string, ChunkSeen>()
  private readonly ended = new Map<string, true>()
  private readonly aliveSince = new Map<string, number>()
  private readonly completedBy = new Map<string, number>()
  private readonly failedBy = new Map<string, number>()
  /** Members' names → peer ids, from the last compute() (attempt errors name the node). */
  private readonly peerByName = new Map<string, string>()
  private readonly c = { jobsSucceeded: 0, jobsFailed: 0, jobsCancelled: 0, chunksCompleted: 0, chunkErrors: 0, chunkRetries: 0, framesRendered: 0 }
  private costUsd = 0
  private doneCostUsd = 0
  private doneFrames = 0

  constructor (private readonly clock: () => number = Date.now) {}

  /** Feeds an agent event: 'job' (a job summary), 'progress' (a progress view) or 'member' (a member transition). */
  observe (type: string, data: unknown): void {
    if (typeof data !== 'object' || data === null) return
    const d = data as Record<string, unknown>
    if (type === 'job' && typeof d.jobId === 'string' && Array.isArray(d.chunks)) this.observeJob(d as unknown as JobFacts)
    else if (type === 'progress' && typeof d.jobId === 'string' && Array.isArray(d.chunks)) {
      for (const ch of d.chunks as Array<Record<string, unknown>>) {
        if (typeof ch.id === 'string') this.observeChunk(d.jobId, { id: ch.id, status: String(ch.status), node: typeof ch.node === 'string' ? ch.node : undefined, framesDone: num(ch.framesDone) })
      }
    } else if (type === 'member' && typeof d.peerId === 'string') {
      if (d.to === 'dead') this.aliveSince.delete(d.peerId)
      else if (d.to === 'alive' && !this.aliveSince.has(d.peerId)) this.aliveSince.set(d.peerId, this.clock())
    }
  }

  observeJob (j: JobFacts): void {
    for (const ch of j.chunks) this.observeChunk(j.jobId, ch)
    if (TERMINAL.has(j.status) && !this.ended.has(j.jobId)) {
      remember(this.ended, j.jobId, true)
      if (j.status === 'done') {
        this.c.jobsSucceeded++
        this.doneCostUsd += num(j.actualCost)
        this.doneFrames += num(j.frames)
      } else if (j.status === 'failed') this.c.jobsFailed++
      else this.c.jobsCancelled++
      this.costUsd += num(j.actualCost)
    }
  }

  private observeChunk (jobId: string, ch: { id: string; status: string; node?: string | undefined; attempts?: number; framesDone: number; frameRange?: [number, number]; errors?: string[] | undefined }): void {
    const key = `${jobId}/${ch.id}`
    const seen = this.chunks.get(key) ?? { node: undefined, attempts: 0, frames: 0, done: false, failed: false }
    const attempts = ch.attempts ?? seen.attempts
    if (attempts > seen.attempts) {
      // Each new failed attempt is charged to its node: the one its error names, else the one the
      // records say held it (a requeued or failed chunk keeps its last node; one already leased
      // again or done shows its new node, so the failure was the node seen before).
      const fallback = ch.status === 'leased' || ch.status === 'done' ? seen.node ?? ch.node : ch.node ?? seen.node
      const n = attempts - seen.attempts
      const errors = Array.isArray(ch.errors) ? ch.errors.slice(-n) : []
      for (let k = 0; k < n; k++) {
        const e = errors[errors.length - n + k]
        const named = e !== undefined && e.includes(': ') ? this.peerByName.get(e.slice(0, e.indexOf(': '))) : undefined
        const blamed = named ?? fallback
        if (blamed !== undefined) this.failedBy.set(blamed, (this.failedBy.get(blamed) ?? 0) + 1)
      }
      this.c.chunkErrors += n
    }
    // A retry is a failed attempt whose chunk went back to the queue: all but the last one of a chunk that failed for good.
    const newAttempts = Math.max(0, attempts - seen.attempts)
    const failedNow = ch.status === 'failed' && !seen.failed
    this.c.chunkRetries += Math.max(0, newAttempts - (failedNow ? 1 : 0))
    if (failedNow) seen.failed = true
    seen.attempts = Math.max(seen.attempts, attempts)
    const frames = ch.status === 'done' && ch.frameRange !== undefined ? ch.frameRange[1] - ch.frameRange[0] : ch.framesDone
    if (frames > seen.frames) { this.c.framesRendered += frames - seen.frames; seen.frames = frames }
    if (ch.status === 'done' && !seen.done) {
      seen.done = true
      this.c.chunksCompleted++
      if (ch.node !== undefined) this.completedBy.set(ch.node, (this.completedBy.get(ch.node) ?? 0) + 1)
    }
    if (ch.node !== undefined) seen.node = ch.node
    remember(this.chunks, key, seen)
  }

  compute (inp: FigureInputs): Figures {
    for (const n of inp.nodes) this.peerByName.set(n.name, n.peerId)
    for (const j of inp.jobs) this.observeJob(j)
    const now = inp.nowMs
    const paused = new Set(inp.paused)
    const live = inp.nodes.filter((n) => n.state === 'alive')
    for (const n of inp.nodes) {
      if (n.state === 'dead') this.aliveSince.delete(n.peerId)
      else if (n.state === 'alive' && !this.aliveSince.has(n.peerId)) this.aliveSince.set(n.peerId, now)
    }
    const jobs = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Figures['jobs']
    let fps = 0; let queueLength = 0
    const active = new Map<string, number>()
    let frameSeconds = 0; let framesTimed = 0
    let jobSeconds = 0; let jobsTimed = 0
    let withDeadline = 0; let missed = 0
    for (const j of inp.jobs) {
      if (j.status in jobs) jobs[j.status as keyof Figures['jobs']]++
      if (j.status === 'running') fps += num(j.fps)
      const open = !TERMINAL.has(j.status)
      for (const ch of j.chunks) {
        if (open && ch.status === 'queued') queueLength++
        if (open && ch.status === 'leased' && ch.node !== undefined) active.set(ch.node, (active.get(ch.node) ?? 0) + 1)
        if (ch.status === 'done' && ch.startedAt !== undefined && ch.endedAt !== undefined && ch.frameRange !== undefined && ch.endedAt >= ch.startedAt) {
          frameSeconds += (ch.endedAt - ch.startedAt) / 1000
          framesTimed += ch.frameRange[1] - ch.frameRange[0]
        }
      }
      const started = iso(j.startedAt); const completed = iso(j.completedAt)
      if (j.status === 'done' && started !== undefined && completed !== undefined) { jobSeconds += (completed - started) / 1000; jobsTimed++ }
      const deadline = iso(j.deadline)
      if (deadline !== undefined && (j.status === 'done' || j.status === 'failed')) {
        withDeadline++
        if (j.status === 'failed' || (completed ?? now) > deadline) missed++
      }
    }
    const gpus = live.filter((n) => n.load?.gpuPct !== undefined)
    const c = { ...this.c }
    const attemptsEnded = c.chunksCompleted + c.chunkErrors
    return {
      fps: round(fps, 3),
      averageFrameSeconds: framesTimed > 0 ? round(frameSeconds / framesTimed) : 0,
      queueLength,
      jobs,
      activeNodes: live.length,
      totalNodes: inp.nodes.length,
      cpuPct: live.length > 0 ? round(live.reduce((s, n) => s + num(n.load?.cpuPct), 0) / live.length, 2) : 0,
      gpuPct: gpus.length > 0 ? round(gpus.reduce((s, n) => s + num(n.load?.gpuPct), 0) / gpus.length, 2) : 0,
      memUsedBytes: live.reduce((s, n) => s + num(n.load?.memUsedBytes), 0),
      memTotalBytes: live.reduce((s, n) => s + num(n.load?.memTotalBytes), 0),
      hourlyRateUsd: round(live.filter((n) => (n.info?.slots ?? 1) > 0).reduce((s, n) => s + num(n.info?.costPerHour), 0)),
      totalCostUsd: round(this.costUsd),
      costPerFrameUsd: this.doneFrames > 0 ? round(this.doneCostUsd / this.doneFrames, 9) : 0,
      counters: c,
      rates: {
        success: c.jobsSucceeded + c.jobsFailed > 0 ? round(c.jobsSucceeded / (c.jobsSucceeded + c.jobsFailed), 4) : 0,
        error: attemptsEnded > 0 ? round(c.chunkErrors / attemptsEnded, 4) : 0,
        retry: c.chunksCompleted > 0 ? round(c.chunkRetries / c.chunksCompleted, 4) : 0
      },
      averageJobSeconds: jobsTimed > 0 ? round(jobSeconds / jobsTimed, 3) : 0,
      deadlineMissRate: withDeadline > 0 ? round(missed / withDeadline, 4) : 0,
      nodes: inp.nodes.map((n): NodeFigures => ({
        peerId: n.peerId, name: n.name, self: n.self === true, state: n.state, accepting: n.accepting ?? true, paused: paused.has(n.peerId),
        cpuPct: num(n.load?.cpuPct), gpuPct: num(n.load?.gpuPct), memUsedBytes: num(n.load?.memUsedBytes), memTotalBytes: num(n.load?.memTotalBytes),
        cores: num(n.info?.cpu?.cores), slots: n.info?.slots ?? 1, costPerHour: num(n.info?.costPerHour),
        activeChunks: active.get(n.peerId) ?? 0, completedChunks: this.completedBy.get(n.peerId) ?? 0, failedChunks: this.failedBy.get(n.peerId) ?? 0,
        uptimeSeconds: n.self === true ? inp.selfUptimeSeconds : n.state === 'dead' ? 0 : Math.round((now - (this.aliveSince.get(n.peerId) ?? now)) / 1000),
        lastHeartbeatSeconds: n.self === true ? 0 : round(Math.max(0, now - (n.lastHeardMs ?? now)) / 1000, 3)
      }))
    }
  }
}

function remember<V> (m: Map<string, V>, k: string, v: V): void {
  m.delete(k)
  m.set(k, v)
  if (m.size > MAX_TRACKED) m.delete(m.keys().next().value!)
}

type Kind = 'gauge' | 'counter'
/** The farm-wide figures as Prometheus metrics: name, help, type, value. */
export const FARM_METRICS: Array<[string, string, Kind, (f: Figures) => number]> = [
  ['renderswarm_fps', 'Frames per second across the jobs running now', 'gauge', (f) => f.fps],
  ['renderswarm_frame_time_seconds', 'Mean render time of one frame on one node, over the chunks finished in the listed jobs', 'gauge', (f) => f.averageFrameSeconds],
  ['renderswarm_queue_length', 'Chunks waiting for a node', 'gauge', (f) => f.queueLength],
  ['renderswarm_active_nodes', 'Live farm members (self included)', 'gauge', (f) => f.activeNodes],
  ['renderswarm_cpu_percent', 'Mean CPU use of the live members, from their heartbeats', 'gauge', (f) => f.cpuPct],
  ['renderswarm_gpu_percent', 'Mean GPU use of the live members that report a GPU (0 when none does)', 'gauge', (f) => f.gpuPct],
  ['renderswarm_memory_used_bytes', 'Memory in use on the live members, summed', 'gauge', (f) => f.memUsedBytes],
  ['renderswarm_memory_total_bytes', 'Memory of the live members, summed', 'gauge', (f) => f.memTotalBytes],
  ['renderswarm_hourly_rate_usd', 'USD per hour of the live members that render (their --cost-per-hour)', 'gauge', (f) => f.hourlyRateUsd],
  ['renderswarm_cost_usd_total', 'Cost of the jobs that ended, USD', 'counter', (f) => f.totalCostUsd],
  ['renderswarm_cost_per_frame_usd', 'Cost of the finished jobs over their frames, USD', 'gauge', (f) => f.costPerFrameUsd],
  ['renderswarm_jobs_succeeded_total', 'Jobs done (output written and validated)', 'counter', (f) => f.counters.jobsSucceeded],
  ['renderswarm_jobs_failed_total', 'Jobs failed', 'counter', (f) => f.counters.jobsFailed],
  ['renderswarm_jobs_cancelled_total', 'Jobs cancelled', 'counter', (f) => f.counters.jobsCancelled],
  ['renderswarm_chunks_completed_total', 'Chunks rendered and delivered', 'counter', (f) => f.counters.chunksCompleted],
  ['renderswarm_chunk_errors_total', 'Failed chunk attempts (failure reports and expired leases)', 'counter', (f) => f.counters.chunkErrors],
  ['renderswarm_chunk_retries_total', 'Failed chunk attempts that went back to the queue', 'counter', (f) => f.counters.chunkRetries],
  ['renderswarm_frames_rendered_total', 'Frames of the farm\'s jobs rendered (each frame once)', 'counter', (f) => f.counters.framesRendered],
  ['renderswarm_job_success_ratio', 'Jobs done over jobs ended (done + failed)', 'gauge', (f) => f.rates.success],
  ['renderswarm_chunk_error_ratio', 'Failed chunk attempts over chunk attempts that ended', 'gauge', (f) => f.rates.error],
  ['renderswarm_chunk_retry_ratio', 'Chunk retries over chunks completed', 'gauge', (f) => f.rates.retry],
  ['renderswarm_job_duration_seconds', 'Mean seconds from start to completion of the done jobs listed', 'gauge', (f) => f.averageJobSeconds],
  ['renderswarm_deadline_miss_ratio', 'Of the ended jobs listed with a deadline, the share that failed or finished late', 'gauge', (f) => f.deadlineMissRate]
]

/** Per-node figures, labelled node (name) and peer (peer id). */
export const NODE_METRICS: Array<[string, string, Kind, (n: NodeFigures) => number]> = [
  ['renderswarm_node_up', '1 while the member is alive (heartbeats arriving), else 0', 'gauge', (n) => n.state === 'alive' ? 1 : 0],
  ['renderswarm_node_accepting', '1 while the member takes work (its etiquette policy allows, it is not paused and its work disk has room)', 'gauge', (n) => n.accepting && !n.paused ? 1 : 0],
  ['renderswarm_node_paused', '1 while the coordinator has the member paused', 'gauge', (n) => n.paused ? 1 : 0],
  ['renderswarm_node_cpu_percent', 'CPU use of each member, from its heartbeats', 'gauge', (n) => n.cpuPct],
  ['renderswarm_node_gpu_percent', 'GPU use of each member, from its heartbeats (0 without a GPU)', 'gauge', (n) => n.gpuPct],
  ['renderswarm_node_memory_used_bytes', 'Memory in use on each member, from its heartbeats', 'gauge', (n) => n.memUsedBytes],
  ['renderswarm_node_memory_total_bytes', 'Memory of each member', 'gauge', (n) => n.memTotalBytes],
  ['renderswarm_node_cpu_cores', 'CPU cores of each member', 'gauge', (n) => n.cores],
  ['renderswarm_node_slots', 'Chunks each member renders at once', 'gauge', (n) => n.slots],
  ['renderswarm_node_active_chunks', 'Chunks leased to each member now', 'gauge', (n) => n.activeChunks],
  ['renderswarm_node_completed_chunks_total', 'Chunks each member rendered and delivered', 'counter', (n) => n.completedChunks],
  ['renderswarm_node_failed_chunks_total', 'Failed chunk attempts charged to each member', 'counter', (n) => n.failedChunks],
  ['renderswarm_node_uptime_seconds', 'Seconds each member has been alive (this agent: since it started; others: since this agent saw them join)', 'gauge', (n) => n.uptimeSeconds],
  ['renderswarm_node_last_heartbeat_seconds', 'Seconds since each member was last heard (0 for this agent)', 'gauge', (n) => n.lastHeartbeatSeconds]
]

/**
 * Registers the figures on `registry`. `read` runs once per scrape (in the first metric's
 * collect(); prom-client collects in registration order) and every metric reads that result.
 */
export function registerFarmMetrics (registry: Registry, read: () => Figures): void {
  let current: Figures | undefined
  const make = (name: string, help: string, kind: Kind, labelNames: string[], collect: (m: Gauge | Counter) => void): void => {
    const cfg = { name, help, labelNames, registers: [registry], collect (this: Gauge | Counter) { collect(this) } }
    if (kind === 'gauge') new Gauge(cfg)
    else new Counter(cfg)
  }
  const put = (m: Gauge | Counter, v: number, labels?: Record<string, string>): void => {
    if (m instanceof Gauge) { if (labels !== undefined) m.set(labels, v); else m.set(v) } else if (labels !== undefined) m.inc(labels, v); else m.inc(v)
  }
  make('renderswarm_nodes', 'Farm members known to this agent, by state (self included)', 'gauge', ['state'], (m) => {
    current = read()
    m.reset()
    const by = new Map<string, number>()
    for (const n of current.nodes) by.set(n.state, (by.get(n.state) ?? 0) + 1)
    for (const [state, k] of by) put(m, k, { state })
  })
  make('renderswarm_jobs', 'Jobs listed by this agent, by status', 'gauge', ['status'], (m) => {
    m.reset()
    for (const [status, k] of Object.entries(current!.jobs)) put(m, k, { status })
  })
  for (const [name, help, kind, value] of FARM_METRICS) make(name, help, kind, [], (m) => { m.reset(); put(m, value(current!)) })
  for (const [name, help, kind, value] of NODE_METRICS) {
    make(name, help, kind, ['node', 'peer'], (m) => {
      m.reset()
      for (const n of current!.nodes) put(m, value(n), { node: n.name, peer: n.peerId })
    })
  }
}
