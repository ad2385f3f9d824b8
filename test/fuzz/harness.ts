/**
 * Fuzz targets: every decoder that reads input from a peer, an editor or a file, each with a
 * fast-check generator and the one error class it may throw. Shared by the short in-suite run
 * (test/fuzz/decoders.test.ts) and the long run (bench/fuzz.ts, `npm run fuzz -- --minutes N`).
 *
 *   for (const t of TARGETS) fc.assert(fc.property(t.input, (x) => { checkCase(t, x) }), { numRuns: 2000 })
 *
 * A case passes when the decoder returns, or throws its expected error class with a short,
 * non-empty message, within CASE_TIME_LIMIT_MS (FuzzHang otherwise). Anything else (a TypeError, a RangeError from a
 * blown stack, a slow case) is a crash. Inputs: random JSON and bytes, and valid seed messages
 * mutated at a random place: wrong types, huge and odd numbers, paths and URLs, filter
 * injection, unicode and NUL, deep nesting, missing and unknown fields, truncation, huge arrays.
 */
import fc from 'fast-check'
import type { z } from 'zod'
import { WireError, fromWire } from '../../protocol/errors.ts'
import { CertificateError, createInvite, decodeSecrets, encodeSecrets, FarmKeyError, generateFarmKey, InviteError, issueCertificate, parseInvite, revoke, RevocationError, verifyCertificate, verifyRevocation } from '../../protocol/farm-key.ts'
import { decodeJson, encodeFrame, encodeVarint, FrameDecoder } from '../../protocol/framing.ts'
import { MAX_FRAME_BYTES } from '../../protocol/ids.ts'
import { importOtio } from '../../protocol/otio.ts'
import { parseSnapshot, parseTimelineFile, TimelineError } from '../../protocol/timeline.ts'
import { AckSchema, CoordinatorRequestSchema, ElectionMessageSchema, LeaseReplySchema, StatusPushSchema, SubmitReplySchema, VoteReplySchema, WorkerRequestSchema } from '../../protocol/messages/jobs.ts'
import { HeartbeatSchema, JoinReplySchema, JoinRequestSchema, MembershipMessageSchema, parseTxt } from '../../protocol/messages/membership.ts'
import { AssetReplySchema, AssetRequestSchema, SegmentHeaderSchema, SegmentReplySchema } from '../../protocol/messages/transfer.ts'

/**
 * One case taking longer than this is a hang. Generous: the machine running the tests may be
 * loaded many times over; the long run (bench/fuzz.ts) reports every case over 1 s as slow.
 */
export const CASE_TIME_LIMIT_MS = 10_000
/** Longest error message a decoder may produce (clear means short, too). */
export const MAX_MESSAGE = 2000

export interface Target {
  name: string
  input: fc.Arbitrary<unknown>
  run: (input: unknown) => unknown
  /** The error classes the decoder may throw. */
  expected: Array<new (...args: never[]) => Error>
  /** Relative cost of a case (signature checks are ~20× a schema check); the in-suite run gives such a target fewer cases. */
  cost?: number
}

export class FuzzCrash extends Error {
  override readonly name = 'FuzzCrash'
}

/** A case over the time limit (a hang, or a machine too loaded to tell). */
export class FuzzHang extends FuzzCrash {}

/** Runs one case; throws FuzzCrash when the decoder crashed, hung or gave an unclear error. */
export function checkCase (t: Target, input: unknown, limitMs = CASE_TIME_LIMIT_MS): void {
  const began = performance.now()
  try {
    t.run(input)
  } catch (err) {
    if (!t.expected.some((cls) => err instanceof cls)) throw new FuzzCrash(`${t.name}: unexpected ${(err as Error)?.name ?? typeof err}: ${String((err as Error)?.message ?? err).slice(0, 300)}`, { cause: err })
    const msg = (err as Error).message
    if (msg.length === 0 || msg.length > MAX_MESSAGE) throw new FuzzCrash(`${t.name}: error message of ${msg.length} characters`)
  }
  const ms = performance.now() - began
  if (ms > limitMs) throw new FuzzHang(`${t.name}: one case took ${Math.round(ms)} ms`)
}

