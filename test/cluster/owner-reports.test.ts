/**
 * What an owner must tell the coordinator is kept until the coordinator has heard it (decision
 * 40): a written job's outcome survives a restart (and the job is not taken up and rendered
 * again), and a restarted owner's list of lost segments is offered until it lands. Real libp2p
 * on loopback between the owner and a stand-in coordinator that refuses at first; real ffmpeg
 * renders the segments and the owner joins them; real SQLite holds the owner's state.
 */
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { AssetCache } from '../../agent/assets.ts'
import { locateFfmpeg, probeFfmpeg, type FfmpegCapabilities, type FfmpegTools } from '../../agent/ffmpeg.ts'
import type { FarmNode } from '../../agent/node.ts'
import { Owner } from '../../agent/owner.ts'
import { compileChunk } from '../../agent/render/compile.ts'
import { resolvePreset } from '../../agent/render/presets.ts'
import { runInvocation } from '../../agent/render/run.ts'
import { Store } from '../../agent/store.ts'
import { WireError } from '../../protocol/errors.ts'
import { PROTOCOLS } from '../../protocol/ids.ts'
import { pieceId, type JobRecord } from '../../protocol/messages/jobs.ts'
import { frameHashes } from '../helpers/media.ts'
import { parseSnapshot } from '../../protocol/timeline.ts'
import { memberPair, stopMembers } from '../helpers/members.ts'
import { waitFor } from '../helpers/wait.ts'

const dirs: string[] = []
const stores: Store[] = []
const owners: Owner[] = []
afterEach(async () => {
  for (const o of owners.splice(0)) await o.stop()
  for (const s of stores.splice(0)) s.close()
  await stopMembers()
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})

const FRAMES = 50
const HALF = FRAMES / 2

interface Heard { at: number; type: string; msg: Record<string, unknown> }

/** The stand-in coordinator on `c`: records every request; `refuse(msg)` true answers with an error. */
async function standIn (c: FarmNode, refuse: (msg: Record<string, unknown>) => boolean): Promise<Heard[]> {
  const heard: Heard[] = []
  await c.serve(PROTOCOLS.submit, 1024 * 1024, z.object({ type: z.string() }).passthrough(), async (msg) => {
    heard.push({ at: Date.now(), type: msg.type, msg })
    if (refuse(msg)) throw new WireError('internal', 'the coordinator is not ready')
    return { ok: true }
  })
  return heard
}

/** An owner over `stateDir` (its SQLite and job dirs), as an agent's FarmServices builds it. */
function ownerOn (node: FarmNode, coordinator: FarmNode, stateDir: string, tools: FfmpegTools, caps: FfmpegCapabilities, log: string[]): { owner: Owner; store: Store } {
  const store = Store.open(path.join(stateDir, 'state.db'))
  stores.push(store)
  const owner = new Owner({
    node, store, cache: new AssetCache(path.join(stateDir, 'assets')), tools, caps, jobsDir: path.join(stateDir, 'jobs'),
    coordinator: async () => coordinator.peerId.toString(), log: (l) => { log.push(l) }
  })
  owners.push(owner)
  return { owner, store }
}

/** A two-chunk colour job owned by `owner`, as the coordinator replicated it: running, both chunks done or not. */
function record (owner: string, id: string, chunksDone: boolean): JobRecord {
  const timeline = parseSnapshot({ schema: 'farm.timeline/1', fps: { num: 25, den: 1 }, width: 160, height: 90, duration: FRAMES, video: [{ clips: [{ id: 'c', type: 'color', color: '#336699', start: 0, length: FRAMES }] }] })
  const now = Date.now()
  return {
    spec: { id, owner, name: id, user: 'test', preset: 'ffv1', priority: 'normal', createdMs: now, timeline, media: {}, assets: [] },
    status: 'running', framesDone: chunksDone ? FRAMES : 0, fps: 0, actualCost: 0, updatedMs: now,
    chunks: [0, 1].map((i) => ({ id: `${id}-${i}`, index: i, start: i * HALF, end: (i + 1) * HALF, status: chunksDone ? 'done' : 'queued', attempts: 0, framesDone: chunksDone ? HALF : 0 }))
  } as unknown as JobRecord
}

