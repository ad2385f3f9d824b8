/**
 * Assets and segments between farm nodes in one process, real libp2p on loopback TCP and real
 * files: fetched by hash from whoever holds them, verified on arrival, never sent twice; segments
 * stored once at their owner; garbage, corruption and strangers refused and counted.
 */
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readdir, readFile, utimes, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { AssetCache, sha256File } from '../../agent/assets.ts'
import { FarmNode } from '../../agent/node.ts'
import { AssetService, FrameReader, SegmentService, type AcceptResult, type SegmentHeader } from '../../agent/transfer.ts'
import { WireError } from '../../protocol/errors.ts'
import { generateFarmKey, issueCertificate, type FarmSecrets } from '../../protocol/farm-key.ts'
import { decodeJson, encodeFrame, encodeJson } from '../../protocol/framing.ts'
import { MAX_FRAME_BYTES, MAX_RAW_FRAME_BYTES, PROTOCOLS } from '../../protocol/ids.ts'
import { AssetReplySchema, SegmentReplySchema, type SegmentReply } from '../../protocol/messages/transfer.ts'
import { cleanupTmp, tmpDir } from '../helpers/media.ts'
import { waitFor } from '../helpers/wait.ts'

const nodes: FarmNode[] = []
afterEach(async () => { await Promise.all(nodes.splice(0).map((n) => n.stop().catch(() => {}))) })
afterAll(cleanupTmp)

interface Member { node: FarmNode; id: string; cache: AssetCache; assets: AssetService; dir: string }

/** `certified: false`: holds the PSK but no certificate (a machine that has not joined). */
async function makeNode (farm: FarmSecrets, name: string, certified = true): Promise<FarmNode> {
  const privateKey = await generateKeyPair('Ed25519')
  const peerId = peerIdFromPrivateKey(privateKey).toString()
  const node = new FarmNode({
    privateKey, name, listen: ['/ip4/127.0.0.1/tcp/0'], heartbeatMs: 250, helloTimeoutMs: 1500,
    farm: { publicKey: farm.publicKey, psk: farm.psk },
    certificate: certified ? issueCertificate(farm, { peerId, name, issuedAtMs: Date.now() }) : undefined
  })
  await node.start()
  nodes.push(node)
  return node
}

async function member (farm: FarmSecrets, name: string): Promise<Member> {
  const node = await makeNode(farm, name)
  const dir = await tmpDir(`transfer-${name}`)
  const cache = new AssetCache(path.join(dir, 'cache'))
  const assets = new AssetService(node, cache)
  await assets.start()
  return { node, id: node.peerId.toString(), cache, assets, dir }
}

/** Every pair dialled; waits until each sees all the others as members. */
async function mesh (...ms: Member[]): Promise<void> {
  for (let i = 0; i < ms.length; i++) for (let j = i + 1; j < ms.length; j++) await ms[i]!.node.dial(ms[j]!.node.addrs()[0]!)
  await waitFor(() => ms.every((m) => ms.every((o) => o === m || m.node.isMember(o.id))), 5000, 'full membership')
}

async function randomFile (dir: string, name: string, bytes: number): Promise<{ file: string; sha: string }> {
  const file = path.join(dir, name)
  await writeFile(file, randomBytes(bytes))
  return { file, sha: await sha256File(file) }
}

