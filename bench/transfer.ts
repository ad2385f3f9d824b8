/**
 * Transfer throughput: bytes over the farm's encrypted libp2p streams against raw TCP, on
 * 127.0.0.1, in one process and one run, with variants that remove one layer at a time.
 *
 *   node bin/run-ts.js bench/transfer.ts [--mib 64] [--reps 12] [--file-mib 32] [--quick] [--only REGEX]
 *
 * Rows, each moving --mib MiB in 1 MiB writes (the size agent/transfer.ts reads files in):
 *   raw TCP                 node:net socket pair, write() with backpressure
 *   libp2p rows             TCP + [PSK protector] + Noise + yamux, one layer changed at a time: no PSK /
 *                           @libp2p/pnet (xsalsa20 package) / farmPsk (agent/pnet.ts, SIMD); Noise on the
 *                           library's default crypto / agent/noise-crypto.ts. The [now] row runs twice, as
 *                           two pairs of nodes: the spread between identical rows shows the machine's noise
 *   farm stream             two real FarmNodes (agent/node.ts, as the agent configures them), a member stream
 *   segment upload / asset fetch   agent/transfer.ts end to end (--file-mib file on tmpfs, hashed and written)
 * plus the CPU ceiling of each cipher alone (no I/O). Many short repetitions, interleaved (every
 * row once, then again), so that load drifting on a shared machine hits every row alike; figures
 * are medians (1 MB = 10^6 bytes) with min–max. Sender and receiver
 * share this process's one JS thread, as the raw TCP pair does; the clock runs from the first
 * write to the last byte received. Each row is given twice: wall-clock MB/s, and MB per
 * CPU-second of this process (user + system, same runs), which is what an idle core would do
 * and is steadier than wall clock when others load the machine. Last stdout line: BENCH {json}.
 */
import '../agent/polyfill.ts'
import { createCipheriv, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { noise } from '@chainsafe/libp2p-noise'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Libp2p, Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { AssetCache, sha256File } from '../agent/assets.ts'
import { nativeNoiseCrypto } from '../agent/noise-crypto.ts'
import { farmPsk } from '../agent/pnet.ts'
import { XSalsa20Simd } from '../agent/xsalsa20-simd.ts'
import { FarmNode } from '../agent/node.ts'
import { AssetService, SegmentService } from '../agent/transfer.ts'
import { generateFarmKey, issueCertificate, pskFileContents } from '../protocol/farm-key.ts'

const { values } = parseArgs({ options: { mib: { type: 'string' }, reps: { type: 'string' }, 'file-mib': { type: 'string' }, quick: { type: 'boolean', default: false }, only: { type: 'string' } } })
const ONLY = values.only !== undefined ? new RegExp(values.only, 'i') : undefined
const QUICK = values.quick === true
const MIB = Math.max(8, Math.min(4096, Number(values.mib ?? (QUICK ? 32 : 64))))
const REPS = Math.max(1, Math.min(30, Number(values.reps ?? (QUICK ? 4 : 12))))
const FILE_MIB = Math.max(4, Math.min(2048, Number(values['file-mib'] ?? (QUICK ? 8 : 32))))
const MiB = 1024 * 1024
const BYTES = MIB * MiB
const CHUNK = 1 * MiB
const PROTOCOL = '/renderswarm-bench/bulk/1'
const DEADLINE_MS = QUICK ? 50_000 : 600_000
const started = Date.now()

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2 }
const mbps = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1000)
const payload = randomBytes(CHUNK)

/** Sends `total` bytes as CHUNK writes through `send`, waiting on backpressure; resolves when `received` reports them all. */
async function pump (send: (b: Uint8Array) => boolean, drained: () => Promise<void>, total: number): Promise<void> {
  for (let sent = 0; sent < total; sent += CHUNK) {
    if (!send(payload.subarray(0, Math.min(CHUNK, total - sent)))) await drained()
  }
}

