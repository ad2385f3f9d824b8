import { describe, expect, it } from 'vitest'
import { Election, StaleTermError, best, rank, type Candidate, type ElectionAction, type ElectionState } from '../../coordinator/election.ts'
import { WireError, toWire } from '../../protocol/errors.ts'
import { seeded } from '../helpers/prng.ts'

const c = (peerId: string, capacity: number): Candidate => ({ peerId, capacity })
const types = (as: ElectionAction[]): string[] => as.map((a) => a.type)
const requests = (as: ElectionAction[]) => as.filter((a): a is Extract<ElectionAction, { type: 'request-votes' }> => a.type === 'request-votes')

/** Ticks `e` every 100 ms over (from, to], collecting every action with its time. */
function tickRange (e: Election, from: number, to: number, live: Candidate[]): Array<{ at: number, a: ElectionAction }> {
  const out: Array<{ at: number, a: ElectionAction }> = []
  for (let t = from + 100; t <= to; t += 100) for (const a of e.tick(t, live)) out.push({ at: t, a })
  return out
}

// ---------------------------------------------------------------------------------------------
// A tiny farm: Election instances wired by an in-memory message bus, ticked every 100 ms.

type Msg =
  | { kind: 'vote', from: string, to: string, term: number }
  | { kind: 'reply', from: string, to: string, reply: { granted: boolean, term: number } }
  | { kind: 'announce', from: string, to: string, term: number }
  | { kind: 'stale', from: string, to: string, term: number }

interface Node { id: string, capacity: number, e: Election, up: boolean, saved: ElectionState | undefined }

class Farm {
  now = 0
  readonly nodes = new Map<string, Node>()
  /** Whom a node sees besides itself; absent: every member that is up. */
  readonly views = new Map<string, Set<string>>()
  /** 'A>B': A's messages to B are lost. */
  readonly cut = new Set<string>()
  dropRate = 0
  random: () => number = Math.random
  private queue: Msg[] = []
  /** term → members that claimed it (won it, or announced it). */
  readonly claims = new Map<number, Set<string>>()
  /** 'voter@term' → whom it voted for, from the persisted states (survives restarts). */
  readonly votes = new Map<string, string>()
  readonly violations: string[] = []
  /** Moments when two members that are up both led the same term. */
  readonly overlaps: string[] = []
  readonly log: Array<{ at: number, id: string, a: ElectionAction }> = []

  constructor (members: Array<[string, number]> = []) {
    for (const [id, cap] of members) this.add(id, cap)
  }

  add (id: string, capacity: number, state?: ElectionState): Node {
    const n: Node = { id, capacity, e: new Election({ self: id, state }), up: true, saved: state }
    this.nodes.set(id, n)
    return n
  }

  node (id: string): Node {
    const n = this.nodes.get(id)
    if (n === undefined) throw new Error(`no node ${id}`)
    return n
  }

  see (id: string, ids: string[]): void { this.views.set(id, new Set(ids)) }
  kill (id: string): void { this.node(id).up = false }
  /** A crash and restart: a fresh instance from what was persisted. */
  restart (id: string): void {
    const n = this.node(id)
    n.e = new Election({ self: id, state: n.saved })
    n.up = true
  }

  live (id: string): Candidate[] {
    const v = this.views.get(id)
    return [...this.nodes.values()]
      .filter((n) => n.up && (n.id === id || v === undefined || v.has(n.id)))
      .map((n) => c(n.id, n.capacity))
  }

  leaders (): string[] { return [...this.nodes.values()].filter((n) => n.up && n.e.isLeader).map((n) => n.id) }
  up (): Node[] { return [...this.nodes.values()].filter((n) => n.up) }
  sent (type: ElectionAction['type'], id?: string): Array<{ at: number, id: string, a: ElectionAction }> {
    return this.log.filter((l) => l.a.type === type && (id === undefined || l.id === id))
  }

  private claim (term: number, id: string): void {
    const s = this.claims.get(term) ?? new Set<string>()
    s.add(id)
    this.claims.set(term, s)
    if (s.size > 1) this.violations.push(`term ${term} claimed by ${[...s].join(', ')} (t=${this.now})`)
  }

