/**
 * A worker keeps its lease alive for the whole run, not only while ffmpeg reports progress: a
 * segment that takes long to hand over (a big file on a slow link, a loaded owner) must not lose
 * its lease and be rendered again elsewhere. Real libp2p on loopback between a worker and a
 * stand-in coordinator that records what it hears; real ffmpeg renders a small colour chunk; the
 * hand-over to the owner is held for 7 s (half a lease).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { locateFfmpeg, probeFfmpeg } from '../../agent/ffmpeg.ts'
import { Worker } from '../../agent/worker.ts'
import { PROTOCOLS } from '../../protocol/ids.ts'
import { LeaseReplySchema, type JobSpec } from '../../protocol/messages/jobs.ts'
import { memberPair, stopMembers } from '../helpers/members.ts'
import { waitFor } from '../helpers/wait.ts'

const dirs: string[] = []
afterEach(async () => {
  await stopMembers()
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})

const FRAMES = 25
const HOLD_MS = 7000

describe('a worker handing over a segment', () => {
  it('renews its lease while the segment is checked and sent, then reports it done', async () => {
    const { w, c } = await memberPair()
    // The stand-in coordinator: every report, with the time it came.
    const heard: Array<{ at: number; type: string; framesDone?: number }> = []
    await c.serve(PROTOCOLS.submit, 64 * 1024, z.object({ type: z.string(), framesDone: z.number().optional() }).passthrough(), async (msg) => {
      heard.push({ at: Date.now(), type: msg.type, framesDone: msg.framesDone })
      return { ok: true }
    })
    const tools = await locateFfmpeg()
    const caps = await probeFfmpeg(tools)
    const workRoot = await mkdtemp(path.join(os.tmpdir(), 'rs-worker-lease-'))
    dirs.push(workRoot)
    const spec = {
      id: 'job-lease', owner: c.peerId.toString(), name: 'lease', user: 'test', preset: 'ffv1', priority: 'normal', createdMs: Date.now(),
      timeline: { schema: 'farm.timeline/1', fps: { num: 25, den: 1 }, width: 160, height: 90, duration: FRAMES, video: [{ clips: [{ id: 'c', type: 'color', color: '#336699', start: 0, length: FRAMES }] }] },
      media: {}, assets: []
    } as unknown as JobSpec
    let sendingSince: number | undefined
    const log: string[] = []
    const worker = new Worker({
      node: w, tools, caps, workRoot, slots: () => 1, accepting: () => true, checkTerm: () => {}, coordinator: () => c.peerId.toString(),
      job: async () => spec,
      fetchAsset: async () => { throw new Error('this timeline has no assets') },
      // The owner takes its time: the segment is held for HOLD_MS, then taken.
      sendSegment: async () => {
        sendingSince = Date.now()
        await new Promise((resolve) => setTimeout(resolve, HOLD_MS))
        return { result: 'stored', sha256: 'a'.repeat(64), bytes: 1 }
      },
      peers: () => [], log: (l) => { log.push(l) }, minFreeBytes: 1024 * 1024
    })
    await worker.start()
    const lease = { type: 'lease', lease: { jobId: 'job-lease', chunkId: 'job-lease-0', index: 0, start: 0, end: FRAMES, term: 1, leaseToken: 'token-0-0123456789', expiresAt: Date.now() + 15_000 } }
    const r = await c.request(w.peerId.toString(), PROTOCOLS.chunk, lease, LeaseReplySchema, { timeoutMs: 5000 })
    expect(r).toEqual({ accepted: true })
    await waitFor(() => heard.some((h) => h.type === 'chunk-done') ? true : undefined, 60_000, 'the chunk to be reported done', 100)
    expect(log.join('\n')).toMatch(/chunk job-lease-0 \[0, 25\) rendered in [\d.]+ s, stored at the owner/)
    const doneAt = heard.find((h) => h.type === 'chunk-done')!.at
    // While the hand-over was held, the lease was renewed at least every few seconds: no gap
    // near the 15 s a lease lasts, and each renewal says every frame is rendered.
    const during = heard.filter((h) => h.type === 'progress' && h.at >= sendingSince! && h.at <= doneAt)
    expect(during.length, JSON.stringify(heard)).toBeGreaterThanOrEqual(2)
    expect(during.every((h) => h.framesDone === FRAMES)).toBe(true)
    const times = [sendingSince!, ...during.map((h) => h.at), doneAt]
    const gaps = times.slice(1).map((t, i) => t - times[i]!)
    expect(Math.max(...gaps)).toBeLessThan(5000)
  }, 90_000)
})
