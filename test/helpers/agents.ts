/**
 * Real agent processes on test hosts (network namespaces from netns.ts) and the CLI run
 * against them. Every process started here is recorded, so `killAll()` ends exactly those.
 *
 *   const a = startAgent(host, dir, 'alpha', ['--slots', '1'])
 *   await waitFor(() => existsSync(path.join(a.stateDir, 'api.json')), 20_000, 'alpha')
 *   const r = await cli(host.ns, ['nodes', '--json', '--state-dir', a.stateDir])
 */
import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

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
