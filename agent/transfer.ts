/**
 * Bulk bytes between members: assets by sha256 (M14) and rendered segments straight to the
 * job's owner (M15, M23). Both send one JSON header frame, then raw frames, hashed on arrival.
 *
 *   const assets = new AssetService(node, cache); await assets.start()
 *   const file = await assets.fetch(sha, [holderA, holderB])     // cached path, verified
 *
 *   const segments = new SegmentService(node, {
 *     accept: (h) => known(h) ? { path: segPath(h) } : { refuse: 'not-found', message: `no job ${h.jobId}` },
 *     onSegment: async (h, path) => { await markDone(h, path) }
 *   })
 *   await segments.start()
 *   await segments.send(owner, { jobId, chunkId, index, frames }, '/work/chunk-3.mkv')  // { result: 'stored' | 'duplicate', ... }
 *
 * Refusals: a bad header is answered with an error frame and thrown, so the node counts it in
 * `stats().refused[code]`; 'not-found', 'duplicate' and 'busy' are ordinary answers, not counted.
 */
import { randomUUID } from 'node:crypto'
import { createHash } from 'node:crypto'
import { copyFile, mkdir, open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises'
import path from 'node:path'
import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import { clipText, fromWire, schemaError, WireError } from '../protocol/errors.ts'
import { decodeJson, encodeJson, encodeVarint, FrameDecoder } from '../protocol/framing.ts'
import { MAX_FRAME_BYTES, MAX_RAW_FRAME_BYTES, PROTOCOLS } from '../protocol/ids.ts'
import {
  AssetReplySchema, AssetRequestSchema, errorFrame, SegmentHeaderSchema, SegmentReplySchema,
  type SegmentHeader, type SegmentRefusal, type TransferError
} from '../protocol/messages/transfer.ts'
import { sha256File, type AssetCache } from './assets.ts'
import { takeFault } from './faults.ts'
import type { FarmNode } from './node.ts'
import { ByteBudget } from './peer-limits.ts'

export type { SegmentHeader, SegmentRefusal } from '../protocol/messages/transfer.ts'

const MiB = 1024 * 1024
/** How long a peer has to send its header after opening a stream. */
const HEADER_TIMEOUT_MS = 10_000
const DEFAULT_IDLE_TIMEOUT_MS = 30_000
/** Received frames held in memory before the stream is paused (the disk is slower than the wire). */
const READ_HIGH_WATER_BYTES = 4 * MiB
/**
 * A paused yamux stream stops granting window, but what the sender already has in flight (up to
 * the 16 MiB max stream window) still arrives; the stream's default 4 MiB buffer would reset it.
 */
const STREAM_READ_BUFFER_BYTES = 32 * MiB

const sha12 = (sha: string): string => `${sha.slice(0, 12)}…`
const shortPeer = (peer: string): string => `…${peer.slice(-8)}`

/**
 * Frames from a libp2p stream: the first capped at `firstCap` (the JSON header), the rest at
 * `restCap`. Pauses the stream while more than READ_HIGH_WATER_BYTES wait to be read.
 */
export class FrameReader {
  private readonly frames: Uint8Array[] = []
  private queuedBytes = 0
  private first: FrameDecoder | undefined
  private readonly rest: FrameDecoder
  private ended = false
  private failure: Error | undefined
  private paused = false
  private wake: (() => void) | undefined

  constructor (private readonly stream: Stream, firstCap: number, restCap: number) {
    if (firstCap !== restCap) this.first = new FrameDecoder(firstCap)
    this.rest = new FrameDecoder(restCap)
    stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, STREAM_READ_BUFFER_BYTES)
    stream.addEventListener('message', this.onMessage)
    stream.addEventListener('end', this.onEnd)
    stream.addEventListener('close', this.onClose)
    if (stream.readableEnded) this.onEnd()
  }

  /** The next frame; undefined once the peer has closed its side. Throws on a bad frame, a reset, `signal` or the timeout. */
  async next (what: string, timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array | undefined> {
    let timedOut = false
    let timer: NodeJS.Timeout | undefined
    try {
      for (;;) {
        const frame = this.take()
        if (frame !== undefined) return frame
        if (this.failure !== undefined) throw this.failure
        if (this.ended) return undefined
        signal?.throwIfAborted()
        if (timedOut) throw new WireError('bad-frame', `timed out after ${timeoutMs} ms waiting for ${what}`)
        timer ??= setTimeout(() => { timedOut = true; this.notify() }, timeoutMs)
        await new Promise<void>((resolve) => {
          const done = (): void => { signal?.removeEventListener('abort', done); resolve() }
          this.wake = done
          signal?.addEventListener('abort', done, { once: true })
        })
      }
    } finally {
      clearTimeout(timer)
    }
  }

  /** Like next(), but the stream ending here is an error. */
  async expect (what: string, timeoutMs: number, signal?: AbortSignal): Promise<Uint8Array> {
    const frame = await this.next(what, timeoutMs, signal)
    if (frame === undefined) throw new WireError('bad-frame', `the stream ended before ${what}`)
    return frame
  }

  /** A frame that has already arrived, without waiting (e.g. the peer's reason after a failed write). */
  take (): Uint8Array | undefined {
    const frame = this.frames.shift()
    if (frame === undefined) return undefined
    this.queuedBytes -= frame.length
    if (this.paused && this.queuedBytes < READ_HIGH_WATER_BYTES / 2) {
      this.paused = false
      try { this.stream.resume() } catch { /* closing: nothing more will come */ }
    }
    return frame
  }

  private readonly onMessage = (evt: StreamMessageEvent): void => {
    if (this.failure !== undefined) return
    try {
      for (const part of evt.data instanceof Uint8Array ? [evt.data] : evt.data) this.feed(part)
    } catch (err) {
      this.failure = err as Error
    }
    if (!this.paused && this.queuedBytes > READ_HIGH_WATER_BYTES) {
      this.paused = true
      // Not from inside the dispatch: when resume() is what dispatched this message, it grants the
      // sender a new window right after dispatching, undoing a pause made here (@libp2p/utils 7.4.1).
      queueMicrotask(() => {
        if (this.paused && this.stream.readStatus === 'readable') this.stream.pause()
      })
    }
    this.notify()
  }

  private feed (chunk: Uint8Array): void {
    let i = 0
    // The header decoder must not see the raw frames' prefixes (over its cap): feed it byte by byte.
    while (this.first !== undefined && i < chunk.length) {
      const done = this.first.push(chunk.subarray(i, ++i))
      if (done[0] !== undefined) { this.enqueue(done[0]); this.first = undefined }
    }
    if (i < chunk.length) for (const f of this.rest.push(chunk.subarray(i))) this.enqueue(f)
  }

  private enqueue (frame: Uint8Array): void {
    this.frames.push(frame)
    this.queuedBytes += frame.length
  }

  private readonly onEnd = (): void => {
    if (this.ended) return
    this.ended = true
    try {
      this.first?.end()
      this.rest.end()
    } catch (err) {
      this.failure ??= err as Error
    }
    this.notify()
  }

  private readonly onClose = (evt: StreamCloseEvent): void => {
    if (evt.error !== undefined) this.failure ??= evt.error
    this.onEnd()
  }

  private notify (): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }
}