  handle (id: string, actions: ElectionAction[]): void {
    const n = this.node(id)
    for (const a of actions) {
      this.log.push({ at: this.now, id, a })
      switch (a.type) {
        case 'persist': {
          n.saved = a.state
          const v = a.state.votedFor
          if (v !== undefined) {
            const key = `${id}@${a.state.term}`
            const prev = this.votes.get(key)
            if (prev !== undefined && prev !== v) this.violations.push(`${id} voted for ${prev} and ${v} in term ${a.state.term}`)
            this.votes.set(key, v)
          }
          break
        }
        case 'leader-changed':
          if (a.self !== (a.leader === id)) this.violations.push(`${id}: leader-changed self flag wrong`)
          if (a.self) this.claim(a.term, id)
          break
        case 'announce':
          this.claim(a.term, id)
          for (const to of a.to) this.queue.push({ kind: 'announce', from: id, to, term: a.term })
          break
        case 'request-votes':
          for (const to of a.to) this.queue.push({ kind: 'vote', from: id, to, term: a.term })
          break
      }
    }
  }

  private deliver (m: Msg): void {
    const to = this.nodes.get(m.to)
    if (to === undefined || !to.up || this.cut.has(`${m.from}>${m.to}`)) return
    if (this.dropRate > 0 && this.random() < this.dropRate) return
    const e = to.e
    switch (m.kind) {
      case 'vote': {
        const reply = e.onVoteRequest({ term: m.term, candidate: m.from }, this.now, this.live(to.id))
        this.handle(to.id, e.takeActions())   // persisted before the reply leaves
        this.queue.push({ kind: 'reply', from: to.id, to: m.from, reply })
        break
      }
      case 'reply':
        this.handle(to.id, e.onVoteReply(m.from, m.reply, this.now, this.live(to.id)))
        break
      case 'announce':
        try {
          this.handle(to.id, e.onAnnounce({ term: m.term, leader: m.from }, this.now))
        } catch (err) {
          if (!(err instanceof StaleTermError)) throw err
          this.queue.push({ kind: 'stale', from: to.id, to: m.from, term: err.current })   // 'stale-term' + our term
        }
        break
      case 'stale':
        try {
          this.handle(to.id, e.observeTerm(m.term, this.now))
        } catch (err) {
          if (!(err instanceof StaleTermError)) throw err
        }
        break
    }
  }

  step (): void {
    this.now += 100
    for (const n of this.up()) this.handle(n.id, n.e.tick(this.now, this.live(n.id)))
    for (let i = 0; this.queue.length > 0; i++) {
      if (i > 100_000) throw new Error('message storm')
      this.deliver(this.queue.shift()!)
    }
    const terms = this.leaders().map((id) => `${id}@${this.node(id).e.state.term}`)
    if (new Set(terms.map((t) => t.split('@')[1])).size < terms.length) this.overlaps.push(`t=${this.now}: ${terms.join(' ')}`)
  }

  run (ms: number): void {
    const end = this.now + ms
    while (this.now < end) this.step()
  }

  /** Every member that is up follows `leader` in one term. */
  expectSettled (leader: string, term?: number): void {
    expect(this.leaders()).toEqual([leader])
    const t = this.node(leader).e.state.term
    if (term !== undefined) expect(t).toBe(term)
    for (const n of this.up()) expect({ id: n.id, ...n.e.state, votedFor: undefined }).toEqual({ id: n.id, term: t, leader, votedFor: undefined })
  }
}


// ---------------------------------------------------------------------------------------------

describe('rank', () => {
  it('orders by capacity, highest first, then by peerId in code-unit order (locale-independent)', () => {
    const xs = [c('b', 10), c('a', 10), c('z', 50), c('B', 10), c('n', Number.NaN), c('m', 0)]
    expect([...xs].sort(rank).map((x) => x.peerId)).toEqual(['z', 'B', 'a', 'b', 'm', 'n'])
    expect(rank(c('a', 1), c('a', 1))).toBe(0)
    expect(best(xs)?.peerId).toBe('z')
    expect(best([c('peer-b', 3), c('peer-B', 3)])?.peerId).toBe('peer-B')   // localeCompare would say peer-b
    expect(best([])).toBeUndefined()
  })
})

