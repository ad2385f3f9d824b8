import { describe, expect, it } from 'vitest'
import nacl from 'tweetnacl'
import { canonicalBytes, canonicalJson, fromBase64, fromBase64Url, toBase64, toBase64Url } from '../../protocol/canonical.ts'
import {
  CertificateError, CLOCK_SKEW_MS, createInvite, decodeSecrets, encodeSecrets, FarmKeyError, farmId, generateFarmKey, InviteError,
  InviteLedger, issueCertificate, MAX_BOOTSTRAP, MAX_TOKEN_LENGTH, parseInvite, pskFileContents, revoke, RevocationError,
  verifyCertificate, verifyRevocation, type FarmSecrets, type MembershipCertificate
} from '../../protocol/farm-key.ts'

const farm = generateFarmKey()
const other = generateFarmKey()
const PEER = '12D3KooWGzPfg2sZ5kN3xQy4kRbn7R9w1VqV8qMZ7n6y9Jm1K2aB'
const PEER2 = '12D3KooWQ9bsrCKcYbV8FQaVtrwTHZrHnpXfm6C1gRQ7bkXXD2hE'
const T0 = Date.UTC(2025, 0, 1)
const HOUR = 3600_000
const BOOT = ['/ip4/10.0.0.2/tcp/4001/p2p/' + PEER]

/** Runs fn and returns the error it throws (failing if it returns). */
function thrown (fn: () => unknown): Error {
  try { fn() } catch (e) { return e as Error }
  throw new Error('expected a throw')
}
function expectCode (fn: () => unknown, cls: new (...a: never[]) => Error, code: string, msg?: RegExp): void {
  const e = thrown(fn)
  expect(e).toBeInstanceOf(cls)
  expect((e as Error & { code: string }).code).toBe(code)
  if (msg !== undefined) expect(e.message).toMatch(msg)
}
const certErr = (fn: () => unknown, code: string, msg?: RegExp): void => expectCode(fn, CertificateError, code, msg)
const invErr = (fn: () => unknown, code: string, msg?: RegExp): void => expectCode(fn, InviteError, code, msg)
const revErr = (fn: () => unknown, code: string, msg?: RegExp): void => expectCode(fn, RevocationError, code, msg)
const keyErr = (fn: () => unknown, code: string, msg?: RegExp): void => expectCode(fn, FarmKeyError, code, msg)

/** Flips one bit of the decoded signature and re-encodes it. */
function flipSig (sig: string): string {
  const b = fromBase64(sig) as Uint8Array
  b[10] = (b[10] ?? 0) ^ 1
  return toBase64(b)
}
const cert = (extra: Partial<Parameters<typeof issueCertificate>[1]> = {}, secrets: FarmSecrets = farm): MembershipCertificate =>
  issueCertificate(secrets, { peerId: PEER, name: 'edit-bay-3', issuedAtMs: T0, expiresAtMs: T0 + 24 * HOUR, ...extra })
const verify = (c: unknown, o: { peerId?: string; nowMs?: number; revoked?: ReadonlySet<string> } = {}) =>
  verifyCertificate(farm.publicKey, c, { peerId: PEER, nowMs: T0 + HOUR, ...o })

