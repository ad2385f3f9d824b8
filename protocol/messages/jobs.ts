/**
 * Messages of distributed rendering: what an owner submits, what the coordinator leases,
 * what workers report, and the job record every member keeps a copy of.
 *
 *   // owner → coordinator on '/renderswarm/submit/1' (one request, one reply)
 *   await node.request(coordinator, PROTOCOLS.submit, { type: 'submit', job }, SubmitReplySchema)
 *   // coordinator → worker on '/renderswarm/chunk/1'
 *   await node.request(worker, PROTOCOLS.chunk, { type: 'lease', term, lease }, LeaseReplySchema)
 *   // coordinator → every member on '/renderswarm/status/1'
 *   await node.request(member, PROTOCOLS.status, { type: 'job', term, record }, AckSchema)
 *
 * A job never carries ffmpeg arguments, filters, paths or URLs: a timeline snapshot (assets
 * by sha256), a preset name and scheduling fields. Every message from the coordinator names
 * its term; a member refuses a term older than the newest it has seen ('stale-term').
 * Within major 1 fields are only added as optional; enums only grow at the end.
 */
import { z } from 'zod'
import { boundedArray, boundedRecord, TimelineSnapshotSchema } from '../timeline.ts'
import { peerId } from './membership.ts'

export const PRIORITY_NAMES = ['low', 'normal', 'high', 'urgent'] as const
/** 'paused': waiting for its owner, which is offline (the job goes on when the owner is back). */
export const JOB_STATUSES = ['queued', 'running', 'joining', 'done', 'failed', 'cancelled', 'paused'] as const
/** The statuses a job does not leave. */
export const TERMINAL_STATUSES: ReadonlySet<string> = new Set<string>(['done', 'failed', 'cancelled'])
export const CHUNK_STATUSES = ['queued', 'leased', 'done', 'failed'] as const

const ID = /^[A-Za-z0-9_-]{1,64}$/
const SHA = /^[0-9a-f]{64}$/
const NO_CONTROL = /^[^\u0000-\u001f\u007f]*$/
export const id = z.string().regex(ID, 'must be 1–64 letters, digits, "-" or "_"')
export const sha256 = z.string().regex(SHA, 'must be 64 lowercase hex digits')
const text = (max: number) => z.string().max(max, `must be at most ${max} characters`).regex(NO_CONTROL, 'must not contain control characters')
const count = (max = Number.MAX_SAFE_INTEGER) => z.number().int('must be a whole number').nonnegative('must not be negative').max(max, `must be at most ${max}`)
const term = count()
const epochMs = count()
const rational = z.object({ num: z.number().int().positive().max(1_000_000), den: z.number().int().positive().max(1_000_000) }).strict()

/** What the owner probed of each asset: every worker compiles from the same facts. */
export const MediaInfoSchema = z.object({
  video: z.object({ width: count(16384), height: count(16384), fps: rational, frames: count() }).strict().optional(),
  audio: z.object({ sampleRate: count(768000), channels: count(64), seconds: z.number().nonnegative().max(1e7) }).strict().optional()
}).strict()

export const AssetRefSchema = z.object({ sha256, size: count() }).strict()

export const JobSpecSchema = z.object({
  id,
  owner: peerId,
  name: text(200),
  user: text(64),
  preset: z.enum(['ffv1', 'h264', 'hevc', 'prores']),
  priority: z.enum(PRIORITY_NAMES),
  deadlineMs: epochMs.optional(),
  maxCost: z.number().nonnegative().max(1e7).optional(),
  createdMs: epochMs,
  timeline: TimelineSnapshotSchema,
  media: boundedRecord(sha256, MediaInfoSchema, 4096),
  assets: boundedArray(AssetRefSchema, 4096),
  /**
   * What the owner measured of this timeline just before submitting (agent/probe.ts): `frames`
   * rendered in `seconds` with ffmpeg's start-up taken out, that start-up per run, how long
   * the owner's own preparation took, and how many cores a render kept busy. The estimate scales benchmark speeds by it (coordinator/estimate.ts).
   */
  probe: z.object({
    frames: z.number().int().positive().max(100_000),
    seconds: z.number().positive().max(3600),
    startSeconds: z.number().nonnegative().max(600),
    prepareSeconds: z.number().nonnegative().max(3600),
    /** Cores the probe's renders kept busy (ffmpeg's CPU seconds / wall seconds; optional, added within major 1): co-located agents split their host's cores by it. */
    cores: z.number().positive().max(1024).optional(),
    /** `renders` renders side by side on the owner's machine got `worth` renders' worth of work done (optional, added within major 1): co-located agents are sized by it. */
    together: z.object({ renders: z.number().int().min(2).max(64), worth: z.number().min(0.1).max(64) }).strict().optional()
  }).strict().optional()
}).strict()
export type JobSpec = z.infer<typeof JobSpecSchema>

