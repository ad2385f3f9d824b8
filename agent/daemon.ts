/**
 * `renderswarm agent`: one per machine. Keeps its identity and farm in SQLite under the state
 * dir, joins the farm over libp2p (mDNS on the LAN, bootstrap addresses elsewhere), and serves
 * the local API on 127.0.0.1 with a token written to `<state-dir>/api.json` (mode 0600).
 * The same port serves the web dashboard's static files at `/` without the token (ui/dashboard/serve.ts).
 *
 *   const agent = await Agent.start({ stateDir, listen: ['/ip4/127.0.0.1/tcp/0'], apiPort: 0 })
 *   …; await agent.stop()
 *
 * A machine with no farm yet creates a one-machine farm on first start (it holds the farm key).
 */
import './polyfill.ts'
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { createInvite, decodeSecrets, encodeSecrets, farmId, generateFarmKey, InviteLedger, issueCertificate, parseInvite, revoke, type FarmSecrets, type MembershipCertificate, type Revocation } from '../protocol/farm-key.ts'
import type { JoinRequest } from '../protocol/messages/membership.ts'
import { PROTOCOL_MAJOR } from '../protocol/ids.ts'
import { NodeInfoSchema, type NodeInfo } from '../protocol/messages/membership.ts'
import { Counter, Registry, collectDefaultMetrics } from 'prom-client'
import { FarmFigures, registerFarmMetrics, type Figures, type JobFacts, type NodeFacts } from './metrics.ts'
import { accepting as decideAccepting, parsePolicy, PolicyError, type Policy } from './availability.ts'
import { describePolicy, loadPolicy, updatePolicy } from './policy-setting.ts'
import { benchmark } from './benchmark.ts'
import { Discovery } from './discovery.ts'
import { locateFfmpeg, probeFfmpeg } from './ffmpeg.ts'
import { probeHardware, sampleLoad, type LoadSample } from './hardware.ts'
import { FarmNode } from './node.ts'
import { FarmServices } from './farm.ts'
import { JobRequestError } from './owner.ts'
import type { FfmpegCapabilities, FfmpegTools } from './ffmpeg.ts'
import { WireError } from '../protocol/errors.ts'
import { Store } from './store.ts'
import { cookieToken, DashboardFiles, isStaticRequest, sessionCookie } from '../ui/dashboard/serve.ts'
import { BurstController, BurstError } from './cloud-burst.ts'
import { loadCloudConfig } from '../coordinator/cloud/config.ts'
import type { LocalOptions } from '../coordinator/cloud/local.ts'
import { cloudProviders, farmTagOf } from './cloud-providers.ts'
import type { JobRecord } from '../protocol/messages/jobs.ts'
import { fileURLToPath } from 'node:url'

export interface AgentOptions {
  stateDir: string
  listen: string[]
  apiPort: number
  name?: string | undefined
  mdns?: boolean
  mdnsInterface?: string | undefined
  bootstrap?: string[]
  heartbeatMs?: number
  /** Workstation etiquette: --when, --schedule, --max-cpu. */
  policy?: Policy
  /** Chunks rendered at once (0: this machine submits but never renders). Default 1. */
  slots?: number
  /** What an hour of this machine costs the studio, USD (power). Default 0.02. */
  costPerHour?: number
  /** Chunk lease length; progress renews it. Default 15 s. */
  leaseMs?: number
  /** When this agent coordinates: the render time a chunk should take on a typical node. Default 30 s. */
  chunkSeconds?: number
  /** When this agent coordinates: the shortest piece (of its node's time) a chunk is cut to when leased; 0 never cuts. Default 4 s. */
  minPieceSeconds?: number
  /** Where this machine is (`--location`): the studio LAN (default) or a rented cloud machine. */
  location?: 'lan' | 'cloud'
  /** When this agent coordinates: a straggling chunk gets a backup copy after running this long (0: never). Default 10 s. */
  speculateAfterMs?: number
  /** Cloud burst (runs when cloud.json is in the state dir and this machine holds the farm key): tick, and local-provider knobs for tests and demos. */
  burst?: { tickMs?: number; local?: Partial<Omit<LocalOptions, 'clock'>> }
}

export interface ApiInfo { url: string; token: string; pid: number }

const ENCODERS = ['libx264', 'libx265', 'h264_nvenc', 'hevc_nvenc', 'prores_ks', 'ffv1', 'aac', 'flac']

