/**
 * The worker side of a member: takes chunk leases from the coordinator, fetches missing
 * assets by hash, renders the chunk with ffmpeg, sends the segment straight to the job's
 * owner and reports to the coordinator.
 *
 *   const worker = new Worker({ node, tools, caps, workRoot, slots: () => 1, … })
 *   await worker.start()                 // serves '/renderswarm/chunk/1'
 *   worker.running()                     // chunks rendering now (heartbeats carry it)
 *
 * A lease is refused ('busy') when every slot is taken or the machine is not accepting work;
 * a lease naming a term older than the newest this member has seen is refused ('stale-term').
 * A lease is also refused while the work dir's disk is under the free-disk floor, or while the
 * job's files here already take its per-job disk quota (agent/render/limits.ts): the reply names
 * the free space and the floor, the coordinator puts the chunk back without counting an attempt,
 * and `lowDisk()` tells the heartbeats the node is not accepting. A segment that takes its job over
 * the quota fails its attempt before it is handed over.
 * Progress renews the lease; cancel and stop-all kill the job's ffmpeg processes (SIGTERM,
 * SIGKILL after a grace) and remove their work dirs.
 *
 * A finished segment whose owner cannot be reached (offline, restarting, cut off) is kept and
 * offered again every few seconds, with the lease renewed meanwhile, for up to `holdMs`; it no
 * longer takes a slot. A segment the owner refuses as corrupt (hash mismatch, failed check) is
 * a failed attempt: the coordinator has it rendered again.
 */
import { mkdir, rm, stat, truncate } from 'node:fs/promises'
import path from 'node:path'
import { WireError } from '../protocol/errors.ts'
import { MAX_FRAME_BYTES, PROTOCOLS } from '../protocol/ids.ts'
import { AckSchema, LeaseReplySchema, WorkerRequestSchema, type JobSpec, type LeaseMsg } from '../protocol/messages/jobs.ts'
import { parseSnapshot } from '../protocol/timeline.ts'
import { takeFault } from './faults.ts'
import type { FfmpegCapabilities, FfmpegTools } from './ffmpeg.ts'
import type { FarmNode } from './node.ts'
import { compileChunk } from './render/compile.ts'
import { dirBytes, jobDiskQuota, jobQuotaReason, lowDiskReason, renderLimits, RenderLimitError } from './render/limits.ts'
import { resolvePreset } from './render/presets.ts'
import { runInvocation } from './render/run.ts'
import { validateOutput } from './render/validate.ts'

export interface WorkerDeps {
  node: FarmNode
  tools: FfmpegTools
  caps: FfmpegCapabilities
  /** Private work dirs of running chunks go under here. */
  workRoot: string
  slots: () => number
  accepting: () => boolean
  /** Throws WireError('stale-term') for a term older than the newest seen; adopts a newer one. */
  checkTerm: (term: number) => void
  /** The coordinator of the current term, if one is known. */
  coordinator: () => string | undefined
  /** The job's spec (from this member's replica, else from the coordinator). */
  job: (jobId: string) => Promise<JobSpec>
  fetchAsset: (sha256: string, from: string[], signal: AbortSignal) => Promise<string>
  sendSegment: (owner: string, h: { jobId: string; chunkId: string; index: number; frames: number }, file: string, signal: AbortSignal) => Promise<{ result: 'stored' | 'duplicate'; sha256: string; bytes: number }>
  /** Members to fetch assets from after the owner, best first. */
  peers: () => string[]
  log: (line: string) => void
  onChange?: () => void
  /** Lease granted → ffmpeg started, for bench/farm's dispatch latency. */
  onDispatch?: (lease: LeaseMsg, ms: number) => void
  /** How long a finished segment waits for an unreachable owner before the attempt is given up. Default 6 h. */
  holdMs?: number
  /** Leases are refused while the work dir's disk has less free, bytes. Default: renderLimits().minFreeBytes (RENDERSWARM_RENDER_MIN_FREE_MB, 1 GiB). */
  minFreeBytes?: number
  /** The most one job's work dirs may take here, bytes; 0: none. Default: jobDiskQuota() (RENDERSWARM_RENDER_JOB_DISK_MB, 200 GiB). */
  jobDiskBytes?: number
}

interface Running { lease: LeaseMsg; abort: AbortController; workDir: string; acceptedMs: number; holding: boolean; done?: Promise<void> }

/** The owner refused the segment itself: render it again rather than offer it again. */
const BAD_SEGMENT = new Set(['hash-mismatch', 'invalid-segment', 'schema', 'frame-too-large', 'bad-frame'])
const RETRY_MS = 2000

