/**
 * Farm identity: the farm key pair and PSK, membership certificates, invite tokens and revocations.
 * Pure: no I/O and no clock; everything that needs the time takes `nowMs`.
 *
 *   const farm = generateFarmKey()                        // `farm init`; persist encodeSecrets(farm), pskFileContents(farm.psk)
 *   const { token, inviteId, exp } = createInvite(farm, { ttlMs: 3600_000, nowMs: Date.now(), bootstrap: ['/ip4/10.0.0.2/tcp/4001'] })
 *   ledger.record(inviteId, exp)                          // `farm invite`: the issuer remembers it (InviteLedger)
 *   const invite = parseInvite(token, Date.now())         // joining machine: learns invite.publicKey, bootstrap
 *   ledger.redeem(invite.id, Date.now())                  // issuer, once: a second use throws InviteError('reused')
 *   const cert = issueCertificate(farm, { peerId, issuedAtMs: Date.now() })
 *   verifyCertificate(farm.publicKey, cert, { peerId, nowMs: Date.now(), revoked })   // every member, per connection
 *   const rev = revoke(farm, { peerId, atMs: Date.now() }); verifyRevocation(farm.publicKey, rev)
 *
 * Signatures cover canonical bytes with a per-kind domain line (see canonical.ts), never
 * JSON.stringify of an object. Untrusted input is parsed with zod before anything else; the only
 * errors thrown are the four named classes below. An invite token carries the farm public key, so
 * it is only as trustworthy as the channel it was handed over on (like an SSH host key on first use).
 */
import { createHash } from 'node:crypto'
import nacl from 'tweetnacl'
import { z } from 'zod'
import { bytesEqual, canonicalBytes, canonicalJson, fromBase64, fromBase64Url, toBase64, toBase64Url, toHex } from './canonical.ts'

/** A certificate issued up to this far in the verifier's future still counts as valid (clocks of machines differ). Expiry has no allowance. */
export const CLOCK_SKEW_MS = 5 * 60_000
export const MAX_INVITE_TTL_MS = 30 * 24 * 3600_000
export const MAX_TOKEN_LENGTH = 4096
export const MAX_BOOTSTRAP = 8
export const MAX_MULTIADDR_LENGTH = 256
export const MAX_LEDGER_ENTRIES = 10_000
/** Largest time a Date can hold; all times are integer ms since the epoch in [0, MAX_TIME_MS]. */
export const MAX_TIME_MS = 8_640_000_000_000_000
const TOKEN_PREFIX = 'rsw1'
const DOMAIN = { cert: 'renderswarm/cert/1', invite: 'renderswarm/invite/1', revocation: 'renderswarm/revocation/1' } as const
const CERT_FIELDS = ['v', 'farm', 'peerId', 'name', 'issuedAt', 'expiresAt'] as const
const INVITE_FIELDS = ['v', 'farm', 'id', 'exp', 'bootstrap', 'pub', 'psk'] as const
const REVOCATION_FIELDS = ['v', 'farm', 'peerId', 'at', 'reason'] as const

// Error codes are append-only: callers and logs match on them.
export const FARM_KEY_ERROR_CODES = ['malformed', 'key-mismatch'] as const
export const CERTIFICATE_ERROR_CODES = ['malformed', 'wrong-farm', 'bad-signature', 'wrong-peer', 'expired', 'not-yet-valid', 'revoked'] as const
export const INVITE_ERROR_CODES = ['malformed', 'bad-signature', 'expired', 'reused'] as const
export const REVOCATION_ERROR_CODES = ['malformed', 'wrong-farm', 'bad-signature'] as const
export type FarmKeyErrorCode = typeof FARM_KEY_ERROR_CODES[number]
export type CertificateErrorCode = typeof CERTIFICATE_ERROR_CODES[number]
export type InviteErrorCode = typeof INVITE_ERROR_CODES[number]
export type RevocationErrorCode = typeof REVOCATION_ERROR_CODES[number]

