/**
 * The coordinator election on the wire: coordinator/election.ts (pure) driven by a timer,
 * talking over '/renderswarm/election/1', its state persisted in the store.
 *
 *   const lead = new Leadership({ node, store, log, candidates: () => [{ peerId, capacity }, …] })
 *   lead.addEventListener('leader', (e) => e.detail)     // { term, leader, self }
 *   await lead.start()
 *   const coordinator = await lead.waitForLeader(10_000)
 *   lead.checkTerm(msg.term)                              // throws WireError('stale-term') for an old term
 *
 * A member stands only while it sees a strict majority of the members seen alive in the last
 * `rosterMs` (a machine cut off from the farm does not elect itself). A member waits
 * `startupGraceMs` after start before standing, so that machines started
 * together find each other (mDNS) and hold one election instead of each electing itself.
 * The leader announces itself every 0.8 s (Election.tick), so a member that joins later, or
 * was cut off, learns the coordinator of the current term; 2.4 silent seconds and it is gone; a successor stands 1 s later.
 */
import { WireError } from '../protocol/errors.ts'
import { MAX_FRAME_BYTES, PROTOCOLS } from '../protocol/ids.ts'
import { AckSchema, ElectionMessageSchema, VoteReplySchema } from '../protocol/messages/jobs.ts'
import { Election, type Candidate, type ElectionAction, type ElectionState } from '../coordinator/election.ts'
import type { FarmNode } from './node.ts'
import type { Store } from './store.ts'

export interface LeadershipDeps {
  node: FarmNode
  store: Store
  log: (line: string) => void
  /** Live members with their capacity, this node included. */
  candidates: () => Candidate[]
  tickMs?: number
  electionTimeoutMs?: number
  startupGraceMs?: number
  /** How long a member that went silent still counts toward the majority needed to stand. Default 30 s. */
  rosterMs?: number
  /** After seeing no majority, how long a member listens for the farm's coordinator before it may stand. Default 3 s. */
  rejoinGraceMs?: number
  now?: () => number
}

export class Leadership extends EventTarget {
  private election: Election | undefined
  private timer: NodeJS.Timeout | undefined
  private startedMs = 0
  private readonly now: () => number
  private lastLeader: string | undefined

  constructor (private readonly d: LeadershipDeps) {
    super()
    this.now = d.now ?? Date.now
  }

  get leader (): string | undefined {
    return this.election?.state.leader
  }

  get term (): number {
    return this.election?.state.term ?? 0
  }

  get isLeader (): boolean {
    return this.election?.isLeader ?? false
  }

  async start (): Promise<void> {
    const self = this.d.node.peerId.toString()
    const saved = this.d.store.getJson<ElectionState>('election')
    // A restarted member keeps its term and vote, never its leadership: it must win again.
    this.election = new Election({ self, ...(saved !== undefined ? { state: { term: saved.term, votedFor: saved.votedFor, leader: undefined } } : {}), electionTimeoutMs: this.d.electionTimeoutMs ?? 1000, announceEveryMs: 800 })
    this.startedMs = this.now()
    await this.d.node.serve(PROTOCOLS.election, MAX_FRAME_BYTES.election, ElectionMessageSchema, async (msg, peer) => {
      const e = this.election!
      if (msg.type === 'vote') {
        if (msg.candidate !== peer) throw new WireError('schema', 'a vote request must come from its candidate')
        const reply = e.onVoteRequest(msg, this.now(), this.d.candidates())
        await this.run(e.takeActions())
        return reply
      }
      if (msg.leader !== peer) throw new WireError('schema', 'a leader announcement must come from the leader')
      await this.run(e.onAnnounce(msg, this.now()))
      return { ok: true }
    })
    this.timer = setInterval(() => { void this.tick() }, this.d.tickMs ?? 100)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
  }

  /** Refuses an older term (WireError 'stale-term'); a newer one makes this member follow it. */
  checkTerm (term: number): void {
    const e = this.election
    if (e === undefined) return
    void this.run(e.observeTerm(term, this.now()))
  }

  /** The coordinator of the current term, waiting up to `timeoutMs` for an election to settle. */
  async waitForLeader (timeoutMs: number): Promise<string> {
    const deadline = this.now() + timeoutMs
    for (;;) {
      const leader = this.leader
      if (leader !== undefined && (leader === this.d.node.peerId.toString() || this.d.node.isMember(leader))) return leader
      if (this.now() >= deadline) throw new WireError('not-coordinator', `no coordinator was elected within ${Math.round(timeoutMs / 1000)} s; is the farm reachable?`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  private async tick (): Promise<void> {
    const e = this.election
    if (e === undefined) return
    const now = this.now()
    if (now - this.startedMs < (this.d.startupGraceMs ?? 3000)) return
    const live = this.d.candidates()
    for (const c of live) this.roster.set(c.peerId, now)
    for (const [p, seen] of this.roster) if (now - seen > (this.d.rosterMs ?? 30_000)) this.roster.delete(p)
    // A member cut off from most of the farm it saw a moment ago does not elect itself: it
    // waits to hear the majority's coordinator again (no second coordinator in a partition).
    // Members silent for rosterMs leave the roster, so a farm that really shrank elects again.
    if (!e.isLeader && live.length * 2 <= this.roster.size) { this.isolatedMs = now; return }
    // Back from such a cut: listen for the farm's coordinator first (it announces every 0.8 s).
    // Standing at once, with the old leader long silent here, would win a newer term and unseat
    // a coordinator that lived on in the majority, with this member's stale copy of the jobs.
    if (this.isolatedMs !== undefined && now - this.isolatedMs < (this.d.rejoinGraceMs ?? 3000)) return
    await this.run(e.tick(now, live))
  }

  /** The last tick at which this member saw no majority of its roster. */
  private isolatedMs: number | undefined

  /** Members seen alive within rosterMs (self included), by when. */
  private readonly roster = new Map<string, number>()

  private async run (actions: ElectionAction[]): Promise<void> {
    const e = this.election!
    const self = this.d.node.peerId.toString()
    for (const a of actions) {
      switch (a.type) {
        case 'persist':
          this.d.store.setJson('election', a.state)
          break
        case 'leader-changed':
          if (a.leader !== this.lastLeader) {
            this.lastLeader = a.leader
            this.d.log(a.leader === undefined ? `no coordinator (term ${a.term})` : `coordinator for term ${a.term}: ${a.self ? 'this machine' : a.leader}`)
          }
          this.dispatchEvent(new CustomEvent('leader', { detail: { term: a.term, leader: a.leader, self: a.self } }))
          break
        case 'request-votes':
          await Promise.all(a.to.map(async (peer) => {
            try {
              const reply = await this.d.node.request(peer, PROTOCOLS.election, { type: 'vote', term: a.term, candidate: self }, VoteReplySchema, { timeoutMs: 1000 })
              await this.run(e.onVoteReply(peer, reply, this.now(), this.d.candidates()))
            } catch { /* no vote: the election times out and is retried */ }
          }))
          break
        case 'announce':
          await Promise.all(a.to.map(async (peer) => {
            try {
              await this.d.node.request(peer, PROTOCOLS.election, { type: 'leader', term: a.term, leader: self }, AckSchema, { timeoutMs: 1000 })
            } catch (err) {
              // A member that knows a newer term refuses: follow it.
              if (err instanceof WireError && err.code === 'stale-term') {
                const m = /current term is (\d+)/.exec(err.message)
                if (m !== null) await this.run(e.observeTerm(Number(m[1]), this.now()))
              }
            }
          }))
          break
      }
    }
  }
}