describe('farm key', () => {
  it('generates keys of the right sizes and a stable 16-hex farm id', () => {
    expect(farm.publicKey).toHaveLength(32)
    expect(farm.secretKey).toHaveLength(64)
    expect(farm.psk).toHaveLength(32)
    expect(farmId(farm.publicKey)).toMatch(/^[0-9a-f]{16}$/)
    expect(farmId(farm.publicKey)).toBe(farmId(Uint8Array.from(farm.publicKey)))
    expect(farmId(farm.publicKey)).not.toBe(farmId(other.publicKey))
    expect(farmId(new Uint8Array(32))).toBe('66687aadf862bd77') // sha256 of 32 zero bytes
    keyErr(() => farmId(new Uint8Array(31)), 'malformed', /32 bytes/)
  })

  it('round-trips secrets through JSON', () => {
    const enc = encodeSecrets(farm)
    expect(enc.v).toBe(1)
    const back = decodeSecrets(JSON.parse(JSON.stringify(enc)))
    expect(back.publicKey).toEqual(farm.publicKey)
    expect(back.secretKey).toEqual(farm.secretKey)
    expect(back.psk).toEqual(farm.psk)
    // the decoded key still signs certificates the original key verifies
    expect(() => verifyCertificate(farm.publicKey, cert({}, back), { peerId: PEER, nowMs: T0 })).not.toThrow()
  })

  it('refuses bad secrets with FarmKeyError', () => {
    const enc = encodeSecrets(farm)
    keyErr(() => decodeSecrets({ ...enc, psk: toBase64(new Uint8Array(31)) }), 'malformed', /psk must be base64 of exactly 32 bytes/)
    keyErr(() => decodeSecrets({ ...enc, publicKey: toBase64(new Uint8Array(33)) }), 'malformed', /publicKey/)
    keyErr(() => decodeSecrets({ ...enc, secretKey: enc.secretKey.slice(0, -4) }), 'malformed', /secretKey/)
    keyErr(() => decodeSecrets({ ...enc, psk: '!!!not base64!!!' }), 'malformed', /psk/)
    keyErr(() => decodeSecrets({ ...enc, psk: enc.psk.replace(/=$/, '') }), 'malformed', /psk/) // unpadded
    keyErr(() => decodeSecrets({ ...enc, v: 2 }), 'malformed', /version/)
    keyErr(() => decodeSecrets({ ...enc, extra: 1 }), 'malformed')
    keyErr(() => decodeSecrets(null), 'malformed')
    keyErr(() => decodeSecrets('secret'), 'malformed')
    keyErr(() => decodeSecrets({ ...enc, publicKey: encodeSecrets(other).publicKey }), 'key-mismatch', /does not belong/)
    keyErr(() => encodeSecrets({ ...farm, psk: new Uint8Array(16) }), 'malformed')
    keyErr(() => encodeSecrets({ ...farm, publicKey: other.publicKey }), 'key-mismatch')
  })

  it('writes the libp2p pnet swarm key format', () => {
    const psk = Uint8Array.from({ length: 32 }, (_, i) => i)
    expect(pskFileContents(psk)).toBe('/key/swarm/psk/1.0.0/\n/base16/\n000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f')
    expect(pskFileContents(farm.psk)).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}$/)
    keyErr(() => pskFileContents(new Uint8Array(8)), 'malformed')
  })
})

describe('canonical encoding', () => {
  const order = ['v', 'farm', 'peerId', 'name', 'issuedAt', 'expiresAt']
  it('is the same bytes whatever the key order of the object', () => {
    const a = { v: 1, farm: 'abcd', peerId: PEER, name: 'x', issuedAt: 5, expiresAt: 9 }
    const b = { expiresAt: 9, issuedAt: 5, name: 'x', peerId: PEER, farm: 'abcd', v: 1 }
    expect(canonicalBytes('d/1', order, a)).toEqual(canonicalBytes('d/1', order, b))
    expect(new TextDecoder().decode(canonicalBytes('d/1', order, b))).toBe(`d/1\n{"v":1,"farm":"abcd","peerId":"${PEER}","name":"x","issuedAt":5,"expiresAt":9}`)
    expect(canonicalJson(order, { ...a, name: undefined })).toBe(canonicalJson(order, { v: 1, farm: 'abcd', peerId: PEER, issuedAt: 5, expiresAt: 9 }))
  })
  it('separates domains and refuses unsigned fields or unsafe numbers', () => {
    expect(canonicalBytes('a', ['x'], { x: 'y' })).not.toEqual(canonicalBytes('b', ['x'], { x: 'y' }))
    expect(() => canonicalJson(['x'], { x: 'y', z: 'w' })).toThrow(/not in the signed field order/)
    expect(() => canonicalJson(['x'], { x: 1.5 })).toThrow(/safe integer/)
  })
  it('a certificate signature does not depend on the key order it arrives in', () => {
    const c = cert()
    const shuffled = Object.fromEntries(Object.entries(c).reverse())
    expect(Object.keys(shuffled)[0]).toBe('sig')
    expect(verify(shuffled)).toEqual(c)
  })
  it('base64 decoders accept only the canonical spelling', () => {
    expect(fromBase64('AAE=')).toEqual(Uint8Array.of(0, 1))
    expect(fromBase64('AAF=')).toBeUndefined() // non-zero padding bits
    expect(fromBase64('AAE')).toBeUndefined()
    expect(fromBase64('AA E=')).toBeUndefined()
    expect(fromBase64Url(toBase64Url(Uint8Array.of(251, 255)))).toEqual(Uint8Array.of(251, 255))
    expect(fromBase64Url('-_8=')).toBeUndefined()
    expect(fromBase64Url('A')).toBeUndefined()
  })
})