export class FarmKeyError extends Error {
  override readonly name = 'FarmKeyError'
  constructor (readonly code: FarmKeyErrorCode, message: string) { super(message) }
}
export class CertificateError extends Error {
  override readonly name = 'CertificateError'
  constructor (readonly code: CertificateErrorCode, message: string) { super(message) }
}
export class InviteError extends Error {
  override readonly name = 'InviteError'
  constructor (readonly code: InviteErrorCode, message: string) { super(message) }
}
export class RevocationError extends Error {
  override readonly name = 'RevocationError'
  constructor (readonly code: RevocationErrorCode, message: string) { super(message) }
}

export interface FarmSecrets { publicKey: Uint8Array; secretKey: Uint8Array; psk: Uint8Array }

// ---- schemas for untrusted input ----
const b64Bytes = (n: number, what: string) => z.string().refine(
  s => s.length <= 4 * Math.ceil(n / 3) && fromBase64(s)?.length === n, `${what} must be base64 of exactly ${n} bytes`)
const V1 = z.literal(1, { errorMap: () => ({ message: 'unsupported version (expected v: 1)' }) })
const TIME = z.number().int().nonnegative().max(MAX_TIME_MS, 'time is past the year 275760')
const FARM = z.string().regex(/^[0-9a-f]{16}$/, 'farm must be a 16-hex-digit farm id')
const PEER_ID = z.string().min(1).max(128).regex(/^[1-9A-HJ-NP-Za-km-z]+$/, 'peerId must be a base58 libp2p peer id')
const printable = (max: number, what: string) => z.string().min(1).max(max).regex(/^[^\p{C}]+$/u, `${what} must be printable text`)
const SIG = b64Bytes(64, 'sig')
const INVITE_ID = z.string().regex(/^[0-9a-f]{32}$/, 'invite id must be 32 hex digits')
const MULTIADDR = z.string().max(MAX_MULTIADDR_LENGTH).regex(/^\/[\x21\x23-\x5b\x5d-\x7e]*$/, 'bootstrap entries must be multiaddrs like /ip4/10.0.0.2/tcp/4001')

const SecretsSchema = z.object({ v: V1, publicKey: b64Bytes(32, 'publicKey'), secretKey: b64Bytes(64, 'secretKey'), psk: b64Bytes(32, 'psk') }).strict()
const CertFields = z.object({ v: V1, farm: FARM, peerId: PEER_ID, name: printable(64, 'name').optional(), issuedAt: TIME, expiresAt: TIME.optional() }).strict()
const CertSchema = CertFields.extend({ sig: SIG }).strict()
const InvitePayloadSchema = z.object({ v: V1, farm: FARM, id: INVITE_ID, exp: TIME, bootstrap: z.array(MULTIADDR).max(MAX_BOOTSTRAP), pub: b64Bytes(32, 'pub'), psk: b64Bytes(32, 'psk') }).strict()
const RevocationFields = z.object({ v: V1, farm: FARM, peerId: PEER_ID, at: TIME, reason: printable(256, 'reason').optional() }).strict()
const RevocationSchema = RevocationFields.extend({ sig: SIG }).strict()
const LedgerSchema = z.object({ v: V1, invites: z.array(z.object({ id: INVITE_ID, exp: TIME, used: z.boolean() }).strict()).max(MAX_LEDGER_ENTRIES) }).strict()

export type EncodedSecrets = z.infer<typeof SecretsSchema>
export type MembershipCertificate = z.infer<typeof CertSchema>
export type InvitePayload = z.infer<typeof InvitePayloadSchema>
export type ParsedInvite = InvitePayload & { publicKey: Uint8Array }
export type Revocation = z.infer<typeof RevocationSchema>
export type InviteLedgerJson = z.infer<typeof LedgerSchema>

const clip = (s: string): string => (s.length > 200 ? `${s.slice(0, 200)}…` : s)
function parseWith<S extends z.ZodTypeAny> (schema: S, value: unknown, fail: (problem: string) => Error): z.infer<S> {
  const r = schema.safeParse(value)
  if (r.success) return r.data
  const issue = r.error.issues[0]
  throw fail(clip(issue === undefined ? 'invalid' : `${issue.path.length > 0 ? issue.path.join('.') : 'value'}: ${issue.message}`))
}
const isBytes = (b: unknown, n: number): b is Uint8Array => b instanceof Uint8Array && b.length === n
const isTime = (t: unknown): t is number => typeof t === 'number' && Number.isInteger(t) && t >= 0 && t <= MAX_TIME_MS
const omitUndefined = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T

