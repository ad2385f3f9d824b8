/**
 * libp2p 3.x calls Promise.withResolvers (Node ≥ 22). Import this module before libp2p.
 *
 *   import './polyfill.ts'
 */
interface Resolvers<T> { promise: Promise<T>; resolve: (v: T | PromiseLike<T>) => void; reject: (e?: unknown) => void }
const P = Promise as unknown as { withResolvers?: <T>() => Resolvers<T> }
if (typeof P.withResolvers !== 'function') {
  P.withResolvers = function withResolvers<T> (): Resolvers<T> {
    let resolve!: Resolvers<T>['resolve']
    let reject!: Resolvers<T>['reject']
    const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}


/*
 * @libp2p/pnet encrypts with xsalsa20@1.2.0, whose WebAssembly build keeps one shared memory
 * but caches a view of it per cipher. When one cipher grows the memory, every other cipher's
 * view is detached (length 0), so its next update "grows" the memory by the whole input
 * again: two connections moving megabytes in turn exhaust the WebAssembly memory within
 * ~20 MB and the agent dies with "Memory.grow(): Maximum memory size exceeded" (measured:
 * 18 alternating 1 MiB updates). Each cipher's view is refreshed here before it is used:
 * a new cipher is always made with a view of the current memory, so a throwaway one supplies it.
 */
import { createRequire } from 'node:module'

interface Cipher { _memory: Uint8Array }
type XSalsa20 = (nonce: Uint8Array, key: Uint8Array) => { _xor: Cipher; finalize: () => void }
try {
  const X = createRequire(import.meta.url)('xsalsa20') as XSalsa20 & { patchedByRenderswarm?: boolean }
  if (X.patchedByRenderswarm !== true) {
    X.patchedByRenderswarm = true
    const probe = X(new Uint8Array(24), new Uint8Array(32))
    const cipher = probe._xor
    const proto = Object.getPrototypeOf(cipher) as Record<string, (this: Cipher, ...a: unknown[]) => unknown>
    probe.finalize()
    // Only the WebAssembly cipher caches a view; the pure-JS fallback has no _memory.
    if (cipher._memory instanceof Uint8Array) {
      const fresh = (c: Cipher): void => {
        if (c._memory.byteLength > 0) return
        const t = X(new Uint8Array(24), new Uint8Array(32))
        c._memory = t._xor._memory
        t.finalize()
      }
      for (const name of ['update', 'finalize'] as const) {
        const original = proto[name]!
        proto[name] = function (this: Cipher, ...a: unknown[]) { fresh(this); return original.apply(this, a) }
      }
    }
  }
} catch { /* another xsalsa20 layout: leave it as it is */ }
export {}