const refused = (m: Member, code: string): number => m.node.stats().refused[code] ?? 0
const leftovers = async (dir: string): Promise<string[]> => (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.part'))

/** A member's own stream on `protocol`, for sending what a well-behaved peer never would. */
async function raw (from: Member, to: Member, protocol: string): Promise<{ stream: Stream; reader: FrameReader; send: (b: Uint8Array) => void }> {
  const stream = await from.node.openStream(to.id, protocol)
  return { stream, reader: new FrameReader(stream, MAX_FRAME_BYTES.segment, MAX_FRAME_BYTES.segment), send: (b) => { stream.send(b) } }
}

describe('assets between members', () => {
  it('arrive verified in the cache; a cached hash never travels again; concurrent fetches share one transfer', async () => {
    const farm = generateFarmKey()
    const [holder, a, b] = [await member(farm, 'holder'), await member(farm, 'a'), await member(farm, 'b')]
    await mesh(holder, a, b)
    const { file, sha } = await randomFile(holder.dir, 'clip.mov', 3 * 1024 * 1024 + 17)
    await holder.cache.put(file)

    const got = await a.assets.fetch(sha, [holder.id])
    expect(got).toBe(a.cache.pathOf(sha))
    expect(await sha256File(got)).toBe(sha)
    expect(await a.cache.verified(sha)).toBe(got)
    expect(holder.assets.stats().served).toEqual({ [a.id]: 1 })
    expect(a.assets.stats()).toMatchObject({ fetched: 1, fetchedBytes: 3 * 1024 * 1024 + 17, hashMismatches: 0 })

    // Cached: no network at all.
    expect(await a.assets.fetch(sha, [holder.id])).toBe(got)
    expect(holder.assets.stats().served).toEqual({ [a.id]: 1 })
    expect(a.assets.stats().fetched).toBe(1)

    // One of three waiters gives up: the shared transfer goes on for the others.
    const quitter = new AbortController()
    const gaveUp = b.assets.fetch(sha, [holder.id], { signal: quitter.signal }).catch((e: unknown) => e)
    const [p1, p2] = await Promise.all([b.assets.fetch(sha, [holder.id]), b.assets.fetch(sha, [holder.id]), quitter.abort()])
    expect(await gaveUp).toMatchObject({ name: 'AbortError' })
    expect(p1).toBe(p2)
    expect(holder.assets.stats().served[b.id]).toBe(1)
    expect(b.assets.stats().fetched).toBe(1)
    expect(holder.assets.stats().servedBytes).toBe(2 * (3 * 1024 * 1024 + 17))
    expect(await leftovers(b.cache.dir)).toEqual([])
  })

  it('falls back to the next member when one lacks it or oversends; none has it → not-found naming the hash', async () => {
    const farm = generateFarmKey()
    const [empty, holder, liar, a] = [await member(farm, 'empty'), await member(farm, 'holder'), await makeLiar(farm), await member(farm, 'a')]
    await mesh(empty, holder, liar, a)
    const { file, sha } = await randomFile(holder.dir, 'font.ttf', 200_000)
    await holder.cache.put(file)

    // The liar declares the right size, then sends one byte more: refused before it is kept.
    expect(await a.assets.fetch(sha, [empty.id, liar.id, holder.id])).toBe(a.cache.pathOf(sha))
    expect(empty.assets.stats().served).toEqual({})
    expect(holder.assets.stats().served).toEqual({ [a.id]: 1 })
    expect(await leftovers(a.cache.dir)).toEqual([])
    // Refused for the extra byte itself, before any hash was taken.
    expect(a.assets.stats().hashMismatches).toBe(0)

    const missing = 'ab'.repeat(32)
    const err = await a.assets.fetch(missing, [empty.id, holder.id]).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(WireError)
    expect(err).toMatchObject({ code: 'not-found', message: 'asset abababababab… is not held by any of 2 members' })
    expect(existsSync(a.cache.pathOf(missing))).toBe(false)
  })

  it('a holder whose cached file rotted on disk is caught by the hash; nothing is kept; the next member serves', async () => {
    const farm = generateFarmKey()
    const [rotten, good, a] = [await member(farm, 'rotten'), await member(farm, 'good'), await member(farm, 'a')]
    await mesh(rotten, good, a)
    const { file, sha } = await randomFile(rotten.dir, 'plate.exr', 1_500_000)
    await rotten.cache.put(file)
    await good.cache.put(file)
    // Bit rot behind the cache's back: same size, same mtime, so the cache still trusts its check.
    const cached = rotten.cache.pathOf(sha)
    await utimes(cached, 1_700_000_000, 1_700_000_000)
    await rotten.cache.verified(sha) // re-hashes once (mtime changed) and records the new mtime
    const bytes = await readFile(cached)
    bytes[700_000] = bytes[700_000]! ^ 0xff
    await writeFile(cached, bytes)
    await utimes(cached, 1_700_000_000, 1_700_000_000)

    const err = await a.assets.fetch(sha, [rotten.id]).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'hash-mismatch' })
    expect(a.assets.stats().hashMismatches).toBe(1)
    expect(existsSync(a.cache.pathOf(sha))).toBe(false)
    expect(await leftovers(a.cache.dir)).toEqual([])

    expect(await sha256File(await a.assets.fetch(sha, [rotten.id, good.id]))).toBe(sha)
    expect(a.assets.stats()).toMatchObject({ fetched: 1, hashMismatches: 2 })
    expect(good.assets.stats().served).toEqual({ [a.id]: 1 })
  })

  it('a non-member gets no asset stream', async () => {
    const farm = generateFarmKey()
    const holder = await member(farm, 'holder')
    const { file, sha } = await randomFile(holder.dir, 'a.wav', 1000)
    await holder.cache.put(file)
    // Holds the PSK but no certificate: never admitted, and until it is cut off its streams are refused.
    const stranger = await makeNode(farm, 'stranger', false)
    const strangerAssets = new AssetService(stranger, new AssetCache(path.join(holder.dir, 'stranger-cache')))
    await strangerAssets.start()
    await expect(strangerAssets.fetch(sha, [holder.id])).rejects.toMatchObject({ code: 'not-member' })
    const libp2p = (stranger as unknown as { libp2p: { dial: (a: unknown) => Promise<{ newStream: (p: string) => Promise<Stream> }> } }).libp2p
    const before = refused(holder, 'not-member')
    const conn = await libp2p.dial(multiaddr(holder.node.addrs()[0]!))
    const s = await conn.newStream(PROTOCOLS.asset).catch(() => undefined)
    try { s?.send(encodeJson({ type: 'get', sha256: sha }, MAX_FRAME_BYTES.asset)) } catch { /* already refused */ }
    await waitFor(() => refused(holder, 'not-member') > before, 3000, 'the stranger to be refused')
    expect(holder.assets.stats().served).toEqual({})
  })
})

