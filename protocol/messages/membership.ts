/**
 * Messages of '/renderswarm/membership/1' and the mDNS TXT record of `_renderswarm._tcp`.
 *
 *   const msg = decodeJson(frame, MembershipMessageSchema)   // Hello | Heartbeat | NodeInfoMessage | Revoke
 *   const txt = parseTxt(service.txt)                        // throws WireError('schema'), never crashes
 *   service.txt = formatTxt({ farm, peer, addrs, v: PROTOCOL_MAJOR, score: 41.5 })
 *
 * Certificates and revocations are opaque, size-bounded objects here; protocol/farm-key.ts
 * checks them. Within major 1 fields are only added as optional; enums only grow at the end.
 */
import { z } from 'zod'
import { WireError, clipText, schemaError } from '../errors.ts'

const MAX_SAFE = Number.MAX_SAFE_INTEGER
const FARM = /^[0-9a-f]{16}$/
/** libp2p peer id in base58btc (no 0, O, I, l). */
const PEER = /^[1-9A-HJ-NP-Za-km-z]{1,128}$/
const MULTIADDR = /^\/[\x21-\x7e]{1,255}$/
const NO_CONTROL = /^[^\u0000-\u001f\u007f]*$/

const text = (max: number) => z.string().max(max, `must be at most ${max} characters`).regex(NO_CONTROL, 'must not contain control characters')
const count = () => z.number().int('must be a whole number').nonnegative('must not be negative').max(MAX_SAFE, 'must be a safe integer')
const percent = () => z.number().min(0, 'must be 0–100').max(100, 'must be 0–100')

export const farmId = z.string().regex(FARM, 'must be 16 lowercase hex digits')
export const peerId = z.string().regex(PEER, 'must be a base58 peer id of at most 128 characters')
export const multiaddr = z.string().regex(MULTIADDR, 'must be a multiaddr ("/…", printable, at most 256 characters)')

/** An object passed through unread, bounded in keys and encoded size. */
const opaque = (maxKeys: number, maxBytes: number) => z.record(z.string().max(64), z.unknown())
  .refine((o) => Object.keys(o).length <= maxKeys, `must have at most ${maxKeys} keys`)
  .refine((o) => JSON.stringify(o).length <= maxBytes, `must encode to at most ${maxBytes} bytes`)

export const HelloSchema = z.object({
  type: z.literal('hello'),
  v: z.literal(1),
  peerId,
  farm: farmId,
  name: text(64).min(1, 'must not be empty'),
  cert: opaque(32, 8192),
  protocolMajor: z.number().int().min(1).max(65535),
  addrs: z.array(multiaddr).max(16, 'at most 16 addresses')
}).strict()

/** Append-only. */
export const NODE_STATES = ['idle', 'rendering', 'paused', 'draining'] as const

export const HeartbeatSchema = z.object({
  type: z.literal('heartbeat'),
  peerId,
  seq: count(),
  /** Sender's clock, ms since the epoch. */
  sentAt: count(),
  incarnation: count(),
  load: z.object({
    cpuPct: percent(),
    memUsedBytes: count(),
    memTotalBytes: count(),
    gpuPct: percent().optional(),
    runningChunks: count()
  }).strict(),
  accepting: z.boolean(),
  state: z.enum(NODE_STATES)
}).strict()

