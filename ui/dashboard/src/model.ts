/**
 * The dashboard's state and everything it derives from it, pure (no DOM, no fetch, no clock):
 * one initial snapshot from the API, then each SSE event folded in by `applyEvent`. The views
 * only draw what these functions return. Unit-tested in test/unit/dashboard-model.test.ts.
 *
 *   let s = initialState({ status, nodes, jobs })
 *   s = applyEvent(s, { type: 'progress', data })
 *   clusterSummary(s)   nodeRows(s)   jobEtaSeconds(job, Date.now())   chunkTimeline(job, s, Date.now())
 */
import type { Chunk, FarmEvent, Job, Node, Status } from './schemas.ts'

export interface DashState {
  /** This agent (the one serving the page). */
  self: string | undefined
  farm: string | undefined
  leader: string | null
  nodes: Node[]
  /** Newest first, as the API lists them. */
  jobs: Job[]
  /** Paused members: from /v1/status (its metrics), then pause/resume answers and 'paused' events. */
  paused: string[]
  /** Recent (atMs, framesDone) of each running job's progress pushes, for its speed when workers report none. */
  samples: Record<string, Array<[number, number]>>
}

/** How far back the measured speed of a job looks. */
export const SPEED_WINDOW_MS = 5000

export const TERMINAL_JOB = new Set(['done', 'failed', 'cancelled'])

export function initialState (snap: { status: Status; nodes: Node[]; jobs: Job[]; paused?: string[] | undefined }): DashState {
  return {
    self: snap.status.peerId,
    farm: snap.status.farm,
    leader: snap.status.rendering?.coordinator.leader ?? null,
    nodes: snap.nodes,
    jobs: snap.jobs,
    paused: snap.paused ?? snap.status.metrics?.nodes.filter((n) => n.paused).map((n) => n.peerId) ?? [],
    samples: {}
  }
}

/** Folds one farm event into the state (returns a new state; the old one is not changed). */
export function applyEvent (s: DashState, ev: FarmEvent): DashState {
  switch (ev.type) {
    case 'hello':
      return { ...s, self: ev.data.peerId, farm: ev.data.farm }
    case 'member': {
      const { peerId, to } = ev.data
      if (!s.nodes.some((n) => n.peerId === peerId)) return s // a new member: its details come with the next /v1/nodes fetch
      return { ...s, nodes: s.nodes.map((n) => n.peerId === peerId ? { ...n, state: to } : n) }
    }
    case 'job': {
      const job = ev.data
      const i = s.jobs.findIndex((j) => j.jobId === job.jobId)
      return { ...s, jobs: i < 0 ? [job, ...s.jobs] : s.jobs.map((j, k) => k === i ? job : j) }
    }
    case 'progress': {
      const p = ev.data
      const i = s.jobs.findIndex((j) => j.jobId === p.jobId)
      if (i < 0) return s
      const job = s.jobs[i]!
      if (TERMINAL_JOB.has(job.status)) return s // a late progress push after the final record
      const live = new Map(p.chunks.map((c) => [c.id, c]))
      const chunks = job.chunks.map((c) => {
        const l = live.get(c.id)
        return l === undefined ? c : { ...c, status: l.status, framesDone: l.framesDone, ...(l.node !== undefined ? { node: l.node } : {}) }
      })
      const status = job.status === 'queued' && p.framesDone > 0 ? 'running' : job.status
      const samples = p.atMs === undefined ? s.samples : { ...s.samples, [p.jobId]: [...(s.samples[p.jobId] ?? []).filter(([t]) => t > p.atMs! - SPEED_WINDOW_MS && t < p.atMs!), [p.atMs, p.framesDone] as [number, number]].slice(-50) }
      return { ...s, samples, jobs: s.jobs.map((j, k) => k === i ? { ...job, status, framesDone: p.framesDone, fps: p.fps, chunks } : j) }
    }
    case 'leader':
      return { ...s, leader: ev.data.leader }
    case 'paused':
      return { ...s, paused: [...ev.data.peers] }
    case 'worker':
      return {
        ...s,
        nodes: s.nodes.map((n) => n.peerId === s.self && n.load !== undefined ? { ...n, load: { ...n.load, runningChunks: ev.data.running } } : n)
      }
  }
}

/** Nodes that render (an editor's workstation with --slots 0 submits but never renders). */
export function rendersWork (n: Node): boolean {
  return (n.info?.slots ?? 1) > 0
}

export interface ActiveChunk { jobId: string; jobName: string; chunkId: string; frameRange: [number, number]; framesDone: number }

/** The chunk each node holds a lease on, from the jobs that are not finished. */
export function activeChunks (s: DashState): Map<string, ActiveChunk> {
  const out = new Map<string, ActiveChunk>()
  for (const j of s.jobs) {
    if (TERMINAL_JOB.has(j.status)) continue
    for (const c of j.chunks) {
      if (c.status === 'leased' && c.node !== undefined && !out.has(c.node)) out.set(c.node, { jobId: j.jobId, jobName: j.name, chunkId: c.id, frameRange: c.frameRange, framesDone: c.framesDone })
    }
  }
  return out
}