function checkSecrets (s: FarmSecrets): void {
  if (typeof s !== 'object' || s === null || !isBytes(s.publicKey, 32) || !isBytes(s.secretKey, 64) || !isBytes(s.psk, 32)) {
    throw new FarmKeyError('malformed', 'farm secrets need a 32-byte publicKey, a 64-byte secretKey and a 32-byte psk')
  }
  if (!bytesEqual(s.secretKey.subarray(32), s.publicKey)) throw new FarmKeyError('key-mismatch', 'farm secretKey does not belong to publicKey')
}
const signBytes = (s: FarmSecrets, msg: Uint8Array): Uint8Array => nacl.sign.detached(msg, s.secretKey)
function sigValid (publicKey: Uint8Array, msg: Uint8Array, sig: Uint8Array | undefined): boolean {
  return sig !== undefined && sig.length === nacl.sign.signatureLength && nacl.sign.detached.verify(msg, sig, publicKey)
}

// ---- farm key ----
export function generateFarmKey (): FarmSecrets {
  const kp = nacl.sign.keyPair()
  return { publicKey: kp.publicKey, secretKey: kp.secretKey, psk: nacl.randomBytes(32) }
}

/** Public farm id (advertised over mDNS): first 16 hex digits of sha256(publicKey). */
export function farmId (publicKey: Uint8Array): string {
  if (!isBytes(publicKey, 32)) throw new FarmKeyError('malformed', 'farm public key must be 32 bytes')
  return createHash('sha256').update(publicKey).digest('hex').slice(0, 16)
}

export function encodeSecrets (s: FarmSecrets): EncodedSecrets {
  checkSecrets(s)
  return { v: 1, publicKey: toBase64(s.publicKey), secretKey: toBase64(s.secretKey), psk: toBase64(s.psk) }
}

export function decodeSecrets (json: unknown): FarmSecrets {
  const e = parseWith(SecretsSchema, json, p => new FarmKeyError('malformed', `farm secrets: ${p}`))
  const s = { publicKey: fromBase64(e.publicKey), secretKey: fromBase64(e.secretKey), psk: fromBase64(e.psk) } as FarmSecrets
  checkSecrets(s)
  return s
}

/** The swarm key file @libp2p/pnet reads. */
export function pskFileContents (psk: Uint8Array): string {
  if (!isBytes(psk, 32)) throw new FarmKeyError('malformed', 'psk must be 32 bytes')
  return `/key/swarm/psk/1.0.0/\n/base16/\n${toHex(psk)}`
}

// ---- membership certificates ----
export function issueCertificate (secrets: FarmSecrets, o: { peerId: string; name?: string; issuedAtMs: number; expiresAtMs?: number }): MembershipCertificate {
  checkSecrets(secrets)
  const fields = parseWith(CertFields, omitUndefined({ v: 1, farm: farmId(secrets.publicKey), peerId: o.peerId, name: o.name, issuedAt: o.issuedAtMs, expiresAt: o.expiresAtMs }),
    p => new CertificateError('malformed', `cannot issue certificate: ${p}`))
  if (fields.expiresAt !== undefined && fields.expiresAt <= fields.issuedAt) throw new CertificateError('malformed', 'cannot issue certificate: expiresAt must be after issuedAt')
  return { ...fields, sig: toBase64(signBytes(secrets, canonicalBytes(DOMAIN.cert, CERT_FIELDS, fields))) }
}