describe('Election (one node, by hand)', () => {
  it('a lone member waits electionTimeoutMs without a leader, then wins at once without asking anyone', () => {
    const e = new Election({ self: 'A' })
    const live = [c('A', 5)]
    expect(tickRange(e, 0, 1500, live)).toEqual([])   // leaderless since t=100
    expect(e.tick(1600, live)).toEqual([
      { type: 'persist', state: { term: 1, votedFor: 'A', leader: 'A' } },
      { type: 'leader-changed', term: 1, leader: 'A', self: true }
    ])
    expect(e.isLeader).toBe(true)
    expect(tickRange(e, 1600, 20_000, live)).toEqual([])   // nobody to announce to, nothing to redo
    expect(e.state).toEqual({ term: 1, votedFor: 'A', leader: 'A' })
  })

  it('only the best-ranked live member stands; it persists its vote before asking the others', () => {
    const live = [c('A', 30), c('B', 20), c('C', 10)]
    const b = new Election({ self: 'B' })
    expect(tickRange(b, 0, 30_000, live)).toEqual([])
    expect(b.state).toEqual({ term: 0, votedFor: undefined, leader: undefined })

    const a = new Election({ self: 'A' })
    expect(tickRange(a, 0, 1500, live)).toEqual([])
    expect(a.tick(1600, live)).toEqual([
      { type: 'persist', state: { term: 1, votedFor: 'A', leader: undefined } },
      { type: 'request-votes', term: 1, to: ['B', 'C'] }
    ])
    expect(a.isLeader).toBe(false)
  })

  it('wins on a strict majority of the members it saw when it stood: duplicates, refusals and strangers do not count', () => {
    const live = [c('A', 9), c('B', 1), c('C', 1), c('D', 1)]
    const a = new Election({ self: 'A' })
    tickRange(a, 0, 1600, live)
    expect(a.state.term).toBe(1)
    expect(a.onVoteReply('B', { granted: true, term: 1 }, 1700, live)).toEqual([])
    expect(a.onVoteReply('B', { granted: true, term: 1 }, 1700, live)).toEqual([])   // 2 of 4 is no majority
    expect(a.onVoteReply('C', { granted: false, term: 1 }, 1700, live)).toEqual([])
    expect(a.onVoteReply('X', { granted: true, term: 1 }, 1700, [...live, c('X', 1)])).toEqual([])
    expect(a.isLeader).toBe(false)
    expect(a.onVoteReply('D', { granted: true, term: 1 }, 1800, live)).toEqual([
      { type: 'persist', state: { term: 1, votedFor: 'A', leader: 'A' } },
      { type: 'leader-changed', term: 1, leader: 'A', self: true },
      { type: 'announce', term: 1, to: ['B', 'C', 'D'] }
    ])
    expect(a.isLeader).toBe(true)
  })

  it('retries at a higher term after voteTimeoutMs + a backoff, and only while still the best', () => {
    const live = [c('A', 30), c('B', 20), c('C', 10)]
    const a = new Election({ self: 'A' })
    const got = requests(tickRange(a, 0, 6000, live).map((x) => x.a))
    expect(got.map((r) => r.term)).toEqual([1, 2])
    const at = tickRange(new Election({ self: 'A' }), 0, 6000, live).filter((x) => x.a.type === 'request-votes').map((x) => x.at)
    expect(at).toEqual([1600, 1600 + 1000 + 1500])

    const a2 = new Election({ self: 'A' })
    tickRange(a2, 0, 1600, live)
    const better = [...live, c('Z', 99)]
    expect(requests(tickRange(a2, 1600, 20_000, better).map((x) => x.a))).toEqual([])
    expect(a2.state.term).toBe(1)
  })
})

