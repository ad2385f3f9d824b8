/**
 * The agent's libp2p node: TCP + Noise + yamux behind the farm's pre-shared key, membership
 * by farm-signed certificate, heartbeats and a failure detector.
 *
 *   const node = new FarmNode({ privateKey, farm: { publicKey, psk }, certificate, name, listen: ['/ip4/127.0.0.1/tcp/0'] })
 *   await node.start()
 *   node.addEventListener('member', (e) => console.log(e.detail))   // { peerId, from, to }
 *   await node.dial('/ip4/127.0.0.1/tcp/4001/p2p/12D3Koo…')
 *
 * Layers of refusal: a peer without the PSK fails at the transport (pnet); a PSK holder must
 * send a Hello with a valid certificate for its own peer id within `helloTimeoutMs`, or it is
 * disconnected; until then every protocol refuses it; a revoked peer is denied by the
 * connection gater. Every refusal is counted in `stats().refused[reason]`.
 *
 * Per-peer limits (peer-limits.ts): inbound streams open at once and opened per second, on every
 * protocol. A stream over a limit is refused ('peer-limit:streams' / 'peer-limit:rate'); a peer
 * that keeps at it is cut off: its connections are dropped, it is refused for a while (the gater
 * denies it), and a 'misbehaving' event and a 'peer-cut-off' refusal report it.
 */