export function verifyCertificate (publicKey: Uint8Array, cert: unknown, o: { peerId: string; nowMs: number; revoked?: ReadonlySet<string> }): MembershipCertificate {
  if (!isBytes(publicKey, 32)) throw new CertificateError('malformed', 'farm public key must be 32 bytes')
  if (typeof o?.nowMs !== 'number' || !Number.isFinite(o.nowMs)) throw new CertificateError('malformed', 'nowMs must be a finite number')
  const c = parseWith(CertSchema, cert, p => new CertificateError('malformed', `malformed certificate: ${p}`))
  const farm = farmId(publicKey)
  if (c.farm !== farm) throw new CertificateError('wrong-farm', `certificate is for farm ${c.farm}, not this farm ${farm}`)
  const { sig, ...fields } = c
  if (!sigValid(publicKey, canonicalBytes(DOMAIN.cert, CERT_FIELDS, fields), fromBase64(sig))) throw new CertificateError('bad-signature', `certificate for ${c.peerId} is not signed by farm ${farm}`)
  if (c.peerId !== o.peerId) throw new CertificateError('wrong-peer', `certificate is for peer ${c.peerId}, but the connection is from ${clip(String(o.peerId))}`)
  if (o.revoked?.has(c.peerId) === true) throw new CertificateError('revoked', `peer ${c.peerId} has been revoked from farm ${farm}`)
  if (c.issuedAt > o.nowMs + CLOCK_SKEW_MS) throw new CertificateError('not-yet-valid', `certificate for ${c.peerId} is issued in the future (${new Date(c.issuedAt).toISOString()}); check this machine's clock`)
  if (c.expiresAt !== undefined && o.nowMs >= c.expiresAt) throw new CertificateError('expired', `certificate for ${c.peerId} expired at ${new Date(c.expiresAt).toISOString()}`)
  return c
}

// ---- invite tokens ----
// A token carries the farm's pre-shared key (a machine cannot reach any member without it), so
// the token itself is a secret: single use, short-lived, handed over like a password.
export function createInvite (secrets: FarmSecrets, o: { ttlMs: number; nowMs: number; bootstrap: string[] }): { token: string; inviteId: string; exp: number } {
  checkSecrets(secrets)
  if (!isTime(o.ttlMs) || o.ttlMs < 1 || o.ttlMs > MAX_INVITE_TTL_MS) throw new InviteError('malformed', `invite ttl must be 1 ms to ${MAX_INVITE_TTL_MS / 86_400_000} days`)
  if (!isTime(o.nowMs)) throw new InviteError('malformed', 'nowMs must be a non-negative integer')
  const payload = parseWith(InvitePayloadSchema, { v: 1, farm: farmId(secrets.publicKey), id: toHex(nacl.randomBytes(16)), exp: o.nowMs + o.ttlMs, bootstrap: o.bootstrap, pub: toBase64(secrets.publicKey), psk: toBase64(secrets.psk) },
    p => new InviteError('malformed', `cannot create invite: ${p}`))
  const sig = signBytes(secrets, canonicalBytes(DOMAIN.invite, INVITE_FIELDS, payload))
  const body = toBase64Url(new TextEncoder().encode(canonicalJson(INVITE_FIELDS, payload)))
  return { token: `${TOKEN_PREFIX}.${body}.${toBase64Url(sig)}`, inviteId: payload.id, exp: payload.exp }
}

/** Checks an invite token's form, signature (by the key inside it) and expiry. Single use is the issuer's InviteLedger's job. */
export function parseInvite (token: unknown, nowMs: number): ParsedInvite {
  const bad = (problem: string): InviteError => new InviteError('malformed', `malformed invite token: ${problem}`)
  if (typeof nowMs !== 'number' || !Number.isFinite(nowMs)) throw new InviteError('malformed', 'nowMs must be a finite number')
  if (typeof token !== 'string') throw bad('not a string')
  if (token.length > MAX_TOKEN_LENGTH) throw bad(`longer than ${MAX_TOKEN_LENGTH} characters`)
  const parts = token.trim().split('.')
  if (parts.length !== 3 || parts[0] !== TOKEN_PREFIX) throw bad(`expected ${TOKEN_PREFIX}.<payload>.<signature>`)
  const body = fromBase64Url(parts[1] ?? '')
  const sig = fromBase64Url(parts[2] ?? '')
  if (body === undefined || sig === undefined || sig.length !== nacl.sign.signatureLength) throw bad('payload or signature is not base64url (truncated?)')
  let json: unknown
  try { json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)) } catch { throw bad('payload is not JSON') }
  const p = parseWith(InvitePayloadSchema, json, bad)
  const publicKey = fromBase64(p.pub) as Uint8Array
  if (farmId(publicKey) !== p.farm) throw bad('farm id does not match the farm key it carries')
  const prefix = new TextEncoder().encode(`${DOMAIN.invite}\n`)
  const msg = new Uint8Array(prefix.length + body.length)
  msg.set(prefix); msg.set(body, prefix.length)
  if (!sigValid(publicKey, msg, sig)) throw new InviteError('bad-signature', `invite token is not signed by farm ${p.farm} (altered or spliced)`)
  if (nowMs >= p.exp) throw new InviteError('expired', `invite expired at ${new Date(p.exp).toISOString()}; ask for a new one`)
  return { ...p, publicKey }
}

