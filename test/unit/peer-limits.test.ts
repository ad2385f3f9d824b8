/**
 * PeerLimiter with a fake clock: open-stream cap, token-bucket rate, strikes leading to a
 * cut-off, the ban running out, and peers kept apart. ByteBudget (asset bytes per peer) likewise.
 */
import { describe, expect, it } from 'vitest'
import { ByteBudget, PeerLimiter } from '../../agent/peer-limits.ts'

function clock (): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000
  return { now: () => t, advance: (ms) => { t += ms } }
}

describe('PeerLimiter', () => {
  it('caps streams open at once per peer, and frees a slot on close', () => {
    const c = clock()
    const l = new PeerLimiter({ maxOpenStreams: 3, strikes: 100 }, c.now)
    for (let i = 0; i < 3; i++) expect(l.open('p').ok).toBe(true)
    expect(l.open('p')).toEqual({ ok: false, reason: 'streams', cutOff: false })
    expect(l.open('q').ok).toBe(true) // another peer is not affected
    l.close('p')
    expect(l.openStreams('p')).toBe(2)
    expect(l.open('p').ok).toBe(true)
  })

  it('allows a burst, then the sustained rate', () => {
    const c = clock()
    const l = new PeerLimiter({ maxOpenStreams: 1000, streamsPerSecond: 10, burst: 5, strikes: 100 }, c.now)
    const take = (): boolean => { const v = l.open('p'); if (v.ok) l.close('p'); return v.ok }
    expect(Array.from({ length: 6 }, take)).toEqual([true, true, true, true, true, false])
    c.advance(100) // one token back at 10/s
    expect(take()).toBe(true)
    expect(take()).toBe(false)
    c.advance(10_000) // refills to the burst, no more
    expect(Array.from({ length: 6 }, take).filter(Boolean)).toHaveLength(5)
  })

  it('cuts a peer off after `strikes` refusals within the window; the ban runs out', () => {
    const c = clock()
    const l = new PeerLimiter({ maxOpenStreams: 1, strikes: 3, strikeWindowMs: 1000, banMs: 5000 }, c.now)
    expect(l.open('p').ok).toBe(true)
    expect(l.open('p')).toEqual({ ok: false, reason: 'streams', cutOff: false })
    expect(l.open('p')).toEqual({ ok: false, reason: 'streams', cutOff: false })
    expect(l.open('p')).toEqual({ ok: false, reason: 'streams', cutOff: true })
    expect(l.banned('p')).toBe(true)
    expect(l.open('p')).toEqual({ ok: false, reason: 'banned', cutOff: false })
    expect(l.banned('q')).toBe(false)
    c.advance(5000)
    expect(l.banned('p')).toBe(false)
  })

  it('strikes older than the window do not count', () => {
    const c = clock()
    const l = new PeerLimiter({ maxOpenStreams: 1, strikes: 3, strikeWindowMs: 1000 }, c.now)
    l.open('p')
    for (let i = 0; i < 10; i++) {
      expect(l.open('p').ok).toBe(false)
      expect(l.open('p')).toMatchObject({ cutOff: false })
      c.advance(1000)
    }
    expect(l.banned('p')).toBe(false)
  })

  it('refuses nonsense options by name', () => {
    expect(() => new PeerLimiter({ burst: 0 })).toThrow(/peer limit burst must be a positive number/)
    expect(() => new PeerLimiter({ banMs: Number.NaN })).toThrow(/banMs/)
  })
})

describe('ByteBudget', () => {
  const MiB = 1024 * 1024
  it('lets a burst go at once, then holds each peer to its rate (all its transfers together)', () => {
    const c = clock()
    const b = new ByteBudget(10 * MiB, 4 * MiB, c.now)
    expect(b.take('p', 4 * MiB)).toBe(0)
    // 1 MiB more at 10 MiB/s: wait 100 ms; another 1 MiB right away (a second fetch of the same peer): 200 ms.
    expect(b.take('p', MiB)).toBe(100)
    expect(b.take('p', MiB)).toBe(200)
    c.advance(200)
    expect(b.take('p', MiB)).toBe(100)
    // Over a long run the peer gets the rate, not more: 100 MiB takes about 10 s.
    const d = clock()
    const long = new ByteBudget(10 * MiB, 4 * MiB, d.now)
    let waited = 0
    for (let i = 0; i < 100; i++) { const ms = long.take('p', MiB); d.advance(ms); waited += ms }
    expect(waited).toBeGreaterThanOrEqual(9500)
    expect(waited).toBeLessThanOrEqual(10_000)
  })
  it('keeps peers apart; the bucket refills to the burst and no further; 0 is no limit', () => {
    const c = clock()
    const b = new ByteBudget(MiB, MiB, c.now)
    expect(b.take('p', 2 * MiB)).toBe(1000)
    expect(b.take('q', MiB)).toBe(0)
    c.advance(60_000)
    expect(b.take('p', MiB)).toBe(0)
    expect(b.take('p', MiB / 2)).toBe(500)
    expect(new ByteBudget(0, MiB, c.now).take('p', 1e12)).toBe(0)
    expect(() => new ByteBudget(-1, MiB)).toThrow(RangeError)
    expect(() => new ByteBudget(MiB, 0)).toThrow(RangeError)
  })
  it('forgets peers whose bucket is full again once many are tracked (bounded memory)', () => {
    const c = clock()
    const b = new ByteBudget(MiB, MiB, c.now)
    for (let i = 0; i < 1024; i++) b.take(`p${i}`, 1)
    expect(b.size).toBe(1024)
    c.advance(10)
    b.take('new', 1)
    expect(b.size).toBe(1)
  })
})