import './polyfill.ts'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { lpStream } from '@libp2p/utils'
import type { Connection, PeerId, PrivateKey, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'
import { MembershipTable, type Transition } from '../coordinator/membership.ts'
import { nativeNoiseCrypto } from './noise-crypto.ts'
import { PeerLimiter, type PeerLimitOptions } from './peer-limits.ts'
import { farmPsk } from './pnet.ts'
import { fromWire, toWire, WireError } from '../protocol/errors.ts'
import { farmId, verifyCertificate, verifyRevocation, type MembershipCertificate, type Revocation } from '../protocol/farm-key.ts'
import { decodeJson } from '../protocol/framing.ts'
import { MAX_FRAME_BYTES, PROTOCOL_MAJOR, PROTOCOLS } from '../protocol/ids.ts'
import { HeartbeatSchema, HelloWithInfoSchema, JoinReplySchema, JoinRequestSchema, RevokeSchema, type Heartbeat, type Hello, type JoinRequest, type NodeInfo } from '../protocol/messages/membership.ts'

export interface FarmNodeOptions {
  privateKey: PrivateKey
  farm: { publicKey: Uint8Array; psk: Uint8Array }
  /** Undefined while this machine is still joining (see join()). */
  certificate: MembershipCertificate | undefined
  name: string
  /** Revocations already known (from the store): enforced from the first connection. */
  revocations?: Revocation[]
  /** On a machine holding the farm key: redeem an invite and issue a certificate, or throw. */
  admitJoin?: (req: JoinRequest) => MembershipCertificate
  listen: string[]
  heartbeatMs?: number
  helloTimeoutMs?: number
  /** Current load for heartbeats. */
  load?: () => Heartbeat['load']
  state?: () => Heartbeat['state']
  /** Whether this node takes work now (workstation etiquette). */
  accepting?: () => boolean
  /** This node's hardware, capabilities and benchmark, sent in Hello. */
  info?: () => NodeInfo | undefined
  now?: () => number
  /** Per-peer stream limits (defaults in peer-limits.ts). */
  peerLimits?: Partial<PeerLimitOptions>
}

export interface MemberView { peerId: string; name: string; state: string; addrs: string[]; lastHeardMs: number; load?: Heartbeat['load'] | undefined; info?: NodeInfo | undefined; accepting?: boolean | undefined; nodeState?: Heartbeat['state'] | undefined }

const HelloOrRevoke = z.discriminatedUnion('type', [HelloWithInfoSchema, RevokeSchema])
const enc = new TextEncoder()
const json = (o: unknown): Uint8Array => enc.encode(JSON.stringify(o))

export class FarmNode extends EventTarget {
  private libp2p: Libp2p | undefined
  private readonly members: MembershipTable<Heartbeat['load']>
  private readonly hellos = new Map<string, Hello>()
  private readonly lastBeat = new Map<string, { accepting: boolean; state: Heartbeat['state'] }>()
  private readonly revoked = new Set<string>()
  private readonly revocations = new Map<string, Revocation>()
  private readonly refused: Record<string, number> = {}
  private readonly timers: NodeJS.Timeout[] = []
  private seq = 0
  /** One long-lived heartbeat stream per member, opened on first use and again after it fails. */
  private readonly beatStreams = new Map<string, Promise<{ stream: Stream; lp: ReturnType<typeof lpStream> }>>()
  readonly farmId: string
  private readonly now: () => number
  private readonly limiter: PeerLimiter

  constructor (private readonly opts: FarmNodeOptions) {
    super()
    this.now = opts.now ?? Date.now
    this.members = new MembershipTable({ heartbeatMs: opts.heartbeatMs ?? 1000 })
    this.farmId = farmId(opts.farm.publicKey)
    this.limiter = new PeerLimiter(opts.peerLimits, this.now)
    for (const r of opts.revocations ?? []) {
      try {
        const v = verifyRevocation(opts.farm.publicKey, r)
        this.revocations.set(v.peerId, v)
        this.revoked.add(v.peerId)
      } catch { /* a stored revocation that no longer verifies (other farm) is ignored */ }
    }
  }

  /** Revocations this node enforces (to persist). */
  knownRevocations (): Revocation[] {
    return [...this.revocations.values()]
  }

  get peerId (): PeerId {
    if (this.libp2p === undefined) throw new Error('node not started')
    return this.libp2p.peerId
  }

  addrs (): string[] {
    return this.libp2p?.getMultiaddrs().map((a) => a.toString()) ?? []
  }

  async start (): Promise<void> {
    const revoked = this.revoked
    const limiter = this.limiter
    const denied = (p: { toString: () => string }): boolean => revoked.has(p.toString()) || limiter.banned(p.toString())
    this.libp2p = await createLibp2p({
      privateKey: this.opts.privateKey,
      addresses: { listen: this.opts.listen },
      transports: [tcp()],
      // Same wire as noise() and @libp2p/pnet's preSharedKey(), faster (bench/transfer.ts).
      connectionEncrypters: [noise({ crypto: nativeNoiseCrypto })],
      streamMuxers: [yamux()],
      connectionProtector: farmPsk({ psk: this.opts.farm.psk }),
      connectionGater: {
        denyDialPeer: denied,
        denyInboundEncryptedConnection: denied,
        denyOutboundEncryptedConnection: denied
      },
      connectionManager: { inboundConnectionThreshold: 100 },
      services: { identify: identify(), ping: ping() }
    })
    await this.libp2p.handle(PROTOCOLS.membership, (stream, conn) => { this.limited(stream, conn, () => this.onMembership(stream, conn)) })
    await this.libp2p.handle(PROTOCOLS.heartbeat, (stream, conn) => { this.limited(stream, conn, () => this.onHeartbeat(stream, conn)) })
    await this.libp2p.handle(PROTOCOLS.join, (stream, conn) => { this.limited(stream, conn, () => this.onJoin(stream, conn)) })
    this.libp2p.addEventListener('connection:open', (e) => { void this.onConnection(e.detail) })
    const hb = this.opts.heartbeatMs ?? 1000
    this.timers.push(setInterval(() => { void this.sendHeartbeats() }, hb))
    this.timers.push(setInterval(() => { this.tick() }, Math.max(50, hb / 10)))
  }

  async stop (): Promise<void> {
    for (const t of this.timers.splice(0)) clearInterval(t)
    this.beatStreams.clear()
    await this.libp2p?.stop()
  }

  async dial (addr: string, timeoutMs = 5000): Promise<void> {
    if (this.libp2p === undefined) throw new Error('node not started')
    const conn = await this.libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(timeoutMs) })
    // An existing connection is reused without a new 'connection:open': greet on it here.
    if (!this.isMember(conn.remotePeer.toString())) await this.greet(conn)
  }

  /** Says Hello again to every member, so they learn changed node info (e.g. a new benchmark). */
  async announce (): Promise<void> {
    const live = new Set(this.list().filter((m) => m.state !== 'dead').map((m) => m.peerId))
    const conns = (this.libp2p?.getConnections() ?? []).filter((c) => c.status === 'open' && live.has(c.remotePeer.toString()))
    await Promise.all(conns.map((c) => this.greet(c, true)))
  }

  /** Whether this node has its membership certificate (false while joining). */
  get certified (): boolean {
    return this.opts.certificate !== undefined
  }

  /** Dials a discovered member unless already connected to it. */
  async connect (peerId: string, addrs: string[]): Promise<void> {
    if (this.isMember(peerId) || this.revoked.has(peerId)) return
    for (const a of addrs) {
      try {
        await this.dial(a.includes('/p2p/') ? a : `${a}/p2p/${peerId}`)
        return
      } catch { /* try the next address */ }
    }
  }

  isMember (peerId: string): boolean {
    return this.members.isAlive(peerId) && this.hellos.has(peerId)
  }

  list (): MemberView[] {
    return this.members.list().filter((m) => this.hellos.has(m.peerId)).map((m) => ({
      peerId: m.peerId, name: this.hellos.get(m.peerId)!.name, state: m.state, addrs: this.hellos.get(m.peerId)!.addrs, lastHeardMs: m.lastHeardMs, load: m.load, info: this.hellos.get(m.peerId)!.info,
      accepting: this.lastBeat.get(m.peerId)?.accepting, nodeState: this.lastBeat.get(m.peerId)?.state
    }))
  }

  stats (): { refused: Record<string, number>; members: number } {
    return { refused: { ...this.refused }, members: this.list().filter((m) => m.state !== 'dead').length }
  }

  /** Inbound streams `peer` holds open here now. */
  openStreamsFrom (peer: string): number {
    return this.limiter.openStreams(peer)
  }

  /**
   * Runs an inbound stream's handler under the peer's limits: over a limit the stream is aborted
   * unread and counted; a peer that keeps at it is cut off (see the module comment).
   */
  private limited (stream: Stream, conn: Connection, handler: () => Promise<void>): void {
    const peer = conn.remotePeer.toString()
    const v = this.limiter.open(peer)
    if (!v.ok) {
      stream.abort(new Error(`refused: too many streams (${v.reason})`))
      if (v.reason === 'banned') { this.refuse('peer-cut-off', peer, conn); return }
      this.refuse(`peer-limit:${v.reason}`, peer)
      if (v.cutOff) this.cutOff(peer, v.reason)
      return
    }
    // Counted until the stream is closed both ways: a handler that has answered still holds the
    // stream (and libp2p's per-protocol slot) while the peer leaves its side open.
    let released = false
    const release = (): void => { if (!released) { released = true; this.limiter.close(peer) } }
    if (stream.status === 'closed' || stream.status === 'aborted' || stream.status === 'reset') release()
    else stream.addEventListener('close', release, { once: true })
    void handler().catch(() => {})
  }

  /** Drops every connection of a peer that kept breaking its limits, and reports it. */
  private cutOff (peer: string, reason: string): void {
    const name = this.hellos.get(peer)?.name
    this.refuse('peer-cut-off', peer, undefined, new Error(`${name ?? peer} kept breaking its ${reason} limit; refused for ${Math.round(this.limiter.opts.banMs / 1000)} s`))
    this.dispatchEvent(new CustomEvent('misbehaving', { detail: { peer, name, reason, banMs: this.limiter.opts.banMs } }))
    for (const c of this.libp2p?.getConnections() ?? []) if (c.remotePeer.toString() === peer) { try { c.abort(new Error(`cut off: ${reason}`)) } catch { /* already closed */ } }
    this.beatStreams.delete(peer)
  }

  /**
   * Serves a member-only protocol: a stream from a peer that has not proved membership is
   * refused (counted as 'not-member') before the handler sees a byte.
   */
  async handleMember (protocol: string, handler: (stream: Stream, peer: string) => Promise<void>): Promise<void> {
    if (this.libp2p === undefined) throw new Error('node not started')
    await this.libp2p.handle(protocol, (stream, conn) => {
      const peer = conn.remotePeer.toString()
      if (!this.isMember(peer)) { this.refuse('not-member', peer, conn); stream.abort(new Error('not a member')); return }
      this.limited(stream, conn, async () => {
        await handler(stream, peer).catch((err: unknown) => {
          this.refuse(err instanceof WireError ? err.code : 'bad-frame', peer)
          stream.abort(err as Error)
        })
      })
      // libp2p's own per-protocol cap is only a backstop, well above ours: a stream it resets
      // never reaches the limiter, so is never counted as a strike, and a flooder that kept
      // libp2p's cap full would be refused for ever but never cut off.
    }, { maxInboundStreams: this.limiter.opts.maxOpenStreams * 4 + 64 })
  }

  /**
   * One JSON request, one JSON reply, member-only. The handler's return value goes back as
   * `{ ok: true, body }`; a thrown WireError as `{ ok: false, error: { code, message } }` (and is
   * counted); anything else as 'internal', never with a stack.
   */
  async serve<S extends z.ZodTypeAny> (protocol: string, maxBytes: number, schema: S, handler: (msg: z.output<S>, peer: string) => Promise<unknown>): Promise<void> {
    this.local.set(protocol, async (msg) => {
      const res = schema.safeParse(msg)
      if (!res.success) throw new WireError('schema', res.error.issues[0]?.message)
      return await handler(res.data, this.peerId.toString())
    })
    await this.handleMember(protocol, async (stream, peer) => {
      const lp = lpStream(stream, { maxDataLength: maxBytes })
      let reply: unknown
      try {
        const msg = decodeJson((await lp.read({ signal: AbortSignal.timeout(10_000) })).subarray(), schema)
        reply = { ok: true, body: (await handler(msg, peer)) ?? null }
      } catch (err) {
        if (err instanceof WireError) this.refuse(err.code, peer)
        reply = { ok: false, error: toWire(err) }
      }
      await lp.write(json(reply), { signal: AbortSignal.timeout(10_000) })
      await stream.close().catch(() => {})
    })
  }

  /** Sends one request on `protocol` to a connected member and reads its reply (see serve()). */
  async request<S extends z.ZodTypeAny> (peer: string, protocol: string, msg: unknown, replySchema: S, opts: { timeoutMs?: number; maxBytes?: number } = {}): Promise<z.output<S>> {
    const timeoutMs = opts.timeoutMs ?? 10_000
    const local = this.local.get(protocol)
    if (peer === this.libp2p?.peerId.toString() && local !== undefined) {
      // To ourselves: the same schemas both ways, without a network round trip.
      const res = replySchema.safeParse((await local(JSON.parse(JSON.stringify(msg)) as unknown)) ?? null)
      if (!res.success) throw new WireError('schema', `reply on ${protocol}: ${res.error.issues[0]?.message ?? 'does not match its schema'}`)
      return res.data
    }
    const stream = await this.openStream(peer, protocol, timeoutMs)
    try {
      const lp = lpStream(stream, { maxDataLength: opts.maxBytes ?? MAX_FRAME_BYTES.status })
      await lp.write(json(msg), { signal: AbortSignal.timeout(timeoutMs) })
      const raw = JSON.parse(new TextDecoder().decode((await lp.read({ signal: AbortSignal.timeout(timeoutMs) })).subarray())) as { ok?: unknown; body?: unknown; error?: unknown }
      if (raw.ok !== true) throw fromWire(raw.error)
      const res = replySchema.safeParse(raw.body)
      if (!res.success) throw new WireError('schema', `reply on ${protocol}: ${res.error.issues[0]?.message ?? 'does not match its schema'}`)
      return res.data
    } finally {
      await stream.close().catch(() => {})
    }
  }

  /** A new stream to a member over an open connection (dialling its known addresses if needed). */
  async openStream (peer: string, protocol: string, timeoutMs = 10_000): Promise<Stream> {
    if (this.libp2p === undefined) throw new Error('node not started')
    if (!this.isMember(peer)) throw new WireError('not-member', `${peer} is not a live member`)
    let conn = this.libp2p.getConnections().find((c) => c.remotePeer.toString() === peer && c.status === 'open')
    if (conn === undefined) {
      const addrs = this.hellos.get(peer)?.addrs ?? []
      for (const a of addrs) {
        try { conn = await this.libp2p.dial(multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${peer}`), { signal: AbortSignal.timeout(timeoutMs) }); break } catch { /* next */ }
      }
    }
    if (conn === undefined) throw new WireError('not-found', `no connection to ${peer}`)
    return await conn.newStream(protocol, { signal: AbortSignal.timeout(timeoutMs) })
  }

  /** Applies a farm-signed revocation: drop the peer everywhere and pass it on to members. */
  async applyRevocation (input: unknown): Promise<Revocation> {
    const r = verifyRevocation(this.opts.farm.publicKey, input)
    if (this.revocations.has(r.peerId)) return r
    this.revocations.set(r.peerId, r)
    this.revoked.add(r.peerId)
    this.members.remove(r.peerId)
    this.hellos.delete(r.peerId)
    for (const c of this.libp2p?.getConnections() ?? []) if (c.remotePeer.toString() === r.peerId) await c.close().catch(() => {})
    this.dispatchEvent(new CustomEvent('revoked', { detail: r.peerId }))
    await Promise.all(this.list().map((m) => this.send(m.peerId, PROTOCOLS.membership, { type: 'revoke', revocation: r }).catch(() => {})))
    return r
  }

  /**
   * Redeems an invite token at a member that holds the farm key (one of `bootstrap`), and
   * takes the certificate it issues. Returns the certificate; throws with the member's reason.
   */
  async join (token: string, bootstrap: string[]): Promise<MembershipCertificate> {
    let lastError: unknown = new Error('no bootstrap address to join through')
    for (const addr of bootstrap) {
      try {
        const conn = await this.libp2p!.dial(multiaddr(addr), { signal: AbortSignal.timeout(5000) })
        const stream = await conn.newStream(PROTOCOLS.join, { signal: AbortSignal.timeout(5000) })
        const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES.join })
        await lp.write(json({ type: 'join', token, peerId: this.peerId.toString(), name: this.opts.name }))
        const reply = decodeJson((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray(), JoinReplySchema)
        await stream.close().catch(() => {})
        if (reply.type === 'refused') throw new WireError('not-member', `joining through ${addr} was refused: ${reply.message}`)
        const cert = verifyCertificate(this.opts.farm.publicKey, reply.cert, { peerId: this.peerId.toString(), nowMs: this.now() })
        this.opts.certificate = cert
        await conn.close().catch(() => {})
        await this.dial(addr).catch(() => {})
        return cert
      } catch (err) {
        lastError = err
      }
    }
    throw lastError
  }

  private async onJoin (stream: Stream, conn: Connection): Promise<void> {
    const peer = conn.remotePeer.toString()
    const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES.join })
    try {
      const req = decodeJson((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray(), JoinRequestSchema)
      if (req.peerId !== peer) throw new WireError('not-member', 'the join request names another peer id')
      if (this.opts.admitJoin === undefined) throw new WireError('not-member', 'this member does not hold the farm key; join through the machine that made the invite')
      const cert = this.opts.admitJoin(req)
      await lp.write(json({ type: 'joined', cert }))
      await stream.close().catch(() => {})
    } catch (err) {
      const code = err instanceof WireError ? err.code : `invite:${(err as { code?: string }).code ?? 'invalid'}`
      this.refuse(code, peer)
      await lp.write(json({ type: 'refused', code: code.slice(0, 32), message: ((err as Error).message ?? 'refused').replace(/[\u0000-\u001f]/g, ' ').slice(0, 500) })).catch(() => {})
      await stream.close().catch(() => {})
    }
  }

  private hello (): Hello {
    return {
      type: 'hello', v: 1, peerId: this.peerId.toString(), farm: this.farmId, name: this.opts.name,
      cert: this.opts.certificate as unknown as Record<string, unknown>, protocolMajor: PROTOCOL_MAJOR, addrs: this.addrs().slice(0, 16),
      ...(this.opts.info?.() !== undefined ? { info: this.opts.info() } : {}),
      ...(this.revocations.size > 0 ? { revocations: [...this.revocations.values()].slice(-256) as unknown as Array<Record<string, unknown>> } : {}),
      peers: this.list().filter((m) => m.state === 'alive').slice(0, 64).map((m) => ({ peerId: m.peerId, addrs: m.addrs.slice(0, 8) }))
    }
  }

  private refuse (reason: string, peer: string, conn?: Connection, why?: unknown): void {
    this.refused[reason] = (this.refused[reason] ?? 0) + 1
    this.dispatchEvent(new CustomEvent('refused', { detail: { reason, peer, ...(why instanceof Error ? { message: why.message.slice(0, 200) } : {}) } }))
    // Abort, not close: a graceful close of a connection whose peer went away can hang, and a
    // later dial would be handed the same dead connection.
    if (conn !== undefined) { try { conn.abort(new Error(`refused: ${reason}`)) } catch { /* already closed */ } }
  }

  /** Dialer greets; both sides give a stranger `helloTimeoutMs` to prove membership. */
  private async onConnection (conn: Connection): Promise<void> {
    const peer = conn.remotePeer.toString()
    if (conn.direction === 'outbound') {
      await this.greet(conn)
      return
    }
    setTimeout(() => {
      if (conn.status === 'open' && !this.isMember(peer)) this.refuse('no-hello', peer, conn)
    }, this.opts.helloTimeoutMs ?? 5000).unref()
  }

  private readonly greeting = new Set<string>()
  /** serve() handlers, for requests a node sends to itself (the coordinator leasing to its own worker). */
  private readonly local = new Map<string, (msg: unknown) => Promise<unknown>>()

  /** Sends our Hello on a connection and admits the peer from its reply. */
  private async greet (conn: Connection, again = false): Promise<void> {
    const peer = conn.remotePeer.toString()
    if ((this.isMember(peer) && !again) || this.opts.certificate === undefined || this.greeting.has(conn.id)) return
    this.greeting.add(conn.id)
    try {
      const stream = await conn.newStream(PROTOCOLS.membership, { signal: AbortSignal.timeout(this.opts.helloTimeoutMs ?? 5000) })
      const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES.membership })
      await lp.write(json(this.hello()))
      const reply = decodeJson((await lp.read({ signal: AbortSignal.timeout(this.opts.helloTimeoutMs ?? 5000) })).subarray(), HelloOrRevoke)
      await stream.close().catch(() => {})
      if (reply.type !== 'hello') throw new WireError('schema', 'expected a hello')
      this.admit(reply, conn)
    } catch (err) {
      this.refuse(err instanceof WireError ? err.code : 'hello-failed', peer, conn, err)
    } finally {
      this.greeting.delete(conn.id)
    }
  }

  private admit (hello: Hello, conn: Connection): void {
    const peer = conn.remotePeer.toString()
    if (hello.peerId !== peer) throw new WireError('not-member', 'hello names another peer id')
    if (hello.farm !== this.farmId) throw new WireError('not-member', 'hello is for another farm')
    verifyCertificate(this.opts.farm.publicKey, hello.cert, { peerId: peer, nowMs: this.now(), revoked: this.revoked })
    const isNew = !this.isMember(peer)
    this.learnRevocations(hello.revocations ?? [])
    this.hellos.set(peer, hello)
    this.members.joined(peer, this.now())
    if (isNew) this.dispatchEvent(new CustomEvent('member', { detail: { peerId: peer, from: 'unknown', to: 'alive', atMs: this.now(), silentMs: 0 } }))
    // Peer exchange: meet the members this one knows (each still proves itself with its own certificate).
    const self = this.libp2p?.peerId.toString()
    for (const p of hello.peers ?? []) if (p.peerId !== self && !this.isMember(p.peerId)) void this.connect(p.peerId, p.addrs)
  }

  /** Revocations a member passes on in its Hello: each verified against the farm key before use. */
  private learnRevocations (list: unknown[]): void {
    for (const item of list) {
      const peerId = (item as { peerId?: unknown }).peerId
      if (typeof peerId !== 'string' || this.revocations.has(peerId)) continue
      void this.applyRevocation(item).catch(() => { this.refuse('bad-revocation', peerId) })
    }
  }

  private async onMembership (stream: Stream, conn: Connection): Promise<void> {
    const peer = conn.remotePeer.toString()
    const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES.membership })
    try {
      const msg = decodeJson((await lp.read({ signal: AbortSignal.timeout(this.opts.helloTimeoutMs ?? 5000) })).subarray(), HelloOrRevoke)
      if (msg.type === 'hello') {
        // Still joining: we have no certificate to answer with; the peer will greet again later.
        if (this.opts.certificate === undefined) { stream.abort(new Error('not joined yet')); return }
        try {
          this.admit(msg, conn)
        } catch (err) {
          this.refuse(err instanceof WireError ? err.code : `certificate:${(err as { code?: string }).code ?? 'invalid'}`, peer, conn)
          return
        }
        await lp.write(json(this.hello()))
      } else {
        if (!this.isMember(peer)) { this.refuse('not-member', peer, conn); return }
        await this.applyRevocation(msg.revocation).catch(() => { this.refuse('bad-revocation', peer) })
      }
      await stream.close().catch(() => {})
    } catch (err) {
      this.refuse(err instanceof WireError ? err.code : 'bad-frame', peer, this.isMember(peer) ? undefined : conn)
      stream.abort(err as Error)
    }
  }

  /**
   * A member's heartbeat stream: it stays open and carries one frame per beat. Every frame is
   * checked on its own; a malformed one is refused (counted) and ends the stream, and the member
   * opens a new one. A stream that ends or goes quiet after good frames is no refusal: the
   * failure detector judges silence.
   */
  private async onHeartbeat (stream: Stream, conn: Connection): Promise<void> {
    const peer = conn.remotePeer.toString()
    if (!this.hellos.has(peer)) { this.refuse('not-member', peer, conn); stream.abort(new Error('not a member')); return }
    const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES.heartbeat })
    const quietMs = Math.max(5000, 5 * (this.opts.heartbeatMs ?? 1000))
    let frames = 0
    try {
      while (this.hellos.has(peer)) {
        const hb = decodeJson((await lp.read({ signal: AbortSignal.timeout(quietMs) })).subarray(), HeartbeatSchema)
        if (hb.peerId !== peer) throw new WireError('schema', 'heartbeat names another peer')
        if (this.members.heard(peer, this.now(), hb.load)) this.lastBeat.set(peer, { accepting: hb.accepting, state: hb.state })
        frames++
      }
      stream.abort(new Error('no longer a member'))
    } catch (err) {
      const malformed = err instanceof WireError || /^Invalid(Data|Message)Length/.test((err as Error).name)
      if (malformed || frames === 0) this.refuse(err instanceof WireError ? err.code : 'bad-frame', peer)
      stream.abort(err as Error)
    }
  }

  private async send (peer: string, protocol: string, msg: unknown): Promise<void> {
    const conn = this.libp2p?.getConnections().find((c) => c.remotePeer.toString() === peer && c.status === 'open')
    if (conn === undefined) return
    const stream = await conn.newStream(protocol, { signal: AbortSignal.timeout(2000) })
    await lpStream(stream).write(json(msg))
    await stream.close().catch(() => {})
  }

  private async sendHeartbeats (): Promise<void> {
    const hb: Heartbeat = {
      type: 'heartbeat', peerId: this.peerId.toString(), seq: this.seq++, sentAt: this.now(), incarnation: 0,
      load: this.opts.load?.() ?? { cpuPct: 0, memUsedBytes: 0, memTotalBytes: 0, runningChunks: 0 },
      accepting: this.opts.accepting?.() ?? true, state: this.opts.state?.() ?? 'idle'
    }
    const live = new Set(this.list().filter((m) => m.state !== 'dead').map((m) => m.peerId))
    for (const [peer, open] of this.beatStreams) {
      if (!live.has(peer)) { this.beatStreams.delete(peer); void open.then((s) => { s.stream.abort(new Error('member is dead')) }, () => {}) }
    }
    const frame = json(hb)
    await Promise.all([...live].map((peer) => this.beat(peer, frame).catch(() => {})))
  }

  /** Writes one heartbeat on the member's stream; a broken stream is dropped and, once per beat, reopened. */
  private async beat (peer: string, frame: Uint8Array): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      let open = this.beatStreams.get(peer)
      if (open === undefined) {
        open = this.openBeatStream(peer)
        this.beatStreams.set(peer, open)
      }
      const drop = (): void => { if (this.beatStreams.get(peer) === open) this.beatStreams.delete(peer) }
      try {
        const s = await open
        if (s.stream.status !== 'open' || s.stream.writeStatus !== 'writable') throw new Error('heartbeat stream closed')
        await s.lp.write(frame, { signal: AbortSignal.timeout(2000) })
        return
      } catch (err) {
        drop()
        void open.then((s) => { s.stream.abort(err as Error) }, () => {})
        if (attempt > 0) throw err
      }
    }
  }

  private async openBeatStream (peer: string): Promise<{ stream: Stream; lp: ReturnType<typeof lpStream> }> {
    const conn = this.libp2p?.getConnections().find((c) => c.remotePeer.toString() === peer && c.status === 'open')
    if (conn === undefined) throw new Error(`no connection to ${peer}`)
    const stream = await conn.newStream(PROTOCOLS.heartbeat, { signal: AbortSignal.timeout(2000) })
    return { stream, lp: lpStream(stream, { maxDataLength: MAX_FRAME_BYTES.heartbeat }) }
  }

  private tick (): void {
    for (const t of this.members.tick(this.now())) {
      // A dead member's connections are dropped, so that when it comes back (restart, link
      // restored) both sides dial afresh instead of reusing a connection that no longer carries.
      if (t.to === 'dead') for (const c of this.libp2p?.getConnections() ?? []) if (c.remotePeer.toString() === t.peerId) { try { c.abort(new Error('member dead')) } catch { /* already closed */ } }
      this.dispatchEvent(new CustomEvent<Transition>('member', { detail: t }))
    }
  }
}