/** Hardware summary a member advertises. */
export const NodeInfoSchema = z.object({
  cpu: z.object({
    model: text(128),
    cores: z.number().int().min(1).max(1024)
  }).strict(),
  memBytes: count(),
  gpus: z.array(z.object({
    model: text(128),
    vramBytes: count(),
    driver: text(64).optional()
  }).strict()).max(16, 'at most 16 GPUs'),
  os: text(64),
  ffmpeg: z.object({
    version: text(64),
    encoders: z.array(z.string().regex(/^[a-z0-9_]{1,32}$/, 'must be 1–32 of a-z, 0-9, "_"')).max(64, 'at most 64 encoders')
  }).strict(),
  /** Benchmark preset name → frames per second. */
  bench: z.record(
    z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'preset names are 1–32 of a-z, 0-9, "_", "-"'),
    z.number().nonnegative('must not be negative').max(1e6, 'must be at most 1e6 fps')
  ).refine((o) => Object.keys(o).length <= 8, 'at most 8 presets'),
  /** Chunks this node renders at once (0: it submits but never renders). */
  slots: z.number().int().min(0).max(64).optional(),
  /** What an hour of this node costs the studio (power for a workstation, the price for a cloud instance), USD. */
  costPerHour: z.number().nonnegative().max(1000).optional(),
  /** Where the machine is: on the studio LAN, or rented in a cloud (optional, added within major 1). */
  location: z.enum(['lan', 'cloud']).optional(),
  /** The machine and CPU set this node runs on, and the cores it may use: nodes with one id share those cores (agent/hardware.ts; optional, added within major 1). */
  host: z.object({
    id: z.string().regex(/^[0-9a-f]{16}$/, 'must be 16 hex digits'),
    cores: z.number().int().min(1).max(1024)
  }).strict().optional()
}).strict()

export const NodeInfoMessageSchema = z.object({
  type: z.literal('node-info'),
  peerId,
  info: NodeInfoSchema
}).strict()

export const RevokeSchema = z.object({
  type: z.literal('revoke'),
  revocation: opaque(32, 8192)
}).strict()

/** Hello with the sender's hardware and benchmark (optional field, added within major 1). */
export const HelloWithInfoSchema = HelloSchema.extend({
  info: NodeInfoSchema.optional(),
  /** Farm-signed revocations the sender enforces, so a member that was offline catches up. */
  revocations: z.array(opaque(32, 8192)).max(256, 'at most 256 revocations').optional(),
  /** Other live members and their addresses (peer exchange): a machine that only knows a bootstrap address meets the rest. */
  peers: z.array(z.object({ peerId, addrs: z.array(multiaddr).max(8) }).strict()).max(64, 'at most 64 peers').optional()
}).strict()

export const MembershipMessageSchema = z.discriminatedUnion('type', [HelloWithInfoSchema, HeartbeatSchema, NodeInfoMessageSchema, RevokeSchema])

/** '/renderswarm/join/1': a machine with an invite token asks for its certificate. */
export const JoinRequestSchema = z.object({
  type: z.literal('join'),
  token: z.string().min(1).max(4096, 'must be at most 4096 characters'),
  peerId,
  name: text(64).min(1, 'must not be empty')
}).strict()
export const JoinReplySchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('joined'), cert: opaque(32, 8192) }).strict(),
  z.object({ type: z.literal('refused'), code: z.string().max(32), message: text(512) }).strict()
])
export type JoinRequest = z.infer<typeof JoinRequestSchema>
export type JoinReply = z.infer<typeof JoinReplySchema>

export type Hello = z.infer<typeof HelloWithInfoSchema>
export type Heartbeat = z.infer<typeof HeartbeatSchema>
export type NodeState = Heartbeat['state']
export type NodeInfo = z.infer<typeof NodeInfoSchema>
export type NodeInfoMessage = z.infer<typeof NodeInfoMessageSchema>
export type Revoke = z.infer<typeof RevokeSchema>
export type MembershipMessage = z.infer<typeof MembershipMessageSchema>

// ---- mDNS TXT record -------------------------------------------------------------

/** Largest raw TXT value looked at (8 addresses of 256 characters and their commas). */
const MAX_TXT_VALUE_BYTES = 8 * 257
/** DNS limit on one TXT string ("key=value"). */
const MAX_TXT_STRING_BYTES = 255

const txtAddr = z.string().max(256, 'each address must be at most 256 characters')
  .regex(/^\/(ip4|ip6|dns[a-z0-9]*)\/[\x21-\x7e]+$/, 'each address must be a multiaddr starting /ip4/, /ip6/ or /dns')
