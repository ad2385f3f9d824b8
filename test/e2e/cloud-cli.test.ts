/**
 * `renderswarm cloud …` as a user meets it: the real CLI process, a real agent on loopback, and a
 * "cloud" node started by the local provider (real agent, real single-use invite, --location cloud)
 * joining it. Nothing leaves 127.0.0.1; every process started here is ended by its PID.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { bootstrapScript } from '../../coordinator/cloud/bootstrap.ts'
import { LocalProvider } from '../../coordinator/cloud/local.ts'
import { bundledPrices } from '../../coordinator/cloud/prices.ts'
import { LocalClient } from '../../ui/sdk/client.ts'
import { waitFor } from '../helpers/wait.ts'

const BIN = fileURLToPath(new URL('../../bin/renderswarm.js', import.meta.url))

interface Ran { code: number; stdout: string; stderr: string }
function cli (args: string[]): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (typeof err.code === 'number' ? err.code : 1), stdout, stderr })
    })
  })
}

describe('cloud prices', () => {
  const table = bundledPrices()
  it('lists the bundled table cheapest first, with its date and sources', async () => {
    const r = await cli(['cloud', 'prices'])
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).toMatch(/^list prices in USD per hour, bundled with renderswarm, read 2026-11-29;/)
    expect(lines[1]).toMatch(/^provider\s+region\s+type\s+GPU\s+vCPU\s+RAM GiB\s+on-demand\s+spot\s+saving$/)
    const rows = lines.slice(2, -1)
    expect(rows).toHaveLength(table.length)
    const onDemand = rows.map((l) => Number(l.trim().split(/\s+/).at(-3)))
    expect(onDemand).toEqual([...onDemand].sort((a, b) => a - b))
    expect(rows.find((l) => l.includes('g5.xlarge') && l.includes('us-east-1'))).toMatch(/^aws\s+us-east-1\s+g5\.xlarge\s+1× NVIDIA A10G\s+4\s+16\s+1\.0060\s+0\.4081\s+59%$/)
    expect(lines.at(-1)).toMatch(/^sources: .*https:\/\/aws\.amazon\.com\/ec2\/pricing\/on-demand\/.*https:\/\/cloud\.google\.com\/compute\/gpus-pricing/)
  })
  it('filters by provider and region (--json)', async () => {
    const gcp = JSON.parse((await cli(['cloud', 'prices', '--provider', 'gcp', '--json'])).stdout) as { dates: string[]; rows: Array<{ provider: string; onDemandPerHour: number; date: string; source: string }> }
    expect(gcp.rows.length).toBe(table.filter((r) => r.provider === 'gcp').length)
    expect(gcp.rows.every((r) => r.provider === 'gcp' && r.source.startsWith('https://'))).toBe(true)
    expect(gcp.rows.map((r) => r.onDemandPerHour)).toEqual(gcp.rows.map((r) => r.onDemandPerHour).sort((a, b) => a - b))
    expect(gcp.dates).toEqual(['2026-11-29'])
    const east = JSON.parse((await cli(['cloud', 'prices', '--region', 'eastus', '--json'])).stdout) as { rows: Array<{ provider: string; region: string; instanceType: string }> }
    expect(east.rows.map((r) => `${r.provider} ${r.region} ${r.instanceType}`)).toEqual(['azure eastus Standard_NV6ads_A10_v5', 'azure eastus Standard_NC4as_T4_v3'])
  })
  it('refuses bad flags with a clear message and exit 2', async () => {
    const none = await cli(['cloud', 'prices', '--provider', 'aws', '--region', 'us-central1'])
    expect(none.code).toBe(2)
    expect(none.stderr).toBe('renderswarm: no bundled prices for aws in region us-central1; the table has: aws eu-west-1, aws us-east-1\n')
    const prov = await cli(['cloud', 'prices', '--provider', 'ibm'])
    expect([prov.code, prov.stderr]).toEqual([2, 'renderswarm: --provider must be one of aws, gcp, azure, local (got "ibm")\n'])
    const opt = await cli(['cloud', 'prices', '--currency', 'EUR'])
    expect(opt.code).toBe(2)
    expect(opt.stderr).toMatch(/^renderswarm: cloud: Unknown option '--currency'/)
    const sub = await cli(['cloud', 'rent'])
    expect(sub.code).toBe(2)
    expect(sub.stderr).toBe('renderswarm: unknown cloud command "rent" (prices, status or scale; see renderswarm cloud help)\n')
    const help = await cli(['cloud', 'help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/^usage: renderswarm cloud <command>\n {2}prices /)
  })
})

describe('cloud status and scale against a running agent', () => {
  let dir: string
  let headDir: string
  let head: ChildProcess
  let provider: LocalProvider

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rs-cloud-cli-'))
    headDir = path.join(dir, 'studio')
    head = spawn(process.execPath, [BIN, 'agent', '--state-dir', headDir, '--name', 'studio', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--no-mdns', '--slots', '0'], { stdio: ['ignore', 'ignore', 'ignore'] })
    await waitFor(() => existsSync(path.join(headDir, 'api.json')), 30_000, 'the studio agent to start', 100)
    const api = await LocalClient.forStateDir(headDir)
    const inv = await cli(['farm', 'invite', '--ttl', '10m', '--state-dir', headDir])
    expect(inv.code, inv.stderr).toBe(0)
    const addrs = (await api.get<{ addrs: string[] }>('/v1/status')).addrs.filter((a) => a.startsWith('/ip4/127.0.0.1/'))
    provider = new LocalProvider({ bin: BIN, baseDir: dir, stopTimeoutMs: 5000 })
    await provider.launch(1, 'local-agent', { spot: false, userData: bootstrapScript({ token: inv.stdout.trim(), bootstrap: addrs, name: 'burst-1' }), tags: {} })
    await waitFor(async () => {
      const { nodes } = await api.get<{ nodes: Array<{ name: string; state: string; location: string }> }>('/v1/nodes')
      return nodes.some((n) => n.name === 'burst-1' && n.state === 'alive' && n.location === 'cloud') ? true : undefined
    }, 40_000, 'burst-1 to join as a cloud member', 250)
  }, 90_000)

  afterAll(async () => {
    if (provider !== undefined) {
      await provider.terminate((await provider.list()).filter((i) => i.state !== 'terminated').map((i) => i.id)).catch(() => {})
      await provider.close()
    }
    if (head !== undefined && head.exitCode === null && head.signalCode === null) {
      const exited = new Promise((resolve) => { head.once('exit', resolve) })
      head.kill('SIGTERM')
      const t = setTimeout(() => { head.kill('SIGKILL') }, 5000)
      await exited
      clearTimeout(t)
    }
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  }, 30_000)

  it('without cloud.json: burst is off, and the farm\'s cloud nodes are still shown', async () => {
    const r = await cli(['cloud', 'status', '--state-dir', headDir])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(`cloud burst: off (no ${path.join(headDir, 'cloud.json')};`)
    expect(r.stdout).toMatch(/^farm: 2 node\(s\), 1 in the cloud$/m)
    expect(r.stdout).toMatch(/^ {2}burst-1\s+alive\s+12D3KooW\w+$/m)
  })

  it('with cloud.json: providers, limits, budget; spend honestly "not metered yet"', async () => {
    await writeFile(path.join(headDir, 'cloud.json'), JSON.stringify({
      providers: { local: { maxInstances: 2 }, aws: { region: 'us-east-1', instanceTypes: ['g5.xlarge'] } },
      maxNodes: 3, budget: { amount: 20, period: 'week' }, hourlyCostCap: 4
    }))
    const j = await cli(['cloud', 'status', '--json', '--state-dir', headDir])
    expect(j.code, j.stderr).toBe(0)
    const s = JSON.parse(j.stdout) as { config: Record<string, unknown>; nodes: { total: number; lan: number; cloud: Array<{ name: string; state: string }> }; budget: Record<string, unknown> }
    expect(s.config).toMatchObject({ present: true, providers: [{ provider: 'aws', region: 'us-east-1', types: ['g5.xlarge'] }, { provider: 'local', region: 'local', types: ['local-agent'] }], minNodes: 0, maxNodes: 3, hourlyCostCap: 4 })
    expect(s.nodes).toMatchObject({ total: 2, lan: 1, cloud: [{ name: 'burst-1', state: 'alive' }] })
    expect(s.budget).toMatchObject({ amount: 20, period: 'week', spentUsd: null, metered: false })
    expect(new Date(s.budget.periodStart as string).getUTCDay()).toBe(1) // weeks start on Monday
    const t = await cli(['cloud', 'status', '--state-dir', headDir])
    expect(t.stdout).toMatch(/^budget: \$20 per week \(since \d{4}-\d\d-\d\dT00:00:00\.000Z\); spent: not metered yet/m)
    expect(t.stdout).toMatch(/^ {2}local\s+local\s+local-agent$/m)
  })

  it('scale: checks its flags against cloud.json, then, on an agent started before cloud.json, says burst is off and why (exit 2)', async () => {
    const s = await cli(['cloud', 'scale', '--provider', 'local', '--count', '1', '--state-dir', headDir])
    expect(s.code).toBe(2)
    expect(s.stderr).toBe('renderswarm: cloud burst is off on this agent (no cloud.json in its state dir when it started, or it does not hold the farm key); nothing was launched (restart the agent after writing cloud.json)\n')
    expect((await provider.list()).filter((i) => i.state === 'running')).toHaveLength(1) // nothing new
    const gcp = await cli(['cloud', 'scale', '--provider', 'gcp', '--count', '1', '--state-dir', headDir])
    expect([gcp.code, gcp.stderr]).toEqual([2, `renderswarm: --provider gcp is not configured in ${path.join(headDir, 'cloud.json')} (configured: aws, local)\n`])
    const type = await cli(['cloud', 'scale', '--provider', 'aws', '--count', '2', '--type', 'p5.48xlarge', '--state-dir', headDir])
    expect([type.code, type.stderr]).toEqual([2, 'renderswarm: --type p5.48xlarge is not one of aws\'s configured types: g5.xlarge\n'])
    const zero = await cli(['cloud', 'scale', '--provider', 'aws', '--count', '0', '--state-dir', headDir])
    expect([zero.code, zero.stderr]).toEqual([2, 'renderswarm: --count must be a whole number 1–100 (got "0")\n'])
    const noCount = await cli(['cloud', 'scale', '--provider', 'aws', '--state-dir', headDir])
    expect([noCount.code, noCount.stderr]).toEqual([2, 'renderswarm: cloud scale: --count N is required\n'])
  })

  it('a bad cloud.json is refused with the file and field named (exit 2)', async () => {
    const file = path.join(headDir, 'cloud.json')
    await writeFile(file, JSON.stringify({ providers: { local: { maxInstances: 1 } }, budget: { amount: 5, period: 'year' } }))
    const r = await cli(['cloud', 'status', '--state-dir', headDir])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`renderswarm: ${file}: budget.period: Invalid enum value. Expected 'day' | 'week' | 'month', received 'year'\n`)
    await writeFile(file, JSON.stringify({ providers: { aws: { region: 'us-east-1', instanceTypes: ['g5.xlarge'], secretAccessKey: 'x' } }, budget: { amount: 5, period: 'day' } }))
    const s = await cli(['cloud', 'scale', '--provider', 'aws', '--count', '1', '--state-dir', headDir])
    expect(s.code).toBe(2)
    expect(s.stderr).toMatch(/cloud\.json: providers\.aws\.secretAccessKey: credentials do not belong in cloud\.json/)
  })
})
