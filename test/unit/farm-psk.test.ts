/**
 * agent/pnet.ts and agent/xsalsa20-simd.ts: the SIMD XSalsa20 gives the bytes of the `xsalsa20`
 * package that @libp2p/pnet uses, however a stream is cut, across the 32-bit block-counter carry;
 * and on the wire a node with farmPsk and one with @libp2p/pnet connect and move data, whichever
 * dials, while a node with another key cannot connect at all.
 */
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { afterEach, describe, expect, it } from 'vitest'
import { noise } from '@chainsafe/libp2p-noise'
import { preSharedKey } from '@libp2p/pnet'
import { Uint8ArrayList } from 'uint8arraylist'
import { farmPsk } from '../../agent/pnet.ts'
import { hsalsa20, XSalsa20Simd } from '../../agent/xsalsa20-simd.ts'
import { pskFileContents } from '../../protocol/farm-key.ts'
import { echoNode, roundTrip, sha256, stopAll } from '../helpers/echo-pair.ts'

type XSalsa20 = (nonce: Uint8Array, key: Uint8Array) => { update: (b: Uint8Array) => Uint8Array }
const reference = createRequire(import.meta.url)('xsalsa20') as XSalsa20
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

afterEach(stopAll)

/** Salsa20 block `counter` under `key` and 8-byte `nonce`, one block at a time in plain JS (the spec's order). */
function salsa20Block (key: Uint8Array, nonce: Uint8Array, counter: bigint): Uint8Array {
  const w = (b: Uint8Array, i: number): number => new DataView(b.buffer, b.byteOffset).getUint32(i, true)
  const s = [0x61707865, w(key, 0), w(key, 4), w(key, 8), w(key, 12), 0x3320646e, w(nonce, 0), w(nonce, 4),
    Number(counter & 0xffffffffn), Number(counter >> 32n), 0x79622d32, w(key, 16), w(key, 20), w(key, 24), w(key, 28), 0x6b206574]
  const x = [...s]
  const r = (a: number, n: number): number => (a << n) | (a >>> (32 - n))
  const qr = (a: number, b: number, c: number, d: number): void => {
    x[b]! ^= r((x[a]! + x[d]!) | 0, 7); x[c]! ^= r((x[b]! + x[a]!) | 0, 9); x[d]! ^= r((x[c]! + x[b]!) | 0, 13); x[a]! ^= r((x[d]! + x[c]!) | 0, 18)
  }
  for (let i = 0; i < 10; i++) {
    qr(0, 4, 8, 12); qr(5, 9, 13, 1); qr(10, 14, 2, 6); qr(15, 3, 7, 11)
    qr(0, 1, 2, 3); qr(5, 6, 7, 4); qr(10, 11, 8, 9); qr(15, 12, 13, 14)
  }
  const out = new Uint8Array(64)
  x.forEach((v, i) => { new DataView(out.buffer).setUint32(4 * i, (v + s[i]!) >>> 0, true) })
  return out
}

describe('XSalsa20 in WebAssembly SIMD', () => {
  it('is available here (Node ≥ 16.4 has WebAssembly SIMD)', () => {
    expect(XSalsa20Simd.available()).toBe(true)
  })

  it('gives the xsalsa20 package\'s bytes for any sequence of update sizes', () => {
    for (let t = 0; t < 12; t++) {
      const [nonce, key] = [randomBytes(24), randomBytes(32)]
      const ref = reference(nonce, key)
      const ours = XSalsa20Simd.create(nonce, key)!
      for (const n of [0, 1, 2, 63, 64, 65, 127, 255, 256, 257, 1023, 65_537, 1 + t * 997, 1_048_576 + t]) {
        const data = randomBytes(n)
        expect(hex(ours.update(data))).toBe(hex(ref.update(data)))
      }
    }
  })

  it('enciphers a list of parts as their join, from any offset in the keystream', () => {
    const [nonce, key] = [randomBytes(24), randomBytes(32)]
    const ref = reference(nonce, key)
    const ours = XSalsa20Simd.create(nonce, key)!
    for (const sizes of [[2, 65_519, 16], [3], [0, 0, 5], [70, 1, 64, 200]]) {
      const parts = sizes.map((n) => randomBytes(n))
      const list = new Uint8ArrayList(...parts)
      expect(hex(ours.updateParts(list, list.byteLength))).toBe(hex(ref.update(list.subarray())))
    }
  })

  it('carries the block counter past 2^32 blocks as Salsa20 defines it (64-bit, little-endian)', () => {
    const [nonce, key] = [randomBytes(24), randomBytes(32)]
    const ours = XSalsa20Simd.create(nonce, key)!
    ;(ours as unknown as { lo: number }).lo = 0xfffffffe
    const sub = hsalsa20(key, nonce.subarray(0, 16))
    const want = [0xfffffffen, 0xffffffffn, 0x100000000n, 0x100000001n, 0x100000002n].map((n) => hex(salsa20Block(sub, nonce.subarray(16), n))).join('')
    expect(hex(ours.update(new Uint8Array(5 * 64)))).toBe(want)
  })

  it('the first block of a stream is HSalsa20 + Salsa20 block 0 (the construction, from the spec)', () => {
    const [nonce, key] = [randomBytes(24), randomBytes(32)]
    expect(hex(XSalsa20Simd.create(nonce, key)!.update(new Uint8Array(64)))).toBe(hex(salsa20Block(hsalsa20(key, nonce.subarray(0, 16)), nonce.subarray(16), 0n)))
  })
})

describe('farmPsk on the wire', () => {
  const pnetOf = (key: Uint8Array): ReturnType<typeof preSharedKey> => preSharedKey({ psk: new TextEncoder().encode(pskFileContents(key)) })

  it('a farmPsk node and an @libp2p/pnet node with the same key connect and move data, whichever dials', async () => {
    const key = randomBytes(32)
    const ours = await echoNode({ encrypter: noise(), protector: farmPsk({ psk: key }) })
    const theirs = await echoNode({ encrypter: noise(), protector: pnetOf(key) })
    const bytes = randomBytes(3 * 1024 * 1024 + 11)
    expect(await roundTrip(ours, theirs, bytes)).toBe(sha256(bytes))
    const back = randomBytes(1024 * 1024 + 1)
    expect(await roundTrip(theirs, ours, back)).toBe(sha256(back))
  })

  it('a node with another key gets no connection, in either implementation', async () => {
    const ours = await echoNode({ encrypter: noise(), protector: farmPsk({ psk: randomBytes(32) }) })
    const other = await echoNode({ encrypter: noise(), protector: farmPsk({ psk: randomBytes(32) }) })
    const theirs = await echoNode({ encrypter: noise(), protector: pnetOf(randomBytes(32)) })
    await expect(roundTrip(ours, other, randomBytes(10), 3000)).rejects.toThrow()
    await expect(roundTrip(theirs, ours, randomBytes(10), 3000)).rejects.toThrow()
    expect(ours.getConnections()).toHaveLength(0)
  })

  it('refuses a key that is not 32 bytes', () => {
    expect(() => farmPsk({ psk: randomBytes(16) })()).toThrow(/32 bytes/)
  })
})
