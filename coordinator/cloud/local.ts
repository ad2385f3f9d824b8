/**
 * The `local` provider: "rents" machines by starting real agent processes on this machine, each
 * in its own temporary state dir, on 127.0.0.1 only (libp2p and API), without mDNS. Tests and
 * demos use it to run the whole burst path — boot script, join with a single-use token, agent
 * marked `--location cloud` meeting the farm by its bootstrap addresses — with nothing rented.
 *
 *   const local = new LocalProvider({ bin: 'bin/renderswarm.js' })
 *   const [a, b] = await local.launch(2, 'local-agent', { spot: true, userData: [script1, script2], tags: {} })
 *   local.interrupt(a.id)            // a spot notice now; the agent is stopped after graceMs
 *   await local.terminate([b.id])    // SIGTERM, SIGKILL after stopTimeoutMs, temp dir removed
 *
 * Launch runs what the boot script would (bootstrap.ts): `farm join <token>` into the new state
 * dir, then `agent` with the script's --name, --cost-per-hour and --bootstrap addresses and `--location cloud`
 * (its --state-dir and --listen are replaced by the temp dir and 127.0.0.1). Limits stand in
 * for a cloud's: `limits.maxInstances` live agents (quota) and `limits.capacity` agents this
 * machine can still host (capacity). Prices: the bundled table's `local` row (0 $/h) unless a
 * test price is given.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { agentArgsOf, tokenOf } from './bootstrap.ts'
import { bundledPrices, pricesFor } from './prices.ts'
import { checkLaunch, CloudError, MANAGED_TAG, type CloudProvider, type Instance, type InterruptionNotice, type LaunchOptions, type PriceRow, userDataFor } from './provider.ts'

export interface LocalOptions {
  /** Path of bin/renderswarm.js. */
  bin: string
  /** Where the agents' temp dirs go. Default: the OS temp dir. */
  baseDir?: string
  /** Value of the `renderswarm` tag (for symmetry with the clouds). Default 'local'. */
  farmTag?: string
  /** Spot notice to stop, ms. Default 2000. */
  graceMs?: number
  /** SIGTERM to SIGKILL, ms. Default 5000. */
  stopTimeoutMs?: number
  /** Price per hour reported (and metered); default the table's 0. */
  priceUsdPerHour?: number
  /** Extra environment for the agents. */
  env?: Record<string, string>
  clock?: () => number
}

interface LocalInstance { inst: Instance; child: ChildProcess; dir: string; exited: Promise<void>; log: string }

export class LocalProvider implements CloudProvider {
  readonly name = 'local' as const
  readonly region = 'local'
  readonly limits = { maxInstances: 8, capacity: 8 }
  private readonly running = new Map<string, LocalInstance>()
  private readonly gone = new Map<string, Instance>()
  private readonly notices: InterruptionNotice[] = []
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly clock: () => number

  constructor (private readonly opts: LocalOptions) {
    this.clock = opts.clock ?? Date.now
  }

  async launch (count: number, instanceType: string, o: LaunchOptions): Promise<Instance[]> {
    checkLaunch('local', count, instanceType, o, 256 * 1024)
    if (instanceType !== 'local-agent') throw new CloudError('invalid', 'local', `the local provider has one instance type, local-agent (got ${JSON.stringify(instanceType)})`)
    if (this.running.size + count > this.limits.maxInstances) throw new CloudError('quota', 'local', `${this.running.size} agents run and ${count} more would pass the limit of ${this.limits.maxInstances}`)
    if (count > this.limits.capacity) throw new CloudError('capacity', 'local', `this machine can host ${this.limits.capacity} more agents, not ${count}`)
    const scripts = Array.from({ length: count }, (_, i) => userDataFor(o, i))
    const plans = scripts.map((s, i) => {
      const token = tokenOf(s)
      const args = agentArgsOf(s)
      if (token === undefined || args === undefined) throw new CloudError('invalid', 'local', `boot script ${i + 1} has no TOKEN or AGENT_ARGS (make it with bootstrapScript)`)
      return { token, args }
    })
    const out: LocalInstance[] = []
    try {
      for (const { token, args } of plans) out.push(await this.start(instanceType, o, token, args))
    } catch (err) {
      await this.terminate(out.map((l) => l.inst.id)).catch(() => {})
      throw err
    }
    this.limits.capacity -= count
    return out.map((l) => ({ ...l.inst, tags: { ...l.inst.tags } }))
  }

