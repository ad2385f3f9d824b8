/**
 * LAN discovery with mDNS (bonjour-service): advertise `_renderswarm._tcp` with a TXT record,
 * browse for members of the same farm and report them. Discovery only: liveness comes from
 * libp2p heartbeats (a killed publisher never says goodbye).
 *
 *   const d = new Discovery({ interface: '127.0.0.1', name, port, txt })
 *   d.on('peer', ({ peer, addrs }) => node.dial(...))
 *   d.start(); …; await d.stop()
 */
import { EventEmitter } from 'node:events'
import { Bonjour, type Browser, type Service } from 'bonjour-service'
import { WireError } from '../protocol/errors.ts'
import { formatTxt, parseTxt, type TxtInfo } from '../protocol/messages/membership.ts'

export const SERVICE_TYPE = 'renderswarm'

export interface DiscoveryOptions {
  /** Interface address for multicast (e.g. '127.0.0.1' in a test namespace). Default: the OS's choice. */
  interface?: string | undefined
  /** Instance name (unique on the LAN): we use the peer id. */
  name: string
  port: number
  txt: TxtInfo
}

export interface DiscoveredPeer { peer: string; farm: string; addrs: string[]; score?: number | undefined; gpu?: string | undefined; host?: string | undefined }

export class Discovery extends EventEmitter<{ peer: [DiscoveredPeer]; gone: [string]; refused: [string] }> {
  private bonjour: Bonjour | undefined
  private browser: Browser | undefined
  refusedCount = 0

  constructor (private readonly opts: DiscoveryOptions) { super() }

  start (): void {
    // bonjour-service passes these options to multicast-dns; its types omit them. With only
    // `interface`, multicast-dns binds the socket to that unicast address, and Linux then
    // delivers it no multicast at all: bind to 0.0.0.0 and pick the interface for sending
    // and group membership.
    const mdnsOpts = (this.opts.interface !== undefined ? { interface: this.opts.interface, bind: '0.0.0.0' } : {}) as Record<string, unknown>
    this.bonjour = new Bonjour(mdnsOpts, (err: Error) => { this.emit('refused', `mDNS error: ${err.message}`) })
    this.bonjour.publish({ name: this.opts.name, type: SERVICE_TYPE, port: this.opts.port, txt: formatTxt(this.opts.txt), probe: false })
    this.browser = this.bonjour.find({ type: SERVICE_TYPE })
    this.browser.on('up', (s: Service) => { this.seen(s) })
    this.browser.on('txt-update', (s: Service) => { this.seen(s) })
    this.browser.on('down', (s: Service) => {
      const peer = typeof s.txt === 'object' && s.txt !== null ? (s.txt as Record<string, unknown>).peer : undefined
      if (typeof peer === 'string') this.emit('gone', peer)
    })
  }

  private seen (s: Service): void {
    let txt: TxtInfo
    try {
      txt = parseTxt((s.txt ?? {}) as Record<string, unknown>)
    } catch (err) {
      this.refusedCount++
      this.emit('refused', err instanceof WireError ? err.message : 'mDNS TXT: unreadable')
      return
    }
    if (txt.farm !== this.opts.txt.farm || txt.peer === this.opts.txt.peer) return
    this.emit('peer', { peer: txt.peer, farm: txt.farm, addrs: txt.addrs, score: txt.score, gpu: txt.gpu, host: s.host })
  }

  /** Re-asks the LAN (e.g. after a member is lost). */
  refresh (): void {
    this.browser?.update()
  }

  async stop (): Promise<void> {
    const b = this.bonjour
    if (b === undefined) return
    this.browser?.stop()
    await new Promise<void>((resolve) => { b.unpublishAll(() => { resolve() }) })
    await new Promise<void>((resolve) => { b.destroy(() => { resolve() }) })
    this.bonjour = undefined
  }
}