/** A member whose asset handler declares `size` and then sends one byte more. */
async function makeLiar (farm: FarmSecrets): Promise<Member> {
  const node = await makeNode(farm, 'liar')
  const dir = await tmpDir('transfer-liar')
  await node.handleMember(PROTOCOLS.asset, async (stream) => {
    const reader = new FrameReader(stream, MAX_FRAME_BYTES.asset, MAX_FRAME_BYTES.asset)
    const req = JSON.parse(new TextDecoder().decode(await reader.expect('request', 5000))) as { sha256: string }
    stream.send(encodeJson({ type: 'asset', sha256: req.sha256, size: 200_000 }, MAX_FRAME_BYTES.asset))
    stream.send(encodeFrame(randomBytes(200_001), MAX_RAW_FRAME_BYTES))
    await stream.close()
  })
  return { node, id: node.peerId.toString(), cache: new AssetCache(path.join(dir, 'cache')), assets: undefined as unknown as AssetService, dir }
}

describe('segments to the owner', () => {
  async function owner (farm: FarmSecrets): Promise<{ m: Member; seg: SegmentService; stored: Array<{ h: SegmentHeader; file: string; peer: string }>; out: string }> {
    const m = await member(farm, 'owner')
    const out = path.join(m.dir, 'segments')
    const stored: Array<{ h: SegmentHeader; file: string; peer: string }> = []
    const seg = new SegmentService(m.node, {
      accept: (h): AcceptResult => {
        if (h.jobId !== 'job-1') return { refuse: 'not-found', message: `no job "${h.jobId}" here` }
        if (stored.some((s) => s.h.chunkId === h.chunkId)) return { refuse: 'duplicate', message: 'already have it' }
        return { path: path.join(out, `${h.jobId}-${h.chunkId}.mkv`) }
      },
      onSegment: async (h, file, peer) => { stored.push({ h, file, peer }) }
    })
    await seg.start()
    return { m, seg, stored, out }
  }
  const noop = { accept: (): AcceptResult => ({ refuse: 'not-found', message: 'worker' }), onSegment: async () => {} }

  it('is stored and hash-checked once; a resend is a duplicate; an unknown job is refused with its reason', async () => {
    const farm = generateFarmKey()
    const { m: o, stored, out } = await owner(farm)
    const w = await member(farm, 'worker')
    await mesh(o, w)
    const worker = new SegmentService(w.node, noop)
    const { file, sha } = await randomFile(w.dir, 'chunk-3.mkv', 5 * 1024 * 1024 + 3)

    const sent = await worker.send(o.id, { jobId: 'job-1', chunkId: 'c3', index: 3, frames: 250 }, file)
    expect(sent).toEqual({ result: 'stored', sha256: sha, bytes: 5 * 1024 * 1024 + 3 })
    expect(stored).toHaveLength(1)
    expect(stored[0]).toMatchObject({ peer: w.id, file: path.join(out, 'job-1-c3.mkv'), h: { type: 'segment', index: 3, frames: 250, sha256: sha, size: 5 * 1024 * 1024 + 3 } })
    expect(await sha256File(stored[0]!.file)).toBe(sha)
    expect(await leftovers(out)).toEqual([])

    expect(await worker.send(o.id, { jobId: 'job-1', chunkId: 'c3', index: 3, frames: 250 }, file)).toEqual({ result: 'duplicate', sha256: sha, bytes: 0 })
    expect(stored).toHaveLength(1)

    await expect(worker.send(o.id, { jobId: 'nope', chunkId: 'c1', index: 0, frames: 1 }, file)).rejects.toMatchObject({ code: 'not-found', message: 'no job "nope" here' })
    // A header this side would never send is caught before the network.
    await expect(worker.send(o.id, { jobId: '../etc', chunkId: 'c1', index: 0, frames: 1 }, file)).rejects.toMatchObject({ code: 'schema' })
    // Ordinary answers, not refusals.
    expect(refused(o, 'not-found') + refused(o, 'duplicate') + refused(o, 'schema')).toBe(0)
  })

  it('bytes that do not match the header hash, or stop early, leave nothing behind', async () => {
    const farm = generateFarmKey()
    const { m: o, stored, out } = await owner(farm)
    const w = await member(farm, 'worker')
    await mesh(o, w)
    const body = randomBytes(2 * MAX_RAW_FRAME_BYTES + 5)
    const header = { type: 'segment', jobId: 'job-1', chunkId: 'c7', index: 7, sha256: 'cd'.repeat(32), size: body.length, frames: 10 }
    const sendBody = (send: (b: Uint8Array) => void, bytes: Uint8Array): void => {
      for (let i = 0; i < bytes.length; i += MAX_RAW_FRAME_BYTES) send(encodeFrame(bytes.subarray(i, i + MAX_RAW_FRAME_BYTES), MAX_RAW_FRAME_BYTES))
    }
    const reply = async (r: FrameReader): Promise<SegmentReply> => decodeJson(await r.expect('reply', 5000), SegmentReplySchema)

    const bad = await raw(w, o, PROTOCOLS.segment)
    bad.send(encodeJson(header, MAX_FRAME_BYTES.segment))
    expect(await reply(bad.reader)).toEqual({ type: 'ready' })
    sendBody(bad.send, body)
    expect(await reply(bad.reader)).toMatchObject({ type: 'error', code: 'hash-mismatch' })
    await waitFor(() => refused(o, 'hash-mismatch') === 1, 2000, 'the mismatch to be counted')
    expect(existsSync(path.join(out, 'job-1-c7.mkv'))).toBe(false)
    expect(await leftovers(out)).toEqual([])

    const badFramesBefore = refused(o, 'bad-frame')
    const short = await raw(w, o, PROTOCOLS.segment)
    short.send(encodeJson({ ...header, chunkId: 'c8' }, MAX_FRAME_BYTES.segment))
    expect(await reply(short.reader)).toEqual({ type: 'ready' })
    sendBody(short.send, body.subarray(0, MAX_RAW_FRAME_BYTES + 10))
    await short.stream.close()
    await waitFor(() => refused(o, 'bad-frame') > badFramesBefore, 3000, 'the short segment to be refused')
    expect(await readdir(out)).toEqual([])
    expect(stored).toEqual([])

    // The owner keeps serving: the real thing goes through.
    const { file, sha } = await randomFile(w.dir, 'c7.mkv', 100_000)
    const worker = new SegmentService(w.node, noop)
    expect(await worker.send(o.id, { jobId: 'job-1', chunkId: 'c7', index: 7, frames: 10 }, file)).toMatchObject({ result: 'stored', sha256: sha })
    expect(stored.map((s) => s.h.chunkId)).toEqual(['c7'])
  })
})

