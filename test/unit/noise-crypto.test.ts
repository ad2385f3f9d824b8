/**
 * agent/noise-crypto.ts: known answers from RFC 8439 (ChaCha20-Poly1305), RFC 7748 (X25519) and
 * RFC 5869 (HKDF-SHA256); every tampered byte refused; and the wire: a node on this crypto and
 * one on @chainsafe/libp2p-noise's default handshake and move data, whichever side dials.
 */
import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { noise, pureJsCrypto } from '@chainsafe/libp2p-noise'
import { Uint8ArrayList } from 'uint8arraylist'
import { nativeNoiseCrypto as c, NoiseDecryptError } from '../../agent/noise-crypto.ts'
import { echoNode, roundTrip, sha256, stopAll } from '../helpers/echo-pair.ts'

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'))
const toHex = (b: Uint8Array | Uint8ArrayList): string => Buffer.from(b.subarray()).toString('hex')

afterEach(stopAll)

// RFC 8439 §2.8.2
const KEY = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f')
const NONCE = hex('070000004041424344454647')
const AD = hex('50515253c0c1c2c3c4c5c6c7')
const PLAIN = new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.")
const SEALED = `d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116
  1ae10b594f09e26a7e902ecbd0600691`.replace(/\s+/g, '')

describe('ChaCha20-Poly1305 (RFC 8439)', () => {
  it('seals the RFC 8439 §2.8.2 example to its ciphertext and tag, and opens it back', () => {
    expect(toHex(c.chaCha20Poly1305Encrypt(PLAIN, NONCE, AD, KEY))).toBe(SEALED)
    expect(toHex(c.chaCha20Poly1305Decrypt(hex(SEALED), NONCE, AD, KEY))).toBe(toHex(PLAIN))
  })

  it('takes a Uint8ArrayList in pieces (as Noise hands it) with the same result', () => {
    const pieces = new Uint8ArrayList(PLAIN.subarray(0, 7), PLAIN.subarray(7, 64), PLAIN.subarray(64))
    expect(toHex(c.chaCha20Poly1305Encrypt(pieces, NONCE, AD, KEY))).toBe(SEALED)
    const s = hex(SEALED)
    expect(toHex(c.chaCha20Poly1305Decrypt(new Uint8ArrayList(s.subarray(0, 5), s.subarray(5, 120), s.subarray(120)), NONCE, AD, KEY))).toBe(toHex(PLAIN))
  })

  it('refuses any flipped byte of ciphertext or tag, another nonce, another associated data, a truncated frame', () => {
    const s = hex(SEALED)
    for (const at of [0, 57, s.length - 17, s.length - 16, s.length - 1]) {
      const bad = Uint8Array.from(s)
      bad[at]! ^= 0x01
      expect(() => c.chaCha20Poly1305Decrypt(bad, NONCE, AD, KEY)).toThrow(NoiseDecryptError)
    }
    expect(() => c.chaCha20Poly1305Decrypt(s, hex('070000004041424344454648'), AD, KEY)).toThrow(NoiseDecryptError)
    expect(() => c.chaCha20Poly1305Decrypt(s, NONCE, AD.subarray(1), KEY)).toThrow(NoiseDecryptError)
    expect(() => c.chaCha20Poly1305Decrypt(s.subarray(0, 10), NONCE, AD, KEY)).toThrow(NoiseDecryptError)
  })

  it('agrees with the library\'s pure-JS implementation on random frames of every size class', () => {
    for (const n of [0, 1, 100, 1199, 1200, 65519]) {
      const [p, k, nonce, ad] = [randomBytes(n), randomBytes(32), randomBytes(12), randomBytes(32)]
      const ours = c.chaCha20Poly1305Encrypt(p, nonce, ad, k)
      expect(toHex(ours)).toBe(toHex(pureJsCrypto.chaCha20Poly1305Encrypt(p, nonce, ad, k)))
      expect(toHex(pureJsCrypto.chaCha20Poly1305Decrypt(ours.subarray(), nonce, ad, k))).toBe(toHex(p))
    }
  })
})

describe('X25519 (RFC 7748), SHA-256, HKDF', () => {
  it('RFC 7748 §6.1: both key pairs from their private keys, and the shared secret from either side', () => {
    const alice = c.generateX25519KeyPairFromSeed(hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'))
    const bob = c.generateX25519KeyPairFromSeed(hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'))
    expect(toHex(alice.publicKey)).toBe('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a')
    expect(toHex(bob.publicKey)).toBe('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f')
    const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742'
    expect(toHex(c.generateX25519SharedKey(alice.privateKey, bob.publicKey))).toBe(shared)
    expect(toHex(c.generateX25519SharedKey(bob.privateKey, new Uint8ArrayList(alice.publicKey.subarray(0, 9), alice.publicKey.subarray(9))))).toBe(shared)
  })

  it('RFC 7748 §5.2: a scalar times a u-coordinate', () => {
    const k = hex('a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4')
    const u = hex('e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c')
    expect(toHex(c.generateX25519SharedKey(k, u))).toBe('c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552')
  })

  it('fresh key pairs agree with the pure-JS curve; SHA-256 of a list equals that of its bytes', () => {
    const [a, b] = [c.generateX25519KeyPair(), c.generateX25519KeyPair()]
    expect(a.privateKey).toHaveLength(32)
    expect(toHex(a.publicKey)).toBe(toHex(pureJsCrypto.generateX25519KeyPairFromSeed(a.privateKey).publicKey))
    expect(toHex(c.generateX25519SharedKey(a.privateKey, b.publicKey))).toBe(toHex(pureJsCrypto.generateX25519SharedKey(b.privateKey, a.publicKey)))
    expect(toHex(c.hashSHA256(new TextEncoder().encode('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    expect(toHex(c.hashSHA256(new Uint8ArrayList(new TextEncoder().encode('a'), new TextEncoder().encode('bc'))))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
  })

  it('HKDF is RFC 5869 (test case 3, no salt, no info) and matches the pure-JS one for Noise-sized inputs', () => {
    const [k1, k2] = c.getHKDF(new Uint8Array(0), new Uint8Array(22).fill(0x0b))
    expect(toHex(new Uint8Array([...k1, ...k2]).subarray(0, 42))).toBe('8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8')
    for (const ikm of [new Uint8Array(0), randomBytes(32)]) {
      const ck = randomBytes(32)
      expect(c.getHKDF(ck, ikm).map(toHex)).toEqual(pureJsCrypto.getHKDF(ck, ikm).map(toHex))
    }
  })
})

describe('on the wire', () => {
  it('a node on this crypto and one on the library default connect and move data, whichever dials', async () => {
    const ours = await echoNode({ encrypter: noise({ crypto: c }) })
    const theirs = await echoNode({ encrypter: noise() })
    const bytes = randomBytes(3 * 1024 * 1024 + 5)
    expect(await roundTrip(ours, theirs, bytes)).toBe(sha256(bytes))
    const back = randomBytes(1024 * 1024 + 3)
    expect(await roundTrip(theirs, ours, back)).toBe(sha256(back))
  })

  it('two nodes on this crypto move data both ways', async () => {
    const [a, b] = [await echoNode({ encrypter: noise({ crypto: c }) }), await echoNode({ encrypter: noise({ crypto: c }) })]
    const bytes = randomBytes(2 * 1024 * 1024)
    expect(await roundTrip(a, b, bytes)).toBe(sha256(bytes))
  })
})
