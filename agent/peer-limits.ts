/**
 * Per-peer limits on inbound streams: how many one peer may hold open at once, and how fast it
 * may open new ones (a token bucket). A peer that keeps running into them is cut off: the node
 * drops its connections and refuses it for `banMs`. Pure: the clock is passed in.
 *
 *   const limits = new PeerLimiter({ maxOpenStreams: 64, streamsPerSecond: 100, burst: 300 }, () => Date.now())
 *   const v = limits.open(peer)            // { ok: true } | { ok: false, reason: 'streams' | 'rate', cutOff }
 *   if (v.ok) try { await handle(stream) } finally { limits.close(peer) }
 *   limits.banned(peer)                    // the connection gater asks this
 *
 * Bytes in flight per peer follow from these: every JSON stream reads at most one frame under its
 * protocol's cap (protocol/ids.ts), so a peer holds at most maxOpenStreams × cap of this node's memory.
 * Bulk bytes a peer takes (asset fetches) are paced by ByteBudget below.
 */

export interface PeerLimitOptions {
  /** Inbound streams one peer may have open at once (all protocols together). Default 64. */
  maxOpenStreams: number
  /** New inbound streams per second one peer may open, sustained. Default 100. */
  streamsPerSecond: number
  /** Streams a peer may open in a burst above the sustained rate. Default 300. */
  burst: number
  /** Refusals within `strikeWindowMs` that get a peer cut off. Default 20 in 10 s. */
  strikes: number
  strikeWindowMs: number
  /** How long a cut-off peer is refused. Default 60 s. */
  banMs: number
}

export const DEFAULT_PEER_LIMITS: PeerLimitOptions = { maxOpenStreams: 64, streamsPerSecond: 100, burst: 300, strikes: 20, strikeWindowMs: 10_000, banMs: 60_000 }

export type PeerVerdict = { ok: true } | { ok: false; reason: 'streams' | 'rate' | 'banned'; cutOff: boolean }

interface PeerState { open: number; tokens: number; refilledMs: number; strikes: number[] }

export class PeerLimiter {
  readonly opts: PeerLimitOptions
  private readonly peers = new Map<string, PeerState>()
  private readonly bans = new Map<string, number>()

  constructor (opts: Partial<PeerLimitOptions> = {}, private readonly now: () => number = Date.now) {
    this.opts = { ...DEFAULT_PEER_LIMITS, ...opts }
    for (const [k, v] of Object.entries(this.opts)) {
      if (!Number.isFinite(v) || v <= 0) throw new RangeError(`peer limit ${k} must be a positive number, got ${v}`)
    }
  }

  /** Asks to accept one inbound stream from `peer`; on ok the caller must call close(peer) when it ends. */
  open (peer: string): PeerVerdict {
    const now = this.now()
    if (this.banned(peer)) return { ok: false, reason: 'banned', cutOff: false }
    let s = this.peers.get(peer)
    if (s === undefined) {
      s = { open: 0, tokens: this.opts.burst, refilledMs: now, strikes: [] }
      this.peers.set(peer, s)
    }
    s.tokens = Math.min(this.opts.burst, s.tokens + (now - s.refilledMs) * this.opts.streamsPerSecond / 1000)
    s.refilledMs = now
    const reason = s.open >= this.opts.maxOpenStreams ? 'streams' : s.tokens < 1 ? 'rate' : undefined
    if (reason === undefined) {
      s.tokens -= 1
      s.open++
      return { ok: true }
    }
    s.strikes = s.strikes.filter((t) => now - t < this.opts.strikeWindowMs)
    s.strikes.push(now)
    const cutOff = s.strikes.length >= this.opts.strikes
    if (cutOff) {
      this.bans.set(peer, now + this.opts.banMs)
      s.strikes = []
    }
    return { ok: false, reason, cutOff }
  }

  close (peer: string): void {
    const s = this.peers.get(peer)
    if (s !== undefined && s.open > 0) s.open--
    if (s !== undefined && s.open === 0 && s.strikes.length === 0 && s.tokens >= this.opts.burst) this.peers.delete(peer)
  }

  /** Whether `peer` was cut off and its ban has not run out. */
  banned (peer: string): boolean {
    const until = this.bans.get(peer)
    if (until === undefined) return false
    if (this.now() < until) return true
    this.bans.delete(peer)
    return false
  }

  /** Streams `peer` holds open now (for tests and status). */
  openStreams (peer: string): number {
    return this.peers.get(peer)?.open ?? 0
  }
}

/**
 * Bytes per second one peer may take from this node (a token bucket per peer, shared by all of
 * that peer's transfers): the asset server asks before each frame how long to hold it back, so a
 * member fetching assets over and over gets at most this node's share, not its whole uplink.
 * Pure: the clock is passed in.
 *
 *   const budget = new ByteBudget(256 * MiB, 16 * MiB)
 *   const ms = budget.take(peer, frame.length)       // 0: send now; else wait ms first
 */
export class ByteBudget {
  private readonly peers = new Map<string, { tokens: number; refilledMs: number }>()

  /** `bytesPerSecond` 0: no limit. */
  constructor (readonly bytesPerSecond: number, readonly burstBytes: number, private readonly now: () => number = Date.now) {
    if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 0) throw new RangeError(`bytes per second must be a number ≥ 0, got ${bytesPerSecond}`)
    if (!Number.isFinite(burstBytes) || burstBytes <= 0) throw new RangeError(`burst bytes must be a positive number, got ${burstBytes}`)
  }

  /** Debits `bytes` from `peer`'s budget; returns how long (ms) to wait before sending them. */
  take (peer: string, bytes: number): number {
    if (this.bytesPerSecond === 0) return 0
    const now = this.now()
    let s = this.peers.get(peer)
    if (s === undefined) {
      if (this.peers.size >= 1024) this.prune(now)
      s = { tokens: this.burstBytes, refilledMs: now }
      this.peers.set(peer, s)
    }
    s.tokens = Math.min(this.burstBytes, s.tokens + (now - s.refilledMs) * this.bytesPerSecond / 1000)
    s.refilledMs = now
    s.tokens -= bytes
    return s.tokens >= 0 ? 0 : Math.ceil(-s.tokens * 1000 / this.bytesPerSecond)
  }

  /** Peers tracked now (bounded: full buckets are forgotten when many peers are tracked). */
  get size (): number {
    return this.peers.size
  }

  private prune (now: number): void {
    for (const [peer, s] of this.peers) if (s.tokens + (now - s.refilledMs) * this.bytesPerSecond / 1000 >= this.burstBytes) this.peers.delete(peer)
  }
}