  private async start (instanceType: string, o: LaunchOptions, token: string, scriptArgs: string[]): Promise<LocalInstance> {
    const id = `local-${randomBytes(5).toString('hex')}`
    const dir = await mkdtemp(path.join(this.opts.baseDir ?? os.tmpdir(), 'rs-local-'))
    const stateDir = path.join(dir, 'state')
    const env = { ...process.env, ...this.opts.env }
    try {
      await new Promise<void>((resolve, reject) => {
        execFile(process.execPath, [this.opts.bin, 'farm', 'join', token, '--state-dir', stateDir], { env, timeout: 60_000 }, (err, _out, stderr) => {
          if (err !== null) reject(new CloudError('invalid', 'local', `${id}: farm join failed: ${stderr.trim() || err.message}`, { cause: err }))
          else resolve()
        })
      })
    } catch (err) {
      await rm(dir, { recursive: true, force: true })
      throw err
    }
    // What the boot script would run, kept to this machine: loopback only, no mDNS.
    const pick = (flag: string): string[] => scriptArgs.flatMap((a, i) => a === flag && scriptArgs[i + 1] !== undefined ? [scriptArgs[i + 1]!] : [])
    const name = pick('--name')[0] ?? id
    const args = [this.opts.bin, 'agent', '--state-dir', stateDir, '--name', name, '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--no-mdns', '--location', 'cloud',
      ...pick('--cost-per-hour').slice(0, 1).flatMap((c) => ['--cost-per-hour', c]),
      ...pick('--bootstrap').flatMap((a) => ['--bootstrap', a])]
    const log = path.join(dir, 'agent.log')
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr!.pipe(createWriteStream(log))
    const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => { resolve() })
      child.once('error', (err) => { reject(new CloudError('internal', 'local', `${id}: could not start the agent: ${err.message}`, { cause: err })) })
    })
    const inst: Instance = {
      id, provider: 'local', region: 'local', instanceType, spot: o.spot, state: 'running', launchedMs: this.clock(), privateIp: '127.0.0.1',
      tags: { ...o.tags, [MANAGED_TAG]: this.opts.farmTag ?? 'local', name, location: 'cloud', pid: String(child.pid) }
    }
    const l: LocalInstance = { inst, child, dir, exited, log }
    this.running.set(id, l)
    void exited.then(() => { if (this.running.get(id) === l) inst.state = 'terminated' })
    return l
  }

  async terminate (ids: string[]): Promise<void> {
    const unknown = ids.filter((id) => !this.running.has(id) && !this.gone.has(id))
    if (unknown.length > 0) throw new CloudError('not-found', 'local', `no instance ${unknown.join(', ')}`)
    await Promise.all(ids.map(async (id) => {
      const l = this.running.get(id)
      if (l === undefined) return // already terminated
      this.running.delete(id)
      l.inst.state = 'stopping'
      if (l.child.exitCode === null && l.child.signalCode === null) {
        l.child.kill('SIGTERM')
        const t = setTimeout(() => { if (l.child.exitCode === null && l.child.signalCode === null) l.child.kill('SIGKILL') }, this.opts.stopTimeoutMs ?? 5000)
        await l.exited
        clearTimeout(t)
      }
      await rm(l.dir, { recursive: true, force: true })
      l.inst.state = 'terminated'
      this.gone.set(id, l.inst)
      this.limits.capacity += 1
    }))
  }

  async list (): Promise<Instance[]> {
    return [...this.running.values()].map((l) => l.inst).concat([...this.gone.values()]).map((i) => ({ ...i, tags: { ...i.tags } }))
  }

  /** The agent's stderr log of a running instance (for tests and operators). */
  logOf (id: string): string | undefined {
    return this.running.get(id)?.log
  }

  async prices (region = this.region): Promise<PriceRow[]> {
    const rows = pricesFor(bundledPrices(), 'local', region)
    const p = this.opts.priceUsdPerHour
    return p === undefined ? rows : rows.map((r) => ({ ...r, onDemandPerHour: p, spotPerHour: p }))
  }

  /** Simulates a spot interruption: the notice now, the agent stopped after `graceMs`. */
  interrupt (id: string): InterruptionNotice {
    const l = this.running.get(id)
    if (l === undefined) throw new CloudError('not-found', 'local', `no running instance ${id}`)
    if (!l.inst.spot) throw new CloudError('invalid', 'local', `${id} is not a spot instance`)
    const now = this.clock()
    const grace = this.opts.graceMs ?? 2000
    const notice: InterruptionNotice = { id, provider: 'local', noticedMs: now, terminateAtMs: now + grace, reason: 'simulated spot interruption' }
    this.notices.push(notice)
    const t = setTimeout(() => { this.timers.delete(t); void this.terminate([id]).catch(() => {}) }, grace)
    this.timers.add(t)
    return notice
  }

  async pollInterruptions (): Promise<InterruptionNotice[]> {
    return this.notices.splice(0)
  }

  async close (): Promise<void> {
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
  }
}
