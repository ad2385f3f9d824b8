/**
 * Failure detector over heartbeats (pure; time comes from the caller).
 *
 *   const m = new MembershipTable({ heartbeatMs: 1000 })
 *   m.heard(peerId, now, load)        // on each heartbeat
 *   m.tick(now)                       // → [{ peerId, from: 'alive', to: 'suspect' }, …]
 *
 * A member missing `suspectAfter` heartbeats is suspect; `deadAfterMs` more and it is dead
 * (defaults: suspect after 3 s, dead after 3.25 s at one heartbeat a second).
 * A heartbeat from a suspect member makes it alive again; a dead member must rejoin (hello).
 * mDNS goodbyes and closed connections are hints only: they never mark a member dead.
 */
export type MemberState = 'alive' | 'suspect' | 'dead'

export interface MemberRecord<L> {
  peerId: string
  state: MemberState
  lastHeardMs: number
  joinedMs: number
  load: L | undefined
}

export interface Transition { peerId: string; from: MemberState; to: MemberState; atMs: number; silentMs: number }

export interface MembershipOptions {
  heartbeatMs?: number
  /** Missed heartbeats before a member is suspect. Default 3. */
  suspectAfter?: number
  /** Further silence before a suspect member is dead. Default a quarter heartbeat. */
  deadAfterMs?: number
}

export class MembershipTable<L = unknown> {
  private readonly members = new Map<string, MemberRecord<L>>()
  readonly heartbeatMs: number
  readonly suspectMs: number
  readonly deadMs: number

  constructor (opts: MembershipOptions = {}) {
    this.heartbeatMs = opts.heartbeatMs ?? 1000
    this.suspectMs = this.heartbeatMs * (opts.suspectAfter ?? 3)
    this.deadMs = this.suspectMs + (opts.deadAfterMs ?? this.heartbeatMs / 4)
  }

  /** A verified hello: the member is alive (again). */
  joined (peerId: string, nowMs: number): void {
    const prev = this.members.get(peerId)
    this.members.set(peerId, { peerId, state: 'alive', lastHeardMs: nowMs, joinedMs: prev?.state === 'dead' || prev === undefined ? nowMs : prev.joinedMs, load: prev?.load })
  }

  /** A heartbeat. Ignored from unknown or dead members (they must say hello first). Returns whether it counted. */
  heard (peerId: string, nowMs: number, load?: L): boolean {
    const m = this.members.get(peerId)
    if (m === undefined || m.state === 'dead') return false
    m.lastHeardMs = Math.max(m.lastHeardMs, nowMs)
    m.state = 'alive'
    if (load !== undefined) m.load = load
    return true
  }

  remove (peerId: string): void {
    this.members.delete(peerId)
  }

  tick (nowMs: number): Transition[] {
    const out: Transition[] = []
    for (const m of this.members.values()) {
      const silent = nowMs - m.lastHeardMs
      const to: MemberState = m.state === 'dead' || silent >= this.deadMs ? 'dead' : silent >= this.suspectMs ? 'suspect' : 'alive'
      if (to !== m.state) {
        out.push({ peerId: m.peerId, from: m.state, to, atMs: nowMs, silentMs: silent })
        m.state = to
      }
    }
    return out
  }

  get (peerId: string): MemberRecord<L> | undefined {
    const m = this.members.get(peerId)
    return m === undefined ? undefined : { ...m }
  }

  list (): Array<MemberRecord<L>> {
    return [...this.members.values()].map((m) => ({ ...m })).sort((a, b) => a.peerId.localeCompare(b.peerId))
  }

  isAlive (peerId: string): boolean {
    const s = this.members.get(peerId)?.state
    return s === 'alive' || s === 'suspect'
  }
}
