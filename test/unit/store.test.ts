import { afterAll, describe, expect, it } from 'vitest'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import Database from 'better-sqlite3'
import { Store, StoreError } from '../../agent/store.ts'
import { cleanupTmp, tmpDir } from '../helpers/media.ts'

afterAll(cleanupTmp)

describe('Store (real SQLite)', () => {
  it('keeps identity, benchmarks and peers across reopen', async () => {
    const file = path.join(await tmpDir('store'), 'state', 'state.db')
    const a = Store.open(file)
    a.setJson('identity', { peerKey: 'abc' })
    a.putBenchmark('hw1|ffmpeg5.1', { ffv1: 93.5 }, 1000)
    a.upsertPeer({ peerId: '12D3KooWA', name: 'edit-bay-1', addrs: ['/ip4/127.0.0.1/tcp/4001'], lastSeenMs: 5, info: { cores: 8 } })
    a.upsertPeer({ peerId: '12D3KooWA', name: 'edit-bay-1b', addrs: [], lastSeenMs: 6, info: null })
    a.close()
    const b = Store.open(file)
    expect(b.getJson('identity')).toEqual({ peerKey: 'abc' })
    expect(b.getBenchmark('hw1|ffmpeg5.1')).toEqual({ result: { ffv1: 93.5 }, measuredAtMs: 1000 })
    expect(b.getBenchmark('other')).toBeUndefined()
    expect(b.listPeers()).toEqual([{ peerId: '12D3KooWA', name: 'edit-bay-1b', addrs: [], lastSeenMs: 6, info: null }])
    b.removePeer('12D3KooWA')
    expect(b.listPeers()).toEqual([])
    b.close()
  })

  it('keeps the newest copy of a job record and says when it was updated', async () => {
    const s = Store.open(path.join(await tmpDir('store-jobs'), 'state.db'))
    expect(s.jobUpdated('j1')).toBeUndefined()
    expect(s.putJob('j1', { status: 'running' }, 100)).toBe(true)
    expect(s.putJob('j1', { status: 'queued' }, 50)).toBe(false)
    expect(s.getJob('j1')).toEqual({ status: 'running' })
    expect(s.jobUpdated('j1')).toBe(100)
    expect(s.putJob('j1', { status: 'done' }, 200)).toBe(true)
    expect([s.getJob('j1'), s.jobUpdated('j1')]).toEqual([{ status: 'done' }, 200])
    s.putJob('j2', { status: 'queued' }, 150)
    s.putJob('j3', { status: 'queued' }, 300)
    expect(s.jobsSince(150, 10)).toEqual([{ jobId: 'j3', updatedMs: 300 }, { jobId: 'j1', updatedMs: 200 }, { jobId: 'j2', updatedMs: 150 }])
    expect(s.jobsSince(201, 10)).toEqual([{ jobId: 'j3', updatedMs: 300 }])
    expect(s.jobsSince(0, 1)).toEqual([{ jobId: 'j3', updatedMs: 300 }])
    s.close()
  })

  it('rolls back a failed transaction', async () => {
    const s = Store.open(path.join(await tmpDir('store-tx'), 'state.db'))
    s.setJson('k', 1)
    expect(() => s.transaction(() => { s.setJson('k', 2); throw new Error('midway') })).toThrow('midway')
    expect(s.getJson('k')).toBe(1)
    s.close()
  })

  it('refuses a file that is not a database, and one from a newer version, clearly', async () => {
    const dir = await tmpDir('store-bad')
    const junk = path.join(dir, 'junk.db')
    await writeFile(junk, 'this is not sqlite '.repeat(100))
    expect(() => Store.open(junk)).toThrow(StoreError)
    expect(() => Store.open(junk)).toThrow(/opening the agent's state .*junk\.db/)
    const newer = path.join(dir, 'newer.db')
    const db = new Database(newer)
    db.pragma('user_version = 99')
    db.close()
    expect(() => Store.open(newer)).toThrow(/written by a newer renderswarm \(schema 99/)
  })
})
