/**
 * One conformance suite for every CloudProvider: AWS, GCP and Azure through their real SDKs
 * against in-repo fakes of their HTTP APIs (test/fakes/), and the local provider against real
 * agent processes that join a real farm on 127.0.0.1.
 *
 * Each provider gets a harness: how to make boot scripts (fake tokens for the fakes, real
 * single-use invites from a real farm head for local), how to read back what the instance
 * received, and the knobs behind the error paths. Throttling cases run where there is an API to
 * throttle (not for local, which has none).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { OAuth2Client } from 'google-auth-library'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AwsProvider } from '../../coordinator/cloud/aws.ts'
import { AzureProvider } from '../../coordinator/cloud/azure.ts'
import { bootstrapScript, tokenOf } from '../../coordinator/cloud/bootstrap.ts'
import { GcpProvider } from '../../coordinator/cloud/gcp.ts'
import { LocalProvider } from '../../coordinator/cloud/local.ts'
import { CloudError, MANAGED_TAG, PriceRowSchema, type CloudProvider, type Instance, type ProviderName } from '../../coordinator/cloud/provider.ts'
import { LocalClient } from '../../ui/sdk/client.ts'
import { FakeArm } from '../fakes/arm.ts'
import { FakeEc2 } from '../fakes/ec2.ts'
import { FakeGce } from '../fakes/gce.ts'
import { BIN } from '../helpers/agents.ts'
import { waitFor } from '../helpers/wait.ts'

interface Harness {
  name: ProviderName
  provider: CloudProvider
  instanceType: string
  priceRegion: string
  /** Join tokens for n new machines (real invites for local). */
  tokens: (n: number) => Promise<string[]>
  bootstrap: () => Promise<string[]>
  /** The boot script as the instance got it (decoded from what the SDK sent), or undefined. */
  received: (id: string) => string | undefined
  /** Whether the cloud was asked for spot capacity for this instance (from the request log). */
  sentSpot: (id: string) => boolean | undefined
  /** Local: the launched agents really joined the farm (seen as cloud members by the head). */
  joined?: (names: string[]) => Promise<void>
  /** Local: the agents' processes are gone. */
  processesGone?: (pids: number[]) => Promise<void>
  interrupt: (id: string) => Promise<void>
  setCapacity: (n: number) => void
  setQuota: (n: number) => void
  throttle?: (n: number) => void
  teardown: () => Promise<void>
}

const FARM = 'farm-conf'

async function awsHarness (): Promise<Harness> {
  const fake = await FakeEc2.start({ accessKeyId: 'AKIDCONFORMANCE' })
  fake.spotPrices.set('g5.xlarge', 0.3917)
  const provider = new AwsProvider({ region: 'us-east-1', imageId: 'ami-0renderswarm', farmTag: FARM, endpoint: fake.url, credentials: { accessKeyId: 'AKIDCONFORMANCE', secretAccessKey: 'not-a-secret' }, maxAttempts: 3 })
  return {
    name: 'aws', provider, instanceType: 'g5.xlarge', priceRegion: 'us-east-1',
    tokens: async (n) => Array.from({ length: n }, (_, i) => `aws-token-${i}-'quoted' $(x)`),
    bootstrap: async () => ['/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWConformance'],
    received: (id) => { const u = fake.instances.get(id)?.userData; return u === undefined ? undefined : Buffer.from(u, 'base64').toString('utf8') },
    sentSpot: (id) => fake.instances.get(id)?.spot,
    interrupt: async (id) => { fake.interrupt(id, 50) },
    setCapacity: (n) => { fake.knobs.capacity = n },
    setQuota: (n) => { fake.knobs.quota = n },
    throttle: (n) => { fake.knobs.throttleNext = n },
    teardown: async () => { await provider.close(); await fake.stop() }
  }
}