export class Worker {
  private readonly runs = new Map<string, Running>()
  /** Chunks this worker has rendered, by job (for tests and the dashboard). */
  readonly rendered: Array<{ jobId: string; chunkId: string; seconds: number }> = []

  private readonly minFreeBytes: number
  private readonly jobDiskBytes: number
  private lowDiskCache: { atMs: number; reason: string | undefined } | undefined
  private lastRefusalLog: { text: string; atMs: number } | undefined

  constructor (private readonly d: WorkerDeps) {
    this.minFreeBytes = d.minFreeBytes ?? renderLimits().minFreeBytes
    this.jobDiskBytes = d.jobDiskBytes ?? jobDiskQuota()
  }

  /** Why this worker takes no chunks now for lack of disk (checked at most once a second), or undefined. */
  lowDisk (): string | undefined {
    const now = Date.now()
    if (this.lowDiskCache === undefined || now - this.lowDiskCache.atMs >= 1000) {
      const low = lowDiskReason(this.d.workRoot, { minFreeBytes: this.minFreeBytes })
      this.lowDiskCache = { atMs: now, reason: low === undefined ? undefined : `${low}; not taking chunks until there is room` }
    }
    return this.lowDiskCache.reason
  }

  /** Bytes this job's chunks take here now (work dirs of runs rendering and of segments kept for the owner). */
  private async jobBytes (jobId: string): Promise<number> {
    let total = 0
    for (const r of this.runs.values()) if (r.lease.jobId === jobId) total += await dirBytes(r.workDir)
    return total
  }

  /** Why a lease for `jobId` is refused for disk, or undefined: the floor, fresh, then the job's quota. */
  private async diskRefusal (jobId: string): Promise<string | undefined> {
    this.lowDiskCache = undefined
    return this.lowDisk() ?? jobQuotaReason(jobId, await this.jobBytes(jobId), this.jobDiskBytes)
  }

  /** A lease reply's reason is at most 200 characters (LeaseReplySchema): a long work dir path is shortened, the figures kept. */
  private fitReason (text: string): string {
    if (text.length <= 200) return text
    const root = this.d.workRoot
    const shorter = text.replace(root, `…${root.slice(-Math.max(8, root.length - (text.length - 200) - 1))}`)
    return shorter.length <= 200 ? shorter : `${shorter.slice(0, 199)}…`
  }

  /** Logs a refusal; the same kind again (figures aside) only every 30 s: the coordinator offers again every few seconds. */
  private logRefusal (text: string): void {
    const now = Date.now()
    const kind = text.replace(/[\d.]+/g, '#')
    if (this.lastRefusalLog !== undefined && this.lastRefusalLog.text === kind && now - this.lastRefusalLog.atMs < 30_000) return
    this.lastRefusalLog = { text: kind, atMs: now }
    this.d.log(`lease refused: ${text}`)
  }

  async start (): Promise<void> {
    await this.d.node.serve(PROTOCOLS.chunk, MAX_FRAME_BYTES.chunk, WorkerRequestSchema, async (msg) => {
      if (msg.type === 'lease') {
        this.d.checkTerm(msg.lease.term)
        const again = this.adopt(msg.lease)
        if (again !== undefined) return again
        if (this.running() >= this.d.slots()) return { accepted: false, reason: `all ${this.d.slots()} slot(s) busy` }
        // The disk first: the machine's availability says "not accepting" for it too, without the figures.
        const disk = await this.diskRefusal(msg.lease.jobId)
        if (disk !== undefined) {
          this.logRefusal(disk)
          return { accepted: false, reason: this.fitReason(disk) }
        }
        if (!this.d.accepting()) return { accepted: false, reason: 'this machine is not taking work now' }
        // Checked again after the await: another lease may have come in meanwhile.
        const meanwhile = this.adopt(msg.lease)
        if (meanwhile !== undefined) return meanwhile
        if (this.running() >= this.d.slots()) return { accepted: false, reason: `all ${this.d.slots()} slot(s) busy` }
        this.begin(msg.lease)
        return { accepted: true }
      }
      this.d.checkTerm(msg.term)
      if (msg.type === 'cancel') await this.cancel(msg.jobId)
      else if (msg.type === 'cancel-chunks') await Promise.all(msg.chunkIds.map(async (c) => { const r = this.runs.get(c); if (r !== undefined && r.lease.jobId === msg.jobId) await this.stopRun(r) }))
      else await this.stopAll()
      return { ok: true }
    })
  }