describe('garbage headers', () => {
  it('on either protocol are answered with an error, counted, and the node keeps serving', async () => {
    const farm = generateFarmKey()
    const o = await member(farm, 'owner')
    const stored: string[] = []
    const seg = new SegmentService(o.node, { accept: (h) => ({ path: path.join(o.dir, 'seg', h.chunkId) }), onSegment: async (h) => { stored.push(h.chunkId) } })
    await seg.start()
    const w = await member(farm, 'worker')
    await mesh(o, w)

    // Asset: a frame that is not UTF-8.
    const a1 = await raw(w, o, PROTOCOLS.asset)
    a1.send(new Uint8Array([5, 0xff, 0xfe, 0x00, 0x01, 0x02]))
    expect(decodeJson(await a1.reader.expect('reply', 5000), AssetReplySchema)).toMatchObject({ type: 'error', code: 'bad-frame' })
    // Asset: a request for something that is not a hash.
    const a2 = await raw(w, o, PROTOCOLS.asset)
    a2.send(encodeJson({ type: 'get', sha256: '../../etc/passwd' }, MAX_FRAME_BYTES.asset))
    expect(decodeJson(await a2.reader.expect('reply', 5000), AssetReplySchema)).toMatchObject({ type: 'error', code: 'schema', message: expect.stringContaining('sha256') })
    // Segment: a bad sha, then a length prefix declaring a header far over the cap.
    const s1 = await raw(w, o, PROTOCOLS.segment)
    s1.send(encodeJson({ type: 'segment', jobId: 'j', chunkId: 'c', index: 0, sha256: 'xyz', size: 10, frames: 1 }, MAX_FRAME_BYTES.segment))
    expect(decodeJson(await s1.reader.expect('reply', 5000), SegmentReplySchema)).toMatchObject({ type: 'error', code: 'schema', message: expect.stringContaining('sha256') })
    const s2 = await raw(w, o, PROTOCOLS.segment)
    s2.send(new Uint8Array([0x80, 0xc2, 0xd7, 0x2f]))
    expect(decodeJson(await s2.reader.expect('reply', 5000), SegmentReplySchema)).toMatchObject({ type: 'error', code: 'frame-too-large' })

    await waitFor(() => refused(o, 'bad-frame') >= 1 && refused(o, 'schema') === 2 && refused(o, 'frame-too-large') === 1, 3000, 'all four to be counted')
    expect(o.node.isMember(w.id)).toBe(true)

    const { file, sha } = await randomFile(o.dir, 'lut.cube', 5000)
    await o.cache.put(file)
    expect(await w.assets.fetch(sha, [o.id])).toBe(w.cache.pathOf(sha))
    const { file: chunk } = await randomFile(w.dir, 'c.mkv', 5000)
    expect(await new SegmentService(w.node, { accept: () => ({ refuse: 'not-found', message: '' }), onSegment: async () => {} })
      .send(o.id, { jobId: 'j', chunkId: 'c', index: 0, frames: 1 }, chunk)).toMatchObject({ result: 'stored' })
    expect(stored).toEqual(['c'])
  })
})