describe('membership certificates', () => {
  it('issues and verifies', () => {
    const c = cert()
    expect(c).toMatchObject({ v: 1, farm: farmId(farm.publicKey), peerId: PEER, name: 'edit-bay-3', issuedAt: T0, expiresAt: T0 + 24 * HOUR })
    expect(fromBase64(c.sig)).toHaveLength(64)
    expect(verify(JSON.parse(JSON.stringify(c)))).toEqual(c)
    const bare = issueCertificate(farm, { peerId: PEER, issuedAtMs: T0 })
    expect(Object.keys(bare).sort()).toEqual(['farm', 'issuedAt', 'peerId', 'sig', 'v'])
    expect(verify(bare, { nowMs: T0 + 10 * 365 * 24 * HOUR })).toEqual(bare)
  })

  it('reaches every error code', () => {
    const c = cert()
    certErr(() => verify({ ...c, sig: flipSig(c.sig) }), 'bad-signature', /not signed by farm/)
    certErr(() => verify({ ...c, name: 'edit-bay-4' }), 'bad-signature')
    certErr(() => verify({ ...c, expiresAt: c.expiresAt! + 1 }), 'bad-signature')
    certErr(() => verify({ ...c, peerId: PEER2 }, { peerId: PEER2 }), 'bad-signature')
    certErr(() => verify(c, { peerId: PEER2 }), 'wrong-peer', new RegExp(`for peer ${PEER}, but the connection is from ${PEER2}`))
    certErr(() => verify(cert({}, other)), 'wrong-farm', /not this farm/)
    certErr(() => verifyCertificate(other.publicKey, c, { peerId: PEER, nowMs: T0 }), 'wrong-farm')
    certErr(() => verify(c, { nowMs: T0 + 24 * HOUR }), 'expired', /expired at 2025-01-02T00:00:00.000Z/)
    expect(verify(c, { nowMs: T0 + 24 * HOUR - 1 })).toEqual(c)
    certErr(() => verify(c, { revoked: new Set([PEER]) }), 'revoked', /revoked/)
    expect(verify(c, { revoked: new Set([PEER2]) })).toEqual(c)
  })

  it(`allows ${CLOCK_SKEW_MS / 60_000} minutes of clock skew on issuedAt, no more`, () => {
    const c = cert({ issuedAtMs: T0 + HOUR + CLOCK_SKEW_MS, expiresAtMs: T0 + 2 * HOUR + CLOCK_SKEW_MS })
    expect(verify(c, { nowMs: T0 + HOUR })).toEqual(c)
    certErr(() => verify(c, { nowMs: T0 + HOUR - 1 }), 'not-yet-valid', /future.*clock/)
  })

  it('refuses malformed certificates before checking signatures', () => {
    const c = cert()
    const bad: unknown[] = [
      null, undefined, 'cert', 42, [], [c],
      { ...c, v: 2 }, { ...c, v: '1' }, { ...c, farm: 'ABCDEF0123456789' }, { ...c, farm: 7 },
      { ...c, peerId: 12 }, { ...c, peerId: '' }, { ...c, peerId: '1'.repeat(129) }, { ...c, peerId: 'x'.repeat(5_000_000) },
      { ...c, peerId: `${PEER}\u0000` }, { ...c, peerId: '12D3KooW0OIl' }, { ...c, peerId: `${PEER} ` },
      { ...c, name: 'a'.repeat(65) }, { ...c, name: 'bay\u00003' }, { ...c, name: 'bay\n3' }, { ...c, name: '' }, { ...c, name: 3 },
      { ...c, issuedAt: -1 }, { ...c, issuedAt: 1.5 }, { ...c, issuedAt: '0' }, { ...c, issuedAt: Number.NaN }, { ...c, expiresAt: 1e300 },
      { ...c, sig: 'not base64!' }, { ...c, sig: toBase64(new Uint8Array(63)) }, { ...c, sig: toBase64(new Uint8Array(65)) }, { ...c, sig: '' },
      { ...c, sig: 'A'.repeat(1_000_000) }, { ...c, extra: true }, { ...c, __proto__: { x: 1 }, constructor: 1 }
    ]
    const { sig: _sig, ...unsigned } = c
    bad.push(unsigned)
    for (const b of bad) certErr(() => verify(b), 'malformed', /malformed certificate: /)
    expect(thrown(() => verify({ ...c, name: 'x'.repeat(10_000) })).message.length).toBeLessThan(300)
  })

  it('refuses bad arguments with CertificateError, never a TypeError', () => {
    certErr(() => verifyCertificate(new Uint8Array(31), cert(), { peerId: PEER, nowMs: T0 }), 'malformed', /32 bytes/)
    certErr(() => verifyCertificate('key' as unknown as Uint8Array, cert(), { peerId: PEER, nowMs: T0 }), 'malformed')
    certErr(() => verify(cert(), { nowMs: Number.NaN }), 'malformed', /nowMs/)
    certErr(() => cert({ peerId: 'not/base58' }), 'malformed', /cannot issue certificate: peerId/)
    certErr(() => cert({ name: 'tab\there' }), 'malformed', /name must be printable/)
    certErr(() => cert({ expiresAtMs: T0 }), 'malformed', /after issuedAt/)
    certErr(() => cert({ issuedAtMs: -5 }), 'malformed')
    keyErr(() => cert({}, { ...farm, secretKey: new Uint8Array(10) }), 'malformed')
    keyErr(() => cert({}, { ...farm, secretKey: other.secretKey }), 'key-mismatch')
  })

  it('accepts a unicode machine name', () => {
    const c = cert({ name: 'Schnitt-Platz Ü 3 🎬' })
    expect(verify(c).name).toBe('Schnitt-Platz Ü 3 🎬')
  })
})