async function sendBytes (stream: Stream, bytes: Uint8Array, idleMs: number): Promise<void> {
  if (!stream.send(bytes)) await drained(stream, idleMs)
}

/**
 * Waits for the stream's 'drain' event. Not `stream.onDrain()`: in @libp2p/utils 7.4.1 its promise
 * is never reset after the first drain, so later calls resolve at once and the whole file would
 * pile up in the write buffer (measured: 200 MB queued for a reader taking 300 MB/s).
 */
async function drained (stream: Stream, idleMs: number): Promise<void> {
  if (!stream.writableNeedsDrain) return
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer)
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
      if (err === undefined) resolve()
      else reject(err)
    }
    const onDrain = (): void => { done() }
    const onClose = (evt: StreamCloseEvent): void => { done(evt.error ?? new Error('the stream closed while sending')) }
    const timer = setTimeout(() => { done(new Error(`the peer took no bytes for ${idleMs} ms`)) }, idleMs)
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
  })
}

async function sendJson (stream: Stream, msg: unknown, cap: number, idleMs: number): Promise<void> {
  await sendBytes(stream, encodeJson(msg, cap), idleMs)
}

/** Sends the first `size` bytes of an open file as raw frames, read with a stream (never whole). */
async function sendFileFrames (stream: Stream, fh: FileHandle, size: number, idleMs: number, signal?: AbortSignal, pace?: (bytes: number) => Promise<void>): Promise<void> {
  let sent = 0
  if (size > 0) {
    for await (const chunk of fh.createReadStream({ start: 0, end: size - 1, highWaterMark: MAX_RAW_FRAME_BYTES, autoClose: false }) as AsyncIterable<Buffer>) {
      signal?.throwIfAborted()
      await pace?.(chunk.length)
      stream.send(encodeVarint(chunk.length))
      await sendBytes(stream, chunk, idleMs)
      sent += chunk.length
    }
  }
  if (sent !== size) throw new Error(`the file shrank while it was being sent (${sent} of ${size} bytes)`)
}