/**
 * The issuer's record of invites it has handed out, so each is redeemed once. Pure state: persist
 * `toJSON()` and restore with `InviteLedger.fromJSON`. Entries past their expiry are pruned on
 * `redeem`/`prune`; a pruned invite then reads as unknown ('malformed'), which still refuses it.
 */
export class InviteLedger {
  readonly #entries = new Map<string, { exp: number; used: boolean }>()

  get size (): number { return this.#entries.size }

  /** Remembers an invite; recording one already known changes nothing (never un-uses it). */
  record (inviteId: string, exp: number): void {
    if (!INVITE_ID.safeParse(inviteId).success || !isTime(exp)) throw new InviteError('malformed', 'record needs a 32-hex-digit invite id and an integer expiry')
    if (this.#entries.has(inviteId)) return
    if (this.#entries.size >= MAX_LEDGER_ENTRIES) throw new InviteError('malformed', `more than ${MAX_LEDGER_ENTRIES} outstanding invites; prune(nowMs) first`)
    this.#entries.set(inviteId, { exp, used: false })
  }

  redeem (inviteId: string, nowMs: number): void {
    if (typeof nowMs !== 'number' || !Number.isFinite(nowMs)) throw new InviteError('malformed', 'nowMs must be a finite number')
    const e = typeof inviteId === 'string' ? this.#entries.get(inviteId) : undefined
    this.prune(nowMs)
    if (e === undefined) throw new InviteError('malformed', 'unknown invite: not issued by this farm, or long expired')
    if (e.used) throw new InviteError('reused', 'invite has already been used; ask for a new one')
    if (nowMs >= e.exp) throw new InviteError('expired', `invite expired at ${new Date(e.exp).toISOString()}; ask for a new one`)
    e.used = true
  }

  prune (nowMs: number): void {
    for (const [id, e] of this.#entries) if (nowMs >= e.exp) this.#entries.delete(id)
  }

  toJSON (): InviteLedgerJson {
    return { v: 1, invites: [...this.#entries].map(([id, e]) => ({ id, exp: e.exp, used: e.used })) }
  }

  static fromJSON (json: unknown): InviteLedger {
    const j = parseWith(LedgerSchema, json, p => new InviteError('malformed', `invite ledger: ${p}`))
    const l = new InviteLedger()
    for (const e of j.invites) {
      if (l.#entries.has(e.id)) throw new InviteError('malformed', `invite ledger: duplicate invite ${e.id}`)
      l.#entries.set(e.id, { exp: e.exp, used: e.used })
    }
    return l
  }
}

// ---- revocations ----
export function revoke (secrets: FarmSecrets, o: { peerId: string; atMs: number; reason?: string }): Revocation {
  checkSecrets(secrets)
  const fields = parseWith(RevocationFields, omitUndefined({ v: 1, farm: farmId(secrets.publicKey), peerId: o.peerId, at: o.atMs, reason: o.reason }),
    p => new RevocationError('malformed', `cannot revoke: ${p}`))
  return { ...fields, sig: toBase64(signBytes(secrets, canonicalBytes(DOMAIN.revocation, REVOCATION_FIELDS, fields))) }
}

export function verifyRevocation (publicKey: Uint8Array, revocation: unknown): Revocation {
  if (!isBytes(publicKey, 32)) throw new RevocationError('malformed', 'farm public key must be 32 bytes')
  const r = parseWith(RevocationSchema, revocation, p => new RevocationError('malformed', `malformed revocation: ${p}`))
  const farm = farmId(publicKey)
  if (r.farm !== farm) throw new RevocationError('wrong-farm', `revocation is for farm ${r.farm}, not this farm ${farm}`)
  const { sig, ...fields } = r
  if (!sigValid(publicKey, canonicalBytes(DOMAIN.revocation, REVOCATION_FIELDS, fields), fromBase64(sig))) throw new RevocationError('bad-signature', `revocation of ${r.peerId} is not signed by farm ${farm}`)
  return r
}
