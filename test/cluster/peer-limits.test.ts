/**
 * A member that floods another with streams or requests is cut off (its connections dropped,
 * refused for a while, reported by a 'misbehaving' event and counted refusals), while a normal
 * member's requests to the same node go on being served. Real libp2p on loopback, default limits.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { FarmNode } from '../../agent/node.ts'
import { DEFAULT_PEER_LIMITS } from '../../agent/peer-limits.ts'
import { generateFarmKey, issueCertificate, type FarmSecrets } from '../../protocol/farm-key.ts'
import { MAX_FRAME_BYTES, PROTOCOLS } from '../../protocol/ids.ts'
import { AckSchema, CoordinatorRequestSchema, WorkerRequestSchema } from '../../protocol/messages/jobs.ts'
import { waitFor } from '../helpers/wait.ts'

const nodes: FarmNode[] = []
afterEach(async () => { await Promise.all(nodes.splice(0).map((n) => n.stop().catch(() => {}))) })

async function makeNode (farm: FarmSecrets, name: string): Promise<FarmNode> {
  const privateKey = await generateKeyPair('Ed25519')
  const peerId = peerIdFromPrivateKey(privateKey).toString()
  const node = new FarmNode({
    privateKey, name, listen: ['/ip4/127.0.0.1/tcp/0'], farm: { publicKey: farm.publicKey, psk: farm.psk }, heartbeatMs: 250, helloTimeoutMs: 3000,
    certificate: issueCertificate(farm, { peerId, name, issuedAtMs: Date.now() })
  })
  await node.start()
  nodes.push(node)
  return node
}

type RawStream = Parameters<typeof lpStream>[0] & { abort: (e: Error) => void }
interface RawConn { newStream: (p: string, o?: Record<string, unknown>) => Promise<RawStream>; status: string }
type RawNode = { libp2p: { dial: (a: unknown, o?: Record<string, unknown>) => Promise<RawConn> } }

/** Three members: a serves submit and chunk requests, b is well behaved, f floods. */
async function trio (): Promise<{ a: FarmNode; b: FarmNode; f: FarmNode; served: string[]; misbehaving: Array<{ peer: string; name?: string; reason: string }> }> {
  const farm = generateFarmKey()
  const a = await makeNode(farm, 'a')
  const b = await makeNode(farm, 'b')
  const f = await makeNode(farm, 'flooder')
  const served: string[] = []
  await a.serve(PROTOCOLS.submit, MAX_FRAME_BYTES.submit, CoordinatorRequestSchema, async (msg, peer) => { served.push(`${peer}:${msg.type}`); return { ok: true } })
  await a.serve(PROTOCOLS.chunk, MAX_FRAME_BYTES.chunk, WorkerRequestSchema, async (msg, peer) => { served.push(`${peer}:${msg.type}`); return { ok: true } })
  const misbehaving: Array<{ peer: string; name?: string; reason: string }> = []
  a.addEventListener('misbehaving', (e) => { misbehaving.push((e as CustomEvent).detail) })
  await b.dial(a.addrs()[0]!)
  await f.dial(a.addrs()[0]!)
  await waitFor(() => a.list().filter((m) => m.state === 'alive').length === 2 ? true : undefined, 5000, 'membership')
  return { a, b, f, served, misbehaving }
}

/** f dials a again: a's gater refuses it for now, so f is no member and gets nothing served. */
async function refusedNow (a: FarmNode, f: FarmNode): Promise<void> {
  await f.dial(a.addrs()[0]!, 3000).catch(() => {})
  await new Promise((r) => setTimeout(r, 500))
  expect(a.openStreamsFrom(f.peerId.toString())).toBe(0)
  await expect(f.request(a.peerId.toString(), PROTOCOLS.submit, { type: 'get-job', jobId: 'again' }, AckSchema, { timeoutMs: 3000 })).rejects.toThrow()
}

/** b asks a something every 50 ms while `during` runs; every answer must come back. */
async function steadyRequests (a: FarmNode, b: FarmNode, during: Promise<unknown>): Promise<number> {
  let done = false
  let ok = 0
  void during.finally(() => { done = true })
  for (let i = 0; i < 400 && (!done || ok < 5); i++) {
    const reply = await b.request(a.peerId.toString(), PROTOCOLS.submit, { type: 'get-job', jobId: `job-${i}` }, AckSchema, { timeoutMs: 5000 })
    expect(reply).toEqual({ ok: true })
    ok++
    await new Promise((r) => setTimeout(r, 50))
  }
  return ok
}

