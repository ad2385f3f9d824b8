/**
 * The owner side of a job: the agent an editor submits to. It validates the request, hashes
 * the timeline's media into its content store, submits the snapshot to the coordinator,
 * renders the audio once, receives every segment straight from the workers, joins them
 * (concat, no re-encode), muxes the audio, validates, and writes the output where asked.
 *
 *   const owner = new Owner({ node, store, cache, tools, caps, jobsDir, coordinator, log })
 *   const record = await owner.submit({ timeline: '/proj/edit.json', output: '/proj/out.mkv', preset: 'ffv1' })
 *
 * Nothing is half-created: every check (request, preset, output folder, timeline, media,
 * filters, the coordinator's estimate and maxCost) runs before the job exists anywhere; a
 * refused job leaves no record and no work dir. The output is written to a temporary name
 * beside it and renamed into place only after validation; an existing file is left as it
 * was when anything fails.
 *
 * Every arriving segment is checked (frame count and timestamps) before it counts; a bad one is
 * refused ('invalid-segment') and rendered again. A segment is a frame range: a planned chunk, or a
 * piece the coordinator cut from one when it leased it (its id names its range; decision 41). The
 * job is joined once the segments here cover every frame, one after another. An owner that restarts takes its unfinished
 * jobs up again (`resume`): the job's record from its store, the verified segments in its job
 * dir, the audio rendered anew; the coordinator hears which segments it holds and which it
 * lost, and workers that kept segments while it was away hand them over.
 *
 * What the coordinator must hear from the owner is kept until it is acknowledged, and offered
 * again every few seconds (`start()`): the segments a new coordinator should know about (above
 * all, the ones a restarted owner lost, which would otherwise never be rendered again) and a
 * written (or failed) job's outcome, which is stored first so that a restart neither loses it nor
 * renders the job again.
 */
import { createHash, randomUUID } from 'node:crypto'
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises'
import path from 'node:path'
import { z } from 'zod'
import { WireError } from '../protocol/errors.ts'
import { MAX_FRAME_BYTES, PROTOCOLS } from '../protocol/ids.ts'
import { AckSchema, EstimateReplySchema, pieceId, pieceRange, PRIORITY_NAMES, SubmitReplySchema, TERMINAL_STATUSES as TERMINAL, type JobRecord, type JobSpec } from '../protocol/messages/jobs.ts'
import { tileRanges } from '../coordinator/planner.ts'
import { framesToSeconds, TimelineError } from '../protocol/timeline.ts'
import type { AssetCache } from './assets.ts'
import type { FfmpegCapabilities, FfmpegTools } from './ffmpeg.ts'
import type { FarmNode } from './node.ts'
import { compileAudio } from './render/audio.ts'
import { requiredFilters } from './render/compile.ts'
import { compileJoin } from './render/join.ts'
import { resolvePreset, type Preset } from './render/presets.ts'
import { runInvocation } from './render/run.ts'
import { validateOutput } from './render/validate.ts'
import { sha256File } from './assets.ts'
import type { Store } from './store.ts'
import { loadTimelineFile } from './timeline-file.ts'
import { probeTimeline, type ProbeResult } from './probe.ts'

/** The body of `POST /v1/jobs` (and `POST /v1/estimate`). Paths are on the owner's machine. */
export const JobRequestSchema = z.object({
  timeline: z.string().min(1, 'must name the timeline file').max(4096),
  output: z.string().min(1, 'must name the output file').max(4096).optional(),
  preset: z.string().max(32).default('ffv1'),
  priority: z.string().max(16).default('normal'),
  /** ISO 8601 time, or a duration from now such as "30m", "2h", "90s". */
  deadline: z.string().max(64).optional(),
  maxCost: z.number({ invalid_type_error: 'must be a number of US dollars' }).nonnegative('must not be negative').max(1e7).optional(),
  name: z.string().max(200).regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters').optional(),
  user: z.string().max(64).regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters').optional()
}).strict()
export type JobRequest = z.input<typeof JobRequestSchema>