  /** A lease for a chunk already running here (a new coordinator leased it again): the run goes on and reports under the new lease. */
  private adopt (lease: LeaseMsg): { accepted: boolean; reason?: string } | undefined {
    const running = this.runs.get(lease.chunkId)
    if (running === undefined) return undefined
    if (running.lease.jobId !== lease.jobId) return { accepted: false, reason: 'a chunk with this id is running for another job' }
    running.lease = lease
    return { accepted: true }
  }

  /** Chunks rendering now (not those only waiting to hand their segment over). */
  running (): number {
    let n = 0
    for (const r of this.runs.values()) if (!r.holding) n++
    return n
  }

  /** Finished segments waiting for an unreachable owner. */
  holding (): number {
    return this.runs.size - this.running()
  }

  /** Stops every chunk of a job here, waiting until its ffmpeg processes have exited and work dirs are gone. */
  async cancel (jobId: string): Promise<void> {
    await Promise.all([...this.runs.values()].filter((r) => r.lease.jobId === jobId).map((r) => this.stopRun(r)))
  }

  async stopAll (): Promise<void> {
    await Promise.all([...this.runs.values()].map((r) => this.stopRun(r)))
  }

  private async stopRun (r: Running): Promise<void> {
    r.abort.abort(new WireError('cancelled', 'the job was cancelled'))
    await r.done
  }

  /** The run is over (failed, stopped or finished): a lease for the same chunk from now on starts a new run. */
  private detach (run: Running): void {
    if (this.runs.get(run.lease.chunkId) === run) this.runs.delete(run.lease.chunkId)
  }