/**
 * Writes exactly `size` bytes of raw frames to `file`, hashing as they arrive; returns the sha256.
 * A peer that sends more, ends early or goes quiet gets a WireError; the caller removes `file`.
 */
async function receiveToFile (reader: FrameReader, file: string, size: number, idleMs: number, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256')
  const fh = await open(file, 'w')
  try {
    let received = 0
    while (received < size) {
      const frame = await reader.next('segment bytes', idleMs, signal)
      if (frame === undefined) throw new WireError('bad-frame', `the stream ended after ${received} of ${size} bytes`)
      if (frame.length === 0) throw new WireError('bad-frame', 'empty bulk frame')
      if (received + frame.length > size) throw new WireError('bad-frame', `the peer sent more than the ${size} bytes its header declared`)
      hash.update(frame)
      for (let off = 0; off < frame.length;) off += (await fh.write(frame, off, frame.length - off)).bytesWritten
      received += frame.length
    }
  } finally {
    await fh.close()
  }
  return hash.digest('hex')
}

/** Last frame on a stream we answer: send it and close our side. Never throws (the peer may be gone). */
async function finish (stream: Stream, msg: unknown, cap: number): Promise<void> {
  try {
    await sendJson(stream, msg, cap, 5000)
    await stream.close({ signal: AbortSignal.timeout(5000) })
  } catch { /* the peer went away; nothing to tell */ }
}

function replyError (reply: { type: string }, what: string): WireError {
  if (reply.type === 'error') {
    const e = reply as TransferError
    return fromWire({ code: e.code, message: e.message })
  }
  return new WireError('schema', `${what}: unexpected "${reply.type}" reply`)
}

/** Aborts `stream` when `signal` does; returns the unlink. */
function abortWith (stream: Stream, signal: AbortSignal | undefined): () => void {
  if (signal === undefined) return () => {}
  const onAbort = (): void => { stream.abort(signal.reason instanceof Error ? signal.reason : new Error('aborted')) }
  signal.addEventListener('abort', onAbort, { once: true })
  return () => { signal.removeEventListener('abort', onAbort) }
}

export interface AssetServiceOptions {
  /** Assets sent at once; more requests are answered 'busy'. Default 4. */
  maxUploads?: number
  /** Longest wait for the next frame or for the peer to take more bytes. Default 30 s. */
  idleTimeoutMs?: number
  /** Asset bytes one member may fetch from this node per second, all its fetches together (peer-limits.ts ByteBudget). Default 256 MiB/s; 0: no limit. */
  peerBytesPerSecond?: number
}

export interface AssetStats { served: Record<string, number>; servedBytes: number; fetched: number; fetchedBytes: number; hashMismatches: number }

