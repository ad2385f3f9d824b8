/**
 * Header messages of '/renderswarm/asset/1' and '/renderswarm/segment/1'. Each stream carries one
 * JSON header frame (capped at MAX_FRAME_BYTES.asset / .segment), then the bulk bytes as raw
 * frames of at most MAX_RAW_FRAME_BYTES, exactly `size` bytes in all.
 *
 *   asset:    fetcher → { type: 'get', sha256 }
 *             holder  → { type: 'asset', sha256, size } + raw frames   |  { type: 'error', code, message }
 *   segment:  worker  → { type: 'segment', jobId, chunkId, index, sha256, size, frames }
 *             owner   → { type: 'ready' }  |  { type: 'refused', reason, message }  |  error
 *             worker  → raw frames
 *             owner   → { type: 'stored', sha256 }  |  error
 *
 *   const h = decodeJson(frame, SegmentHeaderSchema)    // throws WireError('schema') naming the field
 *
 * Within major 1 fields are only added as optional; enums only grow at the end.
 */
import { z } from 'zod'
import { MAX_WIRE_MESSAGE, toWire } from '../errors.ts'

/** Job and chunk ids: short and safe to put in a file name or a log line. */
export const safeId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1–64 of A-Z, a-z, 0-9, "_", "-"')
export const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be a sha256 (64 lowercase hex digits)')
const byteCount = z.number().int('must be a whole number').nonnegative('must not be negative').max(Number.MAX_SAFE_INTEGER, 'must be a safe integer')

/** Any refusal or failure, as the last frame of a stream. The code is one of WIRE_ERRORS (unknown codes read as 'internal'). */
export const TransferErrorSchema = z.object({
  type: z.literal('error'),
  code: z.string().min(1).max(64),
  message: z.string().max(MAX_WIRE_MESSAGE)
}).strict()

export const AssetRequestSchema = z.object({
  type: z.literal('get'),
  sha256: sha256Hex
}).strict()

export const AssetHeaderSchema = z.object({
  type: z.literal('asset'),
  sha256: sha256Hex,
  size: byteCount
}).strict()

export const AssetReplySchema = z.discriminatedUnion('type', [AssetHeaderSchema, TransferErrorSchema])

export const SegmentHeaderSchema = z.object({
  type: z.literal('segment'),
  jobId: safeId,
  chunkId: safeId,
  index: z.number().int('must be a whole number').min(0, 'must not be negative').max(1_000_000, 'must be at most 1000000'),
  sha256: sha256Hex,
  size: byteCount,
  frames: z.number().int('must be a whole number').min(0, 'must not be negative').max(2 ** 31, 'must be at most 2^31')
}).strict()

/** Append-only. 'duplicate' is not an error: the owner already has this segment (M23). */
export const SEGMENT_REFUSALS = ['not-found', 'duplicate'] as const

export const SegmentReplySchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready') }).strict(),
  z.object({ type: z.literal('refused'), reason: z.enum(SEGMENT_REFUSALS), message: z.string().max(MAX_WIRE_MESSAGE) }).strict(),
  z.object({ type: z.literal('stored'), sha256: sha256Hex }).strict(),
  TransferErrorSchema
])

export type TransferError = z.infer<typeof TransferErrorSchema>
export type AssetRequest = z.infer<typeof AssetRequestSchema>
export type AssetHeader = z.infer<typeof AssetHeaderSchema>
export type AssetReply = z.infer<typeof AssetReplySchema>
export type SegmentHeader = z.infer<typeof SegmentHeaderSchema>
export type SegmentRefusal = (typeof SEGMENT_REFUSALS)[number]
export type SegmentReply = z.infer<typeof SegmentReplySchema>

/** The error frame for any thrown value (only WireError messages go out; see toWire). */
export function errorFrame (err: unknown): TransferError {
  return { type: 'error', ...toWire(err) }
}