/** One line per event on stderr, with a timestamp (operators and tests read it). */
function log (line: string): void {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`)
}

export function defaultStateDir (): string {
  const base = process.env.XDG_STATE_HOME ?? (process.platform === 'darwin' ? path.join(os.homedir(), 'Library', 'Application Support') : process.platform === 'win32' ? (process.env.APPDATA ?? os.homedir()) : path.join(os.homedir(), '.local', 'state'))
  return path.join(base, 'renderswarm')
}

export class Agent {
  private api: Server | undefined
  private discovery: Discovery | undefined
  private load: LoadSample | undefined
  private loadTimer: NodeJS.Timeout | undefined
  private bootstrapTimer: NodeJS.Timeout | undefined
  private connectTimer: NodeJS.Timeout | undefined
  private readonly discovered = new Map<string, string[]>()
  readonly startedMs = Date.now()
  apiInfo: ApiInfo | undefined

  private constructor (readonly opts: AgentOptions, readonly store: Store, readonly node: FarmNode, private readonly info: NodeInfo, readonly name: string, private readonly secrets: FarmSecrets | undefined) {}

  static async start (opts: AgentOptions): Promise<Agent> {
    // The hardware and ffmpeg probes (~0.5 s of child processes) run while the node and mDNS
    // start, not before: peers can meet this node first and get its full info from a second
    // Hello (announce) when the probes finish.
    const probing = (async () => {
      const tools = await locateFfmpeg()
      const [hw, caps] = await Promise.all([probeHardware(), probeFfmpeg(tools, { checkGpu: true })])
      return { tools, hw, caps }
    })()
    probing.catch(() => {}) // awaited below; this only keeps a failure during start-up from counting as unhandled
    await mkdir(opts.stateDir, { recursive: true, mode: 0o700 })
    const store = Store.open(path.join(opts.stateDir, 'state.db'))
    let agent: Agent | undefined
    let info: NodeInfo
    // Until the probes finish, peers get what they found on the last start (the Hello and the
    // mDNS TXT carry it at once); on a first start, no info, and node:os figures for /v1/nodes.
    let infoKnown = false
    try {
      const privateKey = await loadIdentity(store)
      const peerId = peerIdFromPrivateKey(privateKey).toString()
      const name = opts.name ?? store.getJson<string>('name') ?? os.hostname()
      store.setJson('name', name)
      const farm = loadOrCreateFarm(store, peerId, name)
      const last = NodeInfoSchema.safeParse(store.getJson<unknown>('nodeInfo'))
      infoKnown = last.success
      info = last.success
        ? last.data
        : { cpu: { model: (os.cpus()[0]?.model ?? 'unknown').slice(0, 128), cores: Math.max(1, os.availableParallelism()) }, memBytes: os.totalmem(), os: `${os.type()} ${os.release()}`.slice(0, 64), gpus: [], ffmpeg: { version: 'unknown', encoders: [] }, bench: {} }
      const node = new FarmNode({
        privateKey, farm: { publicKey: farm.publicKey, psk: farm.psk }, certificate: farm.certificate, name, listen: opts.listen,
        ...(farm.secrets !== undefined ? { admitJoin: (req: JoinRequest) => admitJoin(store, farm.secrets!, req) } : {}),
        heartbeatMs: opts.heartbeatMs, info: () => infoKnown ? info : undefined,
        revocations: store.getJson<Revocation[]>('revocations') ?? [],
        load: () => agent?.heartbeatLoad() ?? { cpuPct: 0, memUsedBytes: 0, memTotalBytes: 0, runningChunks: 0 },
        accepting: () => agent?.availability().accepting ?? true
      })
      agent = new Agent(opts, store, node, info, name, farm.secrets)
      await agent.run()
    } catch (err) {
      store.close()
      throw err
    }
    let probed: Awaited<typeof probing>
    try {
      probed = await probing
    } catch (err) {
      await agent.stop()
      throw err
    }
    const { tools, hw, caps } = probed
    try {
      await agent.startFarm(tools, caps)
    } catch (err) {
      await agent.stop()
      throw err
    }
    const before = JSON.stringify({ ...info, bench: undefined })
    Object.assign(info, {
      cpu: hw.cpu, memBytes: hw.memBytes, os: hw.os, ...(hw.host !== undefined ? { host: hw.host } : {}),
      gpus: hw.gpus.map((g) => ({ model: g.model, vramBytes: g.vramBytes, ...(g.driver !== undefined ? { driver: g.driver } : {}) })),
      ffmpeg: { version: caps.version.slice(0, 64), encoders: ENCODERS.filter((e) => caps.encoders.has(e) && (!e.endsWith('_nvenc') || caps.gpuEncoders.includes(e))) }
    } satisfies Partial<NodeInfo>)
    try {
      await agent.startBurst()
    } catch (err) {
      await agent.stop()
      throw err
    }
    const changed = !infoKnown || JSON.stringify({ ...info, bench: undefined }) !== before
    if (changed) for (const k of Object.keys(info.bench)) delete info.bench[k] // scores of other hardware
    infoKnown = true
    store.setJson('nodeInfo', info)
    if (changed) await agent.node.announce()
    // Cached per (hardware, ffmpeg build); measured in the background, at low priority, on first start.
    agent.benchDone = benchmark(tools, caps, hw, store, { presets: ['ffv1', 'h264'], lowPriority: true, signal: agent.benchAbort.signal })
      .then(async (r) => {
        Object.assign(info.bench, r.fps)
        store.setJson('nodeInfo', info)
        if (!r.cached) log(`benchmark: ${Object.entries(r.fps).map(([k, v]) => `${k} ${v} fps`).join(', ')}`)
        if (changed || !r.cached) await agent.node.announce()
      }, (err: Error) => { log(agent.benchAbort.signal.aborted ? 'benchmark stopped with the agent; it runs again on the next start' : `benchmark failed: ${err.message}`) })
    return agent
  }

  private heartbeatLoad (): { cpuPct: number; memUsedBytes: number; memTotalBytes: number; gpuPct?: number; runningChunks: number } {
    const l = this.load
    return { cpuPct: l?.cpuPct ?? 0, memUsedBytes: l?.memUsedBytes ?? 0, memTotalBytes: l?.memTotalBytes ?? 0, ...(l?.gpuPct !== undefined ? { gpuPct: l.gpuPct } : {}), runningChunks: this.farm?.worker.running() ?? 0 }
  }

  /** Distributed rendering (election, coordinator, worker, owner) once ffmpeg is known. */
  farm: FarmServices | undefined
  async startFarm (tools: FfmpegTools, caps: FfmpegCapabilities): Promise<void> {
    const slots = this.opts.slots ?? 1
    const costPerHour = this.opts.costPerHour ?? 0.02
    Object.assign(this.info, { slots, costPerHour })
    if (this.opts.location !== undefined) this.info.location = this.opts.location
    else delete this.info.location // a stored view from an earlier start with --location
    this.farm = new FarmServices({
      node: this.node, store: this.store, tools, caps, stateDir: this.opts.stateDir, name: this.name, info: this.info, slots, costPerHour,
      accepting: () => this.availability().accepting, log, emit: (type, data) => { this.emitEvent(type, data) },
      ...(this.opts.leaseMs !== undefined ? { leaseMs: this.opts.leaseMs } : {}),
      ...(this.opts.chunkSeconds !== undefined ? { chunkSeconds: this.opts.chunkSeconds } : {}),
      ...(this.opts.minPieceSeconds !== undefined ? { minPieceSeconds: this.opts.minPieceSeconds } : {}),
      ...(this.opts.speculateAfterMs !== undefined ? { speculateAfterMs: this.opts.speculateAfterMs } : {})
    })
    await this.farm.start()
    await this.node.announce()
  }

  /** The cloud burst controller (agent/cloud-burst.ts), on the farm key's machine with a cloud.json. */
  burst: BurstController | undefined
  async startBurst (): Promise<void> {
    const config = await loadCloudConfig(this.opts.stateDir)
    if (config === undefined) return
    if (this.secrets === undefined) { log('cloud: cloud.json is here but this machine does not hold the farm key (it mints the invites rented machines join with); burst runs on the machine that created the farm'); return }
    const secrets = this.secrets
    const o = this.opts.burst ?? {}
    const { providers, notes } = await cloudProviders(config, {
      farmTag: farmTagOf(this.node.farmId),
      local: { bin: fileURLToPath(new URL('../bin/renderswarm.js', import.meta.url)), farmTag: 'local', ...o.local }
    })
    for (const n of notes) log(`cloud: ${n}`)
    const bootstrap = (): string[] => this.node.addrs().filter((a) => !a.includes('/ip6/')).slice(0, 8)
    this.burst = new BurstController({
      config, providers, log, ...(o.tickMs !== undefined ? { tickMs: o.tickMs } : {}),
      members: () => this.nodes() as unknown as Array<{ peerId: string; name: string; state: string; location: string }>,
      jobs: () => this.store.listJobs<JobRecord>(200),
      invite: () => {
        const { token, inviteId, exp } = createInvite(secrets, { ttlMs: 30 * 60_000, nowMs: Date.now(), bootstrap: bootstrap() })
        withLedger(this.store, (ledger) => { ledger.record(inviteId, exp) })
        return token
      },
      bootstrap,
      pause: async (peerId, paused) => { await this.farm!.control({ type: 'pause', peerId, paused }) },
      spend: { load: () => this.store.getJson<{ periodStartMs: number; usd: number }>('cloudSpend'), save: (v) => { this.store.setJson('cloudSpend', v) } }
    })
    this.burst.start()
    log(`cloud: burst controller on (${Object.keys(providers).join(', ') || 'no usable provider'}; budget $${config.budget.amount} per ${config.budget.period}, maxNodes ${config.maxNodes})`)
  }

  /** POST /v1/cloud/scale {provider, count, instanceType?, spot}. */
  private async scaleRoute (req: IncomingMessage, send: (status: number, body: unknown) => void): Promise<void> {
    if (this.burst === undefined) { send(404, { error: 'not-found', message: 'cloud burst is off on this agent (no cloud.json in its state dir when it started, or it does not hold the farm key)' }); return }
    const body = await readJsonBody(req, send)
    if (body === undefined) return
    try {
      send(200, await this.burst.scale(body.value))
    } catch (err) {
      if (err instanceof BurstError) {
        this.refusedTotal.inc({ reason: `cloud-scale:${err.code}` })
        send(err.code === 'bad-request' ? 400 : err.code === 'refused' ? 409 : 502, { error: err.code, message: err.message })
      } else send(500, { error: 'internal', message: (err as Error).message })
    }
  }

  private async run (): Promise<void> {
    this.setupMetrics()
    this.node.addEventListener('member', (e) => {
      const t = (e as CustomEvent<{ peerId: string; to: string; silentMs: number }>).detail
      this.emitEvent('member', t)
      const name = this.node.list().find((m) => m.peerId === t.peerId)?.name ?? t.peerId
      log(`member ${name} ${t.peerId} is ${t.to}${t.to !== 'alive' ? ` (silent ${t.silentMs} ms)` : ''}`)
    })
    this.node.addEventListener('revoked', (e) => {
      this.store.setJson('revocations', this.node.knownRevocations())
      log(`revoked ${(e as CustomEvent<string>).detail}`)
    })
    this.node.addEventListener('refused', (e) => {
      const r = (e as CustomEvent<{ reason: string; peer: string; message?: string }>).detail
      this.refusedTotal.inc({ reason: r.reason })
      this.emitEvent('refused', r)
      log(`refused ${r.peer}: ${r.reason}${r.message !== undefined ? ` (${r.message})` : ''}`)
    })
    await this.node.start()
    const pending = this.store.getJson<FarmRecord>('farm')?.pending
    if (pending !== undefined) void this.completeJoin(pending)
    const sample = (): void => {
      void sampleLoad().then((l) => {
        this.load = l
        // No render runs yet, so all CPU use is the machine's own users'.
        if (l.cpuPct >= this.policy.idleCpuPct) this.busySinceMs = Date.now()
      }, () => {})
    }
    sample()
    this.loadTimer = setInterval(sample, 2000)
    this.loadTimer.unref()
    const bootstrap = this.opts.bootstrap ?? []
    if (bootstrap.length > 0) {
      const dialAll = (): void => { for (const a of bootstrap) void this.node.dial(a).catch(() => {}) }
      dialAll()
      this.bootstrapTimer = setInterval(dialAll, 5000)
      this.bootstrapTimer.unref()
    }
    if (this.opts.mdns !== false) {
      const tcp = this.node.addrs().find((a) => a.includes('/tcp/'))
      const port = Number(/\/tcp\/(\d+)/.exec(tcp ?? '')?.[1] ?? 0)
      this.discovery = new Discovery({
        interface: this.opts.mdnsInterface, name: this.node.peerId.toString(), port,
        txt: { farm: this.node.farmId, peer: this.node.peerId.toString(), addrs: this.node.addrs().map((a) => a.replace(/\/p2p\/.*$/, '')), v: PROTOCOL_MAJOR, ...(this.info.bench.ffv1 !== undefined ? { score: this.info.bench.ffv1 } : {}) }
      })
      this.discovery.on('peer', (p) => {
        if (!this.discovered.has(p.peer)) log(`discovered ${p.peer} at ${p.addrs.join(' ')} (mDNS)`)
        this.discovered.set(p.peer, p.addrs)
        void this.node.connect(p.peer, p.addrs)
      })
      this.discovery.on('refused', (why) => { this.refusedTotal.inc({ reason: 'mdns-txt' }); log(`mDNS: ${why}`) })
      this.discovery.start()
      // mDNS says a member exists once; keep trying the ones we are not (or no longer) connected to.
      this.connectTimer = setInterval(() => {
        if (this.node.certified) for (const [peer, addrs] of this.discovered) void this.node.connect(peer, addrs)
      }, 2000)
      this.connectTimer.unref()
    }
    await this.startApi()
  }

  /** Redeems the invite from `farm join` through its bootstrap members, retrying until it expires. */
  private async completeJoin (pending: { token: string; bootstrap: string[] }): Promise<void> {
    const exp = parseInvite(pending.token, 0).exp
    while (Date.now() < exp && !this.stopped) {
      try {
        const certificate = await this.node.join(pending.token, pending.bootstrap)
        const rec = this.store.getJson<FarmRecord>('farm')!
        this.store.setJson('farm', { ...rec, certificate, pending: undefined })
        this.joinError = undefined
        log(`joined farm ${this.node.farmId}`)
        for (const [peer, addrs] of this.discovered) void this.node.connect(peer, addrs)
        return
      } catch (err) {
        this.joinError = (err as Error).message
        await new Promise((r) => setTimeout(r, 2000))
      }
    }
  }

  joinError: string | undefined
  benchDone: Promise<void> = Promise.resolve()
  /** Stopping the agent stops a background benchmark (it runs again on the next start). */
  readonly benchAbort = new AbortController()
  private stopped = false

  private async startApi (): Promise<void> {
    const token = randomBytes(24).toString('base64url')
    this.api = createServer((req, res) => { this.handle(req, res, token) })
    this.api.headersTimeout = 10_000
    this.api.requestTimeout = 30_000
    await new Promise<void>((resolve, reject) => {
      this.api!.once('error', reject)
      this.api!.listen(this.opts.apiPort, '127.0.0.1', () => { resolve() })
    })
    const addr = this.api.address()
    const port = typeof addr === 'object' && addr !== null ? addr.port : this.opts.apiPort
    this.apiInfo = { url: `http://127.0.0.1:${port}`, token, pid: process.pid }
    const file = path.join(this.opts.stateDir, 'api.json')
    // Written aside and renamed in: a CLI (or test) that sees the file always reads it whole.
    const tmp = `${file}.${process.pid}.tmp`
    await writeFile(tmp, JSON.stringify(this.apiInfo) + '\n', { mode: 0o600 })
    await chmod(tmp, 0o600)
    await rename(tmp, file)
  }

  private handle (req: IncomingMessage, res: ServerResponse, token: string): void {
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      res.end(JSON.stringify(body))
    }
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    // The dashboard's static files need no token and carry no data (ui/dashboard/serve.ts).
    if (isStaticRequest(req.method, url)) { void this.dashboard.serve(req, res, url).catch(() => { res.destroy() }); return }
    const apiPort = Number(new URL(this.apiInfo?.url ?? 'http://127.0.0.1:0').port)
    const auth = req.headers.authorization ?? ''
    // The Bearer header, or else the dashboard's session cookie (same-origin requests only).
    const given = Buffer.from(auth.startsWith('Bearer ') ? auth.slice(7) : (cookieToken(req, apiPort) ?? ''))
    const want = Buffer.from(token)
    if (given.length !== want.length || !timingSafeEqual(given, want)) {
      this.unauthorized++
      this.refusedTotal.inc({ reason: 'api-unauthorized' })
      send(401, { error: 'unauthorized', message: 'missing or wrong access token (see api.json in the agent\'s state dir)' })
      return
    }
    if (req.method === 'POST' && url.pathname === '/v1/session') {
      // The dashboard trades the token from its URL fragment (given as Bearer) for an HttpOnly cookie.
      if (!auth.startsWith('Bearer ')) { send(400, { error: 'bad-request', message: 'a session starts from the token in an Authorization: Bearer header' }); return }
      res.writeHead(204, { 'set-cookie': sessionCookie(apiPort, token), 'cache-control': 'no-store' })
      res.end()
      return
    }
    if (req.method === 'POST' && url.pathname === '/v1/farm/revoke') { void this.revokeRoute(req, send); return }
    if (url.pathname.startsWith('/v1/jobs') || (req.method === 'POST' && ['/v1/estimate', '/v1/pause', '/v1/resume', '/v1/stop'].includes(url.pathname))) { void this.jobRoute(req, url, send); return }
    if (url.pathname === '/v1/policy') { void this.policyRoute(req, send); return }
    if (req.method === 'POST' && url.pathname === '/v1/cloud/scale') { void this.scaleRoute(req, send); return }
    if (req.method !== 'GET') { send(405, { error: 'method-not-allowed', message: `${req.method ?? ''} is not allowed here` }); return }
    if (url.pathname === '/v1/nodes') { send(200, { nodes: this.nodes() }); return }
    if (url.pathname === '/v1/status') { send(200, this.status()); return }
    if (url.pathname === '/metrics') {
      void this.metrics.metrics().then((text) => {
        res.writeHead(200, { 'content-type': this.metrics.contentType, 'cache-control': 'no-store' })
        res.end(text)
      }, (err: Error) => { send(500, { error: 'internal', message: err.message }) })
      return
    }
    if (url.pathname === '/v1/events') {
      // Server-Sent Events: member transitions and refusals as they happen; a comment every 15 s keeps proxies open.
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
      res.write(`event: hello\ndata: ${JSON.stringify({ peerId: this.node.peerId.toString(), farm: this.node.farmId })}\n\n`)
      this.sse.add(res)
      const keepAlive = setInterval(() => { res.write(': keep-alive\n\n') }, 15_000)
      req.on('close', () => { clearInterval(keepAlive); this.sse.delete(res) })
      return
    }
    send(404, { error: 'not-found', message: `no route ${url.pathname}` })
  }

  unauthorized = 0
  private busySinceMs = Date.now()

  /** Workstation etiquette in force: the flags, or a later change through POST /v1/policy (agent/policy-setting.ts). */
  private policyNow: Policy | undefined
  get policy (): Policy {
    return (this.policyNow ??= loadPolicy(this.store, this.opts.policy ?? parsePolicy({})))
  }

  /** GET /v1/policy; POST /v1/policy {when?, schedule?, maxCpuPct?} (the tray's "Render only when idle"). */
  private async policyRoute (req: IncomingMessage, send: (status: number, body: unknown) => void): Promise<void> {
    if (req.method === 'POST') {
      const body = await readJsonBody(req, send)
      if (body === undefined) return
      try {
        this.policyNow = updatePolicy(this.store, this.policy, this.opts.policy ?? parsePolicy({}), body.value)
      } catch (err) {
        if (!(err instanceof PolicyError)) throw err
        this.refusedTotal.inc({ reason: 'api-policy' })
        send(400, { error: 'bad-request', field: err.message.split(':')[0], message: err.message })
        return
      }
      log(`policy: ${JSON.stringify(describePolicy(this.policy))}`)
      this.emitEvent('policy', describePolicy(this.policy))
    } else if (req.method !== 'GET') { send(405, { error: 'method-not-allowed', message: `${req.method ?? ''} is not allowed here` }); return }
    send(200, { policy: describePolicy(this.policy), ...this.availability() })
  }

  availability (): { accepting: boolean; reason?: string } {
    // A nearly full work disk: the worker refuses leases, and heartbeats say so (agent/worker.ts).
    const disk = this.farm?.worker.lowDisk()
    if (disk !== undefined) return { accepting: false, reason: disk }
    const policy = this.policy
    return decideAccepting(policy, { now: new Date(), otherCpuPct: this.load?.cpuPct ?? 0, quietForMs: Date.now() - this.busySinceMs })
  }
  private readonly sse = new Set<ServerResponse>()
  /** The built dashboard (dist/dashboard/), served at / without a token. */
  private readonly dashboard = new DashboardFiles()
  readonly metrics = new Registry()
  private readonly refusedTotal = new Counter({ name: 'renderswarm_refused_total', help: 'Inputs refused, by reason (wire, certificate, invite, API, mDNS)', labelNames: ['reason'], registers: [this.metrics] })

  /** Pushes an event to every /v1/events subscriber. */
  private emitEvent (type: string, data: unknown): void {
    this.figures.observe(type, data)
    const frame = `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`
    for (const res of this.sse) res.write(frame)
  }

  /** The farm's figures (agent/metrics.ts): /metrics and status().metrics read the same ones. */
  private readonly figures = new FarmFigures()
  farmFigures (): Figures {
    return this.figures.compute({
      jobs: (this.farm?.jobs() ?? []) as unknown as JobFacts[], nodes: this.nodes() as unknown as NodeFacts[], paused: this.farm?.pausedNodes() ?? [],
      nowMs: Date.now(), selfUptimeSeconds: Math.round((Date.now() - this.startedMs) / 1000)
    })
  }

  private setupMetrics (): void {
    collectDefaultMetrics({ register: this.metrics, prefix: 'renderswarm_' })
    registerFarmMetrics(this.metrics, () => this.farmFigures())
  }

  /**
   * Jobs: POST /v1/jobs, POST /v1/estimate, GET /v1/jobs, GET /v1/jobs/:id, POST /v1/jobs/:id/cancel,
   * POST /v1/pause|resume {peerId}|{all: true}, POST /v1/stop {emergency: true}.
   */
  private async jobRoute (req: IncomingMessage, url: URL, send: (status: number, body: unknown) => void): Promise<void> {
    const farm = this.farm
    if (farm === undefined) { send(503, { error: 'starting', message: 'the agent is still starting (probing ffmpeg); try again in a moment' }); return }
    try {
      let body: unknown = {}
      if (req.method === 'POST') {
        const text = await readBody(req, 64 * 1024)
        try { body = text === '' ? {} : JSON.parse(text) } catch { send(400, { error: 'bad-request', message: 'the request body is not JSON' }); return }
        if (typeof body !== 'object' || body === null || Array.isArray(body)) { send(400, { error: 'bad-request', message: 'the request body must be a JSON object' }); return }
      }
      const m = /^\/v1\/jobs(?:\/([A-Za-z0-9_-]{1,64})(\/cancel)?)?$/.exec(url.pathname)
      const b = body as Record<string, unknown>
      if (req.method === 'POST' && url.pathname === '/v1/jobs') { send(201, { job: await farm.submit(body) }); return }
      if (url.pathname === '/v1/estimate') { send(200, { estimate: await farm.estimate(body) }); return }
      if (url.pathname === '/v1/pause' || url.pathname === '/v1/resume') {
        const paused = url.pathname === '/v1/pause'
        if (b.all === true) await farm.control({ type: 'pause', all: true, paused })
        else if (typeof b.peerId === 'string') {
          const peer = this.resolvePeer(b.peerId)
          if (peer === undefined) { send(404, { error: 'not-found', field: 'peerId', message: `no member named or with peer id "${b.peerId.slice(0, 128)}"` }); return }
          await farm.control({ type: 'pause', peerId: peer, paused })
        } else { send(400, { error: 'bad-request', message: 'give {"peerId": "…"} or {"all": true}' }); return }
        send(200, { paused: farm.pausedNodes() }); return
      }
      if (url.pathname === '/v1/stop') {
        if (b.emergency !== true) { send(400, { error: 'bad-request', message: 'an emergency stop needs {"emergency": true}' }); return }
        await farm.control({ type: 'emergency-stop' })
        send(200, { stopped: true }); return
      }
      if (m === null) { send(404, { error: 'not-found', message: `no route ${url.pathname}` }); return }
      if (m[1] === undefined) {
        if (req.method !== 'GET') { send(405, { error: 'method-not-allowed', message: `${req.method ?? ''} is not allowed here` }); return }
        send(200, { jobs: farm.jobs() }); return
      }
      const job = farm.job(m[1])
      if (job === undefined) { send(404, { error: 'not-found', message: `no job ${m[1]}` }); return }
      if (m[2] !== undefined && req.method === 'POST') { await farm.control({ type: 'cancel', jobId: m[1] }); send(200, { job: farm.job(m[1]) }); return }
      if (req.method !== 'GET') { send(405, { error: 'method-not-allowed', message: `${req.method ?? ''} is not allowed here` }); return }
      send(200, { job })
    } catch (err) {
      if (err instanceof JobRequestError) {
        this.refusedTotal.inc({ reason: `job:${err.code}` })
        send(err.code === 'not-coordinator' ? 503 : 400, { error: err.code, field: err.field, message: err.message })
      } else if (err instanceof WireError) {
        send(err.code === 'not-found' ? 404 : err.code === 'not-coordinator' ? 503 : 400, { error: err.code, message: err.message })
      } else {
        send(500, { error: 'internal', message: (err as Error).message })
      }
    }
  }

  /** A member by peer id or name (self included). */
  private resolvePeer (s: string): string | undefined {
    return this.nodes().find((n) => n.peerId === s || n.name === s)?.peerId as string | undefined
  }

  /** POST /v1/farm/revoke {peerId, reason?}: only on the machine holding the farm key. */
  private async revokeRoute (req: IncomingMessage, send: (status: number, body: unknown) => void): Promise<void> {
    const parsed = await readJsonBody(req, send)
    if (parsed === undefined) return
    const body = (parsed.value ?? {}) as { peerId?: unknown; reason?: unknown }
    if (this.secrets === undefined) { send(403, { error: 'forbidden', message: 'this machine does not hold the farm key; revoke on the machine that created the farm' }); return }
    if (typeof body.peerId !== 'string' || !/^[1-9A-HJ-NP-Za-km-z]{1,128}$/.test(body.peerId)) { send(400, { error: 'bad-request', message: 'peerId must be a peer id' }); return }
    if (body.peerId === this.node.peerId.toString()) { send(400, { error: 'bad-request', message: 'a machine cannot revoke itself' }); return }
    const reason = typeof body.reason === 'string' ? body.reason.replace(/[^\x20-\x7e]/g, '?').slice(0, 256) : undefined
    const r = await this.node.applyRevocation(revoke(this.secrets, { peerId: body.peerId, atMs: Date.now(), ...(reason !== undefined ? { reason } : {}) }))
    send(200, { revoked: r.peerId, at: new Date(r.at).toISOString() })
  }

  nodes (): Array<Record<string, unknown>> {
    const a = this.availability()
    const self = { peerId: this.node.peerId.toString(), name: this.name, self: true, state: 'alive', location: this.info.location ?? 'lan', addrs: this.node.addrs(), load: this.heartbeatLoad(), info: this.info, accepting: a.accepting, ...(a.reason !== undefined ? { notAcceptingBecause: a.reason } : {}), maxCpuPct: this.policy.maxCpuPct }
    return [self, ...this.node.list().map((m) => ({ peerId: m.peerId, name: m.name, self: false, state: m.state, location: m.info?.location ?? 'lan', addrs: m.addrs, lastHeardMs: m.lastHeardMs, load: m.load, info: m.info, accepting: m.accepting }))]
  }

  status (): Record<string, unknown> {
    const nodes = this.nodes()
    return {
      farm: this.node.farmId, peerId: this.node.peerId.toString(), name: this.name, uptimeSeconds: Math.round((Date.now() - this.startedMs) / 1000),
      addrs: this.node.addrs(), holdsFarmKey: this.store.getJson<FarmRecord>('farm')?.secrets !== undefined, policy: describePolicy(this.policy),
      ...(this.joinError !== undefined ? { joinError: this.joinError } : {}),
      nodes: { total: nodes.length, active: nodes.filter((n) => n.state === 'alive').length },
      refused: { ...this.node.stats().refused, 'api-unauthorized': this.unauthorized, 'mdns-txt': this.discovery?.refusedCount ?? 0 },
      ...(this.farm !== undefined ? { rendering: this.farm.stats() } : {}),
      ...(this.burst !== undefined ? { cloud: this.burst.status() } : {}),
      metrics: this.farmFigures()
    }
  }

  async stop (): Promise<void> {
    this.stopped = true
    // Rented machines are given back with the agent that rented them (nothing else would stop their bill).
    await this.burst?.stop({ terminate: true }).catch(() => {})
    await this.farm?.stop().catch(() => {})
    this.benchAbort.abort()
    await this.benchDone
    clearInterval(this.loadTimer)
    clearInterval(this.bootstrapTimer)
    clearInterval(this.connectTimer)
    await this.discovery?.stop().catch(() => {})
    for (const res of this.sse) res.end()
    this.sse.clear()
    await new Promise<void>((resolve) => { if (this.api === undefined) resolve(); else this.api.close(() => { resolve() }) })
    await this.node.stop().catch(() => {})
    await rm(path.join(this.opts.stateDir, 'api.json'), { force: true })
    this.store.close()
  }
}