export interface ClusterSummary {
  activeNodes: number
  totalNodes: number
  /** Members that render and are alive. */
  renderNodes: number
  renderingNodes: number
  queuedChunks: number
  waitingJobs: number
  activeJobs: number
  /** Frames per second across running jobs. */
  fps: number
  /** What the nodes rendering now cost per hour, and what the whole farm would. */
  costPerHourNow: number
  costPerHourAll: number
}

export function clusterSummary (s: DashState): ClusterSummary {
  const alive = s.nodes.filter((n) => n.state === 'alive')
  const busy = activeChunks(s)
  const open = s.jobs.filter((j) => !TERMINAL_JOB.has(j.status))
  const cost = (n: Node): number => n.info?.costPerHour ?? 0
  return {
    activeNodes: alive.length,
    totalNodes: s.nodes.length,
    renderNodes: alive.filter(rendersWork).length,
    renderingNodes: alive.filter((n) => busy.has(n.peerId)).length,
    queuedChunks: open.reduce((sum, j) => sum + j.chunks.filter((c) => c.status === 'queued').length, 0),
    waitingJobs: open.filter((j) => j.status === 'queued').length,
    activeJobs: open.length,
    fps: round(open.reduce((sum, j) => sum + jobSpeed(s, j), 0), 1),
    costPerHourNow: round(alive.filter((n) => busy.has(n.peerId)).reduce((sum, n) => sum + cost(n), 0), 4),
    costPerHourAll: round(alive.filter(rendersWork).reduce((sum, n) => sum + cost(n), 0), 4)
  }
}

export type NodeActivity = 'rendering' | 'idle' | 'paused' | 'not accepting' | 'editor' | 'suspect' | 'dead' | 'unknown'

export interface NodeRow {
  peerId: string
  name: string
  self: boolean
  location: string
  gpu: string
  /** Benchmark frames per second at the reference size, per preset shown. */
  benchFps: { ffv1?: number | undefined; h264?: number | undefined }
  activity: NodeActivity
  paused: boolean
  cpuPct: number | undefined
  gpuPct: number | undefined
  memPct: number | undefined
  chunk: ActiveChunk | undefined
}

export function nodeRows (s: DashState): NodeRow[] {
  const busy = activeChunks(s)
  const paused = new Set(s.paused)
  return s.nodes.map((n): NodeRow => {
    const chunk = busy.get(n.peerId)
    const isPaused = paused.has(n.peerId)
    let activity: NodeActivity
    if (n.state === 'suspect' || n.state === 'dead') activity = n.state
    else if (n.state !== 'alive') activity = 'unknown'
    else if (chunk !== undefined) activity = 'rendering'
    else if (!rendersWork(n)) activity = 'editor'
    else if (isPaused) activity = 'paused'
    else if (n.accepting === false) activity = 'not accepting'
    else activity = 'idle'
    const load = n.load
    return {
      peerId: n.peerId,
      name: n.name,
      self: n.self,
      location: n.location === 'cloud' ? 'cloud' : 'LAN',
      gpu: n.info === undefined ? '?' : (n.info.gpus[0]?.model ?? 'none'),
      benchFps: { ffv1: n.info?.bench.ffv1, h264: n.info?.bench.h264 },
      activity,
      paused: isPaused,
      cpuPct: load?.cpuPct,
      gpuPct: load?.gpuPct,
      memPct: load !== undefined && load.memTotalBytes > 0 ? round(100 * load.memUsedBytes / load.memTotalBytes, 1) : undefined,
      chunk
    }
  })
}

/**
 * A running job's frames per second: what its workers report, else what its progress pushes
 * show over the last SPEED_WINDOW_MS (short chunks often end before ffmpeg reports a speed).
 */
export function jobSpeed (s: Pick<DashState, 'samples'>, job: Job): number {
  if (job.status !== 'running') return 0
  if (job.fps > 0) return job.fps
  const xs = s.samples[job.jobId] ?? []
  if (xs.length < 2) return 0
  const [t0, f0] = xs[0]!
  const [t1, f1] = xs[xs.length - 1]!
  return t1 - t0 >= 1000 && f1 >= f0 ? round((f1 - f0) / ((t1 - t0) / 1000), 1) : 0
}

/** Seconds left for a job: from its speed (`fps`, default its reported one), else from its estimate; undefined when unknown or finished. */
export function jobEtaSeconds (job: Job, nowMs: number, fps = job.fps): number | undefined {
  if (TERMINAL_JOB.has(job.status)) return undefined
  const left = Math.max(0, job.frames - job.framesDone)
  if (fps > 0) return left / fps
  if (job.estimate !== undefined) {
    const at = Date.parse(job.estimate.completionAt)
    if (Number.isFinite(at)) return Math.max(0, (at - nowMs) / 1000)
  }
  return undefined
}