describe('invite tokens', () => {
  const invite = (o: Partial<Parameters<typeof createInvite>[1]> = {}, secrets: FarmSecrets = farm) =>
    createInvite(secrets, { ttlMs: HOUR, nowMs: T0, bootstrap: BOOT, ...o })
  const split = (t: string): [string, string, string] => t.split('.') as [string, string, string]

  it('round-trips and carries the farm key', () => {
    const { token, inviteId, exp } = invite()
    expect(token).toMatch(/^rsw1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{86}$/)
    expect(inviteId).toMatch(/^[0-9a-f]{32}$/)
    expect(exp).toBe(T0 + HOUR)
    const p = parseInvite(token, T0 + HOUR - 1)
    expect(p).toMatchObject({ v: 1, farm: farmId(farm.publicKey), id: inviteId, exp: T0 + HOUR, bootstrap: BOOT, pub: toBase64(farm.publicKey) })
    expect(p.publicKey).toEqual(farm.publicKey)
    expect(parseInvite(`  ${token}\n`, T0).id).toBe(inviteId)
    expect(invite().inviteId).not.toBe(inviteId)
    expect(parseInvite(invite({ bootstrap: [] }).token, T0).bootstrap).toEqual([])
  })

  it('fits the largest allowed invite into the size limit', () => {
    const big = Array.from({ length: MAX_BOOTSTRAP }, (_, i) => `/dns4/${String(i).padStart(244, 'h')}.lan/tcp/4001`.slice(0, 256))
    expect(big.every(a => a.length === 256)).toBe(true)
    const { token } = invite({ bootstrap: big })
    expect(token.length).toBeLessThanOrEqual(MAX_TOKEN_LENGTH)
    expect(parseInvite(token, T0).bootstrap).toEqual(big)
  })

  it('refuses bad invite arguments', () => {
    invErr(() => invite({ bootstrap: Array(MAX_BOOTSTRAP + 1).fill('/ip4/1.2.3.4/tcp/1') }), 'malformed', /bootstrap/)
    invErr(() => invite({ bootstrap: ['/' + 'a'.repeat(256)] }), 'malformed', /bootstrap/)
    invErr(() => invite({ bootstrap: ['ip4/1.2.3.4'] }), 'malformed', /multiaddr/)
    invErr(() => invite({ bootstrap: ['/ip4/1.2.3.4 /tcp/1'] }), 'malformed')
    invErr(() => invite({ bootstrap: 'x' as unknown as string[] }), 'malformed')
    invErr(() => invite({ ttlMs: 0 }), 'malformed', /ttl/)
    invErr(() => invite({ ttlMs: 365 * 24 * HOUR }), 'malformed', /ttl/)
    invErr(() => invite({ nowMs: Number.NaN }), 'malformed', /nowMs/)
    keyErr(() => invite({}, { ...farm, psk: new Uint8Array() }), 'malformed')
  })

  it('reaches every parse error code', () => {
    const a = invite()
    const b = invite()
    const [pre, bodyA, sigA] = split(a.token)
    const [, bodyB] = split(b.token)
    invErr(() => parseInvite(a.token, T0 + HOUR), 'expired', /expired at 2025-01-01T01:00:00.000Z/)
    invErr(() => parseInvite([pre, bodyB, sigA].join('.'), T0), 'bad-signature', /altered or spliced/) // swapped payload
    const sig = fromBase64Url(sigA) as Uint8Array
    sig[0] = (sig[0] ?? 0) ^ 0x80
    invErr(() => parseInvite([pre, bodyA, toBase64Url(sig)].join('.'), T0), 'bad-signature')
    // a payload re-signed by another key but still naming this farm
    const payload = JSON.parse(Buffer.from(bodyA, 'base64url').toString('utf8'))
    const forged = { ...payload, pub: toBase64(other.publicKey) }
    const forgedBody = toBase64Url(new TextEncoder().encode(JSON.stringify(forged)))
    invErr(() => parseInvite([pre, forgedBody, sigA].join('.'), T0), 'malformed', /farm id does not match/)
    // edited payload (longer expiry) with the original signature
    const extended = toBase64Url(new TextEncoder().encode(JSON.stringify({ ...payload, exp: payload.exp + HOUR })))
    invErr(() => parseInvite([pre, extended, sigA].join('.'), T0), 'bad-signature')
  })

  it('refuses malformed tokens', () => {
    const { token } = invite()
    const [pre, body, sig] = split(token)
    const enc = (o: unknown): string => toBase64Url(new TextEncoder().encode(JSON.stringify(o)))
    const payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'))
    const bad: unknown[] = [
      undefined, null, 42, {}, [token], '', 'rsw1', token.slice(0, -10), token.slice(0, token.length / 2),
      `rsw2.${body}.${sig}`, `${pre}.${body}`, `${pre}.${body}.${sig}.x`, `${pre}.${body}=.${sig}`, `${pre}.${body.replace(/.$/, '+')}.${sig}`,
      `${pre}.${body}.${sig.slice(0, 40)}`, `${pre}.${body}\u0000.${sig}`, `${pre}.${body} .${sig}`, token + 'A'.repeat(MAX_TOKEN_LENGTH),
      `${pre}.${toBase64Url(Uint8Array.of(0xff, 0xfe, 0x7b))}.${sig}`, `${pre}.${enc('not an object')}.${sig}`,
      `${pre}.${enc({ ...payload, extra: 1 })}.${sig}`, `${pre}.${enc({ ...payload, v: 2 })}.${sig}`, `${pre}.${enc({ ...payload, id: 'xyz' })}.${sig}`,
      `${pre}.${enc({ ...payload, pub: 'AAAA' })}.${sig}`, `${pre}.${enc({ ...payload, exp: '1' })}.${sig}`,
      `${pre}.${enc({ ...payload, bootstrap: ['/x\u0000'] })}.${sig}`, `${pre}.${toBase64Url(new TextEncoder().encode('{"v":1,'))}.${sig}`
    ]
    for (const t of bad) invErr(() => parseInvite(t, T0), 'malformed', /malformed invite token: /)
    invErr(() => parseInvite(token, Number.NaN), 'malformed', /nowMs/)
  })
})