/** A small JSON request body (≤ 4 KiB); on a bad one answers 400 itself and gives undefined. */
async function readJsonBody (req: IncomingMessage, send: (status: number, body: unknown) => void): Promise<{ value: unknown } | undefined> {
  try {
    return { value: JSON.parse(await readBody(req, 4096)) as unknown }
  } catch (err) {
    send(400, { error: 'bad-request', message: `request body: ${(err as Error).message}` })
    return undefined
  }
}

/** Reads a request body of at most maxBytes (else throws). */
function readBody (req: IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > maxBytes) { reject(new Error(`larger than ${maxBytes} bytes`)); req.destroy(); return }
      chunks.push(c)
    })
    req.on('end', () => { resolve(Buffer.concat(chunks).toString('utf8')) })
    req.on('error', reject)
  })
}

async function loadIdentity (store: Store): Promise<PrivateKey> {
  const saved = store.getJson<{ key: string }>('identity')
  if (saved !== undefined) return privateKeyFromProtobuf(Buffer.from(saved.key, 'base64'))
  const key = await generateKeyPair('Ed25519')
  store.setJson('identity', { key: Buffer.from(privateKeyToProtobuf(key)).toString('base64') })
  return key
}

interface FarmRecord { secrets?: unknown; publicKey: string; psk: string; certificate?: MembershipCertificate | undefined; pending?: { token: string; bootstrap: string[] } | undefined }
interface FarmState { publicKey: Uint8Array; psk: Uint8Array; certificate: MembershipCertificate | undefined; secrets?: FarmSecrets | undefined }

