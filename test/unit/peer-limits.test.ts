/**
 * PeerLimiter with a fake clock: open-stream cap, token-bucket rate, strikes leading to a
 * cut-off, the ban running out, and peers kept apart.
 */
import { describe, expect, it } from 'vitest'
import { PeerLimiter } from '../../agent/peer-limits.ts'

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