describe('voting', () => {
  const live = [c('A', 30), c('B', 20), c('C', 10)]

  it('grants the best-ranked candidate, moving to its term and persisting the vote first', () => {
    const v = new Election({ self: 'C', state: { term: 2, votedFor: undefined, leader: undefined } })
    expect(v.onVoteRequest({ term: 5, candidate: 'A' }, 100, live)).toEqual({ granted: true, term: 5 })
    expect(v.takeActions()).toEqual([
      { type: 'persist', state: { term: 5, votedFor: undefined, leader: undefined } },
      { type: 'persist', state: { term: 5, votedFor: 'A', leader: undefined } }
    ])
    expect(v.takeActions()).toEqual([])
    expect(v.onVoteRequest({ term: 5, candidate: 'A' }, 150, live)).toEqual({ granted: true, term: 5 })   // a resend
    expect(v.takeActions()).toEqual([])
    expect(v.onVoteRequest({ term: 5, candidate: 'B' }, 200, [c('B', 20), c('C', 10)])).toEqual({ granted: false, term: 5, reason: 'already-voted' })
  })

  it('refuses stale terms, strangers, lesser candidates and anyone while a live leader is known', () => {
    const v = new Election({ self: 'C', state: { term: 4, votedFor: undefined, leader: undefined } })
    expect(v.onVoteRequest({ term: 3, candidate: 'A' }, 100, live)).toEqual({ granted: false, term: 4, reason: 'stale-term' })
    expect(v.takeActions()).toEqual([])
    expect(v.onVoteRequest({ term: 4, candidate: 'Q' }, 100, live)).toEqual({ granted: false, term: 4, reason: 'unknown-candidate' })
    expect(v.onVoteRequest({ term: 4, candidate: 'B' }, 100, live)).toEqual({ granted: false, term: 4, reason: 'not-best' })
    expect(v.state.votedFor).toBeUndefined()

    // C voted for A in term 4, but B won it (views that did not overlap): no vote while B lives
    const f = new Election({ self: 'C', state: { term: 4, votedFor: 'A', leader: 'B' } })
    expect(f.onVoteRequest({ term: 4, candidate: 'A' }, 200, live)).toEqual({ granted: false, term: 4, reason: 'leader-alive' })
    // …but once that leader has left the view
    expect(f.onVoteRequest({ term: 4, candidate: 'A' }, 300, [c('A', 30), c('C', 10)])).toEqual({ granted: true, term: 4 })
  })

  it('a follower told the winner of a term backs it: nobody else wins that term, even after the winner dies', () => {
    const f = new Election({ self: 'C' })
    expect(f.onAnnounce({ term: 4, leader: 'B' }, 100)).toEqual([
      { type: 'persist', state: { term: 4, votedFor: 'B', leader: 'B' } },
      { type: 'leader-changed', term: 4, leader: 'B', self: false }
    ])
    const withoutB = [c('A', 30), c('C', 10)]
    tickRange(f, 100, 5000, withoutB)
    expect(f.state).toEqual({ term: 4, votedFor: 'B', leader: undefined })
    expect(f.onVoteRequest({ term: 4, candidate: 'A' }, 5100, withoutB)).toEqual({ granted: false, term: 4, reason: 'already-voted' })
    expect(f.onVoteRequest({ term: 5, candidate: 'A' }, 5200, withoutB)).toEqual({ granted: true, term: 5 })

    // the same when it already was in that term (told of it by some other message) before the announce
    const g = new Election({ self: 'C' })
    g.observeTerm(4, 0)
    expect(g.onAnnounce({ term: 4, leader: 'B' }, 100)[0]).toEqual({ type: 'persist', state: { term: 4, votedFor: 'B', leader: 'B' } })
    tickRange(g, 100, 5000, withoutB)
    expect(g.onVoteRequest({ term: 4, candidate: 'A' }, 5100, withoutB)).toEqual({ granted: false, term: 4, reason: 'already-voted' })
  })

  it('a voter that is not best in its own view refuses, so it can stand itself', () => {
    const v = new Election({ self: 'A' })
    expect(v.onVoteRequest({ term: 1, candidate: 'B' }, 100, live)).toEqual({ granted: false, term: 1, reason: 'not-best' })
  })
})

