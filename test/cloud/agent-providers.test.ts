/**
 * The agent launches through the clouds its cloud.json names: a real agent process whose AWS
 * client finds the in-repo EC2 fake through the SDK's standard environment (AWS_ENDPOINT_URL_EC2
 * and the access-key variables), a `cloud scale` that rents a machine there with a real
 * single-use invite of this farm in its user-data, and a stop that gives it back. GCP and Azure
 * clients made from cloud.json launch against their fakes too (with a test credential: their
 * standard chains would go to Google's and Microsoft's login servers). Nothing leaves 127.0.0.1.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { OAuth2Client } from 'google-auth-library'
import { afterAll, describe, expect, it } from 'vitest'
import { cloudProviders, DEFAULT_GCP_IMAGE, farmTagOf } from '../../agent/cloud-providers.ts'
import { tokenOf } from '../../coordinator/cloud/bootstrap.ts'
import { parseCloudConfig } from '../../coordinator/cloud/config.ts'
import { MANAGED_TAG } from '../../coordinator/cloud/provider.ts'
import { parseInvite } from '../../protocol/farm-key.ts'
import { FakeArm } from '../fakes/arm.ts'
import { FakeEc2 } from '../fakes/ec2.ts'
import { FakeGce } from '../fakes/gce.ts'
import { BIN, startSoloAgent, type SoloAgent } from '../helpers/agents.ts'
import { waitFor } from '../helpers/wait.ts'

function cli (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 120_000 }, (err, stdout, stderr) => { resolve({ code: err === null ? 0 : Number((err as { code?: unknown }).code ?? 1), stdout, stderr }) })
  })
}

const cleanups: Array<() => Promise<void>> = []
afterAll(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}) })

describe('the agent rents through AWS when cloud.json names it', () => {
  it('cloud scale launches on EC2 with an invite of this farm in the user-data, tagged for this farm, and the agent gives it back when it stops', async () => {
    const fake = await FakeEc2.start({ accessKeyId: 'AKIDAGENTTEST' })
    cleanups.push(async () => { await fake.stop() })
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rs-aws-agent-'))
    cleanups.push(async () => { await rm(dir, { recursive: true, force: true }) })
    const stateDir = path.join(dir, 'head')
    // First start makes the farm; the second, with cloud.json, turns the burst controller on.
    const first = await startSoloAgent(stateDir)
    await first.stop()
    await writeFile(path.join(stateDir, 'cloud.json'), JSON.stringify({
      providers: { aws: { region: 'us-east-1', instanceTypes: ['g5.xlarge'], ami: 'ami-0123456789abcdef0', subnet: 'subnet-0123abcd' } },
      maxNodes: 2, budget: { amount: 50, period: 'day' }
    }))
    const agent: SoloAgent = await startSoloAgent(stateDir, [], {
      AWS_ENDPOINT_URL_EC2: fake.url, AWS_ACCESS_KEY_ID: 'AKIDAGENTTEST', AWS_SECRET_ACCESS_KEY: 'not-a-secret', AWS_REGION: 'us-east-1',
      AWS_CONFIG_FILE: path.join(dir, 'no-aws-config'), AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'no-aws-credentials')
    })
    cleanups.push(agent.stop)
    expect(agent.log.join('\n')).toMatch(/cloud: burst controller on \(aws;/)

    const r = await cli(['cloud', 'scale', '--provider', 'aws', '--count', '1', '--json', '--state-dir', stateDir])
    expect(r.code, r.stderr).toBe(0)
    const launched = (JSON.parse(r.stdout) as { launched: Array<{ id: string; provider: string; instanceType: string; spot: boolean }> }).launched
    expect(launched).toHaveLength(1)
    expect(launched[0]).toMatchObject({ provider: 'aws', instanceType: 'g5.xlarge', spot: false })
    const run = fake.params('RunInstances')
    expect(run).toHaveLength(1)
    expect(run[0]!.get('ImageId')).toBe('ami-0123456789abcdef0')
    expect(run[0]!.get('SubnetId') ?? run[0]!.get('NetworkInterface.1.SubnetId')).toBe('subnet-0123abcd')
    const script = Buffer.from(run[0]!.get('UserData') ?? '', 'base64').toString('utf8')
    const token = tokenOf(script)
    expect(token).toBeDefined()
    // The invite is this farm's, signed by its key, with the head's own addresses to join by.
    const status = await (await fetch(`${agent.api.url}/v1/status`, { headers: { authorization: `Bearer ${agent.api.token}` } })).json() as { farm: string }
    const invite = parseInvite(token!, Date.now())
    expect(invite.farm).toBe(status.farm)
    const inst = fake.instances.get(launched[0]!.id)!
    expect(new Map(inst.tags).get(MANAGED_TAG)).toBe(farmTagOf(status.farm))

    const s = await cli(['cloud', 'status', '--json', '--state-dir', stateDir])
    expect(s.code, s.stderr).toBe(0)
    expect(s.stdout).toContain(launched[0]!.id)

    await agent.stop()
    // Stopping the farm head gives back what it rented (no machine left billing).
    await waitFor(() => ['shutting-down', 'terminated'].includes(fake.instances.get(launched[0]!.id)!.state), 5000, 'the instance to be terminated')
    expect(fake.params('TerminateInstances').some((p) => p.get('InstanceId.1') === launched[0]!.id)).toBe(true)
  }, 180_000)
})

describe('cloud clients made from cloud.json', () => {
  const sub = '00000000-0000-4000-8000-0000000a9e17'
  const subnetId = `/subscriptions/${sub}/resourceGroups/render/providers/Microsoft.Network/virtualNetworks/farm/subnets/burst`

  it('say what is missing instead of making a client that cannot launch', async () => {
    const cfg = parseCloudConfig({
      providers: {
        aws: { region: 'eu-west-1', instanceTypes: ['g5.xlarge'] },
        azure: { subscriptionId: sub, resourceGroup: 'render', location: 'eastus', vmSizes: ['Standard_NC4as_T4_v3'] },
        local: { maxInstances: 1 }
      },
      budget: { amount: 1, period: 'day' }
    })
    const { providers, notes } = await cloudProviders(cfg, { farmTag: farmTagOf('0123456789abcdef') })
    expect(Object.keys(providers)).toEqual([])
    expect(notes).toEqual([
      'local: configured, but this agent was started without a local agent binary; local is not used',
      'aws: no "ami" in cloud.json (the machine image to boot, e.g. a Debian or Ubuntu AMI of that region); aws is not used until one is set',
      'azure: cloud.json lacks "subnetId" (the subnet the VMs join) and "sshPublicKey" (the admin login; password login is off); azure is not used until set'
    ])
    expect(farmTagOf('0123456789abcdef')).toBe('rs-0123456789abcdef')
  })

  it('GCP and Azure clients from cloud.json launch, list and terminate against their fakes', async () => {
    const gce = await FakeGce.start({ token: 'gce-agent-token' })
    const arm = await FakeArm.start({ token: 'arm-agent-token' })
    cleanups.push(async () => { await gce.stop(); await arm.stop() })
    const cfg = parseCloudConfig({
      providers: {
        gcp: { project: 'studio-farm', zone: 'us-central1-a', machineTypes: ['n1-standard-4+nvidia-tesla-t4'] },
        azure: { subscriptionId: sub, resourceGroup: 'render', location: 'eastus', vmSizes: ['Standard_NC4as_T4_v3'], subnetId, sshPublicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAgentProvidersTest test' }
      },
      budget: { amount: 1, period: 'day' }
    })
    const auth = new OAuth2Client()
    auth.setCredentials({ access_token: 'gce-agent-token', expiry_date: Date.now() + 3_600_000 })
    const { providers, notes } = await cloudProviders(cfg, {
      farmTag: 'rs-00aa11bb22cc33dd',
      overrides: {
        gcp: { apiEndpoint: '127.0.0.1', port: gce.port, protocol: 'http', authClient: auth, retryDelayMs: 20 },
        azure: { credential: { getToken: async () => ({ token: 'arm-agent-token', expiresOnTimestamp: Date.now() + 3_600_000 }) }, endpoint: arm.url, ca: arm.cert, pollIntervalMs: 20 }
      }
    })
    expect(notes).toEqual([])
    expect(Object.keys(providers).sort()).toEqual(['azure', 'gcp'])
    cleanups.push(async () => { for (const p of Object.values(providers)) await p?.close() })

    const [g] = await providers.gcp!.launch(1, 'n1-standard-4+nvidia-tesla-t4', { spot: true, userData: ['#!/bin/sh\necho gcp\n'], tags: { role: 'burst' } })
    const body = gce.instances.get(g!.id)!.body as { disks?: Array<{ initializeParams?: { sourceImage?: string } }>; labels?: Record<string, string> }
    expect(body.disks?.[0]?.initializeParams?.sourceImage).toBe(DEFAULT_GCP_IMAGE)
    expect(body.labels?.[MANAGED_TAG]).toBe('rs-00aa11bb22cc33dd')
    const [a] = await providers.azure!.launch(1, 'Standard_NC4as_T4_v3', { spot: false, userData: ['#!/bin/sh\necho azure\n'], tags: { role: 'burst' } })
    const vm = arm.vms.get(a!.id)!.properties as { osProfile?: { linuxConfiguration?: { ssh?: { publicKeys?: Array<{ keyData: string }> } } } }
    expect(vm.osProfile?.linuxConfiguration?.ssh?.publicKeys?.[0]?.keyData).toMatch(/AgentProvidersTest/)
    for (const [p, id] of [[providers.gcp!, g!.id], [providers.azure!, a!.id]] as const) {
      expect((await p.list()).map((i) => i.id)).toContain(id)
      await p.terminate([id])
      await waitFor(async () => (await p.list()).every((i) => i.id !== id || ['terminated', 'stopping'].includes(i.state)) ? true : undefined, 10_000, `${p.name} to end ${id}`, 100)
    }
  }, 60_000)
})