interface Inflight { promise: Promise<string>; controller: AbortController; waiters: number }

/** Serves this node's cached assets to members and fetches missing ones from them. */
export class AssetService {
  private readonly maxUploads: number
  private readonly idleMs: number
  private uploads = 0
  private readonly inflight = new Map<string, Inflight>()
  private readonly counters: AssetStats = { served: {}, servedBytes: 0, fetched: 0, fetchedBytes: 0, hashMismatches: 0 }

  private readonly budget: ByteBudget

  constructor (private readonly node: FarmNode, private readonly cache: AssetCache, opts: AssetServiceOptions = {}) {
    this.maxUploads = opts.maxUploads ?? 4
    this.budget = new ByteBudget(opts.peerBytesPerSecond ?? 256 * MiB, 16 * MiB)
    this.idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS
  }

  async start (): Promise<void> {
    await this.node.handleMember(PROTOCOLS.asset, async (stream, peer) => { await this.serve(stream, peer) })
  }

  stats (): AssetStats {
    return { ...this.counters, served: { ...this.counters.served } }
  }

  /**
   * The verified cache path of `sha256`, fetched from the first of `from` (peer ids, in order of
   * preference) that sends bytes with that hash. No network when cached; concurrent fetches of one
   * hash share one transfer. Throws WireError('not-found') when no member holds it.
   */
  async fetch (sha256: string, from: string[], opts: { signal?: AbortSignal } = {}): Promise<string> {
    this.cache.pathOf(sha256) // throws on a malformed hash
    opts.signal?.throwIfAborted()
    let job = this.inflight.get(sha256)
    if (job === undefined) {
      const controller = new AbortController()
      const promise = this.fetchFromPeers(sha256, from, controller.signal).finally(() => { this.inflight.delete(sha256) })
      promise.catch(() => {}) // every waiter may have gone (aborted): not an unhandled rejection
      job = { promise, controller, waiters: 0 }
      this.inflight.set(sha256, job)
    }
    const shared = job
    shared.waiters++
    const signal = opts.signal
    if (signal === undefined) return await shared.promise
    return await new Promise<string>((resolve, reject) => {
      const onAbort = (): void => {
        // The transfer stops only when nobody waits for it any more.
        if (--shared.waiters === 0) shared.controller.abort(signal.reason)
        reject(signal.reason)
      }
      signal.addEventListener('abort', onAbort, { once: true })
      shared.promise.then(resolve, reject).finally(() => { signal.removeEventListener('abort', onAbort) })
    })
  }

  private async cached (sha256: string): Promise<string | undefined> {
    try {
      return await this.cache.verified(sha256)
    } catch {
      return undefined
    }
  }

  private async fetchFromPeers (sha256: string, from: string[], signal: AbortSignal): Promise<string> {
    const cached = await this.cached(sha256)
    if (cached !== undefined) return cached
    const self = this.node.peerId.toString()
    const peers = [...new Set(from)].filter((p) => p !== self)
    const failures: Array<{ peer: string; err: unknown }> = []
    for (const peer of peers) {
      signal.throwIfAborted()
      try {
        return await this.fetchOne(sha256, peer, signal)
      } catch (err) {
        if (signal.aborted) throw signal.reason
        failures.push({ peer, err })
      }
    }
    const codeOf = (err: unknown): string => (err instanceof WireError ? err.code : 'internal')
    const other = failures.find((f) => codeOf(f.err) !== 'not-found')
    if (other === undefined) throw new WireError('not-found', `asset ${sha12(sha256)} is not held by any of ${peers.length} members`)
    const reasons = failures.map((f) => `${shortPeer(f.peer)}: ${(f.err as Error).message}`).join('; ')
    throw new WireError(other.err instanceof WireError ? other.err.code : 'internal', clipText(`fetching asset ${sha12(sha256)}: no member sent it (${reasons})`), { cause: other.err })
  }

