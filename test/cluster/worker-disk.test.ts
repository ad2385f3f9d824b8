/**
 * A worker on a nearly full disk refuses leases on the wire (accepted: false, naming the free
 * space and the floor) and says so through lowDisk(); the refusal is logged once, not on every
 * offer. Real libp2p on loopback; the "full disk" is the floor set above the real disk's free space.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { freeDiskBytes } from '../../agent/render/limits.ts'
import { Worker } from '../../agent/worker.ts'
import type { FfmpegCapabilities, FfmpegTools } from '../../agent/ffmpeg.ts'
import { PROTOCOLS } from '../../protocol/ids.ts'
import { LeaseReplySchema } from '../../protocol/messages/jobs.ts'
import { memberPair, stopMembers } from '../helpers/members.ts'
import { waitFor } from '../helpers/wait.ts'

const dirs: string[] = []
afterEach(async () => {
  await stopMembers()
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})

const lease = (i: number): Record<string, unknown> => ({ type: 'lease', lease: { jobId: 'job-disk', chunkId: `job-disk-${i}`, index: i, start: i * 10, end: i * 10 + 10, term: 1, leaseToken: `token-${i}-0123456789`, expiresAt: Date.now() + 15_000 } })

describe('a worker on a nearly full disk', () => {
  it('refuses leases with the free space and the floor, logs it once, and reports itself low on disk', async () => {
    const { w, c } = await memberPair()
    const workRoot = await mkdtemp(path.join(os.tmpdir(), 'rs-worker-disk-'))
    dirs.push(workRoot)
    const free = freeDiskBytes(path.join(workRoot, 'not-yet', 'made'))
    expect(free).toBeGreaterThan(0)
    const log: string[] = []
    const never = async (): Promise<never> => { throw new Error('a refused lease must not start a render') }
    const worker = new Worker({
      node: w, tools: {} as FfmpegTools, caps: {} as FfmpegCapabilities, workRoot, slots: () => 1, accepting: () => true,
      checkTerm: () => {}, coordinator: () => c.peerId.toString(), job: never, fetchAsset: never, sendSegment: never, peers: () => [], log: (l) => { log.push(l) },
      // The floor a little above what the disk has free: this disk counts as nearly full.
      minFreeBytes: free! + 64 * 1024 * 1024
    })
    await worker.start()
    const replies = []
    for (let i = 0; i < 3; i++) replies.push(await c.request(w.peerId.toString(), PROTOCOLS.chunk, lease(i), LeaseReplySchema, { timeoutMs: 5000 }))
    const refusal = new RegExp(`^the disk holding ${workRoot} has \\d+ MiB free, under the \\d+ MiB this node keeps free; not taking chunks until there is room$`)
    for (const r of replies) {
      expect(r.accepted).toBe(false)
      expect(r.reason).toMatch(refusal)
    }
    expect(worker.running()).toBe(0)
    expect(worker.lowDisk()).toMatch(refusal)
    expect(log.filter((l) => l.startsWith('lease refused: the disk holding'))).toHaveLength(1)
    // A work dir with a long path (not made yet: the disk under it counts): the reply still fits its 200 characters, figures kept.
    const deep = new Worker({
      node: c, tools: {} as FfmpegTools, caps: {} as FfmpegCapabilities, workRoot: path.join(workRoot, 'x'.repeat(150), 'work'), slots: () => 1, accepting: () => true,
      checkTerm: () => {}, coordinator: () => w.peerId.toString(), job: never, fetchAsset: never, sendSegment: never, peers: () => [], log: () => {}, minFreeBytes: free! + 64 * 1024 * 1024
    })
    await deep.start()
    const r = await w.request(c.peerId.toString(), PROTOCOLS.chunk, lease(9), LeaseReplySchema, { timeoutMs: 5000 })
    expect(r.accepted).toBe(false)
    expect(r.reason!.length).toBeLessThanOrEqual(200)
    expect(r.reason).toMatch(/^the disk holding …x+\/work has \d+ MiB free, under the \d+ MiB this node keeps free; not taking chunks until there is room$/)
  })

  it('takes a lease when the disk has room over the floor (the check is not always "no")', async () => {
    const { w, c } = await memberPair()
    const workRoot = await mkdtemp(path.join(os.tmpdir(), 'rs-worker-disk-'))
    dirs.push(workRoot)
    const log: string[] = []
    // The job cannot be found: the accepted lease's run fails at once (no ffmpeg), and reports so.
    const missing = async (): Promise<never> => { throw new Error('no such job here') }
    const worker = new Worker({
      node: w, tools: {} as FfmpegTools, caps: {} as FfmpegCapabilities, workRoot, slots: () => 1, accepting: () => true,
      checkTerm: () => {}, coordinator: () => undefined, job: missing, fetchAsset: missing, sendSegment: missing, peers: () => [], log: (l) => { log.push(l) },
      minFreeBytes: 1024 * 1024
    })
    await worker.start()
    const r = await c.request(w.peerId.toString(), PROTOCOLS.chunk, lease(0), LeaseReplySchema, { timeoutMs: 5000 })
    expect(r).toEqual({ accepted: true })
    expect(worker.lowDisk()).toBeUndefined()
    await waitFor(() => log.some((l) => /chunk job-disk-0 failed: no such job here/.test(l)) ? true : undefined, 5000, 'the run to end')
  })
})
