/**
 * Deterministic byte encodings for signed protocol objects, and strict base64 codecs.
 *
 *   const bytes = canonicalBytes('renderswarm/cert/1', ['v', 'farm', 'peerId'], cert)
 *   // → utf8 of 'renderswarm/cert/1\n{"v":1,"farm":"…","peerId":"…"}'
 *
 * The signed bytes are a domain-separation line followed by JSON whose keys appear in the
 * fixed `order` given by the caller, whatever the key order of the object: the same fields
 * always give the same bytes, and a signature made for one kind of object (one domain)
 * never verifies as another. Keys whose value is `undefined` are left out; keys of the
 * object that are not in `order` are a programming error (they would go unsigned).
 */

export type CanonicalValue = string | number | readonly string[]

export function canonicalJson (order: readonly string[], obj: Readonly<Record<string, CanonicalValue | undefined>>): string {
  for (const k of Object.keys(obj)) {
    if (!order.includes(k) && obj[k] !== undefined) throw new Error(`canonicalJson: field "${k}" is not in the signed field order`)
  }
  const parts: string[] = []
  for (const k of order) {
    const v = obj[k]
    if (v === undefined) continue
    if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new Error(`canonicalJson: "${k}" must be a safe integer`)
    parts.push(`${JSON.stringify(k)}:${JSON.stringify(typeof v === 'number' ? v + 0 : v)}`)
  }
  return `{${parts.join(',')}}`
}

export function canonicalBytes (domain: string, order: readonly string[], obj: Readonly<Record<string, CanonicalValue | undefined>>): Uint8Array {
  if (domain.includes('\n')) throw new Error('canonicalBytes: domain must be one line')
  return new TextEncoder().encode(`${domain}\n${canonicalJson(order, obj)}`)
}

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const B64URL = /^[A-Za-z0-9_-]*$/

export const toBase64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64')
export const toBase64Url = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url')

/** Padded standard base64 in its one canonical spelling, or undefined. */
export function fromBase64 (s: string): Uint8Array | undefined {
  if (!B64.test(s)) return undefined
  const out = new Uint8Array(Buffer.from(s, 'base64'))
  return toBase64(out) === s ? out : undefined
}

/** Unpadded base64url in its one canonical spelling, or undefined. */
export function fromBase64Url (s: string): Uint8Array | undefined {
  if (!B64URL.test(s) || s.length % 4 === 1) return undefined
  const out = new Uint8Array(Buffer.from(s, 'base64url'))
  return toBase64Url(out) === s ? out : undefined
}

export const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')

export function bytesEqual (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= (a[i] ?? 0) ^ (b[i] ?? 0)
  return d === 0
}