  private async fetchOne (sha256: string, peer: string, signal: AbortSignal): Promise<string> {
    const stream = await this.node.openStream(peer, PROTOCOLS.asset, this.idleMs)
    const unlink = abortWith(stream, signal)
    const tmp = `${this.cache.pathOf(sha256)}.${randomUUID()}.part`
    try {
      const reader = new FrameReader(stream, MAX_FRAME_BYTES.asset, MAX_RAW_FRAME_BYTES)
      await sendJson(stream, { type: 'get', sha256 }, MAX_FRAME_BYTES.asset, this.idleMs)
      const reply = decodeJson(await reader.expect('the asset header', this.idleMs, signal), AssetReplySchema)
      if (reply.type !== 'asset') throw replyError(reply, `asset ${sha12(sha256)}`)
      if (reply.sha256 !== sha256) throw new WireError('schema', `asked for asset ${sha12(sha256)}, was offered ${sha12(reply.sha256)}`)
      await mkdir(this.cache.dir, { recursive: true })
      const got = await receiveToFile(reader, tmp, reply.size, this.idleMs, signal)
      if (got !== sha256) {
        this.counters.hashMismatches++
        throw new WireError('hash-mismatch', `asset ${sha12(sha256)} from ${shortPeer(peer)} hashed to ${sha12(got)}; discarded it`)
      }
      // Bytes already verified: adopt them by rename; verified() re-hashes once and marks them.
      await rename(tmp, this.cache.pathOf(sha256))
      const file = await this.cache.verified(sha256)
      this.counters.fetched++
      this.counters.fetchedBytes += reply.size
      await stream.close({ signal: AbortSignal.timeout(this.idleMs) }).catch(() => {})
      return file
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    } finally {
      unlink()
      await rm(tmp, { force: true })
    }
  }

  private async serve (stream: Stream, peer: string): Promise<void> {
    const cap = MAX_FRAME_BYTES.asset
    const reader = new FrameReader(stream, cap, cap)
    let sha256: string
    try {
      sha256 = decodeJson(await reader.expect('the asset request', HEADER_TIMEOUT_MS), AssetRequestSchema).sha256
    } catch (err) {
      await finish(stream, errorFrame(err), cap)
      throw err // counted by the node
    }
    if (this.uploads >= this.maxUploads) {
      await finish(stream, errorFrame(new WireError('busy', `already sending ${this.uploads} assets; try another member`)), cap)
      return
    }
    this.uploads++
    try {
      let file: string
      try {
        file = await this.cache.verified(sha256)
      } catch {
        await finish(stream, errorFrame(new WireError('not-found', `asset ${sha12(sha256)} is not cached here`)), cap)
        return
      }
      const fh = await open(file, 'r')
      let size: number
      try {
        size = (await fh.stat()).size
        await sendJson(stream, { type: 'asset', sha256, size }, cap, this.idleMs)
        await sendFileFrames(stream, fh, size, this.idleMs, undefined, async (bytes) => {
          const ms = this.budget.take(peer, bytes)
          if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms))
        })
      } finally {
        await fh.close()
      }
      await stream.close({ signal: AbortSignal.timeout(this.idleMs) })
      this.counters.served[peer] = (this.counters.served[peer] ?? 0) + 1
      this.counters.servedBytes += size
    } catch (err) {
      // Our disk or the transport, not the peer's fault: drop the stream without counting a refusal.
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      this.uploads--
    }
  }
}

export type AcceptResult = { path: string } | { refuse: SegmentRefusal; message: string }

export interface SegmentServiceOptions {
  /** Owner side: where to store this segment, or a reason to refuse ('not-found' unknown job/chunk; 'duplicate' already have it). */
  accept: (h: SegmentHeader, peer: string) => AcceptResult | Promise<AcceptResult>
  /** Called after the bytes are stored at path and their sha256 verified. */
  onSegment: (h: SegmentHeader, path: string, peer: string) => Promise<void>
  /** Largest segment an owner takes. Default 16 GiB. */
  maxSegmentBytes?: number
  /** Longest wait for the next frame or for the peer to take more bytes. Default 30 s. */
  idleTimeoutMs?: number
}