export function jobFraction (job: Job): number {
  if (job.status === 'done') return 1
  return job.frames > 0 ? Math.min(1, job.framesDone / job.frames) : 0
}

export interface TimelineBar {
  chunkId: string
  frameRange: [number, number]
  status: string
  attempts: number
  /** Position on the time axis, 0…1. */
  from: number
  to: number
  seconds: number
  running: boolean
  errors: string[]
}
export interface TimelineLane { node: string; name: string; bars: TimelineBar[] }
export interface ChunkTimeline { startMs: number; endMs: number; lanes: TimelineLane[]; notStarted: Chunk[]; retried: number }

/**
 * Which node rendered which frame range, when: one lane per node, one bar per chunk (its last
 * attempt; `attempts` > 1 marks a retry). Chunks not started yet are listed apart.
 */
export function chunkTimeline (job: Job, names: ReadonlyMap<string, string>, nowMs: number): ChunkTimeline {
  const started = job.chunks.filter((c) => c.startedAt !== undefined && c.node !== undefined)
  const notStarted = job.chunks.filter((c) => c.startedAt === undefined || c.node === undefined)
  const retried = job.chunks.filter((c) => c.attempts > 1).length
  if (started.length === 0) return { startMs: nowMs, endMs: nowMs, lanes: [], notStarted, retried }
  const endOf = (c: Chunk): number => c.endedAt ?? (c.status === 'leased' ? Math.max(nowMs, c.startedAt!) : c.startedAt!)
  const startMs = Math.min(...started.map((c) => c.startedAt!))
  const endMs = Math.max(startMs + 1, ...started.map(endOf))
  const span = endMs - startMs
  const lanes = new Map<string, TimelineLane>()
  for (const c of [...started].sort((a, b) => a.startedAt! - b.startedAt!)) {
    const node = c.node!
    let lane = lanes.get(node)
    if (lane === undefined) { lane = { node, name: names.get(node) ?? shortId(node), bars: [] }; lanes.set(node, lane) }
    const end = endOf(c)
    lane.bars.push({
      chunkId: c.id, frameRange: c.frameRange, status: c.status, attempts: c.attempts,
      from: (c.startedAt! - startMs) / span, to: (end - startMs) / span,
      seconds: round((end - c.startedAt!) / 1000, 1), running: c.status === 'leased' && c.endedAt === undefined, errors: c.errors ?? []
    })
  }
  return { startMs, endMs, lanes: [...lanes.values()].sort((a, b) => a.name.localeCompare(b.name)), notStarted, retried }
}

export function nodeNames (s: DashState): Map<string, string> {
  return new Map(s.nodes.map((n) => [n.peerId, n.name]))
}

export function shortId (peerId: string): string {
  return peerId.length > 12 ? `…${peerId.slice(-8)}` : peerId
}

export function round (x: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/** "0:07", "3:05", "1:02:03"; "—" when unknown. */
export function formatDuration (seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '—'
  const t = Math.max(0, Math.round(seconds))
  const h = Math.floor(t / 3600)
  const m = Math.floor((t % 3600) / 60)
  const sec = String(t % 60).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`
}

/** US dollars with enough digits that a farm of workstations (fractions of a cent) shows something. */
export function formatUsd (x: number): string {
  if (!Number.isFinite(x)) return '—'
  if (x === 0) return '$0'
  if (Math.abs(x) < 0.000001) return '<$0.000001'
  // Two significant digits for fractions of a cent: "$0.000021".
  if (Math.abs(x) < 0.01) return `$${Number(x.toPrecision(2)).toFixed(Math.min(8, 1 - Math.floor(Math.log10(Math.abs(x)))))}`
  if (Math.abs(x) < 10) return `$${x.toFixed(2)}`
  return `$${x.toFixed(0)}`
}

export function formatPct (x: number | undefined): string {
  return x === undefined ? '—' : `${Math.round(x)}%`
}

/** A clock time for a completion estimate: "14:05:09" today, else with the date. */
export function formatClock (iso: string, nowMs: number): string {
  const t = Date.parse(iso)
  if (!Number.isFinite(t)) return '—'
  const d = new Date(t)
  const time = d.toTimeString().slice(0, 8)
  return new Date(nowMs).toDateString() === d.toDateString() ? time : `${d.toISOString().slice(0, 10)} ${time}`
}

/** The output path to suggest for a timeline and preset: beside the timeline, named after it. */
export function suggestOutput (timeline: string, ext: string): string {
  const slash = Math.max(timeline.lastIndexOf('/'), timeline.lastIndexOf('\\'))
  const dir = timeline.slice(0, slash + 1)
  const base = timeline.slice(slash + 1).replace(/\.[^.]*$/, '')
  return `${dir}${base === '' ? 'render' : base}-render${ext}`
}

export const PRESET_EXT: Record<string, string> = { ffv1: '.mkv', h264: '.mp4', hevc: '.mp4', prores: '.mov' }
