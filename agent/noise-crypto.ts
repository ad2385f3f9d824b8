/**
 * Noise's crypto for @chainsafe/libp2p-noise on node:crypto alone: ChaCha20-Poly1305 (RFC 8439),
 * X25519 (RFC 7748), SHA-256 and the Noise HKDF, all native (OpenSSL). The wire is unchanged
 * (Noise_XX_25519_ChaChaPoly_SHA256), so a node using it talks to one on the library's default.
 *
 *   import { noise } from '@chainsafe/libp2p-noise'
 *   createLibp2p({ connectionEncrypters: [noise({ crypto: nativeNoiseCrypto })], … })
 *
 * Why not the library's default: it seals frames under 1200 bytes in WebAssembly and runs HKDF in
 * JS; here every size and the handshake go through OpenSSL. For bulk bytes the two measure the
 * same (bench/transfer.ts): the default already uses OpenSSL for large frames.
 */
import crypto from 'node:crypto'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import type { Uint8ArrayList } from 'uint8arraylist'

const AEAD = 'chacha20-poly1305'
const TAG_BYTES = 16
/** DER prefixes that turn a raw 32-byte X25519 key into PKCS#8 (private) and SPKI (public). */
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex')
const EMPTY = new Uint8Array(0)

/** Thrown when a ciphertext does not authenticate (wrong key, nonce, data or tag). */
export class NoiseDecryptError extends Error {
  constructor (cause: unknown) {
    super('a Noise frame failed authentication (ChaCha20-Poly1305)', { cause })
    this.name = 'NoiseDecryptError'
  }
}

const flat = (b: Uint8Array | Uint8ArrayList): Uint8Array => b instanceof Uint8Array ? b : b.subarray()
const view = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength)

function privateKeyOf (raw: Uint8Array): crypto.KeyObject {
  return crypto.createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' })
}

function publicKeyOf (raw: Uint8Array): crypto.KeyObject {
  return crypto.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' })
}

function rawPublicKey (key: crypto.KeyObject): Uint8Array {
  return crypto.createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length)
}

/** ChaCha20-Poly1305 seal: ciphertext then the 16-byte tag. */
export function seal (plaintext: Uint8Array | Uint8ArrayList, nonce: Uint8Array, ad: Uint8Array, key: Uint8Array): Uint8Array {
  const cipher = crypto.createCipheriv(AEAD, key, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(ad, { plaintextLength: plaintext.byteLength })
  const parts: Buffer[] = []
  if (plaintext instanceof Uint8Array) parts.push(cipher.update(plaintext))
  else for (const part of plaintext) parts.push(cipher.update(part))
  parts.push(cipher.final(), cipher.getAuthTag())
  return Buffer.concat(parts, plaintext.byteLength + TAG_BYTES)
}

/** ChaCha20-Poly1305 open; throws NoiseDecryptError unless the tag authenticates. */
export function open (ciphertext: Uint8Array | Uint8ArrayList, nonce: Uint8Array, ad: Uint8Array, key: Uint8Array): Uint8Array {
  if (ciphertext.byteLength < TAG_BYTES) throw new NoiseDecryptError(new Error(`${ciphertext.byteLength} bytes is shorter than a tag`))
  const body = ciphertext.byteLength - TAG_BYTES
  const decipher = crypto.createDecipheriv(AEAD, key, nonce, { authTagLength: TAG_BYTES })
  decipher.setAAD(ad, { plaintextLength: body })
  decipher.setAuthTag(flat(ciphertext.subarray(body)))
  try {
    if (ciphertext instanceof Uint8Array) {
      const out = decipher.update(ciphertext.subarray(0, body))
      decipher.final()
      return out
    }
    const parts: Buffer[] = []
    for (const part of ciphertext.sublist(0, body)) parts.push(decipher.update(part))
    decipher.final()
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts)
  } catch (err) {
    throw new NoiseDecryptError(err)
  }
}

export const nativeNoiseCrypto: ICryptoInterface = {
  hashSHA256 (data) {
    const hash = crypto.createHash('sha256')
    if (data instanceof Uint8Array) hash.update(data)
    else for (const part of data) hash.update(part)
    return hash.digest()
  },

  // Noise's HKDF(ck, ikm) is RFC 5869 HKDF-SHA256 with salt = ck and no info, three outputs.
  getHKDF (ck, ikm) {
    const okm = new Uint8Array(crypto.hkdfSync('sha256', ikm.byteLength === 0 ? EMPTY : view(ikm), view(ck), EMPTY, 96))
    return [okm.subarray(0, 32), okm.subarray(32, 64), okm.subarray(64, 96)]
  },

  generateX25519KeyPair () {
    const { privateKey } = crypto.generateKeyPairSync('x25519')
    return {
      privateKey: privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_PREFIX.length),
      publicKey: rawPublicKey(privateKey)
    }
  },

  generateX25519KeyPairFromSeed (seed) {
    return { privateKey: seed, publicKey: rawPublicKey(privateKeyOf(seed)) }
  },

  generateX25519SharedKey (privateKey, publicKey) {
    return crypto.diffieHellman({ privateKey: privateKeyOf(flat(privateKey)), publicKey: publicKeyOf(flat(publicKey)) })
  },

  chaCha20Poly1305Encrypt: seal,
  chaCha20Poly1305Decrypt: open
}
