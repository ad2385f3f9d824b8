/**
 * The TypeScript SDK for editors' tools and UIs: submit a timeline to the farm through the
 * local agent and follow it. The CLI's submit, estimate, jobs and cancel use it.
 *
 *   const farm = await RenderFarm.connect()                     // the user's agent (or connect(stateDir))
 *   const est = await farm.estimate({ timeline: '/proj/edit.json', preset: 'h264' })
 *   const job = await farm.submit({ timeline: '/proj/edit.json', output: '/proj/out.mp4', preset: 'h264', priority: 'high' })
 *   const stop = farm.onProgress(job.jobId, (p) => console.log(p.framesDone, '/', p.frames))
 *   const final = await farm.wait(job.jobId)                     // resolves when done, failed or cancelled
 *   stop()
 *
 * Paths are on the agent's machine (the SDK talks to the local agent only). Errors from the
 * agent arrive as ApiError with the agent's message, e.g. "maxCost: … CostExceeded".
 */
import { LocalClient } from './client.ts'

export interface JobRequest {
  timeline: string
  output?: string
  preset?: string
  priority?: 'low' | 'normal' | 'high' | 'urgent'
  /** ISO time or a duration from now: "30m", "2h". */
  deadline?: string
  maxCost?: number
  name?: string
}

export interface ChunkSummary { id: string; frameRange: [number, number]; status: string; node?: string; attempts: number; framesDone: number }
export interface JobSummary {
  jobId: string; name: string; status: 'queued' | 'running' | 'joining' | 'done' | 'failed' | 'cancelled' | 'paused'; preset: string; priority: string
  output?: string; frames: number; framesDone: number; fps: number; chunks: ChunkSummary[]; error?: string
  estimate?: Estimate; actualCost: number; createdAt: string; startedAt?: string; completedAt?: string
}
export interface Estimate { seconds: { low: number; expected: number; high: number }; cost: { low: number; expected: number; high: number; currency: 'USD' }; nodes: number; completionAt: string; chunks: number; framesPerSecond: number }
export interface Progress { jobId: string; framesDone: number; frames: number; fps: number; chunks: Array<{ id: string; status: string; node?: string; framesDone: number }> }

const TERMINAL = new Set(['done', 'failed', 'cancelled'])

export class RenderFarm {
  constructor (readonly client: LocalClient) {}

  static async connect (stateDir?: string): Promise<RenderFarm> {
    const dir = stateDir ?? (await import('../../agent/daemon.ts')).defaultStateDir()
    return new RenderFarm(await LocalClient.forStateDir(dir))
  }

  async submit (req: JobRequest): Promise<JobSummary> {
    return (await this.client.post<{ job: JobSummary }>('/v1/jobs', req, 60_000)).job
  }

  async estimate (req: JobRequest): Promise<Estimate> {
    return (await this.client.post<{ estimate: Estimate }>('/v1/estimate', req, 60_000)).estimate
  }

  async status (jobId: string): Promise<JobSummary> {
    return (await this.client.get<{ job: JobSummary }>(`/v1/jobs/${encodeURIComponent(jobId)}`)).job
  }

  async jobs (): Promise<JobSummary[]> {
    return (await this.client.get<{ jobs: JobSummary[] }>('/v1/jobs')).jobs
  }

  async cancel (jobId: string): Promise<void> {
    await this.client.post(`/v1/jobs/${encodeURIComponent(jobId)}/cancel`, {})
  }

  async pause (peerId: string): Promise<void> { await this.client.post('/v1/pause', { peerId }) }
  async resume (peerId: string): Promise<void> { await this.client.post('/v1/resume', { peerId }) }
  async pauseAll (): Promise<void> { await this.client.post('/v1/pause', { all: true }) }
  async resumeAll (): Promise<void> { await this.client.post('/v1/resume', { all: true }) }
  async emergencyStop (): Promise<void> { await this.client.post('/v1/stop', { emergency: true }) }

  /** Calls back with every progress event of a job (and its record changes). Returns an unsubscribe function. */
  onProgress (jobId: string, cb: (p: Progress) => void, onJob?: (j: JobSummary) => void): () => void {
    const abort = new AbortController()
    void this.client.events((type, data) => {
      const d = data as { jobId?: string }
      if (d.jobId !== jobId) return
      if (type === 'progress') cb(data as Progress)
      else if (type === 'job') onJob?.(data as JobSummary)
    }, abort.signal).catch(() => {})
    return () => { abort.abort() }
  }

  /** Resolves with the job's final summary (done, failed or cancelled); polls as a safety net beside the event stream. */
  async wait (jobId: string, opts: { onProgress?: (p: Progress) => void; signal?: AbortSignal; pollMs?: number } = {}): Promise<JobSummary> {
    // Set before each status() call, so an event that lands while it is in flight wakes the next wait.
    let ended = false
    let wake: (() => void) | undefined
    const stop = this.onProgress(jobId, (p) => { opts.onProgress?.(p) }, (j) => { if (TERMINAL.has(j.status)) { ended = true; wake?.() } })
    try {
      for (;;) {
        ended = false
        const job = await this.status(jobId)
        if (TERMINAL.has(job.status)) return job
        if (opts.signal?.aborted === true) throw new Error('stopped waiting')
        if (ended) continue
        await new Promise<void>((resolve) => {
          wake = resolve
          setTimeout(resolve, opts.pollMs ?? 1000)
        })
      }
    } finally {
      stop()
    }
  }
}