function withTimeout<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([p, new Promise<T>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what}: no end after ${ms} ms`)) }, ms) })]).finally(() => { clearTimeout(timer) })
}

// ---- raw TCP -------------------------------------------------------------------------------
interface Pair { run: (bytes: number) => Promise<number>; close: () => Promise<void> }

async function rawTcp (): Promise<Pair> {
  let onBytes: ((n: number) => void) | undefined
  const server = net.createServer((sock) => { sock.on('data', (d: Buffer) => { onBytes?.(d.length) }) })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  const port = (server.address() as net.AddressInfo).port
  const client = net.connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { client.once('connect', resolve); client.once('error', reject) })
  return {
    async run (bytes) {
      let got = 0
      const done = new Promise<void>((resolve) => { onBytes = (n) => { got += n; if (got >= bytes) resolve() } })
      const t0 = performance.now()
      await pump((b) => client.write(b), async () => { await new Promise<void>((resolve) => client.once('drain', resolve)) }, bytes)
      await withTimeout(done, 120_000, 'raw TCP')
      return performance.now() - t0
    },
    async close () {
      client.destroy()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}

// ---- libp2p streams ------------------------------------------------------------------------
async function drainedStream (stream: Stream): Promise<void> {
  if (!stream.writableNeedsDrain) return
  await new Promise<void>((resolve, reject) => {
    const onDrain = (): void => { stream.removeEventListener('close', onClose); resolve() }
    const onClose = (): void => { stream.removeEventListener('drain', onDrain); reject(new Error('stream closed while sending')) }
    stream.addEventListener('drain', onDrain, { once: true })
    stream.addEventListener('close', onClose, { once: true })
  })
}

/** Receiver side: counts bytes on every inbound stream and reports them to the run in progress. */
function counter (): { handler: (stream: Stream) => void; expect: (bytes: number) => Promise<void> } {
  let onBytes: ((n: number) => void) | undefined
  return {
    handler (stream) {
      stream.maxReadBufferLength = 64 * MiB
      stream.addEventListener('message', (e) => { onBytes?.(e.data.byteLength) })
    },
    async expect (bytes) {
      let got = 0
      await new Promise<void>((resolve) => { onBytes = (n) => { got += n; if (got >= bytes) resolve() } })
    }
  }
}

async function streamRun (open: () => Promise<Stream>, expect: (bytes: number) => Promise<void>, bytes: number): Promise<number> {
  const stream = await open()
  const done = expect(bytes)
  const t0 = performance.now()
  await pump((b) => stream.send(b), async () => { await drainedStream(stream) }, bytes)
  await withTimeout(done, 120_000, 'libp2p stream')
  const ms = performance.now() - t0
  await stream.close().catch(() => { stream.abort(new Error('bench done')) })
  return ms
}

async function libp2pPair (opts: { pnet: 'none' | 'library' | 'simd'; crypto: 'default' | 'native' }): Promise<Pair> {
  const key = randomBytes(32)
  const psk = new TextEncoder().encode(pskFileContents(key))
  const make = async (): Promise<Libp2p> => await createLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [opts.crypto === 'native' ? noise({ crypto: nativeNoiseCrypto }) : noise()],
    streamMuxers: [yamux()],
    ...(opts.pnet === 'library' ? { connectionProtector: preSharedKey({ psk }) } : opts.pnet === 'simd' ? { connectionProtector: farmPsk({ psk: key }) } : {})
  })
  const [a, b] = [await make(), await make()]
  const sink = counter()
  await b.handle(PROTOCOL, (stream) => { sink.handler(stream) })
  const addr = b.getMultiaddrs()[0]!
  return {
    run: async (bytes) => await streamRun(async () => await a.dialProtocol(addr, PROTOCOL), sink.expect, bytes),
    async close () { await Promise.all([a.stop(), b.stop()]) }
  }
}

// ---- two real FarmNodes --------------------------------------------------------------------
interface Farm { a: FarmNode; b: FarmNode; dir: string; close: () => Promise<void> }

async function farmPair (): Promise<Farm> {
  const farm = generateFarmKey()
  const make = async (name: string): Promise<FarmNode> => {
    const privateKey = await generateKeyPair('Ed25519')
    const node = new FarmNode({
      privateKey, name, listen: ['/ip4/127.0.0.1/tcp/0'], heartbeatMs: 1000,
      farm: { publicKey: farm.publicKey, psk: farm.psk },
      certificate: issueCertificate(farm, { peerId: peerIdFromPrivateKey(privateKey).toString(), name, issuedAtMs: Date.now() })
    })
    await node.start()
    return node
  }
  const [a, b] = [await make('sender'), await make('receiver')]
  await a.dial(b.addrs()[0]!)
  for (let i = 0; i < 100 && !(a.isMember(b.peerId.toString()) && b.isMember(a.peerId.toString())); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  if (!a.isMember(b.peerId.toString())) throw new Error('the two farm nodes did not admit each other within 5 s')
  const shm = '/dev/shm'
  const dir = await mkdtemp(path.join((await import('node:fs')).existsSync(shm) ? shm : os.tmpdir(), 'rs-bench-transfer-'))
  return { a, b, dir, async close () { await Promise.all([a.stop(), b.stop()]); await rm(dir, { recursive: true, force: true }) } }
}

async function farmStream (f: Farm): Promise<Pair> {
  const sink = counter()
  await f.b.handleMember(PROTOCOL, async (stream) => { sink.handler(stream) })
  const peer = f.b.peerId.toString()
  return { run: async (bytes) => await streamRun(async () => await f.a.openStream(peer, PROTOCOL), sink.expect, bytes), close: async () => {} }
}

async function segmentUpload (f: Farm, file: string): Promise<Pair> {
  let n = 0
  const segments = new SegmentService(f.b, {
    accept: (h) => ({ path: path.join(f.dir, `seg-${h.chunkId}.bin`) }),
    onSegment: async (_h, stored) => { await rm(stored, { force: true }) }
  })
  await segments.start()
  const sender = new SegmentService(f.a, { accept: () => ({ refuse: 'not-found', message: 'sender' }), onSegment: async () => {} })
  const owner = f.b.peerId.toString()
  return {
    async run () {
      const t0 = performance.now()
      const r = await sender.send(owner, { jobId: 'bench', chunkId: `c${n++}`, index: 0, frames: 1 }, file)
      if (r.result !== 'stored') throw new Error(`segment upload: ${r.result}`)
      return performance.now() - t0
    },
    close: async () => {}
  }
}

async function assetFetch (f: Farm, file: string): Promise<Pair> {
  const holder = new AssetCache(path.join(f.dir, 'holder'))
  const fetcher = new AssetCache(path.join(f.dir, 'fetcher'))
  const sha = await holder.put(file)
  const serving = new AssetService(f.b, holder)
  await serving.start()
  const fetching = new AssetService(f.a, fetcher)
  const from = [f.b.peerId.toString()]
  return {
    async run () {
      await rm(fetcher.pathOf(sha), { force: true })
      await rm(`${fetcher.pathOf(sha)}.ok`, { force: true })
      const t0 = performance.now()
      const got = await fetching.fetch(sha, from)
      const ms = performance.now() - t0
      if (await sha256File(got) !== sha) throw new Error('asset fetch: wrong bytes')
      return ms
    },
    close: async () => {}
  }
}

// ---- cipher ceilings -----------------------------------------------------------------------
/** MB per CPU-second of `update` alone. */
function ceiling (update: (b: Uint8Array) => void, bytes: number): number {
  update(payload)
  const c0 = process.cpuUsage()
  for (let done = 0; done < bytes; done += CHUNK) update(payload)
  const c = process.cpuUsage(c0)
  return mbps(bytes, (c.user + c.system) / 1000)
}

function ceilings (): Record<string, number> {
  const bytes = Math.min(BYTES, 128 * MiB)
  const xsalsa20 = createRequire(import.meta.url)('xsalsa20') as (n: Uint8Array, k: Uint8Array) => { update: (b: Uint8Array) => Uint8Array; finalize: () => void }
  const x = xsalsa20(randomBytes(24), randomBytes(32))
  const key = randomBytes(32)
  const nonce = Buffer.alloc(12)
  const frame = 65535 - 16
  const aead = (b: Uint8Array): void => {
    for (let i = 0; i < b.length; i += frame) {
      const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 })
      c.update(b.subarray(i, i + frame)); c.final(); c.getAuthTag()
    }
  }
  const simd = XSalsa20Simd.create(randomBytes(24), randomBytes(32))
  const out = {
    'pnet XSalsa20 (WebAssembly), 1 MiB updates': ceiling((b) => { x.update(b) }, bytes),
    'farmPsk XSalsa20 (WebAssembly SIMD), 1 MiB updates': simd === undefined ? NaN : ceiling((b) => { simd.update(b) }, bytes),
    'Noise ChaCha20-Poly1305 (node:crypto), 64 KiB frames': ceiling(aead, bytes),
    'memory copy (Buffer.from), 1 MiB': ceiling((b) => { Buffer.from(b) }, bytes)
  }
  x.finalize()
  return out
}

// ---- main ----------------------------------------------------------------------------------
interface Row { key: string; name: string; bytes: number; pair: Pair; ms: number[]; cpuMs: number[] }

async function main (): Promise<void> {
  const farm = await farmPair()
  const file = path.join(farm.dir, 'payload.bin')
  await writeFile(file, randomBytes(FILE_MIB * MiB))
  const rows: Row[] = []
  const add = async (key: string, name: string, bytes: number, pair: () => Promise<Pair>): Promise<void> => {
    if (key === 'tcp' || ONLY === undefined || ONLY.test(key) || ONLY.test(name)) rows.push({ key, name, bytes, pair: await pair(), ms: [], cpuMs: [] })
  }
  await add('tcp', 'raw TCP (node:net)', BYTES, rawTcp)
  await add('bare-default', 'no PSK, Noise default crypto', BYTES, async () => await libp2pPair({ pnet: 'none', crypto: 'default' }))
  await add('bare-native', 'no PSK, Noise native crypto', BYTES, async () => await libp2pPair({ pnet: 'none', crypto: 'native' }))
  await add('pnet-default', '@libp2p/pnet, Noise default crypto [before]', BYTES, async () => await libp2pPair({ pnet: 'library', crypto: 'default' }))
  await add('pnet-native', '@libp2p/pnet, Noise native crypto', BYTES, async () => await libp2pPair({ pnet: 'library', crypto: 'native' }))
  await add('simd-native', 'farmPsk (SIMD), Noise native crypto [now]', BYTES, async () => await libp2pPair({ pnet: 'simd', crypto: 'native' }))
  await add('simd-native-2', 'farmPsk (SIMD), Noise native crypto, again', BYTES, async () => await libp2pPair({ pnet: 'simd', crypto: 'native' }))
  await add('farm', 'farm stream (two FarmNodes, agent/node.ts)', BYTES, async () => await farmStream(farm))
  await add('segment', `segment upload (SegmentService.send, ${FILE_MIB} MiB file)`, FILE_MIB * MiB, async () => await segmentUpload(farm, file))
  await add('asset', `asset fetch (AssetService.fetch, ${FILE_MIB} MiB file)`, FILE_MIB * MiB, async () => await assetFetch(farm, file))

  let repsDone = 0
  for (let rep = 0; rep < REPS; rep++) {
    if (rep > 0 && Date.now() - started > DEADLINE_MS * 0.6) break // --quick stays under its time
    for (const r of rows) {
      const c0 = process.cpuUsage()
      r.ms.push(await r.pair.run(r.bytes))
      const c = process.cpuUsage(c0)
      r.cpuMs.push((c.user + c.system) / 1000)
    }
    repsDone++
  }
  const cpu = ceilings()
  for (const r of rows) await r.pair.close()
  await farm.close()

  const stats = (xs: number[]): { med: number; min: number; max: number } => ({ med: median(xs), min: Math.min(...xs), max: Math.max(...xs) })
  const wall = (r: Row): { med: number; min: number; max: number } => stats(r.ms.map((ms) => mbps(r.bytes, ms)))
  const perCpu = (r: Row): { med: number; min: number; max: number } => stats(r.cpuMs.map((ms) => mbps(r.bytes, ms)))
  const row = (key: string): Row | undefined => rows.find((x) => x.key === key)
  const med = (key: string): number => { const r = row(key); return r === undefined ? NaN : wall(r).med }
  const medCpu = (key: string): number => { const r = row(key); return r === undefined ? NaN : perCpu(r).med }
  const tcp = med('tcp')
  const tcpCpu = medCpu('tcp')
  const range = (f: { min: number; max: number }): string => `${f.min.toFixed(0)}–${f.max.toFixed(0)}`
  console.log(`\nTransfer throughput on 127.0.0.1, sender and receiver in one process (${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, load average ${os.loadavg()[0]!.toFixed(1)})`)
  console.log(`${MIB} MiB per stream row, ${FILE_MIB} MiB per file row, 1 MiB writes, ${repsDone} interleaved repetitions; MB = 10^6 bytes; median (min–max).`)
  console.log('MB/s is wall clock. MB/CPU-s is bytes over this process\'s CPU time (user + system) in the same runs: what one')
  console.log('otherwise idle core would move, and far steadier than wall clock on a shared machine.\n')
  console.log(`${'path (libp2p rows: TCP + PSK + Noise + yamux)'.padEnd(56)} ${'MB/s'.padStart(6)} ${'min–max'.padStart(10)} ${'÷TCP'.padStart(5)} │ ${'MB/CPU-s'.padStart(8)} ${'min–max'.padStart(10)} ${'÷TCP'.padStart(5)}`)
  for (const r of rows) {
    const [w, c] = [wall(r), perCpu(r)]
    console.log(`${r.name.padEnd(56)} ${w.med.toFixed(0).padStart(6)} ${range(w).padStart(10)} ${(w.med / tcp).toFixed(2).padStart(5)} │ ${c.med.toFixed(0).padStart(8)} ${range(c).padStart(10)} ${(c.med / tcpCpu).toFixed(2).padStart(5)}`)
  }
  console.log('\nCPU ceiling of each layer alone (MB per CPU-second, no I/O; a stream pays each cipher twice, once per end):')
  for (const [k, v] of Object.entries(cpu)) console.log(`  ${k.padEnd(60)} ${v.toFixed(0).padStart(7)}`)

  const farmRow = med('farm')
  const farmCpu = medCpu('farm')
  const method = `${MIB} MiB over one stream, 1 MiB writes, sender+receiver in one process on 127.0.0.1, median of ${repsDone} interleaved reps, same run as raw TCP`
  const fileMethod = (what: string): string => `${FILE_MIB} MiB file on tmpfs via ${what}, median of ${repsDone}, same run as raw TCP`
  const r2 = (x: number): string => Number.isFinite(x) ? x.toFixed(2) : 'n/a'
  const r0 = (x: number): string => Number.isFinite(x) ? x.toFixed(0) : 'n/a'
  const bench = {
    script: 'bench/transfer.ts',
    rows: [
      { figure: 'farm stream vs raw TCP (wall MB/s)', value: r2(farmRow / tcp), target: '≥ 0.50', pass: farmRow / tcp >= 0.5, method },
      { figure: 'farm stream vs raw TCP (MB per CPU-second)', value: r2(farmCpu / tcpCpu), target: '≥ 0.50', pass: farmCpu / tcpCpu >= 0.5, method: `${method}; bytes over process CPU time (user+system)` },
      { figure: 'farm stream MB/s', value: r0(farmRow), target: '', pass: null, method },
      { figure: 'raw TCP MB/s', value: r0(tcp), target: '', pass: null, method },
      { figure: 'before (@libp2p/pnet + default Noise) vs raw TCP (MB per CPU-second)', value: r2(medCpu('pnet-default') / tcpCpu), target: '', pass: null, method },
      { figure: 'libp2p without pnet, native Noise, vs raw TCP (MB per CPU-second)', value: r2(medCpu('bare-native') / tcpCpu), target: '', pass: null, method },
      { figure: 'segment upload vs raw TCP (MB per CPU-second)', value: r2(medCpu('segment') / tcpCpu), target: '', pass: null, method: fileMethod('SegmentService.send (hash, send, hash, write)') },
      { figure: 'asset fetch vs raw TCP (MB per CPU-second)', value: r2(medCpu('asset') / tcpCpu), target: '', pass: null, method: fileMethod('AssetService.fetch') },
      { figure: 'pnet XSalsa20 (xsalsa20 package, WebAssembly) MB per CPU-second', value: r0(cpu['pnet XSalsa20 (WebAssembly), 1 MiB updates']!), target: '', pass: null, method: 'one cipher, 1 MiB updates, no I/O' },
      { figure: 'farmPsk XSalsa20 (WebAssembly SIMD) MB per CPU-second', value: r0(cpu['farmPsk XSalsa20 (WebAssembly SIMD), 1 MiB updates']!), target: '', pass: null, method: 'one cipher, 1 MiB updates, no I/O' }
    ]
  }
  console.log(`BENCH ${JSON.stringify(bench)}`)
}

main().then(() => { process.exit(0) }, (err: unknown) => { console.error(err); process.exit(1) })
