/**
 * The pnet cipher (xsalsa20's WebAssembly build) under the load of several connections: the
 * fix in agent/polyfill.ts keeps each cipher's memory view current (see its comment).
 */
import { describe, expect, it } from 'vitest'
import { createRequire } from 'node:module'
import '../../agent/polyfill.ts'

type XSalsa20 = (nonce: Uint8Array, key: Uint8Array) => { update: (b: Uint8Array) => Uint8Array }
const X = createRequire(import.meta.url)('xsalsa20') as XSalsa20

describe('pnet cipher with many connections', () => {
  it('two ciphers moving megabytes in turn do not exhaust the WebAssembly memory', () => {
    const a = X(new Uint8Array(24), new Uint8Array(32))
    const b = X(new Uint8Array(24).fill(7), new Uint8Array(32).fill(9))
    // Without the fix this throws "Maximum memory size exceeded" after ~18 rounds.
    for (let i = 0; i < 100; i++) {
      a.update(new Uint8Array((1 << 20) + (i % 3)))
      b.update(new Uint8Array(1 << 20))
    }
  })

  it('still encrypts correctly across grows: a stream cut anywhere equals one pass, and decrypts back', () => {
    const nonce = new Uint8Array(24).fill(1)
    const key = new Uint8Array(32).fill(2)
    const data = Uint8Array.from({ length: 3_000_000 }, (_, k) => (k * 31) & 255)
    const whole = X(nonce, key).update(data)
    const s = X(nonce, key)
    const other = X(new Uint8Array(24), new Uint8Array(32))
    const parts: Uint8Array[] = []
    for (const [from, to] of [[0, 1000], [1000, 1_500_001], [1_500_001, 3_000_000]] as const) {
      other.update(new Uint8Array(2_500_000)) // grows the shared memory between our updates
      parts.push(s.update(data.subarray(from, to)))
    }
    expect(Buffer.compare(Buffer.from(whole), Buffer.concat(parts))).toBe(0)
    expect(Buffer.compare(Buffer.from(X(nonce, key).update(whole)), Buffer.from(data))).toBe(0)
    expect(Buffer.compare(Buffer.from(whole.subarray(0, 64)), Buffer.from(data.subarray(0, 64)))).not.toBe(0)
  })
})
