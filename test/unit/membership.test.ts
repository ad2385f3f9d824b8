import { describe, expect, it } from 'vitest'
import { MembershipTable } from '../../coordinator/membership.ts'

describe('MembershipTable failure detector', () => {
  it('alive → suspect after 3 missed heartbeats → dead a quarter beat later', () => {
    const m = new MembershipTable({ heartbeatMs: 1000 })
    m.joined('A', 0)
    m.joined('B', 0)
    for (let t = 1000; t <= 2000; t += 1000) { m.heard('A', t); m.heard('B', t) }
    expect(m.tick(2900)).toEqual([])
    m.heard('A', 3000)
    expect(m.tick(5000)).toEqual([{ peerId: 'B', from: 'alive', to: 'suspect', atMs: 5000, silentMs: 3000 }])
    expect(m.isAlive('B')).toBe(true)
    expect(m.tick(5250)).toEqual([{ peerId: 'B', from: 'suspect', to: 'dead', atMs: 5250, silentMs: 3250 }])
    expect(m.isAlive('B')).toBe(false)
    expect(m.get('A')!.state).toBe('alive')
  })

  it('a suspect recovers on a heartbeat; a dead member needs a hello', () => {
    const m = new MembershipTable<{ cpu: number }>({ heartbeatMs: 100 })
    m.joined('A', 0)
    m.tick(300)
    expect(m.get('A')!.state).toBe('suspect')
    expect(m.heard('A', 320, { cpu: 5 })).toBe(true)
    expect(m.tick(330)).toEqual([])
    expect(m.get('A')!.load).toEqual({ cpu: 5 })
    m.tick(1000)
    expect(m.get('A')!.state).toBe('dead')
    expect(m.heard('A', 1001)).toBe(false)
    expect(m.tick(1002)).toEqual([])
    m.joined('A', 1100)
    expect(m.get('A')!.state).toBe('alive')
    expect(m.get('A')!.joinedMs).toBe(1100)
  })

  it('ignores heartbeats from strangers and out-of-order timestamps do not rewind', () => {
    const m = new MembershipTable({ heartbeatMs: 100 })
    expect(m.heard('X', 5)).toBe(false)
    expect(m.list()).toEqual([])
    m.joined('A', 1000)
    m.heard('A', 900)
    expect(m.get('A')!.lastHeardMs).toBe(1000)
  })
})
