/**
 * Errors that cross the wire: a small, append-only list of codes mapped in this one place.
 *
 *   throw new WireError('stale-term', `term ${t} is older than ${current}`)
 *   stream.send(toWire(err))        // { code, message }: never a stack, unknown errors become 'internal'
 *   const err = fromWire(json)      // a WireError; an unknown (newer) code reads as 'internal'
 *
 * The code doubles as the metric label for refused frames.
 */
import { z } from 'zod'
import { fieldPath } from './timeline.ts'

/** Append-only: never reorder, rename or remove; add new codes at the end. */
export const WIRE_ERRORS = [
  'bad-frame',
  'frame-too-large',
  'schema',
  'stale-term',
  'stale-lease',
  'not-member',
  'revoked',
  'rate-limited',
  'busy',
  'not-found',
  'hash-mismatch',
  'internal',
  'not-coordinator',
  'cost-exceeded',
  'invalid-job',
  'cancelled',
  'invalid-segment'
] as const

export type WireErrorCode = (typeof WIRE_ERRORS)[number]

export const WIRE_ERROR_DESCRIPTIONS: Readonly<Record<WireErrorCode, string>> = {
  'bad-frame': 'the frame could not be read (bad length prefix, UTF-8 or JSON)',
  'frame-too-large': "the frame is larger than the protocol's size cap",
  schema: 'the message does not match its schema',
  'stale-term': 'the coordinator term is older than the current one',
  'stale-lease': 'the chunk lease has expired or was reassigned',
  'not-member': 'the peer is not a member of this farm',
  revoked: "the peer's membership has been revoked",
  'rate-limited': 'too many requests; slow down',
  busy: 'the node cannot take more work right now',
  'not-found': 'the requested item does not exist',
  'hash-mismatch': 'the bytes do not match the expected sha256',
  internal: 'an internal error occurred',
  'not-coordinator': 'this member is not the coordinator of the current term',
  'cost-exceeded': "the job's estimated cost is above its maxCost",
  'invalid-job': 'the job was refused at submission',
  cancelled: 'the job was cancelled',
  'invalid-segment': 'the rendered segment failed validation (frame count or decode)'
}

/** Longest message sent or accepted on the wire. */
export const MAX_WIRE_MESSAGE = 512

export class WireError extends Error {
  override readonly name = 'WireError'
  /** `field` is a dotted path into the message, when one field is to blame. */
  readonly field: string | undefined
  constructor (readonly code: WireErrorCode, message?: string, options?: { field?: string, cause?: unknown }) {
    super(message ?? WIRE_ERROR_DESCRIPTIONS[code], options?.cause === undefined ? undefined : { cause: options.cause })
    this.field = options?.field
  }
}

export const WireErrorFrameSchema = z.object({
  code: z.string().min(1).max(64),
  message: z.string().max(MAX_WIRE_MESSAGE)
}).strict()

export interface WireErrorFrame { code: WireErrorCode, message: string }

const isCode = (s: string): s is WireErrorCode => (WIRE_ERRORS as readonly string[]).includes(s)

/** Printable, single-line and short: safe to log and to send. */
export function clipText (s: string, max = MAX_WIRE_MESSAGE): string {
  const safe = s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?')
  return safe.length > max ? `${safe.slice(0, max - 1)}…` : safe
}

/** What to send the peer for any thrown value. Only WireError messages go out; never a stack. */
export function toWire (err: unknown): WireErrorFrame {
  if (err instanceof WireError) return { code: err.code, message: clipText(err.message) }
  return { code: 'internal', message: WIRE_ERROR_DESCRIPTIONS.internal }
}

/** Reads a peer's error frame. Throws WireError('schema') when it is not one. */
export function fromWire (input: unknown): WireError {
  const res = WireErrorFrameSchema.safeParse(input)
  if (!res.success) throw schemaError(res.error, 'error frame')
  const { code, message } = res.data
  if (isCode(code)) return new WireError(code, clipText(message))
  // A newer peer may know codes we do not (the list only grows).
  return new WireError('internal', clipText(`peer error "${clipText(code, 64)}": ${message}`))
}

/** Turns zod's first issue into WireError('schema') naming the field, e.g. `load.cpuPct: ...`. */
export function schemaError (error: z.ZodError, what?: string): WireError {
  const issue = error.issues[0]
  if (issue === undefined) return new WireError('schema', what === undefined ? undefined : `${what}: does not match its schema`)
  let path = clipText(fieldPath(issue.path), 128)
  let problem = issue.message
  if (issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined) {
    path = clipText(fieldPath([...issue.path, issue.keys[0]]), 128)
    problem = 'unknown field'
  }
  const where = [what, path].filter((s) => s !== undefined && s !== '').join(' ')
  return new WireError('schema', clipText(where === '' ? problem : `${where}: ${problem}`, 300), { field: path })
}