async function gcpHarness (): Promise<Harness> {
  const fake = await FakeGce.start({ token: 'gce-conformance-token' })
  const auth = new OAuth2Client()
  auth.setCredentials({ access_token: 'gce-conformance-token', expiry_date: Date.now() + 3_600_000 })
  const provider = new GcpProvider({ project: 'studio', zone: 'us-central1-a', image: 'projects/debian-cloud/global/images/family/debian-12', farmTag: FARM, apiEndpoint: '127.0.0.1', port: fake.port, protocol: 'http', authClient: auth, retryDelayMs: 20, maxRetries: 2 })
  const body = (id: string): Record<string, any> | undefined => fake.instances.get(id)?.body
  return {
    name: 'gcp', provider, instanceType: 'n1-standard-4+nvidia-tesla-t4', priceRegion: 'us-central1',
    tokens: async (n) => Array.from({ length: n }, (_, i) => `gcp-token-${i}-'quoted' $(x)`),
    bootstrap: async () => ['/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWConformance'],
    received: (id) => (body(id)?.metadata?.items as Array<{ key: string; value: string }> | undefined)?.find((m) => m.key === 'startup-script')?.value,
    sentSpot: (id) => { const s = body(id)?.scheduling; return s === undefined ? undefined : s.provisioningModel === 'SPOT' && s.instanceTerminationAction === 'DELETE' },
    interrupt: async (id) => { fake.interrupt(id) },
    setCapacity: (n) => { fake.knobs.capacity = n },
    setQuota: (n) => { fake.knobs.quota = n },
    throttle: (n) => { fake.knobs.throttleNext = n },
    teardown: async () => { await provider.close(); await fake.stop() }
  }
}

async function azureHarness (): Promise<Harness> {
  const fake = await FakeArm.start({ token: 'arm-conformance-token' })
  const sub = '00000000-0000-4000-8000-00000000c0f0'
  const provider = new AzureProvider({
    subscriptionId: sub, resourceGroup: 'render', location: 'eastus', farmTag: FARM, sshPublicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIConformanceOnly test',
    subnetId: `/subscriptions/${sub}/resourceGroups/render/providers/Microsoft.Network/virtualNetworks/farm/subnets/burst`,
    credential: { getToken: async () => ({ token: 'arm-conformance-token', expiresOnTimestamp: Date.now() + 3_600_000 }) },
    endpoint: fake.url, ca: fake.cert, pollIntervalMs: 20, maxRetries: 3
  })
  const props = (id: string): Record<string, any> | undefined => fake.vms.get(id)?.properties
  return {
    name: 'azure', provider, instanceType: 'Standard_NC4as_T4_v3', priceRegion: 'eastus',
    tokens: async (n) => Array.from({ length: n }, (_, i) => `azure-token-${i}-'quoted' $(x)`),
    bootstrap: async () => ['/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWConformance'],
    received: (id) => { const c = props(id)?.osProfile?.customData as string | undefined; return c === undefined ? undefined : Buffer.from(c, 'base64').toString('utf8') },
    sentSpot: (id) => { const p = props(id); return p === undefined ? undefined : p.priority === 'Spot' && p.evictionPolicy === 'Delete' },
    // Through the SDK's own simulateEviction call, which the fake honours as Azure does.
    interrupt: async (id) => { await (await provider.client()).virtualMachines.simulateEviction('render', id) },
    setCapacity: (n) => { fake.knobs.capacity = n },
    setQuota: (n) => { fake.knobs.quota = n },
    throttle: (n) => { fake.knobs.throttleNext = n },
    teardown: async () => { await provider.close(); await fake.stop() }
  }
}

function cliRun (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => { resolve({ code: err === null ? 0 : Number((err as { code?: unknown }).code ?? 1), stdout, stderr }) })
  })
}