export interface SendResult {
  result: 'stored' | 'duplicate'
  sha256: string
  /** Bytes sent (0 when the owner already had the segment). */
  bytes: number
}

/** Worker side sends rendered segments to the job's owner; owner side stores and verifies them. */
export class SegmentService {
  private readonly maxSegmentBytes: number
  private readonly idleMs: number
  /** Target paths being written now: a second sender of the same segment is told 'busy'. */
  private readonly receiving = new Set<string>()

  constructor (private readonly node: FarmNode, private readonly opts: SegmentServiceOptions) {
    this.maxSegmentBytes = opts.maxSegmentBytes ?? 16 * 1024 * MiB
    this.idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS
  }

  async start (): Promise<void> {
    await this.node.handleMember(PROTOCOLS.segment, async (stream, peer) => { await this.receive(stream, peer) })
  }

  /** Sends `file` (hashed here first) as segment `h` to `owner`. A segment the owner already has resolves 'duplicate'. */
  async send (owner: string, h: Omit<SegmentHeader, 'type' | 'size' | 'sha256'>, file: string, opts: { signal?: AbortSignal } = {}): Promise<SendResult> {
    const { signal } = opts
    const size = (await stat(file)).size
    const sha256 = await sha256File(file)
    const parsed = SegmentHeaderSchema.safeParse({ ...h, type: 'segment', sha256, size })
    if (!parsed.success) throw schemaError(parsed.error, 'segment header')
    const header = parsed.data
    signal?.throwIfAborted()
    if (owner === this.node.peerId.toString()) return await this.storeLocal(header, file)

    const what = `segment ${header.jobId}/${header.chunkId}`
    if (takeFault('segment-flip')) file = await flippedCopy(file)
    const cap = MAX_FRAME_BYTES.segment
    const stream = await this.node.openStream(owner, PROTOCOLS.segment, this.idleMs)
    const unlink = abortWith(stream, signal)
    try {
      const reader = new FrameReader(stream, cap, cap)
      await sendJson(stream, header, cap, this.idleMs)
      const answer = decodeJson(await reader.expect(`the owner's answer to ${what}`, this.idleMs, signal), SegmentReplySchema)
      if (answer.type === 'refused') {
        if (answer.reason === 'not-found') throw new WireError('not-found', answer.message)
        await stream.close({ signal: AbortSignal.timeout(this.idleMs) }).catch(() => {})
        return { result: 'duplicate', sha256, bytes: 0 }
      }
      if (answer.type !== 'ready') throw replyError(answer, what)
      const fh = await open(file, 'r')
      try {
        await sendFileFrames(stream, fh, size, this.idleMs, signal)
      } catch (err) {
        // The owner may have said why it stopped taking bytes before it reset the stream.
        const said = reader.take()
        if (said !== undefined) {
          const reply = SegmentReplySchema.safeParse(JSON.parse(new TextDecoder().decode(said)))
          if (reply.success) throw replyError(reply.data, what)
        }
        throw err
      } finally {
        await fh.close()
      }
      const done = decodeJson(await reader.expect(`the owner to store ${what}`, this.idleMs, signal), SegmentReplySchema)
      if (done.type !== 'stored') throw replyError(done, what)
      if (done.sha256 !== sha256) throw new WireError('hash-mismatch', `${what}: the owner stored ${sha12(done.sha256)}, sent ${sha12(sha256)}`)
      await stream.close({ signal: AbortSignal.timeout(this.idleMs) }).catch(() => {})
      return { result: 'stored', sha256, bytes: size }
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    } finally {
      unlink()
      if (file.endsWith('.fault-flip')) await rm(file, { force: true })
    }
  }