function loadOrCreateFarm (store: Store, peerId: string, name: string): FarmState {
  const saved = store.getJson<FarmRecord>('farm')
  if (saved !== undefined) {
    return {
      publicKey: Buffer.from(saved.publicKey, 'base64'), psk: Buffer.from(saved.psk, 'base64'), certificate: saved.certificate,
      secrets: saved.secrets !== undefined ? decodeSecrets(saved.secrets) : undefined
    }
  }
  // No farm yet: a one-machine farm whose key this machine holds.
  const secrets = generateFarmKey()
  const certificate = issueCertificate(secrets, { peerId, name: name.replace(/[^\x20-\x7e]/g, '?').slice(0, 64), issuedAtMs: Date.now() })
  store.setJson('farm', { secrets: encodeSecrets(secrets), publicKey: Buffer.from(secrets.publicKey).toString('base64'), psk: Buffer.from(secrets.psk).toString('base64'), certificate } satisfies FarmRecord)
  return { publicKey: secrets.publicKey, psk: secrets.psk, certificate, secrets }
}

/** On the farm key's machine: an invite is good once, for its farm, before it expires. */
function admitJoin (store: Store, secrets: FarmSecrets, req: JoinRequest): MembershipCertificate {
  const invite = parseInvite(req.token, Date.now())
  if (Buffer.compare(Buffer.from(invite.publicKey), Buffer.from(secrets.publicKey)) !== 0) throw new Error('the invite is for another farm')
  withLedger(store, (ledger) => { ledger.redeem(invite.id, Date.now()) })
  return issueCertificate(secrets, { peerId: req.peerId, name: req.name.replace(/[^\x20-\x7e]/g, '?').slice(0, 64), issuedAtMs: Date.now() })
}

