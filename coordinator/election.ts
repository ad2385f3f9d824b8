/**
 * Coordinator election (spec M19): Raft's leader election without a log. Pure: the time and the
 * live-member view come from the caller, and what to send or store comes back as actions.
 *
 *   const e = new Election({ self, state: store.loadElection() })
 *   every ~100 ms:       run(e.tick(now, live))         // live: [{ peerId, capacity }], self included
 *   VoteRequest in:      const reply = e.onVoteRequest(msg, now, live); run(e.takeActions()); send(reply)
 *   VoteReply in:        run(e.onVoteReply(from, reply, now, live))
 *   LeaderAnnounce in:   run(e.onAnnounce(msg, now))    // StaleTermError → reply 'stale-term' with e.state.term
 *   other term messages: run(e.observeTerm(term, now))  // likewise; a 'stale-term' refusal carrying a
 *                                                        // newer term is observeTerm(thatTerm) at the sender
 *   run(): store each 'persist' state before sending anything that follows it.
 *
 * Rules:
 * - rank(): higher capacity first, then the lower peerId by UTF-16 code units (not localeCompare,
 *   whose order depends on each machine's locale). The best-ranked live member should lead.
 * - A node stands only after electionTimeoutMs without a live leader, and only while it is the
 *   best-ranked member of its live view: term+1, votes for itself, persists, asks every other live
 *   member. A lone live member (a farm of one) wins at once.
 * - A voter grants term T to C iff T ≥ its term (T > term: it first becomes a leaderless follower
 *   of T), it has not voted for anyone else in T, it knows no live leader of T, and C is in its live
 *   view and best-ranked there. Refusals: 'stale-term' (T < term; the reply carries the voter's
 *   term), 'already-voted', 'leader-alive', 'unknown-candidate', 'not-best'. The vote is persisted
 *   before the reply, so a restarted node never votes twice in a term. A follower that learns a
 *   term's leader without having voted in it records that leader as its vote, so a term that had a
 *   leader is not won again by someone else after that leader dies.
 * - A candidate wins with a strict majority of the live members it saw when it stood (itself
 *   included), then announces. Without a majority after voteTimeoutMs it may stand again at a
 *   higher term electionTimeoutMs later, if it is still leaderless and best-ranked.
 * - The leader re-announces to every live member each announceEveryMs (so joiners and members
 *   that missed the first announce learn it). A follower counts its leader gone when it leaves the
 *   live view or is silent for three announce periods, and clears it electionTimeoutMs later; the
 *   best-ranked live member then stands.
 * - A message with an older term is refused (StaleTermError); one with a newer term makes this node
 *   a follower of that term (a leader or candidate steps down). 'leader-changed' is emitted whenever
 *   the leader, or the term of a known leader, changes (also to undefined).
 * - Stability over optimality: a leader keeps leading while it lives, even when a better-ranked
 *   member joins (no flapping each time a fast machine comes online); it steps down only on a newer
 *   term. A node restored from disk as leader does not resume: it comes back leaderless in the same
 *   term (votedFor kept) and stands again if it is still the best.
 * - Partition caveat: majorities count the live members a candidate sees, not a fixed roster (a farm
 *   of one must elect itself). Candidates whose views overlap cannot both win a term. Views that do
 *   not (a clean partition, members booting before discovery finds the others) can each elect a
 *   leader, possibly in the same term; and members returning with an old term after everyone who
 *   knew the newest one died can reuse it. On contact the newer term wins, and of two leaders of
 *   one term the lower peerId keeps it.
 */
import { WireError } from '../protocol/errors.ts'

export interface Candidate { peerId: string, capacity: number }

/** Persisted by the caller after every change (the 'persist' action). */
export interface ElectionState { term: number, votedFor: string | undefined, leader: string | undefined }

export type ElectionAction =
  /** Send VoteRequest{ term, candidate: self } to each. */
  | { type: 'request-votes', term: number, to: string[] }
  /** Send LeaderAnnounce{ term, leader: self } to each. */
  | { type: 'announce', term: number, to: string[] }
  | { type: 'persist', state: ElectionState }
  | { type: 'leader-changed', term: number, leader: string | undefined, self: boolean }

export type VoteRefusal = 'stale-term' | 'already-voted' | 'leader-alive' | 'unknown-candidate' | 'not-best'
export interface VoteReply { granted: boolean, term: number, reason?: VoteRefusal }

/** A message of an older term than this node's: refused on the wire as 'stale-term'. */
export class StaleTermError extends WireError {
  /** `term`: the refused message's; `current`: this node's, to send back to the sender. */
  constructor (readonly term: number, readonly current: number, what = 'message') {
    super('stale-term', `${what} of term ${term} refused: the current term is ${current}`)
  }
}