  /** This node renders a chunk of its own job: same checks, no network. */
  private async storeLocal (h: SegmentHeader, file: string): Promise<SendResult> {
    const self = this.node.peerId.toString()
    const verdict = await this.opts.accept(h, self)
    if ('refuse' in verdict) {
      if (verdict.refuse === 'not-found') throw new WireError('not-found', verdict.message)
      return { result: 'duplicate', sha256: h.sha256, bytes: 0 }
    }
    const target = verdict.path
    if (this.receiving.has(target)) throw new WireError('busy', `segment ${h.jobId}/${h.chunkId} is already being received; try again`)
    this.receiving.add(target)
    const part = `${target}.part`
    try {
      await mkdir(path.dirname(target), { recursive: true })
      // The sender's file was just hashed and is handed over: move it (same disk, no second
      // pass over the bytes); copy and check the hash only when it lives on another filesystem.
      let moved = true
      await rename(file, part).catch(async () => { moved = false; await copyFile(file, part) })
      if (!moved && await sha256File(part) !== h.sha256) throw new WireError('hash-mismatch', `segment ${h.jobId}/${h.chunkId} changed while it was being stored`)
      await rename(part, target)
      await this.opts.onSegment(h, target, self)
      return { result: 'stored', sha256: h.sha256, bytes: h.size }
    } finally {
      this.receiving.delete(target)
      await rm(part, { force: true })
    }
  }

  private async receive (stream: Stream, peer: string): Promise<void> {
    const cap = MAX_FRAME_BYTES.segment
    const reader = new FrameReader(stream, cap, MAX_RAW_FRAME_BYTES)
    let h: SegmentHeader
    try {
      h = decodeJson(await reader.expect('the segment header', HEADER_TIMEOUT_MS), SegmentHeaderSchema)
      if (h.size > this.maxSegmentBytes) throw new WireError('frame-too-large', `segment of ${h.size} bytes is over this owner's ${this.maxSegmentBytes}-byte limit`)
    } catch (err) {
      await finish(stream, errorFrame(err), cap)
      throw err // counted by the node
    }
    const what = `segment ${h.jobId}/${h.chunkId}`
    let verdict: AcceptResult
    try {
      verdict = await this.opts.accept(h, peer)
    } catch (err) {
      await finish(stream, errorFrame(err), cap)
      return
    }
    if ('refuse' in verdict) {
      await finish(stream, { type: 'refused', reason: verdict.refuse, message: clipText(verdict.message) }, cap)
      return
    }
    const target = verdict.path
    if (this.receiving.has(target)) {
      await finish(stream, errorFrame(new WireError('busy', `${what} is already being received; try again`)), cap)
      return
    }
    this.receiving.add(target)
    const part = `${target}.part`
    try {
      await mkdir(path.dirname(target), { recursive: true })
      await sendJson(stream, { type: 'ready' }, cap, this.idleMs)
      let got: string
      try {
        got = await receiveToFile(reader, part, h.size, this.idleMs)
      } catch (err) {
        if (err instanceof WireError) await finish(stream, errorFrame(err), cap)
        throw err
      }
      if (got !== h.sha256) {
        await rm(part, { force: true })
        const err = new WireError('hash-mismatch', `${what}: received bytes hash to ${sha12(got)}, header said ${sha12(h.sha256)}; nothing stored`)
        await finish(stream, errorFrame(err), cap)
        throw err
      }
      await rename(part, target)
      try {
        await this.opts.onSegment(h, target, peer)
      } catch (err) {
        await finish(stream, errorFrame(err), cap)
        return
      }
      await finish(stream, { type: 'stored', sha256: got }, cap)
    } catch (err) {
      // A WireError is the peer's doing: rethrown, the node counts it. Anything else (a reset, our
      // disk) just ends the stream.
      if (err instanceof WireError) throw err
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      this.receiving.delete(target)
      await rm(part, { force: true })
    }
  }
}

/** Fault injection (tests only, agent/faults.ts): a copy of `file` with one byte in the middle changed. */
async function flippedCopy (file: string): Promise<string> {
  const bytes = await readFile(file)
  const at = bytes.length >> 1
  bytes[at] = bytes[at]! ^ 0xff
  const out = `${file}.fault-flip`
  await writeFile(out, bytes)
  return out
}