describe('per-peer limits', () => {
  it('a member holding streams open past the limit is cut off; another member is still served', async () => {
    const { a, b, f, misbehaving } = await trio()
    const fid = f.peerId.toString()
    const conn = await (f as unknown as RawNode).libp2p.dial(multiaddr(a.addrs()[0]!))
    // Streams opened and never written: each ties up a handler on a until its read times out.
    const flood = (async () => {
      const held: RawStream[] = []
      for (let i = 0; i < 150 && conn.status === 'open'; i++) {
        const protocol = i % 2 === 0 ? PROTOCOLS.submit : PROTOCOLS.chunk
        try { held.push(await conn.newStream(protocol, { negotiateFully: true, maxOutboundStreams: 1000, signal: AbortSignal.timeout(3000) })) } catch { /* refused or cut off */ }
      }
      return held.length
    })()
    const ok = await steadyRequests(a, b, flood)
    expect(ok).toBeGreaterThanOrEqual(5)
    await flood
    const refused = await waitFor(() => (a.stats().refused['peer-cut-off'] ?? 0) > 0 ? a.stats().refused : undefined, 10_000, 'the flooder to be cut off')
    expect(refused['peer-limit:streams']).toBeGreaterThanOrEqual(DEFAULT_PEER_LIMITS.strikes)
    expect(misbehaving).toEqual([expect.objectContaining({ peer: fid, name: 'flooder', reason: 'streams' })])
    // Its connections are gone and it may not come back for now (the gater refuses it).
    await waitFor(() => conn.status !== 'open' ? true : undefined, 5000, 'the flooder\'s connection to close')
    await refusedNow(a, f)
    // a's member list drops it (heartbeats stop), and keeps b.
    await waitFor(() => a.list().find((m) => m.peerId === fid)?.state === 'dead' ? true : undefined, 15_000, 'the flooder to be dead to a')
    expect(a.list().find((m) => m.name === 'b')!.state).toBe('alive')
    expect(await b.request(a.peerId.toString(), PROTOCOLS.chunk, { type: 'stop-all', term: 1 }, AckSchema)).toEqual({ ok: true })
  })

  it('a member sending requests far above the rate is cut off; another member is still served', async () => {
    const { a, b, f, served, misbehaving } = await trio()
    const fid = f.peerId.toString()
    const conn = await (f as unknown as RawNode).libp2p.dial(multiaddr(a.addrs()[0]!))
    const enc = new TextEncoder()
    const flood = (async () => {
      let sent = 0
      // 2000 requests, 40 at a time: far over 100/s once the burst of 300 is spent.
      for (let round = 0; round < 50 && conn.status === 'open'; round++) {
        await Promise.all(Array.from({ length: 40 }, async () => {
          try {
            const s = await conn.newStream(PROTOCOLS.submit, { maxOutboundStreams: 1000, signal: AbortSignal.timeout(3000) })
            const lp = lpStream(s)
            await lp.write(enc.encode(JSON.stringify({ type: 'get-job', jobId: 'flood' })), { signal: AbortSignal.timeout(3000) })
            await lp.read({ signal: AbortSignal.timeout(3000) })
            await s.close()
            sent++
          } catch { /* refused or cut off */ }
        }))
      }
      return sent
    })()
    const ok = await steadyRequests(a, b, flood)
    expect(ok).toBeGreaterThanOrEqual(5)
    const answered = await flood
    const refused = await waitFor(() => (a.stats().refused['peer-cut-off'] ?? 0) > 0 ? a.stats().refused : undefined, 10_000, 'the flooder to be cut off')
    expect(refused['peer-limit:rate']).toBeGreaterThanOrEqual(DEFAULT_PEER_LIMITS.strikes)
    expect(misbehaving).toEqual([expect.objectContaining({ peer: fid, name: 'flooder', reason: 'rate' })])
    // The flooder got at most its burst and what the rate refilled, far from the 2000 it tried.
    expect(answered).toBeLessThan(1000)
    expect(served.filter((s) => s.startsWith(fid)).length).toBe(answered)
    expect(served.filter((s) => s.startsWith(b.peerId.toString())).length).toBeGreaterThanOrEqual(ok)
    await waitFor(() => conn.status !== 'open' ? true : undefined, 5000, 'the flooder\'s connection to close')
    await refusedNow(a, f)
    expect(a.list().find((m) => m.name === 'b')!.state).toBe('alive')
  })
})