describe('InviteLedger', () => {
  const { inviteId, exp } = createInvite(farm, { ttlMs: HOUR, nowMs: T0, bootstrap: [] })

  it('lets each invite be redeemed once', () => {
    const l = new InviteLedger()
    l.record(inviteId, exp)
    l.redeem(inviteId, T0 + 1)
    invErr(() => l.redeem(inviteId, T0 + 2), 'reused', /already been used/)
    l.record(inviteId, exp) // recording again never un-uses it
    invErr(() => l.redeem(inviteId, T0 + 3), 'reused')
  })

  it('refuses expired and unknown invites and prunes', () => {
    const l = new InviteLedger()
    l.record(inviteId, exp)
    l.record('b'.repeat(32), exp + HOUR)
    invErr(() => l.redeem(inviteId, exp), 'expired', /expired at/)
    expect(l.size).toBe(1)
    invErr(() => l.redeem(inviteId, exp), 'malformed', /unknown invite/)
    invErr(() => l.redeem('c'.repeat(32), T0), 'malformed', /unknown invite/)
    invErr(() => l.redeem(42 as unknown as string, T0), 'malformed')
    invErr(() => l.redeem(inviteId, Number.NaN), 'malformed')
    l.prune(exp + HOUR)
    expect(l.size).toBe(0)
    invErr(() => l.record('not hex', exp), 'malformed')
    invErr(() => l.record(inviteId, -1), 'malformed')
  })

  it('round-trips through JSON, keeping used invites used', () => {
    const l = new InviteLedger()
    l.record(inviteId, exp)
    l.record('a'.repeat(32), exp)
    l.redeem(inviteId, T0)
    const json = JSON.parse(JSON.stringify(l))
    expect(json).toEqual({ v: 1, invites: [{ id: inviteId, exp, used: true }, { id: 'a'.repeat(32), exp, used: false }] })
    const back = InviteLedger.fromJSON(json)
    expect(back.toJSON()).toEqual(l.toJSON())
    invErr(() => back.redeem(inviteId, T0), 'reused')
    back.redeem('a'.repeat(32), T0)
  })

  it('refuses garbage ledgers with InviteError, not a crash', () => {
    const ok = { id: inviteId, exp, used: false }
    const garbage: unknown[] = [
      undefined, null, 'ledger', 7, [], {}, { v: 2, invites: [] }, { v: 1 }, { v: 1, invites: {} }, { v: 1, invites: [null] },
      { v: 1, invites: [{ ...ok, used: 'no' }] }, { v: 1, invites: [{ ...ok, id: 'x' }] }, { v: 1, invites: [{ ...ok, exp: -1 }] },
      { v: 1, invites: [{ ...ok, extra: 1 }] }, { v: 1, invites: [ok, ok] }, { v: 1, invites: [], more: 1 },
      { v: 1, invites: Array.from({ length: 10_001 }, (_, i) => ({ ...ok, id: i.toString(16).padStart(32, '0') })) }
    ]
    for (const g of garbage) invErr(() => InviteLedger.fromJSON(g), 'malformed', /invite ledger/)
    expect(InviteLedger.fromJSON({ v: 1, invites: [] }).size).toBe(0)
  })

  it('covers the whole join flow', () => {
    const l = new InviteLedger()
    const inv = createInvite(farm, { ttlMs: HOUR, nowMs: T0, bootstrap: BOOT })
    l.record(inv.inviteId, inv.exp)
    const seen = parseInvite(inv.token, T0 + 1000) // on the joining machine
    l.redeem(seen.id, T0 + 2000) // on the issuer
    const c = issueCertificate(farm, { peerId: PEER2, issuedAtMs: T0 + 2000 })
    expect(verifyCertificate(seen.publicKey, c, { peerId: PEER2, nowMs: T0 + 3000 }).peerId).toBe(PEER2)
    invErr(() => l.redeem(seen.id, T0 + 4000), 'reused')
  })
})

