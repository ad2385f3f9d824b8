/**
 * Length-prefixed frames over a byte stream: an unsigned LEB128 varint length
 * (at most 5 bytes, minimal encoding only), then that many payload bytes.
 *
 *   stream.write(encodeJson(msg, MAX_FRAME_BYTES.heartbeat))        // prefix + JSON payload
 *   const decoder = new FrameDecoder(MAX_FRAME_BYTES.heartbeat)
 *   for (const frame of decoder.push(chunk)) handle(decodeJson(frame, HeartbeatSchema))
 *   decoder.end()                                                   // at stream close
 *
 * Pure: no I/O. The decoder refuses a declared length over the cap as soon as the
 * prefix is read, so it never holds more than maxBytes + 5 bytes. Every failure is a
 * WireError ('bad-frame', 'frame-too-large' or 'schema'): an error to the peer, never a crash.
 */
import type { z } from 'zod'
import { WireError, schemaError } from './errors.ts'

/** Varint length prefix: 5 bytes of 7 bits covers any uint32. */
export const MAX_VARINT_BYTES = 5
/** Deepest JSON nesting (arrays + objects) a frame may have. */
export const MAX_JSON_DEPTH = 32
const MAX_UINT32 = 0xffff_ffff

function checkCap (maxBytes: number): void {
  if (!Number.isInteger(maxBytes) || maxBytes < 0 || maxBytes > MAX_UINT32) throw new RangeError(`maxBytes must be an integer in 0..${MAX_UINT32}, got ${maxBytes}`)
}

export function encodeVarint (n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > MAX_UINT32) throw new RangeError(`varint must be an integer in 0..${MAX_UINT32}, got ${n}`)
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return Uint8Array.from(out)
}

/** Prefix + payload. Throws WireError('frame-too-large') when the payload is over maxBytes. */
export function encodeFrame (payload: Uint8Array, maxBytes: number): Uint8Array {
  checkCap(maxBytes)
  if (payload.length > maxBytes) throw new WireError('frame-too-large', `frame of ${payload.length} bytes is over the ${maxBytes}-byte cap`)
  const prefix = encodeVarint(payload.length)
  const out = new Uint8Array(prefix.length + payload.length)
  out.set(prefix, 0)
  out.set(payload, prefix.length)
  return out
}

/**
 * Stateful decoder for one stream. `push` returns the frames completed by the chunk
 * (copies, safe to keep). After it throws, the stream is unusable and every call rethrows.
 */
export class FrameDecoder {
  private lenValue = 0
  private lenBytes = 0
  /** Declared length of the frame being read, or -1 while reading the prefix. */
  private want = -1
  /** Body bytes so far; grows by doubling up to the declared length, so memory tracks what arrived. */
  private body = new Uint8Array(0)
  private have = 0
  private failed: WireError | undefined

  constructor (readonly maxBytes: number) { checkCap(maxBytes) }

  /** Bytes held for the unfinished frame (prefix included); never over maxBytes + 5. */
  get buffered (): number { return this.lenBytes + this.have }

  push (chunk: Uint8Array): Uint8Array[] {
    if (this.failed !== undefined) throw this.failed
    try {
      return this.read(chunk)
    } catch (err) {
      if (err instanceof WireError) this.failed = err
      throw err
    }
  }

  /** Call when the stream closes: throws WireError('bad-frame') if it ended mid-frame. */
  end (): void {
    if (this.failed !== undefined) throw this.failed
    if (this.buffered > 0) {
      this.failed = new WireError('bad-frame', `stream ended inside a frame (${this.buffered} bytes unread)`)
      throw this.failed
    }
  }

  private read (chunk: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = []
    let i = 0
    while (i < chunk.length) {
      if (this.want < 0) {
        const b = chunk[i++]!
        this.lenValue += (b & 0x7f) * 2 ** (7 * this.lenBytes)
        this.lenBytes++
        if (b & 0x80) {
          if (this.lenBytes >= MAX_VARINT_BYTES) throw new WireError('bad-frame', `length prefix longer than ${MAX_VARINT_BYTES} bytes`)
          continue
        }
        if (b === 0 && this.lenBytes > 1) throw new WireError('bad-frame', 'length prefix is not minimally encoded')
        if (this.lenValue > MAX_UINT32) throw new WireError('bad-frame', 'length prefix is over 32 bits')
        if (this.lenValue > this.maxBytes) throw new WireError('frame-too-large', `declared frame of ${this.lenValue} bytes is over the ${this.maxBytes}-byte cap`)
        this.want = this.lenValue
        this.lenValue = 0
        this.lenBytes = 0
        if (this.want === 0) frames.push(this.finish())
        continue
      }
      const take = Math.min(this.want - this.have, chunk.length - i)
      if (this.have + take > this.body.length) {
        const grown = new Uint8Array(Math.min(this.want, Math.max(this.have + take, 2 * this.body.length)))
        grown.set(this.body.subarray(0, this.have))
        this.body = grown
      }
      this.body.set(chunk.subarray(i, i + take), this.have)
      this.have += take
      i += take
      if (this.have === this.want) frames.push(this.finish())
    }
    return frames
  }

  private finish (): Uint8Array {
    const frame = this.body.length === this.want ? this.body : this.body.slice(0, this.want)
    this.body = new Uint8Array(0)
    this.have = 0
    this.want = -1
    return frame
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true })
const utf8Encoder = new TextEncoder()

/** JSON-encodes `obj` as one frame (prefix included), ready to write. Throws WireError('frame-too-large'). */
export function encodeJson (obj: unknown, maxBytes: number): Uint8Array {
  const text = JSON.stringify(obj)
  if (text === undefined) throw new TypeError('value cannot be encoded as JSON')
  return encodeFrame(utf8Encoder.encode(text), maxBytes)
}

/**
 * Parses a frame payload (as returned by FrameDecoder.push) and validates it.
 * Throws WireError('bad-frame') for bad UTF-8, bad JSON or nesting over MAX_JSON_DEPTH,
 * WireError('schema') naming the first failing field.
 */
export function decodeJson<S extends z.ZodTypeAny> (frame: Uint8Array, schema: S): z.output<S> {
  let text: string
  try {
    text = utf8.decode(frame)
  } catch {
    throw new WireError('bad-frame', 'frame is not valid UTF-8')
  }
  checkDepth(text)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new WireError('bad-frame', 'frame is not valid JSON')
  }
  const res = schema.safeParse(value)
  if (!res.success) throw schemaError(res.error)
  return res.data as z.output<S>
}

/** Refuses deep nesting before JSON.parse sees it: one pass, brackets outside strings. */
function checkDepth (text: string): void {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // backslash: skip the escaped character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) {
      inString = true
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_JSON_DEPTH) throw new WireError('bad-frame', `JSON nested deeper than ${MAX_JSON_DEPTH} levels`)
    } else if (c === 0x5d || c === 0x7d) {
      depth--
    }
  }
}