export interface ElectionOptions {
  self: string
  state?: ElectionState
  /** Leaderless this long before the best-ranked member stands; also the backoff between campaigns. Default 1500. */
  electionTimeoutMs?: number
  /** A campaign without a majority this long has failed. Default 1000. */
  voteTimeoutMs?: number
  /** The leader re-announces this often; three silent periods and a follower counts it gone. Default 500. */
  announceEveryMs?: number
}

const capacity = (c: Candidate): number => Number.isNaN(c.capacity) ? -Infinity : c.capacity

/** Sort order for candidates: higher capacity first, then lower peerId (UTF-16 code units). */
export function rank (a: Candidate, b: Candidate): number {
  const ca = capacity(a)
  const cb = capacity(b)
  if (ca !== cb) return ca > cb ? -1 : 1
  return a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0
}

/** The best-ranked of `live`, or undefined when it is empty. */
export function best (live: readonly Candidate[]): Candidate | undefined {
  let top: Candidate | undefined
  for (const c of live) if (top === undefined || rank(c, top) < 0) top = c
  return top
}

interface Campaign { term: number, electorate: Set<string>, votes: Set<string>, retryAtMs: number }

function positive (v: number, name: string): number {
  if (!(v > 0)) throw new RangeError(`election option ${name} must be positive, got ${v}`)
  return v
}

export class Election {
  readonly self: string
  readonly electionTimeoutMs: number
  readonly voteTimeoutMs: number
  readonly announceEveryMs: number
  private s: ElectionState
  private campaign: Campaign | undefined
  /** Since when this node has known no live leader (undefined: it knows one). */
  private leaderlessSinceMs: number | undefined
  /** Follower: when the current leader last announced itself. */
  private heardLeaderMs: number | undefined
  /** Leader: when it last announced to everyone. */
  private announcedMs: number | undefined
  private pending: ElectionAction[] = []

  constructor (opts: ElectionOptions) {
    this.self = opts.self
    this.electionTimeoutMs = positive(opts.electionTimeoutMs ?? 1500, 'electionTimeoutMs')
    this.voteTimeoutMs = positive(opts.voteTimeoutMs ?? 1000, 'voteTimeoutMs')
    this.announceEveryMs = positive(opts.announceEveryMs ?? 500, 'announceEveryMs')
    const st = opts.state ?? { term: 0, votedFor: undefined, leader: undefined }
    if (!Number.isSafeInteger(st.term) || st.term < 0) throw new RangeError(`restoring the election state: term must be a non-negative integer, got ${st.term}`)
    this.s = { term: st.term, votedFor: st.votedFor, leader: st.leader === this.self ? undefined : st.leader }
  }

  get state (): ElectionState { return { ...this.s } }
  get isLeader (): boolean { return this.s.leader === this.self }

  tick (nowMs: number, live: readonly Candidate[]): ElectionAction[] {
    if (this.isLeader) {
      return this.announcedMs !== undefined && nowMs - this.announcedMs < this.announceEveryMs ? [] : this.broadcast(nowMs, live)
    }
    if (this.leaderLive(nowMs, live)) {
      this.leaderlessSinceMs = undefined
      return []
    }
    this.leaderlessSinceMs ??= nowMs
    if (nowMs - this.leaderlessSinceMs < this.electionTimeoutMs) return []
    const out = this.s.leader === undefined ? [] : this.set({ ...this.s, leader: undefined })
    if (this.campaign !== undefined && nowMs < this.campaign.retryAtMs) return out
    if (best(live)?.peerId !== this.self) return out
    return [...out, ...this.stand(nowMs, live)]
  }

  /** Answers a VoteRequest; state changes (a newer term, the vote) are queued for takeActions(). */
  onVoteRequest (msg: { term: number, candidate: string }, nowMs: number, live: readonly Candidate[]): VoteReply {
    const refuse = (reason: VoteRefusal): VoteReply => ({ granted: false, term: this.s.term, reason })
    if (msg.term < this.s.term) return refuse('stale-term')
    if (msg.term > this.s.term) this.pending.push(...this.adopt(msg.term, nowMs))
    const { votedFor, leader } = this.s
    if (votedFor !== undefined && votedFor !== msg.candidate) return refuse('already-voted')
    if (leader !== msg.candidate && this.leaderLive(nowMs, live)) return refuse('leader-alive')
    if (!live.some((c) => c.peerId === msg.candidate)) return refuse('unknown-candidate')
    if (best(live)?.peerId !== msg.candidate) return refuse('not-best')
    if (leader === undefined) this.leaderlessSinceMs = nowMs
    this.pending.push(...this.set({ ...this.s, votedFor: msg.candidate }))
    return { granted: true, term: this.s.term }
  }

