/**
 * The farm's pre-shared-key protector: byte for byte the protocol of @libp2p/pnet 3.x (each side
 * sends a random 24-byte nonce; each direction is XSalsa20 under the 32-byte PSK and the
 * sender's nonce), so an agent using it connects to one using @libp2p/pnet, and the reverse. It
 * differs in speed only: XSalsa20 runs four blocks at a time in WebAssembly SIMD
 * (xsalsa20-simd.ts), and a write of several parts is enciphered into one buffer instead of
 * being joined first. Without WebAssembly SIMD it uses the `xsalsa20` package, as @libp2p/pnet does.
 *
 *   createLibp2p({ connectionProtector: farmPsk({ psk }), … })   // psk: the farm's 32 raw bytes
 */
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import type { AbortOptions, ConnectionProtector, MessageStream, MultiaddrConnection } from '@libp2p/interface'
import { AbstractMultiaddrConnection, byteStream, type SendResult } from '@libp2p/utils'
import { XSalsa20Simd } from './xsalsa20-simd.ts'

const NONCE_BYTES = 24
const KEY_BYTES = 32

interface StreamCipher { updateParts: (parts: Iterable<Uint8Array>, total: number) => Uint8Array }

/** The `xsalsa20` package (what @libp2p/pnet uses), for runtimes without WebAssembly SIMD. */
function packageCipher (nonce: Uint8Array, key: Uint8Array): StreamCipher {
  const make = createRequire(import.meta.url)('xsalsa20') as (n: Uint8Array, k: Uint8Array) => { update: (b: Uint8Array) => Uint8Array }
  const x = make(nonce, key)
  return {
    updateParts (parts, total) {
      const out = new Uint8Array(total)
      let at = 0
      for (const p of parts) { out.set(x.update(p), at); at += p.byteLength }
      return out
    }
  }
}

function cipher (nonce: Uint8Array, key: Uint8Array): StreamCipher {
  return XSalsa20Simd.create(nonce, key) ?? packageCipher(nonce, key)
}

/** A Uint8Array, or a Uint8ArrayList (whichever copy of that package the caller has). */
type Bytes = Uint8Array | (Iterable<Uint8Array> & { byteLength: number })
const partsOf = (data: Bytes): Iterable<Uint8Array> => data instanceof Uint8Array ? [data] : data

class PskConnection extends AbstractMultiaddrConnection {
  private readonly inbound: StreamCipher
  private readonly outbound: StreamCipher

  constructor (private readonly maConn: MultiaddrConnection, localNonce: Uint8Array, remoteNonce: Uint8Array, psk: Uint8Array) {
    super({ log: maConn.log.newScope('psk'), remoteAddr: maConn.remoteAddr, direction: maConn.direction })
    this.inbound = cipher(remoteNonce, psk)
    this.outbound = cipher(localNonce, psk)
    maConn.addEventListener('message', (evt) => {
      this.onData(this.inbound.updateParts(partsOf(evt.data), evt.data.byteLength))
    })
    maConn.addEventListener('drain', () => { this.onMuxerDrain() })
    maConn.addEventListener('close', (evt) => {
      if (evt.error != null) {
        if (evt.local === true) this.abort(evt.error)
        else this.onRemoteReset()
      } else {
        this.onTransportClosed()
      }
    })
  }

  async sendClose (options?: AbortOptions): Promise<void> {
    await this.maConn.close(options)
  }

  sendData (data: Parameters<AbstractMultiaddrConnection['sendData']>[0]): SendResult {
    return { sentBytes: data.byteLength, canSendMore: this.maConn.send(this.outbound.updateParts(data, data.byteLength)) }
  }

  sendReset (err: Error): void {
    this.maConn.abort(err)
  }

  sendPause (): void {
    this.maConn.pause()
  }

  sendResume (): void {
    this.maConn.resume()
  }
}

export interface FarmPskInit {
  /** The 32-byte pre-shared key. */
  psk: Uint8Array
  /** Longest wait for the peer's nonce when the caller gives no signal. Default 1000 ms (as @libp2p/pnet). */
  timeoutMs?: number
}

class FarmPskProtector implements ConnectionProtector {
  private readonly psk: Uint8Array
  private readonly timeoutMs: number

  constructor (init: FarmPskInit) {
    if (init.psk.byteLength !== KEY_BYTES) throw new RangeError(`the pre-shared key must be ${KEY_BYTES} bytes`)
    this.psk = Uint8Array.from(init.psk)
    this.timeoutMs = init.timeoutMs ?? 1000
  }

  readonly [Symbol.toStringTag] = 'renderswarm/psk'

  async protect (connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
    const opts = options ?? { signal: AbortSignal.timeout(this.timeoutMs) }
    const localNonce = randomBytes(NONCE_BYTES)
    const bytes = byteStream(connection)
    const [remote] = await Promise.all([bytes.read({ bytes: NONCE_BYTES, ...opts }), bytes.write(localNonce, opts)])
    return new PskConnection(bytes.unwrap() as MultiaddrConnection, localNonce, remote.subarray(), this.psk)
  }
}

/** A libp2p connectionProtector: same wire as @libp2p/pnet's preSharedKey(), given the raw key. */
export function farmPsk (init: FarmPskInit): () => ConnectionProtector {
  return () => new FarmPskProtector(init)
}