// ---- seeds: one valid example of each message ------------------------------------------

const SHA = 'ab'.repeat(32)
const SHA2 = 'cd'.repeat(32)
const PEER = '12D3KooWDRt1LLtoiW3sf63xyb1jHD5zT8nLK8EAofAjTiRHU2z1'
const PEER2 = '12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq'

export const SNAPSHOT = {
  schema: 'farm.timeline/1', name: 'cut', fps: { num: 25, den: 1 }, width: 1280, height: 720, sampleRate: 48000, duration: 100,
  video: [
    { clips: [{ id: 'bg', type: 'color', color: '#304050', start: 0, length: 100 }] },
    {
      clips: [
        { id: 'm1', type: 'media', asset: SHA, srcIn: 0, start: 0, length: 50, opacity: 1, fit: 'cover', fadeIn: 5, fx: [{ k: 'eq', brightness: 0.1 }, { k: 'lut3d', lut: SHA2 }, { k: 'hue', deg: 30 }] },
        { id: 'm2', type: 'media', asset: SHA, srcIn: 10, start: 40, length: 60, speed: 1.5, x: 10, y: -10, scale: 0.5 }
      ],
      transitions: [{ a: 'm1', b: 'm2', kind: 'dissolve' }]
    },
    { clips: [{ id: 't', type: 'text', text: 'Hello\nworld', font: SHA2, size: 48, color: '#ffffffcc', x: 10, y: 10, start: 0, length: 100 }] }
  ],
  audio: [{ clips: [{ id: 'a1', type: 'media', asset: SHA, start: 0, length: 100, volume: 1 }], volume: 0.8 }]
}

const retarget = (v: unknown, map: Record<string, string>): unknown => JSON.parse(JSON.stringify(v).replace(/[0-9a-f]{64}/g, (s) => map[s] ?? s))
export const TIMELINE_FILE = {
  ...(retarget(SNAPSHOT, { [SHA]: 'clip.mov', [SHA2]: 'font.ttf' }) as object),
  assets: { 'clip.mov': { path: '/media/clip.mov' }, 'font.ttf': { path: 'fonts/font.ttf', sha256: SHA2 } }
}

const rt = (value: number, rate = 25): Record<string, unknown> => ({ OTIO_SCHEMA: 'RationalTime.1', value, rate })
const range = (start: number, dur: number): Record<string, unknown> => ({ OTIO_SCHEMA: 'TimeRange.1', start_time: rt(start), duration: rt(dur) })
const otioClip = (name: string, url: string, start: number, dur: number): Record<string, unknown> => ({
  OTIO_SCHEMA: 'Clip.2', name, source_range: range(start, dur), effects: [], markers: [], enabled: true,
  media_references: { DEFAULT_MEDIA: { OTIO_SCHEMA: 'ExternalReference.1', target_url: url, available_range: range(0, 500) } }, active_media_reference_key: 'DEFAULT_MEDIA'
})
export const OTIO = {
  OTIO_SCHEMA: 'Timeline.1', name: 'edit', global_start_time: rt(0),
  tracks: {
    OTIO_SCHEMA: 'Stack.1', children: [
      { OTIO_SCHEMA: 'Track.1', kind: 'Video', children: [
        otioClip('a', 'file:///media/a.mov', 10, 50),
        { OTIO_SCHEMA: 'Transition.1', transition_type: 'SMPTE_Dissolve', in_offset: rt(5), out_offset: rt(5) },
        { ...otioClip('b', '/media/b.mov', 20, 40), effects: [{ OTIO_SCHEMA: 'LinearTimeWarp.1', time_scalar: 2 }] },
        { OTIO_SCHEMA: 'Gap.1', source_range: range(0, 10) },
        otioClip('c', 'C:\\media\\c.mov', 0, 20)
      ] },
      { OTIO_SCHEMA: 'Track.1', kind: 'Audio', children: [otioClip('music', 'file:///media/music.wav', 0, 100)] }
    ]
  }
}

