/**
 * Membership figures, measured on real agents in network namespaces (needs root and iproute2):
 * time to discover (mDNS) and form the farm, dial + handshake time, heartbeat traffic per
 * member when idle, idle agent RSS.
 *
 *   node bin/run-ts.js bench/membership.ts [--agents 3] [--idle-seconds 10] [--dials 20]
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { FarmNode } from '../agent/node.ts'
import { generateFarmKey, issueCertificate } from '../protocol/farm-key.ts'
import { createLan, destroyLan, type Lan } from '../test/helpers/netns.ts'

const { values } = parseArgs({ options: { agents: { type: 'string', default: '3' }, 'idle-seconds': { type: 'string', default: '10' }, dials: { type: 'string', default: '20' } } })
const N = Math.max(2, Math.min(8, Number(values.agents)))
const IDLE_S = Math.max(3, Math.min(120, Number(values['idle-seconds'])))
const DIALS = Math.max(3, Math.min(200, Number(values.dials)))
const BIN = fileURLToPath(new URL('../bin/renderswarm.js', import.meta.url))
const P = `rsb${process.pid % 100000}`
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2 }

async function dialFigures (): Promise<number[]> {
  // Two nodes in this process on loopback: dial + TCP + PSK + Noise + yamux + certificate Hello, each a fresh node pair.
  const farm = generateFarmKey()
  const times: number[] = []
  for (let i = 0; i < DIALS; i++) {
    const pair: FarmNode[] = []
    for (const name of ['x', 'y']) {
      const privateKey = await generateKeyPair('Ed25519')
      const node = new FarmNode({ privateKey, name, listen: ['/ip4/127.0.0.1/tcp/0'], farm: { publicKey: farm.publicKey, psk: farm.psk }, certificate: issueCertificate(farm, { peerId: peerIdFromPrivateKey(privateKey).toString(), issuedAtMs: Date.now() }) })
      await node.start()
      pair.push(node)
    }
    const [x, y] = pair as [FarmNode, FarmNode]
    const t0 = performance.now()
    await x.dial(y.addrs()[0]!)
    while (!x.isMember(y.peerId.toString())) await new Promise((r) => setTimeout(r, 1))
    times.push(performance.now() - t0)
    await Promise.all(pair.map((n) => n.stop()))
  }
  return times
}

async function main (): Promise<void> {
  const dial = await dialFigures()
  const rows: Array<[string, string, string]> = [['dial + handshake + hello (loopback)', `${median(dial).toFixed(1)} ms`, `median of ${DIALS}; min ${Math.min(...dial).toFixed(1)}, max ${Math.max(...dial).toFixed(1)}`]]
  const root = process.getuid?.() === 0
  let dir: string | undefined
  const children: ChildProcess[] = []
  let lan: Lan | undefined
  try {
    if (!root) throw new Error('skip')
    dir = await mkdtemp(path.join(os.tmpdir(), 'rs-bench-members-'))
    lan = createLan(P, N, `10.78.${process.pid % 200}`)
    const hosts = lan.hosts.map((h) => ({ ns: h.ns, addr: h.ip }))
    const run = (ns: string, args: string[]): string => execFileSync('ip', ['netns', 'exec', ns, process.execPath, BIN, ...args], { encoding: 'utf8' })
    const start = (h: typeof hosts[0], name: string): { child: ChildProcess; lines: string[]; spawnedAt: number } => {
      const lines: string[] = []
      const spawnedAt = Date.now()
      const child = spawn('ip', ['netns', 'exec', h.ns, process.execPath, BIN, 'agent', '--state-dir', path.join(dir!, name), '--name', name, '--listen', `/ip4/${h.addr}/tcp/0`, '--mdns-interface', h.addr], { stdio: ['ignore', 'ignore', 'pipe'] })
      child.stderr!.on('data', (d: Buffer) => { for (const l of d.toString().split('\n')) if (l !== '') lines.push(`${Date.now()} ${l}`) })
      children.push(child)
      return { child, lines, spawnedAt }
    }
    const first = start(hosts[0]!, 'm0')
    while (!existsSync(path.join(dir, 'm0', 'api.json'))) await new Promise((r) => setTimeout(r, 50))
    for (let i = 1; i < N; i++) run(hosts[0]!.ns, ['farm', 'join', run(hosts[0]!.ns, ['farm', 'invite', '--state-dir', path.join(dir, 'm0')]).trim(), '--state-dir', path.join(dir, `m${i}`)])
    const others = hosts.slice(1).map((h, i) => start(h, `m${i + 1}`))
    const started = Date.now()
    // Formed when every agent has logged N-1 members alive; discovery = first "discovered … (mDNS)" line.
    const all = [first, ...others]
    const alive = (lines: string[]): number => new Set(lines.filter((l) => / member m\d+ \S+ is alive/.test(l)).map((l) => / member (m\d+)/.exec(l)![1])).size
    while (!all.every((a) => alive(a.lines) >= N - 1)) {
      if (Date.now() - started > 60_000) throw new Error('the farm did not form within 60 s')
      await new Promise((r) => setTimeout(r, 20))
    }
    const formedAt = Math.max(...all.map((a) => Number(a.lines.filter((l) => / is alive/.test(l)).at(-1)!.split(' ')[0])))
    const spawned = Math.max(...others.map((a) => a.spawnedAt))
    const discovered = others.flatMap((a) => a.lines.filter((l) => /discovered .* \(mDNS\)/.test(l)).map((l) => Number(l.split(' ')[0]) - a.spawnedAt))
    rows.push([`farm formed (${N} agents: join by invite + mDNS + hello)`, `${formedAt - spawned} ms`, 'from starting the last agent process (Node start, hardware and ffmpeg probes included) until every agent listed all others alive'])
    if (discovered.length > 0) rows.push(['mDNS discovery', `${median(discovered)} ms`, `median over ${discovered.length} discoveries, from starting the discovering agent's process`])
    // Idle: wait for benchmarks and joins to settle, then count eth0 bytes and read RSS.
    await new Promise((r) => setTimeout(r, 8000))
    const tx = (ns: string): number => Number(execFileSync('ip', ['netns', 'exec', ns, 'cat', '/sys/class/net/eth0/statistics/tx_bytes'], { encoding: 'utf8' }))
    const before = hosts.map((h) => tx(h.ns))
    await new Promise((r) => setTimeout(r, IDLE_S * 1000))
    const perMemberBps = hosts.map((h, i) => (tx(h.ns) - before[i]!) / IDLE_S / (N - 1))
    rows.push(['idle traffic per member pair (heartbeats, all layers, mDNS included)', `${median(perMemberBps).toFixed(0)} B/s`, `eth0 tx bytes over ${IDLE_S} s, divided by ${N - 1} peers; median of ${N} agents`])
    const rss = children.map((c) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${c.pid!}/status`, 'utf8'))![1]) / 1024)
    rows.push(['idle agent RSS', `${median(rss).toFixed(0)} MB`, `median of ${N} agents (max ${Math.max(...rss).toFixed(0)} MB); target < 120 MB`])
  } catch (err) {
    if ((err as Error).message === 'skip') rows.push(['namespace figures', 'skipped', 'need root and iproute2'])
    else throw err
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
    await new Promise((r) => setTimeout(r, 300))
    if (lan !== undefined) destroyLan(lan)
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  }
  console.log('membership figures\n')
  const w = Math.max(...rows.map((r) => r[0].length))
  for (const [k, v, how] of rows) console.log(`${k.padEnd(w)}  ${v.padStart(10)}  ${how}`)
  console.log(`\nmethod: ${N} real agent processes, one per network namespace, on a bridge in a namespace of its own; heartbeats every 1 s; dial figure from two FarmNodes in one process on 127.0.0.1`)
  console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} cores, node ${process.version}; ${new Date().toISOString()}`)
  console.log(JSON.stringify({ bench: 'membership', rows }))
  process.exit(0)
}

await main()