async function localHarness (): Promise<Harness> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rs-conf-local-'))
  const headDir = path.join(dir, 'head')
  // The farm head: a real agent on loopback, no mDNS (nothing leaves 127.0.0.1).
  const head: ChildProcess = spawn(process.execPath, [BIN, 'agent', '--state-dir', headDir, '--name', 'head', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--no-mdns', '--slots', '0'], { stdio: ['ignore', 'ignore', 'ignore'] })
  await waitFor(() => existsSync(path.join(headDir, 'api.json')), 30_000, 'the farm head to start')
  const api = await LocalClient.forStateDir(headDir)
  const provider = new LocalProvider({ bin: BIN, baseDir: dir, farmTag: FARM, graceMs: 300, stopTimeoutMs: 5000 })
  const pidOf = (id: string): number | undefined => { const p = (provider as unknown as { running: Map<string, { child: ChildProcess }> }).running.get(id)?.child.pid; return p }
  return {
    name: 'local', provider, instanceType: 'local-agent', priceRegion: 'local',
    tokens: async (n) => {
      const out: string[] = []
      for (let i = 0; i < n; i++) {
        const r = await cliRun(['farm', 'invite', '--ttl', '10m', '--state-dir', headDir])
        if (r.code !== 0) throw new Error(`farm invite failed: ${r.stderr}`)
        out.push(r.stdout.trim())
      }
      return out
    },
    bootstrap: async () => (await api.get<{ addrs: string[] }>('/v1/status')).addrs.filter((a) => a.startsWith('/ip4/127.0.0.1/')),
    received: () => undefined,
    sentSpot: () => undefined,
    joined: async (names) => {
      await waitFor(async () => {
        const { nodes } = await api.get<{ nodes: Array<{ name: string; state: string; location: string }> }>('/v1/nodes')
        return names.every((n) => nodes.some((m) => m.name === n && m.state === 'alive' && m.location === 'cloud')) ? true : undefined
      }, 25_000, `${names.join(', ')} to join the farm as cloud members`, 250)
    },
    processesGone: async (pids) => {
      await waitFor(() => pids.every((pid) => { try { process.kill(pid, 0); return false } catch { return true } }), 10_000, 'the agents to exit')
    },
    interrupt: async (id) => { expect(pidOf(id)).toBeGreaterThan(0); provider.interrupt(id) },
    setCapacity: (n) => { provider.limits.capacity = n },
    setQuota: (n) => { provider.limits.maxInstances = n },
    teardown: async () => {
      await provider.terminate((await provider.list()).filter((i) => i.state !== 'terminated').map((i) => i.id)).catch(() => {})
      await provider.close()
      if (head.exitCode === null && head.signalCode === null) {
        head.kill('SIGTERM')
        const t = setTimeout(() => { head.kill('SIGKILL') }, 5000)
        await new Promise((r) => head.once('exit', r))
        clearTimeout(t)
      }
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

const HARNESSES: Array<[ProviderName, () => Promise<Harness>]> = [['aws', awsHarness], ['gcp', gcpHarness], ['azure', azureHarness], ['local', localHarness]]

async function rejection (p: Promise<unknown>): Promise<CloudError> {
  try { await p } catch (err) {
    expect(err).toBeInstanceOf(CloudError)
    return err as CloudError
  }
  throw new Error('expected the call to fail')
}

describe.each(HARNESSES)('CloudProvider conformance: %s', (name, make) => {
  let h: Harness
  beforeAll(async () => { h = await make() })
  afterAll(async () => { await h?.teardown() })

  it('launches 2 spot machines that get their own boot script and token, lists them, terminates them', async () => {
    const tokens = await h.tokens(2)
    const boot = await h.bootstrap()
    const scripts = tokens.map((token, i) => bootstrapScript({ token, bootstrap: boot, name: `burst-${name}-${i}` }))
    const launched = await h.provider.launch(2, h.instanceType, { spot: true, userData: scripts, tags: { job: 'conformance' } })
    expect(launched).toHaveLength(2)
    expect(new Set(launched.map((i) => i.id)).size).toBe(2)
    for (const i of launched) {
      expect(i).toMatchObject({ provider: name, instanceType: h.instanceType, spot: true })
      expect(['pending', 'running']).toContain(i.state)
      expect(i.tags).toMatchObject({ job: 'conformance', [MANAGED_TAG]: FARM })
      expect(Number.isFinite(i.launchedMs)).toBe(true)
    }
    const listed = await h.provider.list()
    for (const i of launched) expect(listed.find((l) => l.id === i.id)).toMatchObject({ id: i.id, spot: true, state: expect.stringMatching(/^(pending|running)$/) as unknown as string })
    // What arrived is the exact script, each machine with its own single-use token.
    launched.forEach((inst, k) => {
      const got = h.received(inst.id)
      if (h.joined === undefined) {
        expect(got).toBe(scripts[k])
        expect(tokenOf(got!)).toBe(tokens[k])
        expect(h.sentSpot(inst.id)).toBe(true)
      }
    })
    if (h.joined !== undefined) await h.joined(launched.map((i) => i.tags.name!))
    const pids = launched.map((i) => Number(i.tags.pid)).filter((p) => p > 0)
    await h.provider.terminate(launched.map((i) => i.id))
    const after = await waitFor(async () => {
      const l = await h.provider.list()
      return launched.every((i) => { const s = l.find((x) => x.id === i.id)?.state; return s === undefined || s === 'terminated' }) ? l : undefined
    }, 10_000, 'the instances to be gone')
    expect(after.filter((i) => launched.some((x) => x.id === i.id) && i.state !== 'terminated')).toEqual([])
    if (h.processesGone !== undefined) {
      expect(pids).toHaveLength(2)
      await h.processesGone(pids)
    }
  }, 60_000)

  it('honours on-demand (spot: false)', async () => {
    const [token] = await h.tokens(1)
    const script = bootstrapScript({ token: token!, bootstrap: await h.bootstrap(), name: `od-${name}` })
    const [inst] = await h.provider.launch(1, h.instanceType, { spot: false, userData: script, tags: {} })
    expect(inst!.spot).toBe(false)
    expect((await h.provider.list()).find((i) => i.id === inst!.id)?.spot).toBe(false)
    if (h.joined === undefined) expect(h.sentSpot(inst!.id)).toBe(false)
    await h.provider.terminate([inst!.id])
  }, 60_000)

  it('answers valid price rows for its region', async () => {
    const rows = await h.provider.prices(h.priceRegion)
    expect(rows.length).toBeGreaterThan(0)
    for (const r of rows) {
      expect(PriceRowSchema.parse(r)).toEqual(r)
      expect(r.provider).toBe(name)
      expect(r.region).toBe(h.priceRegion)
    }
    if (name === 'aws') expect(rows.find((r) => r.instanceType === 'g5.xlarge')?.spotPerHour).toBe(0.3917) // live, from DescribeSpotPriceHistory
  })

  it('maps capacity, quota and unknown-id errors to their codes', async () => {
    const script = bootstrapScript({ token: 'never-used', bootstrap: ['/ip4/127.0.0.1/tcp/1'] })
    h.setCapacity(0)
    expect((await rejection(h.provider.launch(1, h.instanceType, { spot: true, userData: script, tags: {} }))).code).toBe('capacity')
    h.setCapacity(8)
    h.setQuota(1)
    expect((await rejection(h.provider.launch(2, h.instanceType, { spot: false, userData: script, tags: {} }))).code).toBe('quota')
    h.setQuota(64)
    const unknown = name === 'aws' ? 'i-0123456789abcdef0' : `rs-${FARM}-00000000`
    const e = await rejection(h.provider.terminate([unknown]))
    expect(e.code).toBe('not-found')
    expect(e.message).toContain(unknown)
    // Nothing half-launched is left behind.
    expect((await h.provider.list()).filter((i) => i.state !== 'terminated' && i.state !== 'stopping')).toEqual([])
  }, 60_000)

  it('delivers a spot interruption notice', async () => {
    const [token] = await h.tokens(1)
    const [inst] = await h.provider.launch(1, h.instanceType, { spot: true, userData: bootstrapScript({ token: token!, bootstrap: await h.bootstrap(), name: `spot-${name}` }), tags: {} })
    await h.provider.list() // the provider has seen it running
    expect(await h.provider.pollInterruptions()).toEqual([])
    await h.interrupt(inst!.id)
    const notices = await waitFor(async () => { const n = await h.provider.pollInterruptions(); return n.length > 0 ? n : undefined }, 10_000, 'an interruption notice')
    expect(notices).toHaveLength(1)
    expect(notices[0]).toMatchObject({ id: inst!.id, provider: name })
    expect(notices[0]!.terminateAtMs).toBeGreaterThanOrEqual(notices[0]!.noticedMs - 1000)
    expect(await h.provider.pollInterruptions()).toEqual([]) // each notice once
    await waitFor(async () => { const s = (await h.provider.list()).find((i) => i.id === inst!.id)?.state; return s === undefined || s === 'terminated' ? true : undefined }, 10_000, 'the interrupted machine to go')
  }, 60_000)

  // The local provider has no API that could throttle; every cloud does.
  if (name !== 'local') it('retries throttled calls inside the SDK, and reports "throttled" when the retries give up', async () => {
    h.throttle!(2)
    const listed: Instance[] = await h.provider.list() // two refusals, then the SDK's third try succeeds
    expect(Array.isArray(listed)).toBe(true)
    h.throttle!(20)
    const e = await rejection(h.provider.list())
    expect(e.code).toBe('throttled')
    h.throttle!(0)
  }, 60_000)

  it('refuses bad launch arguments before sending anything', async () => {
    expect((await rejection(h.provider.launch(0, h.instanceType, { spot: false, userData: 'x', tags: {} }))).code).toBe('invalid')
    expect((await rejection(h.provider.launch(2, h.instanceType, { spot: false, userData: ['only one'], tags: {} }))).message).toMatch(/1 boot scripts for 2 instances/)
    expect((await rejection(h.provider.launch(1, h.instanceType, { spot: false, userData: 'x', tags: { 'Bad Key': 'v' } }))).message).toMatch(/tag key/)
    expect((await rejection(h.provider.launch(1, 'bad type!', { spot: false, userData: 'x', tags: {} }))).code).toBe('invalid')
  })
})