const JOB = { id: 'job-1', owner: PEER, name: 'cut', user: 'ed', preset: 'ffv1', priority: 'normal', createdMs: 1_700_000_000_000, timeline: SNAPSHOT, media: { [SHA]: { video: { width: 1280, height: 720, fps: { num: 25, den: 1 }, frames: 500 } } }, assets: [{ sha256: SHA, size: 1000 }, { sha256: SHA2, size: 10 }] }
const LEASE = { jobId: 'job-1', chunkId: 'c-0', index: 0, start: 0, end: 50, term: 3, leaseToken: 'tok-1', expiresAt: 1_700_000_060_000 }
const RECORD = { spec: JOB, status: 'running', chunks: [{ id: 'c-0', index: 0, start: 0, end: 50, status: 'leased', node: PEER2, attempts: 1, framesDone: 10, errors: ['n: x'] }], framesDone: 10, fps: 5, actualCost: 0, updatedMs: 1_700_000_000_500 }
const INFO = { cpu: { model: 'x', cores: 8 }, memBytes: 8e9, gpus: [{ model: 'g', vramBytes: 1e9 }], os: 'linux', ffmpeg: { version: '5.1', encoders: ['libx264', 'ffv1'] }, bench: { ffv1: 12.5 }, slots: 2, location: 'lan' }
const HELLO = { type: 'hello', v: 1, peerId: PEER, farm: '0123456789abcdef', name: 'alpha', cert: { v: 1, sig: 'x' }, protocolMajor: 1, addrs: ['/ip4/127.0.0.1/tcp/4001'], info: INFO, peers: [{ peerId: PEER2, addrs: ['/ip4/127.0.0.1/tcp/4002'] }] }
const HEARTBEAT = { type: 'heartbeat', peerId: PEER, seq: 3, sentAt: 1_700_000_000_000, incarnation: 0, load: { cpuPct: 12.5, memUsedBytes: 1e9, memTotalBytes: 8e9, runningChunks: 1 }, accepting: true, state: 'rendering' }

// ---- mutation ----------------------------------------------------------------------------

const NASTY: unknown[] = [
  null, true, 0, -0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 1, 1e9, 1e5, 4294967296, '', ' ', '\u0000', 'a\u0000b', '\ud800', '\uffff', '💥'.repeat(100), 'é́́́',
  '../../../etc/passwd', '/etc/passwd', 'C:\\Windows\\win.ini', '~/.ssh/id_ed25519', 'file:///etc/passwd', 'http://127.0.0.1:9/x', 'https://example.invalid/a.mov',
  "movie=/etc/passwd[x];[x]overlay", 'amovie=/dev/zero', "subtitles=/etc/passwd", "x',drawtext=textfile=/etc/passwd:text='", "a;b[c]d,e:f\\g'h", '#ffffff;movie=x', 'ffv1 -i /etc/passwd',
  'sendcmd=f=/tmp/x', 'zmq', '%{pts}', '$(reboot)', '`id`', '\r\n', 'A'.repeat(5000), [], {}, [[[[[[[[]]]]]]]], { __proto__: { polluted: 1 } }, { constructor: { prototype: { x: 1 } } }
]
const nasty: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NASTY) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }) },
  { weight: 2, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) }
)

type Op = { at: number; kind: 'replace' | 'delete' | 'add' | 'nest' | 'repeat' | 'proto'; value: unknown; n: number }
const op: fc.Arbitrary<Op> = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom('replace', 'replace', 'replace', 'delete', 'add', 'nest', 'repeat', 'proto'),
  value: nasty,
  // Huge copies are rare: each costs milliseconds to build and encode.
  n: fc.oneof({ weight: 20, arbitrary: fc.constantFrom(2, 3, 100) }, { weight: 1, arbitrary: fc.constantFrom(2001, 100_000) })
}) as fc.Arbitrary<Op>

/** [container, key] pairs of a JSON value, breadth first, to depth 64 and at most 20000 (iterative: values may be deeply nested). */
function slots (root: unknown): Array<[Record<string, unknown> | unknown[], string | number]> {
  const out: Array<[Record<string, unknown> | unknown[], string | number]> = []
  let level: unknown[] = [root]
  for (let depth = 0; depth < 64 && level.length > 0 && out.length < 20_000; depth++) {
    const next: unknown[] = []
    for (const v of level) {
      if (Array.isArray(v)) v.forEach((x, i) => { out.push([v, i]); next.push(x) })
      else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) { out.push([v as Record<string, unknown>, k]); next.push(x) }
      if (out.length >= 20_000) break
    }
    level = next
  }
  return out
}