export const ChunkRecordSchema = z.object({
  id,
  index: count(100_000),
  start: count(),
  end: count(),
  status: z.enum(CHUNK_STATUSES),
  node: peerId.optional(),
  attempts: count(1000),
  framesDone: count(),
  sha256: sha256.optional(),
  startedMs: epochMs.optional(),
  endedMs: epochMs.optional(),
  /** Why each failed attempt failed, oldest first ("node-name: reason"); at most 10 kept. */
  errors: z.array(text(300)).max(10).optional()
}).strict()
export type ChunkRecord = z.infer<typeof ChunkRecordSchema>

/**
 * Chunk ids. A planned chunk is `<job>-<index>`; a piece the coordinator cut from one when it
 * leased it (coordinator/scheduler.ts split, decision 41) is `<job>-r<start>-<end>`, so a piece's
 * id names its frame range wherever it is seen: an owner takes a piece it has not heard of yet by
 * its id alone, and two coordinators that cut a chunk differently never share an id.
 */
export const plannedChunkId = (jobId: string, index: number): string => `${jobId.slice(0, 36)}-${index}`
export const pieceId = (jobId: string, start: number, end: number): string => `${jobId.slice(0, 36)}-r${start}-${end}`
/** The frame range a piece's id names, or undefined when it is not a piece id of this job. */
export function pieceRange (jobId: string, chunkId: string): { start: number; end: number } | undefined {
  const prefix = `${jobId.slice(0, 36)}-r`
  if (!chunkId.startsWith(prefix)) return undefined
  const m = /^(0|[1-9][0-9]{0,11})-(0|[1-9][0-9]{0,11})$/.exec(chunkId.slice(prefix.length))
  if (m === null) return undefined
  const start = Number(m[1]); const end = Number(m[2])
  return start < end ? { start, end } : undefined
}

export const EstimateSchema = z.object({
  seconds: z.object({ low: z.number().nonnegative(), expected: z.number().nonnegative(), high: z.number().nonnegative() }).strict(),
  cost: z.object({ low: z.number().nonnegative(), expected: z.number().nonnegative(), high: z.number().nonnegative(), currency: z.literal('USD') }).strict(),
  nodes: count(100_000),
  completionAt: z.string().max(40),
  chunks: count(100_000),
  framesPerSecond: z.number().nonnegative()
}).strict()

/** The record every member keeps (spec M8): enough for a successor coordinator to go on. */
export const JobRecordSchema = z.object({
  spec: JobSpecSchema,
  status: z.enum(JOB_STATUSES),
  chunks: z.array(ChunkRecordSchema).max(100_000),
  estimate: EstimateSchema.optional(),
  error: text(500).optional(),
  /** Why the job is waiting, while it is 'paused'. */
  note: text(200).optional(),
  /** When the coordinator accepted it. */
  acceptedMs: epochMs.optional(),
  startedMs: epochMs.optional(),
  completedMs: epochMs.optional(),
  framesDone: count(),
  fps: z.number().nonnegative().max(1e6),
  actualCost: z.number().nonnegative().max(1e9),
  updatedMs: epochMs
}).strict()
export type JobRecord = z.infer<typeof JobRecordSchema>

export const LeaseSchema = z.object({
  jobId: id,
  chunkId: id,
  index: count(100_000),
  start: count(),
  end: count(),
  term,
  leaseToken: id,
  expiresAt: epochMs
}).strict()
export type LeaseMsg = z.infer<typeof LeaseSchema>