describe('terms', () => {
  it('refuses a stale announce or term with StaleTermError, a WireError coded stale-term, leaving the state alone', () => {
    const e = new Election({ self: 'B', state: { term: 5, votedFor: 'A', leader: 'A' } })
    let err: unknown
    try { e.onAnnounce({ term: 4, leader: 'C' }, 100) } catch (x) { err = x }
    expect(err).toBeInstanceOf(StaleTermError)
    expect(err).toBeInstanceOf(WireError)
    expect(err).toMatchObject({ code: 'stale-term', term: 4, current: 5 })
    expect(toWire(err).code).toBe('stale-term')
    expect(() => e.observeTerm(1, 100)).toThrow(StaleTermError)
    expect(e.observeTerm(5, 100)).toEqual([])
    expect(e.state).toEqual({ term: 5, votedFor: 'A', leader: 'A' })
  })

  it('a leader that sees a newer term steps down', () => {
    const live = [c('A', 9), c('B', 1)]
    const a = new Election({ self: 'A' })
    tickRange(a, 0, 1600, live)
    a.onVoteReply('B', { granted: true, term: 1 }, 1700, live)
    expect(a.isLeader).toBe(true)
    expect(a.observeTerm(3, 1800)).toEqual([
      { type: 'persist', state: { term: 3, votedFor: undefined, leader: undefined } },
      { type: 'leader-changed', term: 3, leader: undefined, self: false }
    ])
    expect(a.isLeader).toBe(false)
    expect(tickRange(a, 1800, 3200, live).map((x) => x.a.type)).not.toContain('announce')
  })

  it('a candidate that hears of a newer term gives up its campaign: late votes for it do not count', () => {
    const live = [c('A', 9), c('B', 1), c('C', 1)]
    const a = new Election({ self: 'A' })
    tickRange(a, 0, 1600, live)
    expect(a.onVoteReply('B', { granted: false, term: 7 }, 1700, live)).toEqual([
      { type: 'persist', state: { term: 7, votedFor: undefined, leader: undefined } }
    ])
    expect(a.onVoteReply('C', { granted: true, term: 1 }, 1750, live)).toEqual([])
    expect(a.onVoteReply('C', { granted: true, term: 7 }, 1750, live)).toEqual([])
    expect(a.isLeader).toBe(false)
    // it stands again at 8, a timeout after it learnt term 7
    const next = tickRange(a, 1700, 3200, live).filter((x) => x.a.type === 'request-votes')
    expect(next).toEqual([{ at: 3200, a: { type: 'request-votes', term: 8, to: ['B', 'C'] } }])
  })

  it('an announce of a newer term makes a candidate or leader a follower of it', () => {
    const e = new Election({ self: 'A', state: { term: 2, votedFor: 'A', leader: undefined } })
    expect(e.onAnnounce({ term: 3, leader: 'B' }, 100)).toEqual([
      { type: 'persist', state: { term: 3, votedFor: 'B', leader: 'B' } },
      { type: 'leader-changed', term: 3, leader: 'B', self: false }
    ])
  })

  it('two leaders of one term (views that never overlapped): the lower peerId keeps it', () => {
    const live = [c('A', 1), c('B', 1)]
    const b = new Election({ self: 'B', state: { term: 0, votedFor: undefined, leader: undefined } })
    tickRange(b, 0, 1600, [c('B', 1)])
    expect(b.isLeader).toBe(true)
    expect(b.onAnnounce({ term: 1, leader: 'A' }, 1700)).toEqual([
      { type: 'persist', state: { term: 1, votedFor: 'B', leader: 'A' } },
      { type: 'leader-changed', term: 1, leader: 'A', self: false }
    ])
    const a = new Election({ self: 'A' })
    tickRange(a, 0, 1600, [c('A', 1)])
    expect(a.onAnnounce({ term: 1, leader: 'B' }, 1700)).toEqual([])
    expect(a.isLeader).toBe(true)
    expect(a.tick(2200, live)).toEqual([{ type: 'announce', term: 1, to: ['B'] }])
  })
})

