/**
 * The dashboard's view of the agent's local API: a zod schema for each response and SSE event
 * it reads, so a body it does not understand is refused at the boundary (and counted) instead
 * of half-drawn. Objects are not strict: an agent newer than this page may add fields.
 *
 *   const { jobs } = JobsReply.parse(await res.json())
 *   const ev = parseEvent('progress', JSON.parse(e.data))   // undefined when malformed
 */
import { z } from 'zod'

const num = z.number().finite()
const nonneg = num.nonnegative()

export const EstimateSchema = z.object({
  seconds: z.object({ low: nonneg, expected: nonneg, high: nonneg }),
  cost: z.object({ low: nonneg, expected: nonneg, high: nonneg, currency: z.string().max(8) }),
  nodes: nonneg,
  completionAt: z.string().max(40),
  chunks: nonneg,
  framesPerSecond: nonneg
})
export type Estimate = z.infer<typeof EstimateSchema>

export const ChunkSchema = z.object({
  id: z.string().max(64),
  frameRange: z.tuple([nonneg, nonneg]),
  status: z.string().max(16),
  node: z.string().max(128).optional(),
  attempts: nonneg,
  framesDone: nonneg,
  startedAt: nonneg.optional(),
  endedAt: nonneg.optional(),
  /** Why earlier attempts failed (newest last). */
  errors: z.array(z.string().max(300)).max(10).optional()
})
export type Chunk = z.infer<typeof ChunkSchema>

export const JobSchema = z.object({
  jobId: z.string().max(64),
  name: z.string().max(200),
  user: z.string().max(64).optional(),
  owner: z.string().max(128).optional(),
  status: z.string().max(16),
  preset: z.string().max(32),
  priority: z.string().max(16),
  deadline: z.string().max(40).optional(),
  maxCost: nonneg.optional(),
  output: z.string().max(4096).optional(),
  frames: nonneg,
  framesDone: nonneg,
  fps: nonneg,
  chunks: z.array(ChunkSchema).max(100_000),
  estimate: EstimateSchema.optional(),
  actualCost: nonneg,
  error: z.string().max(500).optional(),
  /** Why a job waits, e.g. its owner is offline. */
  note: z.string().max(200).optional(),
  createdAt: z.string().max(40),
  acceptedAt: nonneg.optional(),
  startedAt: z.string().max(40).optional(),
  completedAt: z.string().max(40).optional()
})
export type Job = z.infer<typeof JobSchema>

export const LoadSchema = z.object({
  cpuPct: nonneg,
  memUsedBytes: nonneg,
  memTotalBytes: nonneg,
  gpuPct: nonneg.optional(),
  runningChunks: nonneg
})

export const NodeSchema = z.object({
  peerId: z.string().max(128),
  name: z.string().max(128),
  self: z.boolean(),
  state: z.string().max(16),
  location: z.string().max(16).default('lan'),
  load: LoadSchema.optional(),
  accepting: z.boolean().optional(),
  info: z.object({
    cpu: z.object({ model: z.string().max(128), cores: nonneg }),
    memBytes: nonneg,
    gpus: z.array(z.object({ model: z.string().max(128), vramBytes: nonneg })).max(16),
    bench: z.record(z.string().max(32), nonneg),
    slots: nonneg.optional(),
    costPerHour: nonneg.optional()
  }).optional()
})
export type Node = z.infer<typeof NodeSchema>

export const StatusSchema = z.object({
  farm: z.string().max(128),
  peerId: z.string().max(128),
  name: z.string().max(128),
  nodes: z.object({ total: nonneg, active: nonneg }),
  rendering: z.object({
    coordinator: z.object({ term: nonneg, leader: z.string().max(128).nullable(), self: z.boolean() })
  }).optional(),
  /** The farm's figures (agent/metrics.ts); the dashboard reads which members are paused. */
  metrics: z.object({
    nodes: z.array(z.object({ peerId: z.string().max(128), paused: z.boolean() })).max(10_000)
  }).optional()
})
export type Status = z.infer<typeof StatusSchema>

export const NodesReply = z.object({ nodes: z.array(NodeSchema).max(10_000) })
export const JobsReply = z.object({ jobs: z.array(JobSchema).max(10_000) })
export const JobReply = z.object({ job: JobSchema })
export const EstimateReply = z.object({ estimate: EstimateSchema })
/** The answer to pause, resume, stop and cancel: pause and resume list the paused members. */
export const ControlReply = z.object({ paused: z.array(z.string().max(128)).max(10_000).optional() })
export const ErrorReply = z.object({ error: z.string().max(64).optional(), field: z.string().max(200).optional(), message: z.string().max(2000).optional() })

export const ProgressSchema = z.object({
  jobId: z.string().max(64),
  framesDone: nonneg,
  frames: nonneg,
  fps: nonneg,
  chunks: z.array(z.object({ id: z.string().max(64), status: z.string().max(16), node: z.string().max(128).optional(), framesDone: nonneg })).max(100_000),
  /** When the agent received it (ms since the epoch). */
  atMs: nonneg.optional()
})
export type Progress = z.infer<typeof ProgressSchema>

/** The SSE events the dashboard follows, by event name. */
export const EVENT_SCHEMAS = {
  hello: z.object({ peerId: z.string().max(128), farm: z.string().max(128) }),
  member: z.object({ peerId: z.string().max(128), to: z.string().max(16) }),
  job: JobSchema,
  progress: ProgressSchema,
  leader: z.object({ term: nonneg, leader: z.string().max(128).nullable() }),
  paused: z.object({ peers: z.array(z.string().max(128)).max(10_000) }),
  worker: z.object({ running: nonneg })
} as const
export type EventName = keyof typeof EVENT_SCHEMAS
export type FarmEvent = { [K in EventName]: { type: K; data: z.infer<typeof EVENT_SCHEMAS[K]> } }[EventName]
export const EVENT_NAMES = Object.keys(EVENT_SCHEMAS) as EventName[]

/** An SSE event checked against its schema; undefined when the name is unknown or the data malformed. */
export function parseEvent (type: string, data: unknown): FarmEvent | undefined {
  if (!(type in EVENT_SCHEMAS)) return undefined
  const r = EVENT_SCHEMAS[type as EventName].safeParse(data)
  return r.success ? { type, data: r.data } as FarmEvent : undefined
}