/** Applies ops to a deep copy of seed. */
export function mutate (seed: unknown, ops: Op[]): unknown {
  const root = { v: structuredClone(seed) as unknown }
  let repeated = false
  for (const op of ops) {
    // A copy of the value: generated values (and the NASTY constants) are shared between cases.
    const o = { ...op, value: structuredClone(op.value) }
    const all = slots(root.v)
    if (all.length === 0) { root.v = o.value; continue }
    const [parent, key] = all[o.at % all.length]!
    const p = parent as Record<string | number, unknown>
    switch (o.kind) {
      case 'replace': p[key] = o.value; break
      case 'delete': if (Array.isArray(parent)) parent.splice(key as number, 1); else delete p[key]; break
      case 'add': if (Array.isArray(parent)) parent.push(o.value); else p[`x${o.at % 7}`] = o.value; break
      case 'nest': { let x: unknown = p[key]; for (let i = 0; i < Math.min(o.n, 1000); i++) x = i % 2 === 0 ? [x] : { k: x }; p[key] = x; break }
      case 'repeat': {
        // One repeat per case, and at most ~2 MB of JSON: 10^5 copies of a small item, fewer of a big one.
        if (repeated) break
        repeated = true
        const item = p[key]
        const n = Math.max(1, Math.min(o.n, Math.floor(2e6 / ((JSON.stringify(item) ?? '').length + 1))))
        if (Array.isArray(parent)) for (let i = 0; i < n; i++) parent.push(item)
        else p[key] = Array.from({ length: n }, () => item)
        break
      }
      case 'proto': Object.defineProperty(p, '__proto__', { value: o.value, enumerable: true, configurable: true, writable: true }); break
    }
  }
  return root.v
}

/** Random JSON, or a seed mutated 1–4 times. */
function objects (...seeds: unknown[]): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
    { weight: 1, arbitrary: nasty },
    { weight: 6, arbitrary: fc.tuple(fc.constantFrom(...seeds), fc.array(op, { minLength: 1, maxLength: 4 })).map(([s, ops]) => mutate(s, ops)) },
    { weight: 1, arbitrary: fc.constantFrom(...seeds) }
  )
}

const enc = new TextEncoder()
/** Encoded bytes of objects(seeds), sometimes truncated, bit-flipped or spliced with random bytes; or raw bytes. */
function frames (...seeds: unknown[]): fc.Arbitrary<Uint8Array> {
  const json = objects(...seeds).map((v) => enc.encode(JSON.stringify(v) ?? 'undefined'))
  return fc.oneof(
    { weight: 5, arbitrary: json },
    { weight: 2, arbitrary: fc.tuple(json, fc.nat(), fc.nat(255)).map(([b, at, x]) => { const c = b.slice(); if (c.length > 0) c[at % c.length] = c[at % c.length]! ^ (x || 1); return c }) },
    { weight: 2, arbitrary: fc.tuple(json, fc.nat()).map(([b, at]) => b.slice(0, b.length === 0 ? 0 : at % b.length)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }) },
    { weight: 1, arbitrary: fc.constantFrom(enc.encode('['.repeat(100_000)), enc.encode('{"a":'.repeat(50_000)), enc.encode(`"${'\\u0000'.repeat(10_000)}"`), enc.encode('1'.repeat(400) + 'e999'), new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d]), new Uint8Array([0xc0, 0x80])) }
  )
}

/** As on the wire: the bytes behind a length prefix, through a FrameDecoder with the protocol's cap, then decodeJson. */
function wire<S extends z.ZodTypeAny> (name: string, cap: number, schema: S, ...seeds: unknown[]): Target {
  return {
    name,
    input: frames(...seeds),
    run: (b) => {
      const bytes = b as Uint8Array
      const prefix = encodeVarint(bytes.length)
      const stream = new Uint8Array(prefix.length + bytes.length)
      stream.set(prefix)
      stream.set(bytes, prefix.length)
      const decoder = new FrameDecoder(cap)
      for (const f of decoder.push(stream)) decodeJson(f, schema)
      decoder.end()
    },
    expected: [WireError]
  }
}