describe('revocations', () => {
  it('signs and verifies', () => {
    const r = revoke(farm, { peerId: PEER, atMs: T0, reason: 'laptop stolen' })
    expect(r).toMatchObject({ v: 1, farm: farmId(farm.publicKey), peerId: PEER, at: T0, reason: 'laptop stolen' })
    expect(verifyRevocation(farm.publicKey, JSON.parse(JSON.stringify(r)))).toEqual(r)
    const bare = revoke(farm, { peerId: PEER, atMs: T0 })
    expect('reason' in bare).toBe(false)
    expect(verifyRevocation(farm.publicKey, bare)).toEqual(bare)
  })

  it('reaches every error code', () => {
    const r = revoke(farm, { peerId: PEER, atMs: T0 })
    revErr(() => verifyRevocation(farm.publicKey, { ...r, sig: flipSig(r.sig) }), 'bad-signature', /not signed/)
    revErr(() => verifyRevocation(farm.publicKey, { ...r, peerId: PEER2 }), 'bad-signature')
    revErr(() => verifyRevocation(farm.publicKey, { ...r, reason: 'added later' }), 'bad-signature')
    revErr(() => verifyRevocation(farm.publicKey, revoke(other, { peerId: PEER, atMs: T0 })), 'wrong-farm', /not this farm/)
    revErr(() => verifyRevocation(other.publicKey, r), 'wrong-farm')
    for (const b of [null, 'r', { ...r, v: 2 }, { ...r, extra: 1 }, { ...r, peerId: 'x'.repeat(1000) }, { ...r, at: -1 }, { ...r, sig: 'AA==' }, { ...r, reason: '\u0000' }]) {
      revErr(() => verifyRevocation(farm.publicKey, b), 'malformed', /malformed revocation/)
    }
    revErr(() => verifyRevocation(new Uint8Array(5), r), 'malformed', /32 bytes/)
    revErr(() => revoke(farm, { peerId: 'bad peer', atMs: T0 }), 'malformed', /cannot revoke/)
    revErr(() => revoke(farm, { peerId: PEER, atMs: T0, reason: 'r'.repeat(257) }), 'malformed')
  })

  it('cannot be replayed as a certificate (domain separation)', () => {
    const r = revoke(farm, { peerId: PEER, atMs: T0 })
    const asCert = { v: 1, farm: r.farm, peerId: r.peerId, issuedAt: r.at, sig: r.sig }
    certErr(() => verify(asCert), 'bad-signature')
    // and the signatures really are ed25519 over the domain-prefixed bytes
    const msg = canonicalBytes('renderswarm/revocation/1', ['v', 'farm', 'peerId', 'at', 'reason'], { v: 1, farm: r.farm, peerId: PEER, at: T0 })
    expect(nacl.sign.detached.verify(msg, fromBase64(r.sig) as Uint8Array, farm.publicKey)).toBe(true)
  })
})