describe('leader liveness', () => {
  it('the leader re-announces every announceEveryMs', () => {
    const live = [c('A', 9), c('B', 1)]
    const a = new Election({ self: 'A' })
    tickRange(a, 0, 1600, live)
    a.onVoteReply('B', { granted: true, term: 1 }, 1650, live)
    const ann = tickRange(a, 1600, 3300, live)
    expect(ann).toEqual([2200, 2700, 3200].map((at) => ({ at, a: { type: 'announce', term: 1, to: ['B'] } })))
  })

  it('a follower clears a leader that left its view after electionTimeoutMs, and the best then stands at once', () => {
    const f = new Election({ self: 'B' })
    f.onAnnounce({ term: 4, leader: 'A' }, 0)
    const withA = [c('A', 9), c('B', 5), c('C', 1)]
    const noA = [c('B', 5), c('C', 1)]
    expect(tickRange(f, 0, 1000, withA)).toEqual([])
    expect(tickRange(f, 1000, 2500, noA)).toEqual([])   // leaderless since 1100: nothing until 2600
    expect(f.state.leader).toBe('A')
    expect(f.tick(2600, noA)).toEqual([
      { type: 'persist', state: { term: 4, votedFor: 'A', leader: undefined } },
      { type: 'leader-changed', term: 4, leader: undefined, self: false },
      { type: 'persist', state: { term: 5, votedFor: 'B', leader: undefined } },
      { type: 'request-votes', term: 5, to: ['C'] }
    ])
  })

  it('a follower whose leader stays in view but stops announcing counts it gone after three periods', () => {
    const live = [c('A', 9), c('B', 5)]
    const f = new Election({ self: 'B' })
    f.onAnnounce({ term: 2, leader: 'A' }, 0)
    const log = tickRange(f, 0, 4000, live)
    expect(log[0]).toEqual({ at: 3000, a: { type: 'persist', state: { term: 2, votedFor: 'A', leader: undefined } } })   // silent from 1500, cleared 1500 later
    expect(requests(log.map((x) => x.a))).toEqual([])   // not the best: it waits for A to stand
  })

  it('announces keep a live leader: a follower hearing them never clears it', () => {
    const live = [c('A', 9), c('B', 5)]
    const f = new Election({ self: 'B' })
    for (let t = 0; t <= 20_000; t += 100) {
      if (t % 500 === 0) f.onAnnounce({ term: 2, leader: 'A' }, t)
      expect(f.tick(t, live)).toEqual([])
    }
    expect(f.state.leader).toBe('A')
  })
})

describe('restart', () => {
  it('a restored voter keeps its vote: no second vote in the same term', () => {
    const v = new Election({ self: 'V' })
    expect(v.onVoteRequest({ term: 3, candidate: 'A' }, 100, [c('A', 9), c('B', 5), c('V', 1)]).granted).toBe(true)
    const saved = v.takeActions().flatMap((a) => a.type === 'persist' ? [a.state] : []).at(-1)
    expect(saved).toEqual({ term: 3, votedFor: 'A', leader: undefined })
    const viewWithoutA = [c('B', 5), c('V', 1)]
    const restored = new Election({ self: 'V', state: saved })
    expect(restored.onVoteRequest({ term: 3, candidate: 'B' }, 200, viewWithoutA)).toEqual({ granted: false, term: 3, reason: 'already-voted' })
    // without the restored vote it would have granted B
    const amnesiac = new Election({ self: 'V', state: { term: 3, votedFor: undefined, leader: undefined } })
    expect(amnesiac.onVoteRequest({ term: 3, candidate: 'B' }, 200, viewWithoutA).granted).toBe(true)
  })

  it('a member restored as leader does not resume: leaderless in its term, it stands again if still the best', () => {
    const live = [c('A', 9), c('B', 5)]
    const e = new Election({ self: 'A', state: { term: 6, votedFor: 'A', leader: 'A' } })
    expect(e.isLeader).toBe(false)
    expect(e.state).toEqual({ term: 6, votedFor: 'A', leader: undefined })
    expect(requests(tickRange(e, 0, 1600, live).map((x) => x.a))).toEqual([{ type: 'request-votes', term: 7, to: ['B'] }])
  })

  it('rejects bad options and a corrupt restored term', () => {
    expect(() => new Election({ self: 'A', electionTimeoutMs: 0 })).toThrow(RangeError)
    expect(() => new Election({ self: 'A', state: { term: -1, votedFor: undefined, leader: undefined } })).toThrow(/term/)
  })
})