// ---- targets -----------------------------------------------------------------------------

const farm = generateFarmKey()
const NOW = 1_700_000_000_000
const invite = createInvite(farm, { ttlMs: 3_600_000, nowMs: NOW, bootstrap: ['/ip4/127.0.0.1/tcp/4001'] }).token
const cert = issueCertificate(farm, { peerId: PEER, name: 'alpha', issuedAtMs: NOW })
const revocation = revoke(farm, { peerId: PEER2, atMs: NOW, reason: 'stolen laptop' })

/** A string seed mutated at the character level: cut, a character changed, inserted or removed, or doubled. */
function strings (seed: string): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.tuple(fc.nat(), fc.nat(), fc.constantFrom('cut', 'flip', 'insert', 'drop', 'double'), fc.string({ unit: 'binary', minLength: 1, maxLength: 3 })).map(([at, x, kind, s]) => {
      const i = at % seed.length
      switch (kind) {
        case 'cut': return seed.slice(0, i)
        case 'flip': return seed.slice(0, i) + String.fromCharCode((seed.charCodeAt(i) + 1 + (x % 80)) % 0x10000) + seed.slice(i + 1)
        case 'insert': return seed.slice(0, i) + s + seed.slice(i)
        case 'drop': return seed.slice(0, i) + seed.slice(i + 1)
        default: return seed + seed
      }
    }) },
    { weight: 1, arbitrary: nasty },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }) }
  )
}