  private begin (lease: LeaseMsg): void {
    const abort = new AbortController()
    const workDir = path.join(this.d.workRoot, `${lease.chunkId}-${lease.leaseToken.slice(0, 8)}`)
    const run: Running = { lease, abort, workDir, acceptedMs: performance.now(), holding: false }
    this.runs.set(lease.chunkId, run)
    this.d.onChange?.()
    run.done = this.render(run).catch(async (err: unknown) => {
      if (abort.signal.aborted) { this.d.log(`chunk ${lease.chunkId} stopped`); return }
      const message = (err as Error).message ?? String(err)
      this.d.log(`chunk ${lease.chunkId} failed: ${message}`)
      // Detached before the report: the coordinator may lease this chunk here again at once,
      // and that lease must start a new run, not be adopted by this finished one.
      this.detach(run)
      await this.report({ type: 'chunk-failed', term: run.lease.term, jobId: lease.jobId, chunkId: lease.chunkId, leaseToken: run.lease.leaseToken, error: message.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 500) })
    }).finally(async () => {
      this.detach(run)
      await rm(workDir, { recursive: true, force: true }).catch(() => {})
      this.d.onChange?.()
    })
  }

  private async render (run: Running): Promise<void> {
    const { lease, abort } = run
    const began = performance.now()
    // Fetching the job's record (a machine that just joined or restarted may not hold it yet) and
    // its media can outlast a lease: keep it alive meanwhile. Once ffmpeg runs, only its own
    // progress renews the lease, so a hung render still loses it.
    const fetching = this.renewing(run, 0)
    const paths: Record<string, string> = {}
    let spec: JobSpec
    let timeline: ReturnType<typeof parseSnapshot>
    let preset: ReturnType<typeof resolvePreset>
    try {
      spec = await this.d.job(lease.jobId)
      // Members check what they are given: the snapshot's rules, the preset, the range.
      timeline = parseSnapshot(spec.timeline)
      if (lease.end > timeline.duration || lease.start >= lease.end) throw new WireError('schema', `lease range [${lease.start}, ${lease.end}) is outside the timeline's ${timeline.duration} frames`)
      preset = resolvePreset(spec.preset, this.d.caps)
      const from = [spec.owner, ...this.d.peers().filter((p) => p !== spec.owner)]
      for (const a of spec.assets) paths[a.sha256] = await this.d.fetchAsset(a.sha256, from, abort.signal)
    } finally {
      fetching()
    }
    await mkdir(run.workDir, { recursive: true })
    const segment = path.join(run.workDir, `segment${preset.ext}`)
    const inv = compileChunk({ timeline, media: spec.media, assetPath: (sha) => paths[sha]!, workDir: path.join(run.workDir, 'work'), preset }, lease, segment)
    let lastReport = 0
    this.d.onDispatch?.(lease, performance.now() - run.acceptedMs)
    await runInvocation(inv, {
      ffmpeg: this.d.tools.ffmpeg,
      signal: abort.signal,
      onProgress: (p) => {
        const now = performance.now()
        if (now - lastReport < 500) return
        lastReport = now
        this.progress(run, Math.min(p.frames, lease.end - lease.start), Math.max(0, p.fps))
      }
    })
    // Checking the segment and sending it to the owner can outlast a lease too (a big segment on
    // a slow link, a loaded machine): the render is done, so the lease is kept alive until the
    // coordinator hears how it ended. Transfers have their own time limits.
    const sending = this.renewing(run, lease.end - lease.start)
    let sent: Awaited<ReturnType<Worker['handOver']>>
    try {
      await validateOutput(this.d.tools.ffprobe, segment, { frames: lease.end - lease.start, fps: timeline.fps })
      if (abort.signal.aborted) return
      if (takeFault('segment-truncate')) await truncate(segment, Math.floor((await stat(segment)).size / 2))
      // The job's per-job disk quota here, this segment included: over it, the attempt fails rather than keep it.
      const over = jobQuotaReason(lease.jobId, await this.jobBytes(lease.jobId), this.jobDiskBytes)
      if (over !== undefined) throw new RenderLimitError(`${over}; the segment was not kept`)
      sent = await this.handOver(run, spec.owner, segment)
    } finally {
      sending()
    }
    const seconds = (performance.now() - began) / 1000
    this.rendered.push({ jobId: lease.jobId, chunkId: lease.chunkId, seconds })
    this.d.log(`chunk ${lease.chunkId} [${lease.start}, ${lease.end}) rendered in ${seconds.toFixed(1)} s, ${sent.result} at the owner`)
    await this.report({ type: 'chunk-done', term: run.lease.term, jobId: lease.jobId, chunkId: lease.chunkId, leaseToken: run.lease.leaseToken, sha256: sent.sha256, frames: lease.end - lease.start })
  }

  /**
   * Renews the run's lease every 3 s with `framesDone` until the returned function is called:
   * for the parts of a run where ffmpeg's own progress says nothing.
   */
  private renewing (run: Running, framesDone: number): () => void {
    const t = setInterval(() => { this.progress(run, framesDone, 0) }, 3000)
    return () => { clearInterval(t) }
  }

  /** Tells the coordinator how far the run is; it renews the lease. */
  private progress (run: Running, framesDone: number, fps: number): void {
    const { lease } = run
    void this.report({ type: 'progress', term: lease.term, jobId: lease.jobId, chunkId: lease.chunkId, leaseToken: lease.leaseToken, framesDone, fps })
  }

  /**
   * Sends the segment to the owner; while the owner cannot be reached the segment is kept here
   * (its slot freed; the caller keeps its lease renewed) and offered again, for up to holdMs.
   */
  private async handOver (run: Running, owner: string, segment: string): Promise<{ result: 'stored' | 'duplicate'; sha256: string; bytes: number }> {
    const { lease, abort } = run
    const h = { jobId: lease.jobId, chunkId: lease.chunkId, index: lease.index, frames: lease.end - lease.start }
    const began = Date.now()
    for (let attempt = 0; ; attempt++) {
      try {
        const sent = await this.d.sendSegment(owner, h, segment, abort.signal)
        if (run.holding) this.d.log(`chunk ${lease.chunkId}: the owner took the kept segment after ${((Date.now() - began) / 1000).toFixed(1)} s`)
        return sent
      } catch (err) {
        if (abort.signal.aborted) throw err
        const code = err instanceof WireError ? err.code : undefined
        if (code !== undefined && BAD_SEGMENT.has(code)) throw new WireError(code, `the owner refused the segment: ${(err as Error).message}`)
        const waited = Date.now() - began
        const limit = code === 'not-found' ? 60_000 : this.d.holdMs ?? 6 * 3600_000
        if (waited >= limit) throw new Error(`the owner could not take the segment for ${Math.round(waited / 1000)} s: ${(err as Error).message}`)
        if (!run.holding) {
          run.holding = true
          this.d.log(`chunk ${lease.chunkId}: the owner cannot take the segment now (${(err as Error).message}); keeping it and offering it again`)
          this.d.onChange?.()
        }
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(RETRY_MS * (1 + Math.min(attempt, 4)), 10_000))
        abort.signal.addEventListener('abort', () => { clearTimeout(t); resolve() }, { once: true })
      })
      abort.signal.throwIfAborted()
    }
  }

  /** Tells the coordinator of the current term; a lost report is recovered by lease expiry. */
  private async report (msg: Record<string, unknown>): Promise<void> {
    const to = this.d.coordinator()
    if (to === undefined) return
    try {
      await this.d.node.request(to, PROTOCOLS.submit, msg, AckSchema.or(LeaseReplySchema), { timeoutMs: 5000 })
    } catch (err) {
      this.d.log(`report ${String(msg.type)} for ${String(msg.chunkId)} to the coordinator failed: ${(err as Error).message}`)
    }
  }
}