/** A refused submission: `field` names the part of the request to blame. */
export class JobRequestError extends Error {
  override readonly name = 'JobRequestError'
  constructor (readonly field: string, problem: string, readonly code: 'invalid-job' | 'cost-exceeded' | 'not-coordinator' = 'invalid-job') {
    super(field === '' ? problem : `${field}: ${problem}`)
  }
}

/** "30m", "2h", "90s", "1d" from now, or an ISO time; must lie in the future. */
export function parseDeadline (s: string, nowMs: number): number {
  const rel = /^(\d{1,6})\s*(s|m|h|d)$/.exec(s.trim())
  let at: number
  if (rel !== null) at = nowMs + Number(rel[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 's' | 'm' | 'h' | 'd']
  else if (/^\d{4}-\d{2}-\d{2}T/.test(s)) at = Date.parse(s)
  else throw new JobRequestError('deadline', `"${s.slice(0, 64)}" is neither a duration like 30m, 2h, 90s nor an ISO time like 2026-12-01T18:00:00Z`)
  if (!Number.isFinite(at)) throw new JobRequestError('deadline', `"${s.slice(0, 64)}" is not a valid time`)
  if (at <= nowMs) throw new JobRequestError('deadline', `${new Date(at).toISOString()} is in the past`)
  return at
}

export interface OwnerDeps {
  node: FarmNode
  store: Store
  cache: AssetCache
  tools: FfmpegTools
  caps: FfmpegCapabilities
  jobsDir: string
  /** Waits (briefly) for the coordinator of the current term. */
  coordinator: () => Promise<string>
  log: (line: string) => void
  onChange?: (jobId: string) => void
  /** Render nodes (slots ≥ 1, taking work now) on this machine, this one included: the estimate's probe renders as many side by side. */
  coLocated?: () => number
}

interface Owned {
  spec: JobSpec
  preset: Preset
  output: string
  dir: string
  /** Planned chunks (from the record) and pieces (from their ids) by id; a file once its segment is here. */
  chunks: Map<string, Segment>
  audio: Promise<string>
  abort: AbortController
  finishing: boolean
  /** How many chunks the record planned (pieces beyond them are bounded by MAX_PIECES). */
  planned: number
  error?: string
  /** Taken up again after a restart: the next report to the coordinator lists the lost segments. */
  resumed?: boolean
  /** The coordinator (a new one, or one this owner restarted under) has yet to hear which segments are here. */
  report?: boolean
}

interface Segment { start: number; end: number; file: string | undefined; sha256?: string | undefined }
/** Pieces one job may hold beyond its planned chunks (each is a segment on disk): a bound on what a member can make an owner keep. */
const MAX_PIECES = 10_000

/** A job's outcome the coordinator has not acknowledged yet (kept in the store under UNREPORTED). */
interface Outcome { ok: boolean; error?: string; again?: boolean }
/** Outcomes acknowledged this recently are told to a new coordinator too (its replica may have missed the end). */
const RECENT_MS = 600_000
const UNREPORTED = 'owner-unreported'
/** How long a submit or estimate waits out an election (the coordinator answering "not the coordinator"). */
const ELECTION_WAIT_MS = 15_000
/** How often unacknowledged reports are offered again. */
const SYNC_MS = 3000


export class Owner {
  private readonly jobs = new Map<string, Owned>()
  /** Jobs whose output this owner wrote (the most recent 1000). */
  private readonly written = new Set<string>()
  /** The estimate's probe of each timeline+preset (agent/probe.ts), kept 10 minutes so a submit after an estimate does not probe again (unless it ran on a busy machine). */
  private readonly probes = new Map<string, { at: number; result: ProbeResult }>()
  /** Outcomes of written (or failed) jobs the coordinator has not acknowledged; stored, so a restart keeps them. */
  private readonly unreported: Map<string, Outcome>
  /** Acknowledged outcomes, by when: the newest, for a coordinator that takes over. */
  private readonly recent = new Map<string, { outcome: Outcome; at: number }>()
  private timer: NodeJS.Timeout | undefined
  private syncing = false
  private syncAgain = false

  constructor (private readonly d: OwnerDeps) {
    this.unreported = new Map(Object.entries(d.store.getJson<Record<string, Outcome>>(UNREPORTED) ?? {}))
  }

  /** Takes up this member's unfinished jobs (resume) and keeps offering what the coordinator has not acknowledged. */
  async start (): Promise<void> {
    await this.resume()
    this.timer = setInterval(() => { if (!this.syncing) this.syncSoon() }, SYNC_MS)
    this.timer.unref()
  }

  /** Checks a request and builds the job's spec; throws JobRequestError before anything exists. */
  async prepare (body: unknown, opts: { needOutput: boolean }): Promise<{ spec: JobSpec; preset: Preset; output: string | undefined; sources: Record<string, string> }> {
    const res = JobRequestSchema.safeParse(body)
    if (!res.success) {
      const issue = res.error.issues[0]!
      const field = issue.code === 'unrecognized_keys' ? (issue.keys[0] ?? '') : issue.path.join('.')
      throw new JobRequestError(field, issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message)
    }
    const req = res.data
    const now = Date.now()
    const began = performance.now()
    if (!(PRIORITY_NAMES as readonly string[]).includes(req.priority)) throw new JobRequestError('priority', `"${req.priority}" is not a priority; use one of ${PRIORITY_NAMES.join(', ')}`)
    const deadlineMs = req.deadline !== undefined ? parseDeadline(req.deadline, now) : undefined
    let preset: Preset
    try { preset = resolvePreset(req.preset, this.d.caps) } catch (err) { throw new JobRequestError('preset', (err as Error).message) }
    let output: string | undefined
    if (req.output !== undefined) {
      if (!path.isAbsolute(req.output)) throw new JobRequestError('output', `"${req.output}" must be an absolute path`)
      output = path.resolve(req.output)
      if (path.extname(output).toLowerCase() !== preset.ext) throw new JobRequestError('output', `"${path.basename(output)}" should end in ${preset.ext} for preset ${preset.name}`)
      const dir = await stat(path.dirname(output)).catch(() => undefined)
      if (dir?.isDirectory() !== true) throw new JobRequestError('output', `the output folder ${path.dirname(output)} does not exist`)
    } else if (opts.needOutput) {
      throw new JobRequestError('output', 'is required: where should the rendered file go?')
    }
    if (!path.isAbsolute(req.timeline)) throw new JobRequestError('timeline', `"${req.timeline}" must be an absolute path`)
    let loaded
    try {
      loaded = await loadTimelineFile(req.timeline, { ffprobe: this.d.tools.ffprobe })
    } catch (err) {
      if (err instanceof TimelineError) throw new JobRequestError(err.field === '' ? 'timeline' : `timeline ${err.field}`, err.problem)
      throw new JobRequestError('timeline', (err as Error).message)
    }
    const missing = [...requiredFilters(loaded.snapshot)].filter((f) => !this.d.caps.filters.has(f))
    if (missing.length > 0) throw new JobRequestError('timeline', `needs the ffmpeg filter(s) ${missing.join(', ')}, which this machine's ffmpeg lacks`)
    const assets = await Promise.all(Object.entries(loaded.sources).map(async ([sha, file]) => ({ sha256: sha, size: (await stat(file)).size })))
    const spec: JobSpec = {
      id: randomUUID(),
      owner: this.d.node.peerId.toString(),
      name: req.name ?? loaded.snapshot.name ?? path.basename(req.timeline),
      user: req.user ?? process.env.USER ?? 'editor',
      preset: preset.name,
      priority: req.priority as JobSpec['priority'],
      ...(deadlineMs !== undefined ? { deadlineMs } : {}),
      ...(req.maxCost !== undefined ? { maxCost: req.maxCost } : {}),
      createdMs: now,
      timeline: loaded.snapshot,
      media: loaded.media as JobSpec['media'],
      assets
    }
    if (JSON.stringify(spec).length > MAX_FRAME_BYTES.submit - 1024) throw new JobRequestError('timeline', `is too large to submit (over ${MAX_FRAME_BYTES.submit / 1024 / 1024} MiB as a snapshot)`)
    const prepareSeconds = Math.round((performance.now() - began) / 1000 * 1e4) / 1e4
    const probe = await this.probe(spec, preset, loaded.sources)
    if (probe !== undefined) spec.probe = { ...probe, prepareSeconds }
    return { spec, preset, output, sources: loaded.sources }
  }

  /** The timeline's probe for the estimate (cached per timeline and preset); undefined when it could not run. */
  private async probe (spec: JobSpec, preset: Preset, sources: Record<string, string>): Promise<ProbeResult | undefined> {
    const key = createHash('sha256').update(preset.name).update(JSON.stringify(spec.timeline)).update(JSON.stringify(spec.media)).digest('hex')
    const now = Date.now()
    for (const [k, v] of this.probes) if (now - v.at > 600_000) this.probes.delete(k)
    const hit = this.probes.get(key)
    if (hit !== undefined) return hit.result
    try {
      await mkdir(this.d.jobsDir, { recursive: true })
      const { result, busy } = await probeTimeline({ timeline: spec.timeline, media: spec.media, sources, preset, ffmpeg: this.d.tools.ffmpeg, tmpDir: this.d.jobsDir, together: this.d.coLocated?.() ?? 1 })
      // A probe on a machine with no idle core (this agent's own start-up benchmark, another
      // render) undersells it: used for this estimate only, measured again next time.
      if (busy) {
        this.probes.delete(key)
        return result
      }
      if (this.probes.size >= 100) this.probes.delete(this.probes.keys().next().value!)
      this.probes.set(key, { at: now, result })
      return result
    } catch (err) {
      // The estimate falls back on the benchmark alone; a timeline that cannot render fails on the workers with their reason.
      this.d.log(`estimate probe of ${spec.name}: ${(err as Error).message}`)
      return undefined
    }
  }

  async estimate (body: unknown): Promise<z.infer<typeof EstimateReplySchema>['estimate']> {
    const { spec } = await this.prepare(body, { needOutput: false })
    try {
      return await this.whileElecting(async () => (await this.d.node.request(await this.d.coordinator(), PROTOCOLS.submit, { type: 'estimate', job: spec }, EstimateReplySchema, { maxBytes: MAX_FRAME_BYTES.submit })).estimate)
    } catch (err) {
      throw asRequestError(err)
    }
  }

  /**
   * Runs a request to the coordinator again while the member asked says it is not the coordinator
   * (an election is settling: the one this member knew just stepped down or restarted), asking
   * whoever is coordinator then, every 0.5 s for up to ELECTION_WAIT_MS. Such a refusal creates
   * nothing, so asking again is safe; any other answer or error goes to the caller.
   */
  private async whileElecting<T> (ask: () => Promise<T>): Promise<T> {
    const until = Date.now() + ELECTION_WAIT_MS
    for (;;) {
      try {
        return await ask()
      } catch (err) {
        if (!(err instanceof WireError && err.code === 'not-coordinator') || Date.now() >= until) throw err
        await new Promise((resolve) => setTimeout(resolve, 500))
      }
    }
  }

  async submit (body: unknown): Promise<JobRecord> {
    const { spec, preset, output, sources } = await this.prepare(body, { needOutput: true })
    // Media into the content store first (workers fetch it from here by hash); the store is a
    // cache, so a refused job leaves nothing that belongs to it.
    for (const [sha, file] of Object.entries(sources)) await this.d.cache.put(file, sha)
    const dir = path.join(this.d.jobsDir, spec.id)
    let record: JobRecord
    // Where the output goes, kept until the coordinator has answered: if the answer is lost (the
    // coordinator died after accepting), the job still reaches this owner and is taken up.
    const pendingKey = `submitting:${spec.id}`
    this.d.store.setJson(pendingKey, output)
    try {
      record = await this.whileElecting(async () => (await this.d.node.request(await this.d.coordinator(), PROTOCOLS.submit, { type: 'submit', job: spec }, SubmitReplySchema, { maxBytes: MAX_FRAME_BYTES.submit, timeoutMs: 20_000 })).record)
    } catch (err) {
      // A refusal is final; anything else (a timeout, a lost connection) may have been accepted.
      if (err instanceof WireError) this.d.store.deleteKey(pendingKey)
      const refused = asRequestError(err)
      if (!(err instanceof WireError)) refused.message = `${refused.message} (the farm may still have taken the job: \`renderswarm jobs\` shows it if so, and it will be written to ${output!})`
      throw refused
    }
    const abort = new AbortController()
    const owned: Owned = {
      spec, preset, output: output!, dir, abort, finishing: false, planned: record.chunks.length,
      chunks: new Map(record.chunks.map((c) => [c.id, { start: c.start, end: c.end, file: undefined }])),
      audio: this.renderAudio(spec, preset, dir, abort.signal)
    }
    owned.audio.catch(() => {})
    this.jobs.set(spec.id, owned)
    await mkdir(dir, { recursive: true })
    this.d.store.putJob(spec.id, record, record.updatedMs)
    this.d.store.setJobOutput(spec.id, owned.output)
    this.d.store.deleteKey(pendingKey)
    this.d.log(`job ${spec.id} submitted: ${record.chunks.length} chunks, ${spec.timeline.duration} frames → ${owned.output}`)
    return record
  }

  /** SegmentService asks where to store an incoming segment. */
  acceptSegment (h: { jobId: string; chunkId: string; index: number; frames: number }): { path: string } | { refuse: 'not-found' | 'duplicate'; message: string } {
    const job = this.jobs.get(h.jobId)
    // A late copy of a chunk (a worker that was cut off, a speculative copy) after the output is written.
    if (job === undefined && (this.written.has(h.jobId) || this.unreported.has(h.jobId))) return { refuse: 'duplicate', message: `job ${h.jobId} is already written` }
    if (job === undefined) {
      const rec = this.d.store.getJob<JobRecord>(h.jobId)
      if (rec !== undefined && TERMINAL.has(rec.status)) return { refuse: 'duplicate', message: `job ${h.jobId} is ${rec.status}; its segments are no longer needed` }
      // Ours, but the submit's answer was lost: take it up now; the worker offers the segment again.
      if (rec !== undefined && rec.spec.owner === this.d.node.peerId.toString() && this.outputOf(h.jobId) !== undefined) {
        this.resuming ??= this.resume().finally(() => { this.resuming = undefined })
        return { refuse: 'not-found', message: `job ${h.jobId} is being taken up here; offer the segment again` }
      }
    }
    if (job === undefined) return { refuse: 'not-found', message: `this member owns no running job ${h.jobId}` }
    const chunk = this.segmentOf(job, h.chunkId)
    if (chunk === undefined || chunk.end - chunk.start !== h.frames) return { refuse: 'not-found', message: `job ${h.jobId} has no chunk ${h.chunkId} of ${h.frames} frames` }
    if (chunk.file !== undefined) return { refuse: 'duplicate', message: `chunk ${h.chunkId} is already here` }
    if (!job.chunks.has(h.chunkId) && job.chunks.size >= MAX_PIECES + job.planned) return { refuse: 'not-found', message: `job ${h.jobId} already holds ${MAX_PIECES} pieces beyond its plan` }
    return { path: segmentPath(job.dir, chunk, job.preset.ext) }
  }

  /** A planned chunk, or a piece of this job named by its id (not kept until its segment is). */
  private segmentOf (job: Owned, chunkId: string): Segment | undefined {
    const known = job.chunks.get(chunkId)
    if (known !== undefined) return known
    const r = pieceRange(job.spec.id, chunkId)
    return r !== undefined && r.end <= job.spec.timeline.duration ? { ...r, file: undefined } : undefined
  }

  /** A verified segment is stored: when it is the last one, join. */
  async segmentStored (h: { jobId: string; chunkId: string; sha256: string }, file: string): Promise<void> {
    const job = this.jobs.get(h.jobId)
    const chunk = job === undefined ? undefined : this.segmentOf(job, h.chunkId)
    if (job === undefined || chunk === undefined || chunk.file !== undefined) return
    // The worker checked it too; the owner does not take a segment on trust (a bad disk, a bad worker).
    try {
      await validateOutput(this.d.tools.ffprobe, file, { frames: chunk.end - chunk.start, fps: job.spec.timeline.fps })
    } catch (err) {
      await rm(file, { force: true })
      throw new WireError('invalid-segment', `segment [${chunk.start}, ${chunk.end}) of job ${h.jobId}: ${(err as Error).message.replace(file, 'the segment')}`)
    }
    const entry = job.chunks.get(h.chunkId) ?? chunk
    if (entry.file !== undefined) return
    entry.file = file
    entry.sha256 = h.sha256
    job.chunks.set(h.chunkId, entry)
    if (!job.finishing && tiling(job) !== undefined) {
      job.finishing = true
      void this.finish(job)
    }
  }

  /** The coordinator's record changed (replicated): a cancelled or failed job is cleaned up here. */
  async recordChanged (record: JobRecord): Promise<void> {
    const job = this.jobs.get(record.spec.id)
    if (job === undefined) return
    // 'done' while this owner has not joined it: a copy taken up after a restart whose end was
    // decided meanwhile (its output was written before the restart).
    if (record.status === 'cancelled' || ((record.status === 'failed' || record.status === 'done') && !job.finishing)) {
      job.abort.abort()
      this.jobs.delete(record.spec.id)
      await job.audio.catch(() => {})
      await rm(job.dir, { recursive: true, force: true })
      this.d.log(`job ${record.spec.id} ${record.status}; its work dir is removed`)
    }
  }

  /**
   * Tells a (new) coordinator which segments this owner already holds, so that it does not have
   * them rendered again (a worker's own report may have died with the previous coordinator).
   */
  async reportSegments (coordinator: string): Promise<void> {
    for (const job of this.jobs.values()) job.report = true
    const now = Date.now()
    for (const [jobId, { outcome, at }] of this.recent) {
      if (now - at > RECENT_MS) this.recent.delete(jobId)
      else if (!this.unreported.has(jobId)) this.unreported.set(jobId, { ...outcome, again: true })
    }
    await this.sync(coordinator)
  }

  /**
   * Offers the coordinator what it has not acknowledged: the segments held (and, after a restart,
   * lost) for each job marked to report, and the outcome of each written job. What fails stays
   * marked and is offered again on the next round.
   */
  private async sync (coordinator?: string): Promise<void> {
    for (const [jobId, job] of this.jobs) {
      if (job.report !== true && job.resumed !== true) continue
      const held = [...job.chunks].filter(([, c]) => c.file !== undefined && c.sha256 !== undefined).map(([chunkId, c]) => ({ chunkId, sha256: c.sha256! }))
      const missing = job.resumed === true ? [...job.chunks].filter(([, c]) => c.file === undefined).map(([chunkId]) => chunkId) : []
      if (held.length === 0 && missing.length === 0) { job.report = false; continue }
      try {
        const to = coordinator ?? await this.d.coordinator()
        await this.d.node.request(to, PROTOCOLS.submit, { type: 'segments', jobId, chunks: held, ...(missing.length > 0 ? { missing } : {}) }, AckSchema, { timeoutMs: 5000 })
        job.resumed = false
        job.report = false
      } catch (err) {
        this.d.log(`telling the coordinator which segments of job ${jobId} are here: ${(err as Error).message}; trying again`)
      }
    }
    for (const [jobId, outcome] of this.unreported) {
      // The coordinator's record already says so (its acknowledgement was what got lost), unless
      // this is a new coordinator's turn to hear it.
      if (outcome.again !== true) {
        const rec = this.d.store.getJob<JobRecord>(jobId)
        if (rec === undefined || TERMINAL.has(rec.status)) { this.reported(jobId); continue }
      }
      try {
        const to = coordinator ?? await this.d.coordinator()
        await this.d.node.request(to, PROTOCOLS.submit, { type: 'job-finished', jobId, ok: outcome.ok, ...(outcome.error !== undefined ? { error: outcome.error } : {}) }, AckSchema, { timeoutMs: 5000 })
        this.reported(jobId)
      } catch (err) {
        this.d.log(`telling the coordinator job ${jobId} finished: ${(err as Error).message}; trying again`)
      }
    }
  }

  /** Starts a sync unless one is running (then one more follows it, so nothing new waits for the timer). */
  private syncSoon (): void {
    if (this.syncing) { this.syncAgain = true; return }
    this.syncing = true
    void this.sync().finally(() => {
      this.syncing = false
      if (this.syncAgain) { this.syncAgain = false; this.syncSoon() }
    })
  }

  private reported (jobId: string): void {
    const outcome = this.unreported.get(jobId)
    if (outcome === undefined) return
    this.unreported.delete(jobId)
    if (outcome.again === true) return
    this.recent.set(jobId, { outcome, at: Date.now() })
    if (this.recent.size > 1000) this.recent.delete(this.recent.keys().next().value!)
    this.saveUnreported()
  }

  /** Stores the outcomes still to report (those only retold to a new coordinator are already acknowledged). */
  private saveUnreported (): void {
    this.d.store.setJson(UNREPORTED, Object.fromEntries([...this.unreported].filter(([, o]) => o.again !== true)))
  }

  /**
   * After a restart: takes up every unfinished job this member owns, from its stored record and
   * the segments in its job dir (each re-hashed and checked; anything half-written is removed).
   */
  async resume (): Promise<void> {
    const self = this.d.node.peerId.toString()
    for (const rec of this.d.store.listJobs<JobRecord>(10_000)) {
      const id = rec.spec.id
      // A job whose output is written and whose outcome waits to be reported is not rendered again.
      if (rec.spec.owner !== self || TERMINAL.has(rec.status) || this.jobs.has(id) || this.unreported.has(id)) continue
      const output = this.outputOf(id)
      if (output !== undefined && this.d.store.jobOutput(id) === undefined) { this.d.store.setJobOutput(id, output); this.d.store.deleteKey(`submitting:${id}`) }
      let preset: Preset
      try {
        if (output === undefined) throw new Error('its output path was not recorded')
        preset = resolvePreset(rec.spec.preset, this.d.caps)
      } catch (err) {
        this.d.log(`job ${id} cannot be taken up again: ${(err as Error).message}`)
        continue
      }
      const dir = path.join(this.d.jobsDir, id)
      await mkdir(dir, { recursive: true })
      for (const f of await readdir(dir)) if (f.endsWith('.part') || f.startsWith('audio') || f === 'segments.ffconcat') await rm(path.join(dir, f), { recursive: true, force: true })
      // The record's chunks (pieces included, as far as this replica knows them), and any other
      // piece whose segment is here.
      const chunks: Owned['chunks'] = new Map(rec.chunks.map((c) => [c.id, { start: c.start, end: c.end, file: undefined }]))
      const recorded = new Map(rec.chunks.map((c) => [`${c.start}-${c.end}`, c]))
      let kept = 0
      for (const f of await readdir(dir)) {
        const m = /^seg-(\d{9})-(\d{9})\./.exec(f)
        if (m === null || !f.endsWith(preset.ext)) continue
        const start = Number(m[1]); const end = Number(m[2])
        const c = recorded.get(`${start}-${end}`)
        const file = path.join(dir, f)
        try {
          if (!(start < end && end <= rec.spec.timeline.duration)) throw new Error(`[${start}, ${end}) is not a range of this job`)
          const sha = await sha256File(file)
          if (c?.sha256 !== undefined && c.sha256 !== sha) throw new Error(`hash ${sha.slice(0, 12)}… is not the recorded ${c.sha256.slice(0, 12)}…`)
          await validateOutput(this.d.tools.ffprobe, file, { frames: end - start, fps: rec.spec.timeline.fps })
          chunks.set(c?.id ?? pieceId(id, start, end), { start, end, file, sha256: sha })
          kept++
        } catch (err) {
          this.d.log(`job ${id}: segment [${start}, ${end}) in the job dir is unusable (${(err as Error).message}); it will be rendered again`)
          await rm(file, { force: true })
        }
      }
      if (this.jobs.has(id)) continue // its submit's answer arrived meanwhile
      const abort = new AbortController()
      const owned: Owned = { spec: rec.spec, preset, output: output!, dir, abort, finishing: false, resumed: true, chunks, planned: rec.chunks.length, audio: this.renderAudio(rec.spec, preset, dir, abort.signal) }
      owned.audio.catch(() => {})
      this.jobs.set(id, owned)
      this.d.log(`job ${id} taken up again after a restart: ${kept} segment(s) already here${tiling(owned) !== undefined ? ', every frame' : ''}`)
      if (tiling(owned) !== undefined) { owned.finishing = true; void this.finish(owned) }
    }
  }

  private resuming: Promise<void> | undefined

  /** Where a job's output goes: recorded once accepted, or pending while its submit was unanswered. */
  private outputOf (jobId: string): string | undefined {
    return this.d.store.jobOutput(jobId) ?? this.d.store.getJson<string>(`submitting:${jobId}`)
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    for (const job of this.jobs.values()) job.abort.abort()
    await Promise.all([...this.jobs.values()].map((j) => j.audio.catch(() => {})))
  }

  private async renderAudio (spec: JobSpec, preset: Preset, dir: string, signal: AbortSignal): Promise<string> {
    const file = path.join(dir, `audio${preset.audioExt}`)
    const paths: Record<string, string> = {}
    for (const a of spec.assets) paths[a.sha256] = await this.d.cache.verified(a.sha256)
    await runInvocation(compileAudio({ timeline: spec.timeline, media: spec.media, assetPath: (sha) => paths[sha]!, workDir: path.join(dir, 'audio-work'), preset }, file), { ffmpeg: this.d.tools.ffmpeg, signal })
    return file
  }

  private async finish (job: Owned): Promise<void> {
    const { spec, preset } = job
    const ext = preset.ext
    const partial = path.join(path.dirname(job.output), `.${path.basename(job.output, ext)}.${spec.id.slice(0, 8)}.partial${ext}`)
    let error: string | undefined
    try {
      const audio = await job.audio
      const segments = tiling(job)!.map((c) => ({ file: c.file!, frames: c.end - c.start }))
      await runInvocation(compileJoin({ segments, fps: spec.timeline.fps, audio, preset, listFile: path.join(job.dir, 'segments.ffconcat'), outFile: partial, frames: spec.timeline.duration }), { ffmpeg: this.d.tools.ffmpeg, signal: job.abort.signal })
      await validateOutput(this.d.tools.ffprobe, partial, { frames: spec.timeline.duration, fps: spec.timeline.fps, audioSeconds: framesToSeconds(spec.timeline.duration, spec.timeline.fps) })
      await rename(partial, job.output)
      this.written.add(spec.id)
      if (this.written.size > 1000) this.written.delete(this.written.values().next().value!)
      this.d.log(`job ${spec.id} written to ${job.output}`)
    } catch (err) {
      error = (err as Error).message
      this.d.log(`job ${spec.id} failed at the join: ${error}`)
    }
    // The outcome is stored before the segments go: from here a restart reports it instead of
    // rendering the job again; it is offered until the coordinator acknowledges it.
    this.unreported.set(spec.id, { ok: error === undefined, ...(error !== undefined ? { error: error.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 500) } : {}) })
    this.saveUnreported()
    await rm(partial, { force: true })
    await rm(job.dir, { recursive: true, force: true })
    this.jobs.delete(spec.id)
    this.syncSoon()
  }
}

/** The segments here that cover the job's frames one after another, or undefined while some are missing. */
function tiling (job: Owned): Segment[] | undefined {
  return tileRanges([...job.chunks.values()].filter((c) => c.file !== undefined), job.spec.timeline.duration)
}

/** Where a segment is kept in its job dir: named by its range, so that a restart finds pieces it has no record of. */
function segmentPath (dir: string, c: { start: number; end: number }, ext: string): string {
  return path.join(dir, `seg-${String(c.start).padStart(9, '0')}-${String(c.end).padStart(9, '0')}${ext}`)
}

function asRequestError (err: unknown): Error {
  if (err instanceof WireError && (err.code === 'cost-exceeded' || err.code === 'invalid-job' || err.code === 'not-coordinator')) return new JobRequestError('', err.message, err.code)
  if (err instanceof WireError && err.code === 'schema') return new JobRequestError('', err.message)
  return err as Error
}