export const TARGETS: Target[] = [
  {
    name: 'framing',
    input: fc.record({ cap: fc.constantFrom(0, 1, 16, 1024, 65536), chunks: fc.array(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80]), new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]), new Uint8Array([0x80, 0x00]), encodeFrame(enc.encode('{}'), 16))), { maxLength: 20 }) }),
    run: (x) => {
      const { cap, chunks } = x as { cap: number; chunks: Uint8Array[] }
      const d = new FrameDecoder(cap)
      for (const c of chunks) {
        for (const f of d.push(c)) if (f.length > cap) throw new Error(`frame of ${f.length} bytes over the ${cap}-byte cap`)
        if (d.buffered > cap + 5) throw new Error(`decoder holds ${d.buffered} bytes, over cap + 5`)
      }
      d.end()
    },
    expected: [WireError]
  },
  { name: 'error-frame', input: objects({ code: 'stale-term', message: 'term 3 is older than 4' }, { code: 'future-code', message: 'x' }), run: (v) => fromWire(v), expected: [WireError] },
  wire('membership', MAX_FRAME_BYTES.membership, MembershipMessageSchema, HELLO, HEARTBEAT, { type: 'node-info', peerId: PEER, info: INFO }, { type: 'revoke', revocation: { v: 1 } }),
  wire('heartbeat', MAX_FRAME_BYTES.heartbeat, HeartbeatSchema, HEARTBEAT),
  wire('join-request', MAX_FRAME_BYTES.join, JoinRequestSchema, { type: 'join', token: 'rsw1.abc', peerId: PEER, name: 'beta' }),
  wire('join-reply', MAX_FRAME_BYTES.join, JoinReplySchema, { type: 'joined', cert: { v: 1 } }, { type: 'refused', code: 'invite:reused', message: 'invite has already been used' }),
  wire('coordinator-request', MAX_FRAME_BYTES.submit, CoordinatorRequestSchema, { type: 'submit', job: JOB }, { type: 'chunk-done', term: 3, jobId: 'job-1', chunkId: 'c-0', leaseToken: 'tok-1', sha256: SHA, frames: 50 }, { type: 'segments', jobId: 'job-1', chunks: [{ chunkId: 'c-0', sha256: SHA }], missing: ['c-1'] }, { type: 'pause', peerId: PEER, paused: true }),
  wire('worker-request', MAX_FRAME_BYTES.chunk, WorkerRequestSchema, { type: 'lease', lease: LEASE }, { type: 'cancel-chunks', term: 3, jobId: 'job-1', chunkIds: ['c-0'] }),
  wire('status-push', MAX_FRAME_BYTES.status, StatusPushSchema, { type: 'job', term: 3, record: RECORD }, { type: 'progress', term: 3, jobId: 'job-1', framesDone: 10, frames: 100, fps: 5, chunks: [{ id: 'c-0', status: 'leased', node: PEER, framesDone: 10 }] }),
  wire('election', MAX_FRAME_BYTES.election, ElectionMessageSchema, { type: 'vote', term: 4, candidate: PEER }, { type: 'leader', term: 4, leader: PEER2 }),
  wire('replies', MAX_FRAME_BYTES.submit, SubmitReplySchema.or(VoteReplySchema).or(LeaseReplySchema).or(AckSchema), { record: RECORD }, { granted: true, term: 4 }, { accepted: false, reason: 'busy' }, { ok: true }),
  wire('asset', MAX_FRAME_BYTES.asset, AssetRequestSchema.or(AssetReplySchema), { type: 'get', sha256: SHA }, { type: 'asset', sha256: SHA, size: 1234 }, { type: 'error', code: 'not-found', message: 'no such asset' }),
  wire('segment', MAX_FRAME_BYTES.segment, SegmentHeaderSchema.or(SegmentReplySchema), { type: 'segment', jobId: 'job-1', chunkId: 'c-0', index: 0, sha256: SHA, size: 1e6, frames: 50 }, { type: 'refused', reason: 'duplicate', message: 'have it' }, { type: 'stored', sha256: SHA }),
  { name: 'mdns-txt', input: fc.oneof(objects({ farm: '0123456789abcdef', peer: PEER, addrs: '/ip4/10.0.0.2/tcp/4001,/ip6/::1/tcp/4001', v: '1', score: '41.5', gpu: 'RTX 4090' }), fc.dictionary(fc.constantFrom('farm', 'peer', 'addrs', 'v', 'score', 'gpu', 'x'), fc.oneof(fc.string(), fc.uint8Array({ maxLength: 3000 })))), run: (v) => parseTxt(v as Record<string, unknown>), expected: [WireError] },
  { name: 'timeline-snapshot', input: objects(SNAPSHOT), run: (v) => parseSnapshot(v), expected: [TimelineError] },
  { name: 'timeline-file', input: objects(TIMELINE_FILE), run: (v) => parseTimelineFile(v), expected: [TimelineError] },
  { name: 'otio', input: objects(OTIO), run: (v) => importOtio(v), expected: [TimelineError] },
  { name: 'invite', input: strings(invite), run: (v) => parseInvite(v, NOW), expected: [InviteError] },
  { name: 'certificate', input: objects(cert), run: (v) => verifyCertificate(farm.publicKey, v, { peerId: PEER, nowMs: NOW }), expected: [CertificateError], cost: 2 },
  { name: 'revocation', input: objects(revocation), run: (v) => verifyRevocation(farm.publicKey, v), expected: [RevocationError], cost: 2 },
  { name: 'farm-secrets', input: objects(encodeSecrets(farm)), run: (v) => decodeSecrets(v), expected: [FarmKeyError] }
]

/** Each seed is valid: a mutation starts from something the decoder accepts, so it reaches deep. */
export function checkSeeds (): void {
  parseSnapshot(SNAPSHOT)
  parseTimelineFile(TIMELINE_FILE)
  importOtio(OTIO)
  parseInvite(invite, NOW)
  verifyCertificate(farm.publicKey, cert, { peerId: PEER, nowMs: NOW })
  verifyRevocation(farm.publicKey, revocation)
  decodeJson(enc.encode(JSON.stringify(HELLO)), MembershipMessageSchema)
  decodeJson(enc.encode(JSON.stringify(HEARTBEAT)), HeartbeatSchema)
  decodeJson(enc.encode(JSON.stringify({ type: 'submit', job: JOB })), CoordinatorRequestSchema)
  decodeJson(enc.encode(JSON.stringify({ type: 'job', term: 3, record: RECORD })), StatusPushSchema)
  decodeJson(enc.encode(JSON.stringify({ type: 'lease', lease: LEASE })), WorkerRequestSchema)
}