  onVoteReply (from: string, reply: { granted: boolean, term: number }, nowMs: number, live: readonly Candidate[]): ElectionAction[] {
    if (reply.term > this.s.term) return this.adopt(reply.term, nowMs)
    const c = this.campaign
    if (c === undefined || !reply.granted || reply.term !== c.term || c.term !== this.s.term || !c.electorate.has(from)) return []
    c.votes.add(from)
    if (c.votes.size * 2 <= c.electorate.size) return []
    this.campaign = undefined
    return [...this.set({ ...this.s, leader: this.self }), ...this.broadcast(nowMs, live)]
  }

  /** Throws StaleTermError when msg.term is older than this node's. */
  onAnnounce (msg: { term: number, leader: string }, nowMs: number): ElectionAction[] {
    const { term, leader } = this.s
    if (msg.term < term) throw new StaleTermError(msg.term, term, 'leader announce')
    if (msg.leader === this.self) return msg.term > term ? this.adopt(msg.term, nowMs) : []   // not ours to claim
    let out: ElectionAction[] = []
    if (msg.term > term) out = this.adopt(msg.term, nowMs, msg.leader)
    else if (leader === undefined || (leader !== msg.leader && msg.leader < leader)) {
      // Unknown so far, or two leaders of one term (views that did not overlap): the lower peerId keeps it.
      this.campaign = undefined
      out = this.set({ ...this.s, votedFor: this.s.votedFor ?? msg.leader, leader: msg.leader })
    } else if (leader !== msg.leader) return []
    this.heardLeaderMs = nowMs
    return out
  }

  /** Any message carrying a term: throws StaleTermError for an older one; a newer one makes this node its follower. */
  observeTerm (term: number, nowMs: number): ElectionAction[] {
    if (term < this.s.term) throw new StaleTermError(term, this.s.term)
    return term > this.s.term ? this.adopt(term, nowMs) : []
  }

  /** The actions queued by onVoteRequest, once. */
  takeActions (): ElectionAction[] {
    return this.pending.splice(0)
  }

  private leaderLive (nowMs: number, live: readonly Candidate[]): boolean {
    const l = this.s.leader
    if (l === undefined) return false
    if (l === this.self) return true
    if (!live.some((c) => c.peerId === l)) return false
    this.heardLeaderMs ??= nowMs   // restored from disk: a full grace period
    return nowMs - this.heardLeaderMs < 3 * this.announceEveryMs
  }

  private stand (nowMs: number, live: readonly Candidate[]): ElectionAction[] {
    const term = this.s.term + 1
    const to = others(live, this.self)
    if (to.length === 0) {
      this.campaign = undefined
      return this.set({ term, votedFor: this.self, leader: this.self })
    }
    this.campaign = { term, electorate: new Set([this.self, ...to]), votes: new Set([this.self]), retryAtMs: nowMs + this.voteTimeoutMs + this.electionTimeoutMs }
    return [...this.set({ term, votedFor: this.self, leader: undefined }), { type: 'request-votes', term, to }]
  }

  private broadcast (nowMs: number, live: readonly Candidate[]): ElectionAction[] {
    this.announcedMs = nowMs
    const to = others(live, this.self)
    return to.length === 0 ? [] : [{ type: 'announce', term: this.s.term, to }]
  }

  /** Follower of a newer term (backing its leader, when known). */
  private adopt (term: number, nowMs: number, leader?: string): ElectionAction[] {
    this.campaign = undefined
    this.leaderlessSinceMs = nowMs
    return this.set({ term, votedFor: leader, leader })
  }

  private set (next: ElectionState): ElectionAction[] {
    const prev = this.s
    if (prev.term === next.term && prev.votedFor === next.votedFor && prev.leader === next.leader) return []
    this.s = { ...next }
    const out: ElectionAction[] = [{ type: 'persist', state: { ...next } }]
    if (prev.leader !== next.leader || (next.leader !== undefined && prev.term !== next.term)) {
      this.heardLeaderMs = undefined
      this.announcedMs = undefined
      out.push({ type: 'leader-changed', term: next.term, leader: next.leader, self: next.leader === this.self })
    }
    return out
  }
}

function others (live: readonly Candidate[], self: string): string[] {
  return [...new Set(live.map((c) => c.peerId))].filter((id) => id !== self)
}
