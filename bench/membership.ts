/**
 * Membership figures, measured on real agents in network namespaces (needs root and iproute2):
 * agent start-up, time to discover (mDNS) and to form the farm, on a first start (join by
 * invite) and on a restart of every member at once; heartbeat traffic per member pair when
 * idle; idle agent RSS. Plus dial + handshake time, in this process on loopback.
 *
 *   node bin/run-ts.js bench/membership.ts [--agents 3] [--reps 1] [--idle-seconds 10] [--dials 20]
 *       [--variant LABEL=BIN[,ENV=VALUE…]]… [--logs DIR] [--quick]
 *
 * A variant is a `renderswarm.js` to run the agents with, and environment for them; the default
 * is `current=bin/renderswarm.js` (the bundle when fresh, else tsx). Variants are interleaved
 * within each repetition (A, B, A, B, …) so machine noise hits all alike, e.g.
 *   --variant before=/tmp/before/bin/renderswarm.js --variant tsx=bin/renderswarm.js,RENDERSWARM_TSX=1 --variant bundle=bin/renderswarm.js
 * Every figure is the median over repetitions of a per-repetition median over agents (min and
 * max over repetitions beside it). --logs DIR keeps every agent's stderr there, with arrival
 * times. --quick: 5 idle seconds and 10 dials (for `npm run bench`). Exits 0 unless something fails;
 * the last stdout line is the BENCH line (bench/result.ts), for the first variant.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { FarmNode } from '../agent/node.ts'
import { generateFarmKey, issueCertificate } from '../protocol/farm-key.ts'
import { createLan, destroyLan, type Lan } from '../test/helpers/netns.ts'
import { printBench, type BenchRow } from './result.ts'

const { values } = parseArgs({
  options: {
    agents: { type: 'string', default: '3' }, reps: { type: 'string', default: '1' }, 'idle-seconds': { type: 'string' },
    dials: { type: 'string' }, variant: { type: 'string', multiple: true }, logs: { type: 'string' }, quick: { type: 'boolean', default: false }
  }
})
const N = Math.max(2, Math.min(8, Number(values.agents)))
const REPS = Math.max(1, Math.min(20, Number(values.reps)))
const IDLE_S = Math.max(3, Math.min(120, Number(values['idle-seconds'] ?? (values.quick === true ? 5 : 10))))
const DIALS = Math.max(3, Math.min(200, Number(values.dials ?? (values.quick === true ? 10 : 20))))
const REPO = fileURLToPath(new URL('..', import.meta.url))
const LOGS = values.logs !== undefined ? path.resolve(values.logs) : undefined

interface Variant { label: string; bin: string; env: Record<string, string> }
const VARIANTS: Variant[] = (values.variant ?? ['current=bin/renderswarm.js']).map((spec) => {
  const m = /^([\w.+-]{1,32})=([^,]+)((?:,[A-Za-z_]\w*=[^,]*)*)$/.exec(spec)
  if (m === null) throw new Error(`--variant must look like LABEL=BIN[,ENV=VALUE…] (got "${spec}")`)
  const env = Object.fromEntries(m[3]!.split(',').filter((s) => s !== '').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]))
  const bin = path.resolve(REPO, m[2]!)
  if (!existsSync(bin)) throw new Error(`variant ${m[1]!}: no ${bin}`)
  return { label: m[1]!, bin, env }
})

const P = `rsb${process.pid % 100000}`
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
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
    while (!x.isMember(y.peerId.toString())) await sleep(1)
    times.push(performance.now() - t0)
    await Promise.all(pair.map((n) => n.stop()))
  }
  return times
}

/** One agent process: its stderr lines, each stamped with the time it arrived. */
interface Running { name: string; child: ChildProcess; lines: Array<{ at: number; text: string }>; spawnedAt: number; stateDir: string; apiAt?: number }

/** Figures of one repetition of one variant, in ms (bytes/s and MB for the last two). */
interface Figures { ready: number[]; discovered: number[]; seenToMember: number[]; formed: number; restartReady: number[]; restartDiscovered: number[]; restartSeenToMember: number[]; restartFormed: number; idleBps: number; idlePps: number; rssMb: number[] }