const TxtSchema = z.object({
  farm: farmId,
  peer: peerId,
  addrs: z.string().transform((s) => s.split(',')).pipe(z.array(txtAddr).min(1, 'at least one address').max(8, 'at most 8 addresses')),
  v: z.string().regex(/^[1-9][0-9]{0,4}$/, 'must be the protocol major as a whole number').transform(Number),
  score: z.string().regex(/^[0-9]{1,7}(\.[0-9]{1,3})?$/, 'must be a decimal number of fps').transform(Number).optional(),
  gpu: z.string().regex(/^[\x20-\x7e]{1,64}$/, 'must be 1–64 printable ASCII characters').optional()
})

export type TxtInfo = z.output<typeof TxtSchema>

const utf8 = new TextDecoder('utf-8', { fatal: true })
const TXT_KEYS = ['farm', 'peer', 'addrs', 'v', 'score', 'gpu'] as const

/** Reads a discovered `_renderswarm._tcp` TXT record. Unknown keys are ignored. Throws WireError('schema'). */
export function parseTxt (record: Record<string, unknown>): TxtInfo {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) throw new WireError('schema', 'mDNS TXT: record must be an object')
  const strings: Record<string, string> = {}
  for (const key of TXT_KEYS) {
    if (!Object.hasOwn(record, key)) continue
    const raw: unknown = record[key]
    let value: string
    if (typeof raw === 'string') value = raw
    else if (raw instanceof Uint8Array) {
      if (raw.length > MAX_TXT_VALUE_BYTES) throw new WireError('schema', `mDNS TXT ${key}: value of ${raw.length} bytes is too long`, { field: key })
      try { value = utf8.decode(raw) } catch { throw new WireError('schema', `mDNS TXT ${key}: value is not valid UTF-8`, { field: key }) }
    } else throw new WireError('schema', `mDNS TXT ${key}: must be a string or bytes, got ${raw === null ? 'null' : typeof raw}`, { field: key })
    if (value.length > MAX_TXT_VALUE_BYTES) throw new WireError('schema', `mDNS TXT ${key}: value of ${value.length} characters is too long`, { field: key })
    if (value.includes('\u0000')) throw new WireError('schema', `mDNS TXT ${key}: value contains NUL`, { field: key })
    strings[key] = value
  }
  const res = TxtSchema.safeParse(strings)
  if (!res.success) {
    const err = schemaError(res.error, 'mDNS TXT')
    throw err.message.endsWith(': Required') ? new WireError('schema', `mDNS TXT: missing key "${err.field ?? ''}"`, { field: err.field }) : err
  }
  return res.data
}

/**
 * The TXT record to advertise. `gpu` is cleaned (non-printable → '?', cut to 64); addresses that
 * would push "addrs=…" past the 255-byte DNS limit are left off (peers learn all of them in Hello).
 * Throws WireError('schema') for anything else parseTxt would refuse.
 */
export function formatTxt (fields: TxtInfo): Record<string, string> {
  const out: Record<string, string> = { farm: fields.farm, peer: fields.peer, v: String(fields.v) }
  let addrs = ''
  for (const a of fields.addrs.slice(0, 8)) {
    const next = addrs === '' ? a : `${addrs},${a}`
    if (`addrs=${next}`.length > MAX_TXT_STRING_BYTES) break
    addrs = next
  }
  if (addrs === '' && fields.addrs.length > 0) throw new WireError('schema', `mDNS TXT addrs: "${clipText(fields.addrs[0]!, 64)}" does not fit in a TXT string`, { field: 'addrs' })
  out.addrs = addrs
  if (fields.score !== undefined) {
    if (!Number.isFinite(fields.score) || fields.score < 0) throw new WireError('schema', 'mDNS TXT score: must be a non-negative number', { field: 'score' })
    out.score = String(Math.round(fields.score * 1000) / 1000)
  }
  if (fields.gpu !== undefined) out.gpu = fields.gpu.replace(/[^\x20-\x7e]/g, '?').slice(0, 64)
  parseTxt(out)
  return out
}