describe('a farm on an in-memory bus', () => {
  it('1 node: leads term 1 alone', () => {
    const f = new Farm([['A', 3]])
    f.run(3000)
    f.expectSettled('A', 1)
    expect(f.violations).toEqual([])
    expect(f.overlaps).toEqual([])
  })

  it('3 nodes: the fastest leads term 1, the others follow, one campaign only', () => {
    const f = new Farm([['C', 10], ['A', 30], ['B', 20]])
    f.run(5000)
    f.expectSettled('A', 1)
    expect(f.sent('request-votes').map((l) => l.id)).toEqual(['A'])
    expect(f.sent('leader-changed', 'A')[0]?.at).toBe(1600)
    expect(f.violations).toEqual([])
    expect(f.overlaps).toEqual([])
  })

  it('5 nodes of equal capacity: the lowest peerId (code units) leads', () => {
    const f = new Farm([['peer-c', 4], ['peer-a', 4], ['peer-B', 4], ['peer-d', 4], ['peer-e', 4]])
    f.run(5000)
    f.expectSettled('peer-B', 1)
    expect(f.violations).toEqual([])
    expect(f.overlaps).toEqual([])
  })

  it('leader death → the next best leads a higher term, down to a farm of one', () => {
    const f = new Farm([['A', 50], ['B', 40], ['C', 30], ['D', 20], ['E', 10]])
    f.run(3000)
    f.expectSettled('A', 1)
    const order = ['B', 'C', 'D', 'E']
    let prev = 'A'
    for (const [i, next] of order.entries()) {
      const diedAt = f.now
      f.kill(prev)
      f.run(3000)
      f.expectSettled(next, i + 2)
      const won = f.sent('leader-changed', next).find((l) => l.a.type === 'leader-changed' && l.a.self)
      expect(won!.at - diedAt).toBeGreaterThanOrEqual(1500)
      prev = next
    }
    expect(f.violations).toEqual([])
    expect([...f.claims.keys()]).toEqual([1, 2, 3, 4, 5])
  })

  it('a newly joined faster node does not depose a live leader, but leads once the leader dies', () => {
    const f = new Farm([['A', 30], ['B', 20], ['C', 10]])
    f.run(3000)
    f.expectSettled('A', 1)
    f.add('Z', 1000)
    f.run(20_000)
    f.expectSettled('A', 1)
    expect(f.sent('request-votes', 'Z')).toEqual([])
    f.kill('A')
    f.run(3000)
    f.expectSettled('Z', 2)
    expect(f.violations).toEqual([])
    expect(f.overlaps).toEqual([])
  })

  it('a deposed leader that comes back with an old term is refused and follows the new one', () => {
    const f = new Farm([['A', 30], ['B', 20], ['C', 10]])
    f.run(3000)
    // A is cut off: it sees nobody and nobody sees it; it keeps leading term 1 on its own
    f.see('A', []); f.see('B', ['C']); f.see('C', ['B'])
    f.run(5000)
    expect(f.node('A').e.state).toEqual({ term: 1, votedFor: 'A', leader: 'A' })
    expect(f.node('B').e.state).toMatchObject({ term: 2, leader: 'B' })
    f.views.clear()
    f.run(3000)
    f.expectSettled('B', 2)
    const changes = f.sent('leader-changed', 'A').map((l) => l.a)
    expect(changes[0]).toEqual({ type: 'leader-changed', term: 1, leader: 'A', self: true })
    expect(changes.at(-1)).toEqual({ type: 'leader-changed', term: 2, leader: 'B', self: false })
    expect(f.claims.get(2)).toEqual(new Set(['B']))
    expect(f.violations).toEqual([])
    expect(f.overlaps).toEqual([])
  })

  it('split view (B cannot see A): both stand in term 1, only A wins; B never leads any term', () => {
    const f = new Farm([['A', 30], ['B', 20], ['C', 10]])
    f.see('B', ['C'])
    f.run(15_000)
    const term1 = f.sent('request-votes').filter((l) => l.a.type === 'request-votes' && l.a.term === 1).map((l) => l.id).sort()
    expect(term1).toEqual(['A', 'B'])
    expect(f.claims.get(1)).toEqual(new Set(['A']))
    expect(f.sent('leader-changed', 'B').some((l) => l.a.type === 'leader-changed' && l.a.self)).toBe(false)
    expect(f.violations).toEqual([])
    // once B sees A again, everyone settles on A
    f.views.clear()
    f.run(8000)
    expect(f.leaders()).toEqual(['A'])
    f.expectSettled('A')
    expect(f.violations).toEqual([])
    expect(f.overlaps).toEqual([])
  })

  it('asymmetric views among 5: the candidate with a majority of what it saw wins, the other cannot', () => {
    const f = new Farm([['A', 50], ['B', 40], ['C', 30], ['D', 20], ['E', 10]])
    f.see('B', ['C', 'D', 'E'])
    f.see('E', ['B', 'C', 'D'])
    f.run(1600)
    expect(f.sent('request-votes').map((l) => l.id).sort()).toEqual(['A', 'B'])
    expect(f.leaders()).toEqual(['A'])
    expect(f.votes.get('C@1')).toBe('A')
    expect(f.votes.get('D@1')).toBe('A')
    expect(f.votes.get('E@1')).toBe('B')
    expect(f.violations).toEqual([])
    expect(f.overlaps).toEqual([])
  })

  it('partition caveat: sides that cannot see each other each elect; on contact one leader remains', () => {
    const f = new Farm([['A', 30], ['B', 20], ['C', 10]])
    f.see('A', []); f.see('B', ['C']); f.see('C', ['B'])
    f.run(3000)
    expect(f.leaders().sort()).toEqual(['A', 'B'])   // both in term 1: the documented caveat
    expect(f.claims.get(1)).toEqual(new Set(['A', 'B']))
    expect(f.overlaps.length).toBeGreaterThan(0)
    expect(f.violations[0]).toBe('term 1 claimed by A, B (t=1600)')
    f.views.clear()
    f.run(3000)
    f.expectSettled('A', 1)   // same term: the lower peerId keeps it
  })

  it('a vote survives a crash: a restarted voter refuses a second candidate in the same term', () => {
    const f = new Farm([['A', 30], ['B', 20], ['C', 10]])
    f.cut.add('B>A'); f.cut.add('C>A')   // A never hears its votes, so term 1 fails
    f.run(1700)
    expect(f.votes.get('B@1')).toBe('A')
    expect(f.votes.get('C@1')).toBe('A')
    f.kill('A')
    f.kill('B'); f.restart('B')
    expect(f.node('B').e.state).toEqual({ term: 1, votedFor: 'A', leader: undefined })
    f.add('Z', 100)   // fresh, term 0: it stands for term 1
    f.run(6000)
    const zTerms = f.sent('request-votes', 'Z').map((l) => l.a.type === 'request-votes' ? l.a.term : -1)
    expect(zTerms).toEqual([1, 2])   // term 1 refused by both voters, term 2 won
    expect(f.votes.get('B@1')).toBe('A')
    f.expectSettled('Z', 2)
    expect(f.violations).toEqual([])   // a second vote in term 1 would be listed here
  })

  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`chaos (seed ${seed}): 20% loss, crashes and restarts; no double vote, then one leader`, () => {
      const rnd = seeded(seed)
      const f = new Farm([['A', 50], ['B', 40], ['C', 30], ['D', 20], ['E', 10]])
      f.random = rnd
      f.dropRate = 0.2
      for (let round = 0; round < 40; round++) {
        const ids = [...f.nodes.keys()]
        const id = ids[Math.floor(rnd() * ids.length)]!
        const n = f.node(id)
        if (n.up && f.up().length > 1) f.kill(id)
        else if (!n.up) f.restart(id)
        f.run(100 + Math.floor(rnd() * 3000))
      }
      for (const n of f.nodes.values()) if (!n.up) f.restart(n.id)
      f.dropRate = 0
      f.run(10_000)
      const leader = f.leaders()
      expect(leader).toHaveLength(1)
      f.expectSettled(leader[0]!)
      expect(f.violations.filter((v) => v.includes('voted for'))).toEqual([])
      // Not guaranteed under arbitrary loss (see the partition caveat), but no seed here gets two
      // live leaders of one term; a term reused after all who knew it died can occur and is allowed.
      expect(f.overlaps).toEqual([])
      expect(f.sent('request-votes').length).toBeGreaterThan(1)   // the chaos did force re-elections
    })
  }
})
