/**
 * Two libp2p nodes in this process on loopback TCP, each built from its own parts (encrypter,
 * protector), for proving that two implementations of one wire talk to each other.
 *
 *   const [a, b] = await Promise.all([echoNode({ encrypter: noise() }), echoNode({ encrypter: noise({ crypto }) })])
 *   expect(await roundTrip(a, b, bytes)).toEqual(sha256(bytes))   // a → b → a
 *   await stopAll()
 */
import '../../agent/polyfill.ts'
import { createHash } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { ConnectionEncrypter, ConnectionProtector, Libp2p, Stream } from '@libp2p/interface'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { createLibp2p } from 'libp2p'

const ECHO = '/renderswarm-test/echo/1'
const nodes: Libp2p[] = []

type Factory<T> = (components: any) => T // eslint-disable-line @typescript-eslint/no-explicit-any

/** A node that echoes every stream on ECHO back to its sender until the sender closes its side. */
export async function echoNode (parts: { encrypter: Factory<ConnectionEncrypter>; protector?: Factory<ConnectionProtector> }): Promise<Libp2p> {
  const node = await createLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [parts.encrypter],
    streamMuxers: [yamux()],
    ...(parts.protector !== undefined ? { connectionProtector: parts.protector } : {})
  })
  nodes.push(node)
  await node.handle(ECHO, (stream: Stream) => {
    stream.maxReadBufferLength = 64 * 1024 * 1024
    stream.addEventListener('message', (e) => { stream.send(e.data) })
    stream.addEventListener('remoteCloseWrite', () => { void stream.close().catch(() => {}) })
  })
  return node
}

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

/** `from` dials `to`, sends `bytes` in 100 kB writes, and returns the sha256 of what came back. */
export async function roundTrip (from: Libp2p, to: Libp2p, bytes: Uint8Array, timeoutMs = 20_000): Promise<string> {
  const stream = await from.dialProtocol(to.getMultiaddrs()[0]!, ECHO, { signal: AbortSignal.timeout(timeoutMs) })
  stream.maxReadBufferLength = 64 * 1024 * 1024
  const hash = createHash('sha256')
  let got = 0
  const back = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`echo: ${got} of ${bytes.byteLength} bytes back after ${timeoutMs} ms`)) }, timeoutMs)
    stream.addEventListener('message', (e) => {
      for (const part of e.data instanceof Uint8Array ? [e.data] : e.data) hash.update(part)
      got += e.data.byteLength
      if (got >= bytes.byteLength) { clearTimeout(timer); resolve() }
    })
    stream.addEventListener('close', (e) => { if (got < bytes.byteLength) { clearTimeout(timer); reject(e.error ?? new Error(`echo: the stream closed after ${got} bytes`)) } })
  })
  for (let at = 0; at < bytes.byteLength; at += 100_000) {
    if (!stream.send(bytes.subarray(at, at + 100_000))) await stream.onDrain({ signal: AbortSignal.timeout(timeoutMs) })
  }
  await back
  await stream.close().catch(() => {})
  return hash.digest('hex')
}

export async function stopAll (): Promise<void> {
  await Promise.all(nodes.splice(0).map(async (n) => { try { await n.stop() } catch { /* already stopped */ } }))
}