/** Reads, changes and writes the invite ledger in one transaction (the CLI and the agent share the file). */
function withLedger (store: Store, change: (ledger: InviteLedger) => void): void {
  store.transaction(() => {
    const ledger = InviteLedger.fromJSON(store.getJson('invites') ?? { v: 1, invites: [] })
    change(ledger)
    store.setJson('invites', ledger.toJSON())
  })
}

/** `renderswarm farm invite`: a single-use join token through this machine's agent. */
export function makeInvite (stateDir: string, bootstrap: string[], ttlMs: number): { token: string; exp: number; farm: string } {
  const store = Store.open(path.join(stateDir, 'state.db'))
  try {
    const rec = store.getJson<FarmRecord>('farm')
    if (rec?.secrets === undefined) throw new Error(`this machine does not hold the farm key (${stateDir}); make invites on the machine that created the farm`)
    const secrets = decodeSecrets(rec.secrets)
    const { token, inviteId, exp } = createInvite(secrets, { ttlMs, nowMs: Date.now(), bootstrap: bootstrap.slice(0, 8) })
    withLedger(store, (ledger) => { ledger.record(inviteId, exp) })
    return { token, exp, farm: parseInvite(token, Date.now()).farm }
  } finally {
    store.close()
  }
}

/** `renderswarm farm join TOKEN`: remember the farm and the invite; the agent redeems it on start. */
export function acceptInvite (stateDir: string, token: string): { farm: string; replaced?: string | undefined } {
  const invite = parseInvite(token, Date.now())
  const store = Store.open(path.join(stateDir, 'state.db'))
  try {
    const old = store.getJson<FarmRecord>('farm')
    const replaced = old !== undefined ? Buffer.from(old.publicKey, 'base64') : undefined
    store.setJson('farm', { publicKey: Buffer.from(invite.publicKey).toString('base64'), psk: invite.psk, pending: { token, bootstrap: invite.bootstrap } } satisfies FarmRecord)
    return { farm: invite.farm, replaced: replaced !== undefined ? farmId(replaced) : undefined }
  } finally {
    store.close()
  }
}