/** The owner's name for a segment in its job dir (agent/owner.ts segmentPath). */
const segName = (c: { start: number; end: number }, ext: string): string => `seg-${String(c.start).padStart(9, '0')}-${String(c.end).padStart(9, '0')}${ext}`

describe('an owner reporting to the coordinator', () => {
  it('keeps a written job\'s outcome across a restart and reports it, without taking the job up again', async () => {
    const { w, c } = await memberPair()
    // job-finished is refused until `ready`: the coordinator never hears it before the owner goes.
    let ready = false
    const heard = await standIn(c, (m) => m.type === 'job-finished' && !ready)
    const tools = await locateFfmpeg()
    const caps = await probeFfmpeg(tools)
    const stateDir = await mkdtemp(path.join(os.tmpdir(), 'rs-owner-reports-'))
    dirs.push(stateDir)
    const jobId = 'job-outcome'
    const rec = record(w.peerId.toString(), jobId, true)
    const output = path.join(stateDir, 'out.mkv')
    // Both segments already in the owner's job dir, rendered by the chunk compiler as a worker would.
    const preset = resolvePreset('ffv1', caps)
    const jobDir = path.join(stateDir, 'jobs', jobId)
    await mkdir(jobDir, { recursive: true })
    for (const ch of rec.chunks) {
      await runInvocation(compileChunk({ timeline: rec.spec.timeline, media: {}, assetPath: () => '', workDir: path.join(stateDir, 'work'), preset }, ch, path.join(jobDir, segName(ch, preset.ext))), { ffmpeg: tools.ffmpeg })
    }
    const log1: string[] = []
    const first = ownerOn(w, c, stateDir, tools, caps, log1)
    first.store.putJob(jobId, rec, rec.updatedMs)
    first.store.setJobOutput(jobId, output)
    // Taken up with every segment here: joined, written, and the outcome offered (and refused).
    await first.owner.start()
    await waitFor(() => heard.some((h) => h.type === 'job-finished') ? true : undefined, 60_000, 'the first report of the outcome', 50)
    expect(log1.join('\n')).toMatch(/job job-outcome written to /)
    const written = await stat(output)
    // The owner goes away (its agent stopped: the next report never comes from this one).
    await first.owner.stop()
    owners.splice(owners.indexOf(first.owner), 1)
    first.store.close()
    stores.splice(stores.indexOf(first.store), 1)
    const before = heard.length

    // Back, with the same state: it reports the outcome, and renders and writes nothing.
    ready = true
    const log2: string[] = []
    const second = ownerOn(w, c, stateDir, tools, caps, log2)
    await second.owner.start()
    const report = await waitFor(() => heard.slice(before).find((h) => h.type === 'job-finished'), 10_000, 'the outcome reported after the restart', 50)
    expect(report.msg).toMatchObject({ jobId, ok: true })
    expect(log2.join('\n')).not.toMatch(/taken up again/)
    expect(heard.slice(before).some((h) => h.type === 'segments')).toBe(false)
    expect((await stat(output)).mtimeMs).toBe(written.mtimeMs)
    expect(await stat(jobDir).catch(() => undefined)).toBeUndefined()
    // Acknowledged: it is not offered again.
    const acked = heard.length
    await new Promise((resolve) => setTimeout(resolve, 4000))
    expect(heard.slice(acked).filter((h) => h.type === 'job-finished')).toEqual([])
  }, 90_000)

  it('offers the segments it lost in a restart until the coordinator takes the list', async () => {
    const { w, c } = await memberPair()
    // The first two offers fail (a coordinator still starting, a cut link).
    let refusals = 0
    const heard = await standIn(c, (m) => m.type === 'segments' && refusals++ < 2)
    const tools = await locateFfmpeg()
    const caps = await probeFfmpeg(tools)
    const stateDir = await mkdtemp(path.join(os.tmpdir(), 'rs-owner-reports-'))
    dirs.push(stateDir)
    const jobId = 'job-lost'
    const log: string[] = []
    const { owner, store } = ownerOn(w, c, stateDir, tools, caps, log)
    // Both chunks were done, but the owner's job dir is empty: it lost both segments.
    const rec = record(w.peerId.toString(), jobId, true)
    store.putJob(jobId, rec, rec.updatedMs)
    store.setJobOutput(jobId, path.join(stateDir, 'out.mkv'))
    await owner.start()
    expect(log.join('\n')).toMatch(/job job-lost taken up again after a restart: 0 segment\(s\) already here$/m)
    // As FarmServices does when it learns the coordinator: one report, then the owner's own retries.
    await owner.reportSegments(c.peerId.toString())
    const offers = await waitFor(() => { const s = heard.filter((h) => h.type === 'segments'); return s.length >= 3 ? s : undefined }, 15_000, 'the third offer of the lost segments', 50)
    for (const o of offers) expect(o.msg).toMatchObject({ jobId, chunks: [], missing: [`${jobId}-0`, `${jobId}-1`] })
    // Taken: no more offers.
    await new Promise((resolve) => setTimeout(resolve, 4000))
    expect(heard.filter((h) => h.type === 'segments')).toHaveLength(3)
  }, 60_000)
})

