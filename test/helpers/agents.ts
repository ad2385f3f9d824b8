/**
 * Real agent processes on test hosts (network namespaces from netns.ts) and the CLI run
 * against them. Every process started here is recorded, so `killAll()` ends exactly those.
 *
 *   const a = startAgent(host, dir, 'alpha', ['--slots', '1'])
 *   await waitFor(() => existsSync(path.join(a.stateDir, 'api.json')), 20_000, 'alpha')
 *   const r = await cli(host.ns, ['nodes', '--json', '--state-dir', a.stateDir])
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { waitFor } from './wait.ts'

export const BIN = fileURLToPath(new URL('../../bin/renderswarm.js', import.meta.url))

export interface AgentProc { child: ChildProcess; log: string[]; stateDir: string; name: string }
const started: AgentProc[] = []

export function cli (ns: string, args: string[], timeoutMs = 180_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs })
    let stdout = ''; let stderr = ''
    c.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    c.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    c.on('close', (code) => { resolve({ code: code ?? 1, stdout, stderr }) })
  })
}

export function startAgent (host: { ns: string; ip: string }, dir: string, name: string, extra: string[] = []): AgentProc {
  const stateDir = path.join(dir, name)
  const log: string[] = []
  const child = spawn('ip', ['netns', 'exec', host.ns, process.execPath, BIN, 'agent', '--state-dir', stateDir, '--name', name,
    '--listen', `/ip4/${host.ip}/tcp/0`, '--mdns-interface', host.ip, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] })
  child.stderr!.on('data', (d: Buffer) => { for (const l of d.toString().split('\n')) if (l !== '') log.push(`${Date.now()} ${l}`) })
  const a = { child, log, stateDir, name }
  started.push(a)
  return a
}

/** SIGKILLs every agent this module started that is still running (by its PID), and forgets them. */
export async function killAll (): Promise<void> {
  for (const a of started.splice(0)) if (a.child.exitCode === null && a.child.pid !== undefined) a.child.kill('SIGKILL')
  await new Promise((r) => setTimeout(r, 300))
}

export async function statusOf<T = Record<string, unknown>> (ns: string, stateDir: string, what = 'status'): Promise<T> {
  const r = await cli(ns, [what, '--json', '--state-dir', stateDir])
  if (r.code !== 0) throw new Error(`${what} failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as T
}

export interface TestFarm { workers: AgentProc[]; editor: AgentProc; hosts: Array<{ ns: string; ip: string }>; peerOf: Map<string, string> }

/**
 * Three workers (alpha holds the farm key; beta and gamma join by invite) and an editor's
 * workstation that submits but never renders (--slots 0), one per host; resolves once all four
 * see each other and every worker has its benchmark.
 */
export async function startFarm (hosts: Array<{ ns: string; ip: string }>, dir: string, extra: string[] = []): Promise<TestFarm> {
  const [h1, h2, h3, h4] = hosts as [typeof hosts[0], typeof hosts[0], typeof hosts[0], typeof hosts[0]]
  const alpha = startAgent(h1, dir, 'alpha', extra)
  await waitFor(() => existsSync(path.join(alpha.stateDir, 'api.json')) ? true : undefined, 20_000, 'alpha to start')
  for (const name of ['beta', 'gamma', 'editor']) {
    const inv = await cli(h1.ns, ['farm', 'invite', '--ttl', '10m', '--state-dir', alpha.stateDir])
    if (inv.code !== 0) throw new Error(`farm invite: ${inv.stderr}`)
    const join = await cli(h1.ns, ['farm', 'join', inv.stdout.trim(), '--state-dir', path.join(dir, name)])
    if (join.code !== 0) throw new Error(`farm join: ${join.stderr}`)
  }
  const workers = [alpha, startAgent(h2, dir, 'beta', extra), startAgent(h3, dir, 'gamma', extra)]
  const editor = startAgent(h4, dir, 'editor', ['--slots', '0', ...extra])
  const peerOf = new Map<string, string>()
  await waitFor(async () => {
    const r = await cli(h4.ns, ['nodes', '--json', '--state-dir', editor.stateDir])
    if (r.code !== 0) return undefined
    const nodes = (JSON.parse(r.stdout) as { nodes: Array<{ name: string; peerId: string; state: string; info?: { bench?: Record<string, number> } }> }).nodes
    for (const n of nodes) peerOf.set(n.name, n.peerId)
    return nodes.filter((n) => n.state === 'alive').length === 4 && nodes.filter((n) => n.name !== 'editor').every((n) => (n.info?.bench?.ffv1 ?? 0) > 0) ? true : undefined
  }, 120_000, 'four members with benchmarks', 500)
  return { workers, editor, hosts: [h1, h2, h3, h4], peerOf }
}