/** Requests a coordinator serves on '/renderswarm/submit/1' (from owners, workers and CLIs' agents). */
export const CoordinatorRequestSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('submit'), job: JobSpecSchema }).strict(),
  z.object({ type: z.literal('estimate'), job: JobSpecSchema }).strict(),
  z.object({ type: z.literal('cancel'), jobId: id }).strict(),
  z.object({ type: z.literal('get-job'), jobId: id }).strict(),
  /** Which jobs changed since sinceMs (the coordinator's clock), newest first: a member back from a restart or a cut catches up. */
  z.object({ type: z.literal('list-jobs'), sinceMs: epochMs }).strict(),
  z.object({ type: z.literal('progress'), term, jobId: id, chunkId: id, leaseToken: id, framesDone: count(), fps: z.number().nonnegative().max(1e6) }).strict(),
  z.object({ type: z.literal('chunk-done'), term, jobId: id, chunkId: id, leaseToken: id, sha256, frames: count() }).strict(),
  z.object({ type: z.literal('chunk-failed'), term, jobId: id, chunkId: id, leaseToken: id, error: text(500) }).strict(),
  /** The owner holds these verified segments (after each one arrives, and again for a new coordinator). */
  z.object({
    type: z.literal('segments'),
    jobId: id,
    chunks: z.array(z.object({ chunkId: id, sha256 }).strict()).max(100_000),
    /** After an owner restart: chunks it does not hold, so any recorded as done are rendered again. */
    missing: z.array(id).max(100_000).optional()
  }).strict(),
  /** The owner has joined, validated and written the output (or failed to). */
  z.object({ type: z.literal('job-finished'), jobId: id, ok: z.boolean(), error: text(500).optional() }).strict(),
  z.object({ type: z.literal('pause'), peerId: peerId.optional(), all: z.boolean().optional(), paused: z.boolean() }).strict(),
  z.object({ type: z.literal('emergency-stop') }).strict()
])
export type CoordinatorRequest = z.infer<typeof CoordinatorRequestSchema>

/** Messages a worker serves on '/renderswarm/chunk/1' (from the coordinator). */
export const WorkerRequestSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('lease'), lease: LeaseSchema }).strict(),
  z.object({ type: z.literal('cancel'), term, jobId: id }).strict(),
  z.object({ type: z.literal('cancel-chunks'), term, jobId: id, chunkIds: z.array(id).max(100_000) }).strict(),
  z.object({ type: z.literal('stop-all'), term }).strict()
])
export type WorkerRequest = z.infer<typeof WorkerRequestSchema>

/** What the coordinator pushes to every member on '/renderswarm/status/1'. */
export const StatusPushSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('job'), term, record: JobRecordSchema }).strict(),
  z.object({ type: z.literal('progress'), term, jobId: id, framesDone: count(), frames: count(), fps: z.number().nonnegative().max(1e6), chunks: z.array(z.object({ id, status: z.enum(CHUNK_STATUSES), node: peerId.optional(), framesDone: count() }).strict()).max(100_000) }).strict(),
  z.object({ type: z.literal('paused'), term, peers: z.array(peerId).max(10_000) }).strict()
])
export type StatusPush = z.infer<typeof StatusPushSchema>

/** Messages of '/renderswarm/election/1'. */
export const ElectionMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('vote'), term, candidate: peerId }).strict(),
  z.object({ type: z.literal('leader'), term, leader: peerId }).strict()
])
export const VoteReplySchema = z.object({ granted: z.boolean(), term, reason: text(200).optional() }).strict()

export const AckSchema = z.object({ ok: z.literal(true) }).strict().or(z.null())
export const SubmitReplySchema = z.object({ record: JobRecordSchema }).strict()
export const EstimateReplySchema = z.object({ estimate: EstimateSchema }).strict()
export const JobReplySchema = z.object({ record: JobRecordSchema.optional() }).strict()
/** At most this many jobs in a list-jobs reply. */
export const MAX_LISTED_JOBS = 500
export const JobListReplySchema = z.object({ jobs: z.array(z.object({ jobId: id, updatedMs: epochMs }).strict()).max(MAX_LISTED_JOBS) }).strict()
export const LeaseReplySchema = z.object({ accepted: z.boolean(), reason: text(200).optional() }).strict()