async function formFarm (lan: Lan, dir: string, v: Variant, rep: number): Promise<Figures> {
  const hosts = lan.hosts
  const env = { ...process.env, ...v.env }
  const cli = (ns: string, args: string[]): string => execFileSync('ip', ['netns', 'exec', ns, process.execPath, v.bin, ...args], { encoding: 'utf8', env })
  const running: Running[] = []
  const start = (i: number): Running => {
    const h = hosts[i]!
    const name = `m${i}`
    const stateDir = path.join(dir, name)
    const spawnedAt = Date.now()
    const child = spawn('ip', ['netns', 'exec', h.ns, process.execPath, v.bin, 'agent', '--state-dir', stateDir, '--name', name, '--listen', `/ip4/${h.ip}/tcp/0`, '--mdns-interface', h.ip], { stdio: ['ignore', 'ignore', 'pipe'], env })
    const a: Running = { name, child, lines: [], spawnedAt, stateDir }
    child.stderr!.on('data', (d: Buffer) => { for (const l of d.toString().split('\n')) if (l !== '') a.lines.push({ at: Date.now(), text: l }) })
    running.push(a)
    return a
  }
  const alive = (a: Running): Map<string, number> => {
    // peer id → when this agent first logged it alive
    const m = new Map<string, number>()
    for (const l of a.lines) { const x = / member m\d+ (\S+) is alive/.exec(l.text); if (x !== null && !m.has(x[1]!)) m.set(x[1]!, l.at) }
    return m
  }
  const discovered = (a: Running): Map<string, number> => {
    const m = new Map<string, number>()
    for (const l of a.lines) { const x = /discovered (\S+) at .* \(mDNS\)/.exec(l.text); if (x !== null && !m.has(x[1]!)) m.set(x[1]!, l.at) }
    return m
  }
  /** Waits until every agent lists all others alive; returns when the last one did. */
  const waitFormed = async (group: Running[]): Promise<number> => {
    const t0 = Date.now()
    while (!group.every((a) => alive(a).size >= N - 1)) {
      for (const a of group) if (a.apiAt === undefined && existsSync(path.join(a.stateDir, 'api.json'))) a.apiAt = Date.now()
      if (group.some((a) => a.child.exitCode !== null)) throw new Error(`${v.label}: an agent exited: ${group.flatMap((a) => a.lines.map((l) => l.text)).slice(-5).join(' | ')}`)
      if (Date.now() - t0 > 60_000) throw new Error(`${v.label}: the farm did not form within 60 s`)
      await sleep(10)
    }
    for (const a of group) if (a.apiAt === undefined) a.apiAt = Date.now()
    return Math.max(...group.map((a) => Math.max(...alive(a).values())))
  }
  let phase = 'first'
  const stopAll = async (): Promise<void> => {
    for (const a of running) if (a.child.exitCode === null) a.child.kill('SIGKILL')
    await Promise.all(running.map((a) => a.child.exitCode !== null ? undefined : new Promise((r) => a.child.once('exit', r))))
    if (LOGS !== undefined) {
      await mkdir(LOGS, { recursive: true })
      for (const a of running) await writeFile(path.join(LOGS, `${v.label}-${rep + 1}-${phase}-${a.name}.log`), a.lines.map((l) => `${l.at - a.spawnedAt} ${l.text}\n`).join(''))
    }
    running.length = 0
  }
  try {
    // First start: m0 creates the farm, the others join it by invite and meet by mDNS.
    const first = start(0)
    while (!existsSync(path.join(dir, 'm0', 'api.json'))) { if (first.child.exitCode !== null) throw new Error(`${v.label}: m0 exited`); await sleep(20) }
    for (let i = 1; i < N; i++) cli(hosts[0]!.ns, ['farm', 'join', cli(hosts[0]!.ns, ['farm', 'invite', '--state-dir', first.stateDir]).trim(), '--state-dir', path.join(dir, `m${i}`)])
    const others = hosts.slice(1).map((_, i) => start(i + 1))
    const formedAt = await waitFormed([first, ...others])
    /** For each peer an agent saw on mDNS and then admitted: the time between the two. */
    const seenToMember = (group: Running[]): number[] => group.flatMap((a) => {
      const al = alive(a)
      return [...discovered(a)].flatMap(([peer, at]) => { const m = al.get(peer); return m !== undefined && m >= at ? [m - at] : [] })
    })
    const figures: Omit<Figures, 'restartReady' | 'restartDiscovered' | 'restartSeenToMember' | 'restartFormed'> = {
      ready: others.map((a) => a.apiAt! - a.spawnedAt),
      discovered: others.flatMap((a) => [...discovered(a).values()].map((t) => t - a.spawnedAt)),
      seenToMember: seenToMember(others),
      formed: formedAt - Math.max(...others.map((a) => a.spawnedAt)),
      idleBps: 0,
      idlePps: 0,
      rssMb: []
    }
    // Idle: let the first-start self-benchmarks finish (their ffmpeg runs would outlive a
    // kill -9 of the agent and load the restart below), settle, then count eth0 bytes and read RSS.
    const t0 = Date.now()
    while (!running.every((a) => a.lines.some((l) => / benchmark(:| failed| stopped)/.test(l.text))) && Date.now() - t0 < 60_000) await sleep(100)
    await sleep(Math.max(2000, 8000 - (Date.now() - t0)))
    const tx = (ns: string): [number, number] => execFileSync('ip', ['netns', 'exec', ns, 'cat', '/sys/class/net/eth0/statistics/tx_bytes', '/sys/class/net/eth0/statistics/tx_packets'], { encoding: 'utf8' }).trim().split('\n').map(Number) as [number, number]
    const before = hosts.map((h) => tx(h.ns))
    await sleep(IDLE_S * 1000)
    const after = hosts.map((h) => tx(h.ns))
    figures.idleBps = median(hosts.map((_, i) => (after[i]![0] - before[i]![0]) / IDLE_S / (N - 1)))
    figures.idlePps = median(hosts.map((_, i) => (after[i]![1] - before[i]![1]) / IDLE_S / (N - 1)))
    // The agent is the child of `ip netns exec`, which execs: the pid is the agent's.
    figures.rssMb = running.map((a) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${a.child.pid!}/status`, 'utf8'))![1]) / 1024)
    // Restart: every member at once (state kept, no join): the everyday case.
    await stopAll()
    phase = 'restart'
    for (let i = 0; i < N; i++) await rm(path.join(dir, `m${i}`, 'api.json'), { force: true }) // left by kill -9
    const again = hosts.map((_, i) => start(i))
    const restartFormedAt = await waitFormed(again)
    await stopAll()
    return {
      ...figures,
      restartReady: again.map((a) => a.apiAt! - a.spawnedAt),
      restartDiscovered: again.flatMap((a) => [...discovered(a).values()].map((t) => t - a.spawnedAt)),
      restartSeenToMember: seenToMember(again),
      restartFormed: restartFormedAt - Math.max(...again.map((a) => a.spawnedAt))
    }
  } finally {
    await stopAll()
  }
}

type Row = [string, string, string]

function summarize (label: string, unit: string, per: number[], digits = 0): string {
  return `${median(per).toFixed(digits)} ${unit}${per.length > 1 ? ` (${Math.min(...per).toFixed(digits)}–${Math.max(...per).toFixed(digits)})` : ''}`.padStart(label.length)
}

async function main (): Promise<void> {
  const dial = await dialFigures()
  const rows: Row[] = [['dial + handshake + hello (loopback)', `${median(dial).toFixed(1)} ms`, `median of ${DIALS}; min ${Math.min(...dial).toFixed(1)}, max ${Math.max(...dial).toFixed(1)}`]]
  const results = new Map<string, Figures[]>(VARIANTS.map((v) => [v.label, []]))
  let lan: Lan | undefined
  let dir: string | undefined
  // Stopped from outside (bench/all.ts over its time limit, Ctrl-C): the agents die with this process
  // (SIGKILL to its process group follows); the namespaces and the temp dir are removed here.
  const onSignal = (): void => {
    if (lan !== undefined) destroyLan(lan)
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
    process.exit(130)
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    if (process.getuid?.() !== 0) throw new Error('skip')
    lan = createLan(P, N, `10.78.${process.pid % 200}`)
    for (let rep = 0; rep < REPS; rep++) {
      for (const v of VARIANTS) {
        dir = await mkdtemp(path.join(os.tmpdir(), 'rs-bench-members-'))
        const f = await formFarm(lan, dir, v, rep)
        results.get(v.label)!.push(f)
        await rm(dir, { recursive: true, force: true })
        dir = undefined
        process.stderr.write(`rep ${rep + 1}/${REPS} ${v.label}: formed ${f.formed} ms, restart formed ${f.restartFormed} ms, discovery ${median(f.discovered)} ms, RSS ${median(f.rssMb).toFixed(0)} MB, idle ${f.idleBps.toFixed(0)} B/s, ${f.idlePps.toFixed(1)} packets/s\n`)
      }
    }
  } catch (err) {
    if ((err as Error).message === 'skip') rows.push(['namespace figures', 'skipped', 'need root and iproute2'])
    else throw err
  } finally {
    if (lan !== undefined) destroyLan(lan)
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  }
  console.log('membership figures\n')
  const w = Math.max(...rows.map((r) => r[0].length))
  for (const [k, v, how] of rows) console.log(`${k.padEnd(w)}  ${v.padStart(10)}  ${how}`)
  const per = (pick: (f: Figures) => number): Map<string, number[]> => new Map([...results].map(([l, fs]) => [l, fs.map(pick)]))
  const table: Array<[string, string, Map<string, number[]>, number]> = [
    ['agent start-up: spawn → API up (first start)', 'ms', per((f) => median(f.ready)), 0],
    ['mDNS discovery: spawn → peer seen (first start)', 'ms', per((f) => median(f.discovered)), 0],
    ['mDNS seen → member alive (first start, join included)', 'ms', per((f) => f.seenToMember.length > 0 ? median(f.seenToMember) : NaN), 0],
    [`farm formed, first start (${N} agents, join by invite)`, 'ms', per((f) => f.formed), 0],
    ['agent start-up: spawn → API up (restart)', 'ms', per((f) => median(f.restartReady)), 0],
    ['mDNS discovery: spawn → peer seen (restart)', 'ms', per((f) => median(f.restartDiscovered)), 0],
    ['mDNS seen → member alive (restart)', 'ms', per((f) => f.restartSeenToMember.length > 0 ? median(f.restartSeenToMember) : NaN), 0],
    [`farm formed, all ${N} restarted at once`, 'ms', per((f) => f.restartFormed), 0],
    ['idle traffic per member pair (all layers, mDNS incl.)', 'B/s', per((f) => f.idleBps), 0],
    ['idle packets per member pair', '/s', per((f) => f.idlePps), 1],
    ['idle agent RSS (target < 120 MB)', 'MB', per((f) => median(f.rssMb)), 0]
  ]
  if ([...results.values()].some((fs) => fs.length > 0)) {
    const labels = VARIANTS.map((v) => v.label)
    const cw = Math.max(...table.map((t) => t[0].length))
    const colW = labels.map((l) => Math.max(l.length, ...table.map(([, unit, m, d]) => summarize(l, unit, m.get(l)!, d).trim().length)))
    console.log(`\n${''.padEnd(cw)}  ${labels.map((l, i) => l.padStart(colW[i]!)).join('  ')}`)
    for (const [k, unit, m, d] of table) console.log(`${k.padEnd(cw)}  ${labels.map((l, i) => summarize(l, unit, m.get(l)!, d).trim().padStart(colW[i]!)).join('  ')}`)
  }
  console.log(`\nmethod: ${N} real agent processes, one per network namespace, on a bridge in a namespace of its own; heartbeats every 1 s; ${REPS} repetition(s), variants interleaved; each figure the median over repetitions (range in brackets) of the per-repetition median over agents; "farm formed" from starting the last agent process until every agent lists all others alive; idle traffic = eth0 tx bytes over ${IDLE_S} s ÷ ${N - 1} peers, from 8 s after the farm formed or 2 s after the last first-start self-benchmark, whichever is later; RSS = VmRSS then; restart = all agents killed and started again at once with their state; dial figure from two FarmNodes in one process on 127.0.0.1`)
  console.log(`variants: ${VARIANTS.map((v) => `${v.label} = ${path.relative(REPO, v.bin) || v.bin}${Object.keys(v.env).length > 0 ? ` with ${Object.entries(v.env).map(([k, x]) => `${k}=${x}`).join(' ')}` : ''}`).join('; ')}`)
  console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} cores, node ${process.version}; ${new Date().toISOString()}`)
  console.log(JSON.stringify({ bench: 'membership', rows, variants: Object.fromEntries(results) }))
  const bench: BenchRow[] = [{ figure: 'dial + handshake + hello (loopback)', value: `${median(dial).toFixed(1)} ms`, target: '', pass: null, method: `median of ${DIALS} fresh node pairs in one process` }]
  const first = results.get(VARIANTS[0]!.label)!
  if (first.length === 0) {
    bench.push({ figure: 'membership in namespaces', value: 'skipped: needs root', target: '', pass: null, method: 'needs root and iproute2' })
  } else {
    const how = `${N} agents in namespaces, median of ${REPS} rep(s) of the median over agents`
    const fig = (figure: string, pick: (f: Figures) => number, unit: string, limit?: number): BenchRow => {
      const v = median(first.map(pick))
      return { figure, value: `${v.toFixed(unit === 'MB' ? 1 : 0)} ${unit}`, target: limit === undefined ? '' : `< ${limit} ${unit}`, pass: limit === undefined ? null : v < limit, method: how }
    }
    bench.push(
      fig('mDNS discovery, first start', (f) => median(f.discovered), 'ms', 2000),
      fig(`farm formed, first start (${N} agents)`, (f) => f.formed, 'ms', 3000),
      fig('mDNS discovery, restart', (f) => median(f.restartDiscovered), 'ms', 2000),
      fig(`farm formed, all ${N} restarted at once`, (f) => f.restartFormed, 'ms', 3000),
      fig('idle traffic per member pair', (f) => f.idleBps, 'B/s'),
      fig('idle agent RSS', (f) => median(f.rssMb), 'MB', 120)
    )
  }
  printBench('bench/membership.ts', bench)
  process.exit(0)
}

await main()
