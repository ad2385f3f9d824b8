/**
 * Real agents on real hosts: four network namespaces (a bridge in its own namespace, three
 * member hosts), real mDNS multicast on the bridge, real libp2p over TCP. Nothing touches the
 * host's interfaces; namespaces and processes are removed at the end (processes by PID).
 * Needs root and iproute2: skipped otherwise, except under CI=true where it must run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { cleanupTmp, tmpDir } from '../helpers/media.ts'
import { canUseNetns, createLan, destroyLan, type Lan } from '../helpers/netns.ts'
import { waitFor } from '../helpers/wait.ts'

const BIN = fileURLToPath(new URL('../../bin/renderswarm.js', import.meta.url))
const canRun = canUseNetns()
if (!canRun && process.env.CI === 'true') throw new Error('farm-netns tests need root and iproute2 (ip); CI runs as root: install iproute2')

let lan: Lan | undefined
let HOSTS: Lan['hosts'] = []
const agents: Array<{ child: ChildProcess; log: string[] }> = []
let dir: string

function cli (ns: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''; let stderr = ''
    c.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    c.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    c.on('close', (code) => { resolve({ code: code ?? 1, stdout, stderr }) })
  })
}

function startAgent (host: { ns: string; ip: string }, name: string, extra: string[] = []): { child: ChildProcess; log: string[]; stateDir: string } {
  const stateDir = path.join(dir, name)
  const log: string[] = []
  const child = spawn('ip', ['netns', 'exec', host.ns, process.execPath, BIN, 'agent', '--state-dir', stateDir, '--name', name,
    '--listen', `/ip4/${host.ip}/tcp/0`, '--mdns-interface', host.ip, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] })
  child.stderr!.on('data', (d: Buffer) => { for (const l of d.toString().split('\n')) if (l !== '') log.push(`${Date.now()} ${l}`) })
  agents.push({ child, log })
  return { child, log, stateDir }
}


async function nodesOf (ns: string, stateDir: string): Promise<Array<{ name: string; state: string; info?: { cpu: { cores: number }; ffmpeg: { encoders: string[] } } }>> {
  const r = await cli(ns, ['nodes', '--json', '--state-dir', stateDir])
  if (r.code !== 0) return []
  return (JSON.parse(r.stdout) as { nodes: Array<{ name: string; state: string }> }).nodes
}

describe.skipIf(!canRun)('a farm of real agents in network namespaces', () => {
  // One long scenario: starting agents costs seconds each on a 2-core machine.
  beforeAll(async () => {
    dir = await tmpDir('netns')
    lan = createLan(`rs${process.pid % 100000}`, 4, `10.77.${process.pid % 200}`)
    HOSTS = lan.hosts
  })

  afterAll(async () => {
    if (process.env.RS_DEBUG_NETNS === '1') for (const a of agents) console.log(a.log.join('\n'))
    for (const a of agents) if (a.child.exitCode === null && a.child.pid !== undefined) a.child.kill('SIGKILL')
    await new Promise((r) => setTimeout(r, 300))
    if (lan !== undefined) destroyLan(lan)
    await cleanupTmp()
  })

  it('members join by invite and find each other by mDNS; outsiders and garbage stay out; kill -9 is detected; revocation spreads; restart keeps membership', async () => {
    const [h1, h2, h3, h4] = HOSTS as [typeof HOSTS[0], typeof HOSTS[0], typeof HOSTS[0], typeof HOSTS[0]]
    // The first machine creates the farm; two more join with single-use invites.
    const a1 = startAgent(h1, 'alpha')
    await waitFor(() => existsSync(path.join(a1.stateDir, 'api.json')) ? true : undefined, 20_000, 'alpha to start')
    const tokens: string[] = []
    for (const name of ['beta', 'gamma']) {
      const inv = await cli(h1.ns, ['farm', 'invite', '--ttl', '10m', '--state-dir', a1.stateDir])
      expect(inv.code).toBe(0)
      tokens.push(inv.stdout.trim())
      const join = await cli(h1.ns, ['farm', 'join', inv.stdout.trim(), '--state-dir', path.join(dir, name)])
      expect(join.stdout).toMatch(/joining farm [0-9a-f]{16}/)
    }
    const a2 = startAgent(h2, 'beta')
    const a3 = startAgent(h3, 'gamma')
    // An outsider: its own one-machine farm, on the same LAN, told where alpha is.
    const alphaAddr = await waitFor(() => a1.log.map((l) => /libp2p (\/ip4\/\S+)/.exec(l)?.[1]).find((x) => x !== undefined), 5000, "alpha's address")
    startAgent(h4, 'outsider', ['--bootstrap', alphaAddr])
    await waitFor(() => existsSync(path.join(a2.stateDir, 'api.json')) && existsSync(path.join(a3.stateDir, 'api.json')) ? true : undefined, 20_000, 'beta and gamma to start')
    const ready = Date.now()
    const all = ['alpha', 'beta', 'gamma']
    for (const [host, a] of [[h1, a1], [h2, a2], [h3, a3]] as const) {
      await waitFor(async () => {
        const alive = (await nodesOf(host.ns, a.stateDir)).filter((n) => n.state === 'alive').map((n) => n.name).sort()
        return JSON.stringify(alive) === JSON.stringify(all) ? true : undefined
      }, 15_000, `${path.basename(a.stateDir)} to see all three members`)
    }
    const formedMs = Date.now() - ready
    console.log(`three agents formed the farm ${formedMs} ms after the last one was ready (join + mDNS + hello)`)
    const nodes = await nodesOf(h2.ns, a2.stateDir)
    for (const n of nodes) {
      expect(n.info!.cpu.cores).toBeGreaterThanOrEqual(1)
      expect(n.info!.ffmpeg.encoders).toContain('ffv1')
    }
    // Benchmark scores (measured in the background on first start) reach every member.
    await waitFor(async () => {
      const ns = await nodesOf(h2.ns, a2.stateDir) as Array<{ info?: { bench?: Record<string, number> } }>
      return ns.length === 3 && ns.every((n) => (n.info?.bench?.ffv1 ?? 0) > 0) ? true : undefined
    }, 60_000, 'benchmark scores of all three')
    // beta and gamma never dialled each other by address: they met through mDNS.
    expect(nodes.map((n) => n.name).sort()).toEqual(all)
    // The outsider is in nobody's list and sees nobody.
    expect((await nodesOf(h1.ns, a1.stateDir)).map((n) => n.name)).not.toContain('outsider')
    expect((await nodesOf(h4.ns, path.join(dir, 'outsider'))).map((n) => n.name)).toEqual(['outsider'])
    // alpha refused the outsider at the transport (other PSK) or at hello; nothing of it got in.
    expect(tokens).toHaveLength(2)
    // Garbage on mDNS (a record with a malformed farm id, a NUL in the peer id, a non-numeric
    // version) is refused and counted; the agents keep running.
    const garbage = `const { Bonjour } = require('bonjour-service');
      const b = new Bonjour({ interface: '${h4.ip}', bind: '0.0.0.0' });
      b.publish({ name: 'junk', type: 'renderswarm', port: 9, probe: false, txt: { farm: 'ZZ', peer: 'a\\u0000b', addrs: 'x', v: 'one' } });
      setTimeout(() => b.unpublishAll(() => { b.destroy(); process.exit(0) }), 2500)`
    execFileSync('ip', ['netns', 'exec', h4.ns, process.execPath, '-e', garbage], { cwd: path.dirname(path.dirname(BIN)), timeout: 20_000 })
    const refusedTxt = async (): Promise<number> => {
      const r = await cli(h1.ns, ['status', '--json', '--state-dir', a1.stateDir])
      return (JSON.parse(r.stdout) as { refused: Record<string, number> }).refused['mdns-txt'] ?? 0
    }
    await waitFor(async () => (await refusedTxt()) >= 1 ? true : undefined, 10_000, 'the garbage TXT record to be refused')
    expect(a1.child.exitCode).toBeNull()
    // kill -9 gamma: alpha and beta mark it dead within 4 s.
    const killedAt = Date.now()
    a3.child.kill('SIGKILL')
    for (const a of [a1, a2]) {
      const line = await waitFor(() => a.log.find((l) => / member gamma \S+ is dead/.test(l)), 8000, 'gamma to be marked dead')
      const at = Number(line.split(' ')[0])
      console.log(`${path.basename(a.stateDir)} marked gamma dead ${at - killedAt} ms after kill -9`)
      expect(at - killedAt).toBeLessThan(4000)
    }
    // Revocation through the CLI on the farm key's machine reaches every member within 5 s.
    const betaId = (await nodesOf(h1.ns, a1.stateDir) as Array<{ name: string; peerId?: string }>).find((n) => n.name === 'beta')!.peerId!
    const revokedAt = Date.now()
    const rv = await cli(h1.ns, ['farm', 'revoke', betaId, '--reason', 'test', '--state-dir', a1.stateDir])
    expect(rv.stdout).toMatch(/^revoked /)
    expect(rv.code).toBe(0)
    await waitFor(async () => (await nodesOf(h1.ns, a1.stateDir)).some((n) => n.name === 'beta') ? undefined : true, 5000, 'alpha to drop beta')
    console.log(`revoked beta: dropped by alpha ${Date.now() - revokedAt} ms after the command started`)
    // Restart keeps identity and membership: gamma comes back as the same member.
    const before = JSON.parse(await readFile(path.join(a1.stateDir, 'api.json'), 'utf8')) as { pid: number }
    expect(before.pid).toBeGreaterThan(0)
    const a3b = startAgent(h3, 'gamma')
    await waitFor(async () => (await nodesOf(h1.ns, a1.stateDir)).some((n) => n.name === 'gamma' && n.state === 'alive') ? true : undefined, 15_000, 'gamma to rejoin after restart')
    expect(a3b.log.some((l) => /joined farm/.test(l))).toBe(false)
    // …and its benchmark cache: no new measurement, and the scores are advertised at once.
    expect(a3b.log.some((l) => / benchmark: /.test(l))).toBe(false)
    expect(a3.log.some((l) => / benchmark: /.test(l))).toBe(true)
    // The revoked member stays out.
    expect((await nodesOf(h1.ns, a1.stateDir)).map((n) => n.name).sort()).toEqual(['alpha', 'gamma'])
  })
})
