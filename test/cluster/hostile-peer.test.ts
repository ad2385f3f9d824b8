/**
 * A member or stranger sending garbage: malformed, oversized and wrongly typed frames on each
 * protocol, a forged join, a reused invite. Each is refused and counted; the node keeps
 * serving its members. Real libp2p on loopback.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { FarmNode } from '../../agent/node.ts'
import { createInvite, generateFarmKey, InviteLedger, issueCertificate, parseInvite, type FarmSecrets } from '../../protocol/farm-key.ts'
import { MAX_FRAME_BYTES, PROTOCOLS } from '../../protocol/ids.ts'
import { CoordinatorRequestSchema, ElectionMessageSchema, StatusPushSchema, WorkerRequestSchema } from '../../protocol/messages/jobs.ts'
import { waitFor } from '../helpers/wait.ts'

const nodes: FarmNode[] = []
afterEach(async () => { await Promise.all(nodes.splice(0).map((n) => n.stop().catch(() => {}))) })

async function makeNode (farm: FarmSecrets, name: string, opts: { certified?: boolean; admit?: boolean; ledger?: InviteLedger } = {}): Promise<FarmNode> {
  const privateKey = await generateKeyPair('Ed25519')
  const peerId = peerIdFromPrivateKey(privateKey).toString()
  const node = new FarmNode({
    privateKey, name, listen: ['/ip4/127.0.0.1/tcp/0'], farm: { publicKey: farm.publicKey, psk: farm.psk }, heartbeatMs: 250, helloTimeoutMs: 3000,
    certificate: opts.certified === false ? undefined : issueCertificate(farm, { peerId, name, issuedAtMs: Date.now() }),
    ...(opts.admit === true
      ? { admitJoin: (req) => { const inv = parseInvite(req.token, Date.now()); opts.ledger!.redeem(inv.id, Date.now()); return issueCertificate(farm, { peerId: req.peerId, name: req.name, issuedAtMs: Date.now() }) } }
      : {})
  })
  await node.start()
  nodes.push(node)
  return node
}


type RawNode = { libp2p: { dial: (a: unknown) => Promise<{ newStream: (p: string) => Promise<Parameters<typeof lpStream>[0]> }> } }

describe('hostile input on the wire', () => {
  it('malformed, oversized and wrongly typed frames from a member are refused and counted; membership goes on', async () => {
    const farm = generateFarmKey()
    const a = await makeNode(farm, 'a')
    const b = await makeNode(farm, 'b')
    const c = await makeNode(farm, 'c')
    await b.dial(a.addrs()[0]!)
    await c.dial(a.addrs()[0]!)
    await waitFor(() => a.list().filter((m) => m.state === 'alive').length === 2, 5000, 'membership')
    const conn = await (b as unknown as RawNode).libp2p.dial(multiaddr(a.addrs()[0]!))
    const sendRaw = async (protocol: string, bytes: Uint8Array, raw = false): Promise<void> => {
      const s = await conn.newStream(protocol)
      if (raw) (s as unknown as { send: (b: Uint8Array) => boolean }).send(bytes)
      else await lpStream(s).write(bytes).catch(() => {})
      await new Promise((r) => setTimeout(r, 50))
    }
    const enc = new TextEncoder()
    await sendRaw(PROTOCOLS.heartbeat, enc.encode('{not json'))
    await sendRaw(PROTOCOLS.heartbeat, enc.encode(JSON.stringify({ type: 'heartbeat', peerId: b.peerId.toString(), seq: -1 })))
    await sendRaw(PROTOCOLS.heartbeat, new Uint8Array([0xff, 0xfe, 0xfd]))
    await sendRaw(PROTOCOLS.heartbeat, enc.encode('['.repeat(100_000)))
    // Declares a 100 MB frame: refused at the length prefix, before the body.
    await sendRaw(PROTOCOLS.membership, new Uint8Array([0x80, 0xc2, 0xd7, 0x2f]), true)
    await sendRaw(PROTOCOLS.membership, enc.encode(JSON.stringify({ type: 'hello', v: 1 })))
    await waitFor(() => Object.values(a.stats().refused).reduce((x, y) => x + y, 0) >= 6, 5000, 'six refusals')
    const refused = a.stats().refused
    expect(refused['bad-frame'] ?? 0).toBeGreaterThanOrEqual(2)
    expect(refused.schema ?? 0).toBeGreaterThanOrEqual(2)
    // a still serves its members.
    const heard = a.list().find((m) => m.name === 'c')!.lastHeardMs
    await waitFor(() => a.list().find((m) => m.name === 'c')!.lastHeardMs > heard, 3000, 'a heartbeat from c')
    expect(a.list().find((m) => m.name === 'c')!.state).toBe('alive')
  })

  it('joins: a valid invite once; reuse, expiry, forgery and another farm are refused', async () => {
    const farm = generateFarmKey()
    const ledger = new InviteLedger()
    const a = await makeNode(farm, 'a', { admit: true, ledger })
    const inv = createInvite(farm, { ttlMs: 60_000, nowMs: Date.now(), bootstrap: [a.addrs()[0]!] })
    ledger.record(inv.inviteId, inv.exp)
    const j1 = await makeNode(farm, 'j1', { certified: false })
    const cert = await j1.join(inv.token, [a.addrs()[0]!])
    expect(cert.peerId).toBe(j1.peerId.toString())
    await waitFor(() => a.list().some((m) => m.name === 'j1' && m.state === 'alive'), 5000, 'j1 to be a member')
    const j2 = await makeNode(farm, 'j2', { certified: false })
    await expect(j2.join(inv.token, [a.addrs()[0]!])).rejects.toThrow(/refused: invite has already been used/)
    const expired = createInvite(farm, { ttlMs: 1, nowMs: Date.now() - 1000, bootstrap: [] })
    ledger.record(expired.inviteId, expired.exp)
    await expect(j2.join(expired.token, [a.addrs()[0]!])).rejects.toThrow(/refused: invite expired/)
    const forged = inv.token.slice(0, -6) + (inv.token.endsWith('AAAAAA') ? 'BBBBBB' : 'AAAAAA')
    await expect(j2.join(forged, [a.addrs()[0]!])).rejects.toThrow(/refused/)
    const other = generateFarmKey()
    const foreign = createInvite(other, { ttlMs: 60_000, nowMs: Date.now(), bootstrap: [] })
    await expect(j2.join(foreign.token, [a.addrs()[0]!])).rejects.toThrow(/refused/)
    expect(a.stats().refused['invite:reused']).toBe(1)
    expect(a.stats().refused['invite:expired']).toBe(1)
    expect(a.list().map((m) => m.name)).toEqual(['j1'])
  })

  it('job protocols (submit, chunk, status, election) and join: garbage from a member is answered with an error and counted; a non-member gets nothing', async () => {
    const farm = generateFarmKey()
    const ledger = new InviteLedger()
    const a = await makeNode(farm, 'a', { admit: true, ledger })
    const b = await makeNode(farm, 'b')
    const handled: string[] = []
    for (const [protocol, schema] of [[PROTOCOLS.submit, CoordinatorRequestSchema], [PROTOCOLS.chunk, WorkerRequestSchema], [PROTOCOLS.status, StatusPushSchema], [PROTOCOLS.election, ElectionMessageSchema]] as const) {
      await a.serve(protocol, MAX_FRAME_BYTES.status, schema, async (msg) => { handled.push((msg as { type: string }).type); return { ok: true } })
    }
    await b.dial(a.addrs()[0]!)
    await waitFor(() => a.list().filter((m) => m.state === 'alive').length === 1, 5000, 'membership')
    const conn = await (b as unknown as RawNode).libp2p.dial(multiaddr(a.addrs()[0]!))
    const enc = new TextEncoder()
    const ask = async (protocol: string, bytes: Uint8Array, raw = false): Promise<string> => {
      const s = await conn.newStream(protocol)
      const lp = lpStream(s)
      if (raw) (s as unknown as { send: (b: Uint8Array) => boolean }).send(bytes)
      else await lp.write(bytes)
      try { return new TextDecoder().decode((await lp.read({ signal: AbortSignal.timeout(3000) })).subarray()) } catch { return '' }
    }
    const before = Object.values(a.stats().refused).reduce((x, y) => x + y, 0)
    for (const protocol of [PROTOCOLS.submit, PROTOCOLS.chunk, PROTOCOLS.status, PROTOCOLS.election]) {
      expect(await ask(protocol, enc.encode('{not json'))).toMatch(/"ok":false.*"code":"bad-frame"/)
      expect(await ask(protocol, enc.encode(JSON.stringify({ type: 'no-such-message' })))).toMatch(/"ok":false.*"code":"schema"/)
      expect(await ask(protocol, enc.encode(JSON.stringify({ type: 'cancel', jobId: '../../etc', term: 1 })))).toMatch(/"ok":false/)
    }
    // A frame declaring 100 MB is refused at the length prefix.
    await ask(PROTOCOLS.submit, new Uint8Array([0x80, 0xc2, 0xd7, 0x2f]), true)
    // The join protocol: garbage, a wrong type, an oversized frame.
    expect(await ask(PROTOCOLS.join, enc.encode('{"type":"join"'))).toMatch(/"type":"refused"/)
    expect(await ask(PROTOCOLS.join, enc.encode(JSON.stringify({ type: 'join', token: 'x', peerId: 'not a peer id!', name: 'n' })))).toMatch(/"type":"refused"/)
    await ask(PROTOCOLS.join, new Uint8Array([0x80, 0xc2, 0xd7, 0x2f]), true)
    await waitFor(() => Object.values(a.stats().refused).reduce((x, y) => x + y, 0) - before >= 14, 5000, 'fourteen refusals')
    expect(handled).toEqual([])
    // A valid message is still served.
    expect(await ask(PROTOCOLS.submit, enc.encode(JSON.stringify({ type: 'emergency-stop' })))).toBe('{"ok":true,"body":{"ok":true}}')
    // A non-member with the PSK (a certificate from another farm) cannot submit: refused before a byte is read.
    const other = generateFarmKey()
    const privateKey = await generateKeyPair('Ed25519')
    const stranger = new FarmNode({ privateKey, name: 'stranger', listen: ['/ip4/127.0.0.1/tcp/0'], farm: { publicKey: farm.publicKey, psk: farm.psk }, certificate: issueCertificate(other, { peerId: peerIdFromPrivateKey(privateKey).toString(), name: 'stranger', issuedAtMs: Date.now() }) })
    await stranger.start()
    nodes.push(stranger)
    const sconn = await (stranger as unknown as RawNode).libp2p.dial(multiaddr(a.addrs()[0]!))
    const notMember = a.stats().refused['not-member'] ?? 0
    const s = await sconn.newStream(PROTOCOLS.submit).catch(() => undefined)
    if (s !== undefined) await lpStream(s).write(enc.encode(JSON.stringify({ type: 'emergency-stop' }))).catch(() => {})
    await waitFor(() => (a.stats().refused['not-member'] ?? 0) > notMember || (a.stats().refused['certificate:wrong-farm'] ?? 0) > 0 ? true : undefined, 3000, 'the stranger to be refused')
    expect(handled).toEqual(['emergency-stop'])
  })
})