describe('an owner joining pieces cut at lease time (decision 41)', () => {
  it('takes a piece by its id alone, refuses one that does not fit, and joins planned chunks and pieces, frame-identical', async () => {
    const { w, c } = await memberPair()
    await standIn(c, () => false)
    const tools = await locateFfmpeg()
    const caps = await probeFfmpeg(tools)
    const stateDir = await mkdtemp(path.join(os.tmpdir(), 'rs-owner-pieces-'))
    dirs.push(stateDir)
    const jobId = 'job-pieces'
    const rec = record(w.peerId.toString(), jobId, false)
    const preset = resolvePreset('ffv1', caps)
    const ctx = { timeline: rec.spec.timeline, media: {}, assetPath: () => '', workDir: path.join(stateDir, 'work'), preset }
    // Chunk 0 [0, 25) is here from before a restart; chunk 1 [25, 50) was cut by the coordinator into [25, 40) and [40, 50).
    const jobDir = path.join(stateDir, 'jobs', jobId)
    await mkdir(jobDir, { recursive: true })
    await runInvocation(compileChunk(ctx, rec.chunks[0]!, path.join(jobDir, segName(rec.chunks[0]!, preset.ext))), { ffmpeg: tools.ffmpeg })
    const log: string[] = []
    const { owner, store } = ownerOn(w, c, stateDir, tools, caps, log)
    const output = path.join(stateDir, 'out.mkv')
    store.putJob(jobId, rec, rec.updatedMs)
    store.setJobOutput(jobId, output)
    await owner.start()
    expect(log.join('\n')).toMatch(/job job-pieces taken up again after a restart: 1 segment\(s\) already here$/m)
    // Refused: a piece of the wrong length, past the end, of another job, or a made-up id.
    for (const [chunkId, frames] of [[pieceId(jobId, 25, 40), 14], [pieceId(jobId, 40, 60), 20], [pieceId('other-job', 25, 40), 15], [`${jobId}-r25`, 15], [`${jobId}-7`, 25]] as const) {
      const r = owner.acceptSegment({ jobId, chunkId, index: 9, frames })
      expect(r, chunkId).toMatchObject({ refuse: 'not-found' })
    }
    for (const [start, end] of [[25, 40], [40, 50]] as const) {
      const h = { jobId, chunkId: pieceId(jobId, start, end), index: 2, frames: end - start }
      const at = owner.acceptSegment(h)
      if (!('path' in at)) throw new Error(`piece [${start}, ${end}) refused: ${at.message}`)
      expect(path.basename(at.path)).toBe(segName({ start, end }, preset.ext))
      await runInvocation(compileChunk(ctx, { start, end }, at.path), { ffmpeg: tools.ffmpeg })
      await owner.segmentStored({ ...h, sha256: 'a'.repeat(64) }, at.path)
      // The same piece again: already here.
      if (start === 25) expect(owner.acceptSegment(h)).toMatchObject({ refuse: 'duplicate' })
    }
    await waitFor(() => log.some((l) => l.includes('job job-pieces written to')) ? true : undefined, 60_000, 'the join', 50)
    // Frame-identical to the whole range rendered at once.
    const whole = path.join(stateDir, 'whole.mkv')
    await runInvocation(compileChunk(ctx, { start: 0, end: FRAMES }, whole), { ffmpeg: tools.ffmpeg })
    expect(await frameHashes(tools.ffmpeg, output)).toEqual(await frameHashes(tools.ffmpeg, whole))
  }, 60_000)
})
