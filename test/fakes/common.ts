/**
 * What the cloud fakes share: a node:http(s) server on 127.0.0.1 port 0, a request log the
 * tests read (what the real SDK actually sent), and the knobs every fake obeys — a quota on live
 * instances, a capacity limit, throttling of the next N calls, and spot interruptions.
 *
 *   const fake = await FakeEc2.start()
 *   fake.knobs.throttleNext = 2          // the next two calls are refused as throttled
 *   fake.knobs.quota = 1                 // more than one live instance: quota error
 *   fake.requests.filter((r) => r.action === 'RunInstances')
 */
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttps } from 'node:https'
import type { AddressInfo } from 'node:net'

export interface RecordedRequest {
  method: string
  path: string
  /** The operation as the fake understood it (EC2 Action, or a REST name like 'instances.insert'). */
  action: string
  headers: Record<string, string | string[] | undefined>
  body: string
}

export interface Knobs {
  /** Live (not terminated) instances allowed; one more is a quota error. */
  quota: number
  /** Instances the zone can still place; a launch that needs more is a capacity error. */
  capacity: number
  /** Refuse the next N calls as throttled (counted down per call). */
  throttleNext: number
}

export function defaultKnobs (): Knobs {
  return { quota: 64, capacity: 64, throttleNext: 0 }
}

export type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => Promise<void> | void

export async function listen (handler: Handler, tls?: { key: string; cert: string }): Promise<{ server: Server; url: string }> {
  const wrapped = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > 1 << 20) { res.writeHead(413).end(); req.destroy(); return }
      chunks.push(c)
    })
    req.on('end', () => {
      Promise.resolve(handler(req, Buffer.concat(chunks).toString('utf8'), res)).catch((err: Error) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' })
        res.end(`fake failed: ${err.message}`)
      })
    })
  }
  const server = tls !== undefined ? createHttps({ key: tls.key, cert: tls.cert }, wrapped) : createHttp(wrapped)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => { resolve() })
  })
  const port = (server.address() as AddressInfo).port
  return { server, url: `${tls !== undefined ? 'https' : 'http'}://127.0.0.1:${port}` }
}

export async function close (server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
}

let seq = 0
/** Short unique hex ids for instances, operations, requests. */
export function hexId (n = 17): string {
  seq += 1
  return (Date.now().toString(16) + seq.toString(16).padStart(6, '0') + Math.random().toString(16).slice(2)).slice(-n).padStart(n, '0')
}

/** A private IP for the n-th instance a fake launches (10.0.x.y, never routed anywhere). */
export function privateIp (n: number): string {
  return `10.0.${Math.floor(n / 250) % 250}.${(n % 250) + 2}`
}
