import { afterAll, describe, expect, it } from 'vitest'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { budgetPeriodStart, candidatesOf, cloudConfigPath, CloudConfigError, gcpRegionOf, loadCloudConfig, parseCloudConfig, scalerConfigOf } from '../../coordinator/cloud/config.ts'
import { decide } from '../../coordinator/autoscaler.ts'
import { bundledPrices } from '../../coordinator/cloud/prices.ts'
import { cleanupTmp, tmpDir } from '../helpers/media.ts'

afterAll(cleanupTmp)

const GOOD = {
  providers: {
    aws: { region: 'us-east-1', instanceTypes: ['g5.xlarge', 'g4dn.xlarge'], ami: 'ami-0123456789abcdef0', subnet: 'subnet-0123abcd', securityGroups: ['sg-0123abcd'] },
    gcp: { project: 'my-studio', zone: 'us-central1-a', machineTypes: ['g2-standard-4', 'n1-standard-4+nvidia-tesla-t4'] },
    azure: { subscriptionId: '8f0e1c52-3b0a-4c7e-9d1f-2a6b5c4d3e2f', resourceGroup: 'render-rg', location: 'eastus', vmSizes: ['Standard_NC4as_T4_v3'] },
    local: { maxInstances: 2 }
  },
  minNodes: 0, maxNodes: 6, cooldownSeconds: 90, idleSeconds: 240, hourlyCostCap: 5,
  budget: { amount: 50, period: 'month' },
  spot: { minSavings: 0.5, maxInterruptionRisk: 0.1, interruptionRisk: { 'g5.xlarge': 0.05 } },
  expectedFps: { 'g5.xlarge': { ffv1: 150, h264: 90 } },
  gpuFps: { 'NVIDIA T4': { ffv1: 80 } }
}
const clone = (): any => JSON.parse(JSON.stringify(GOOD))

describe('cloud.json', () => {
  it('accepts a full config and fills the defaults of a minimal one', () => {
    const c = parseCloudConfig(GOOD)
    expect(c.providers.aws?.instanceTypes).toEqual(['g5.xlarge', 'g4dn.xlarge'])
    expect(c.cooldownSeconds).toBe(90)
    const min = parseCloudConfig({ providers: { local: { maxInstances: 1 } }, budget: { amount: 0, period: 'day' } })
    expect(min).toMatchObject({ minNodes: 0, maxNodes: 4, cooldownSeconds: 120, idleSeconds: 300, bootSeconds: 240, deadlineMargin: 0.15, spot: { minSavings: 0.5, maxInterruptionRisk: 0.1, interruptionRisk: {} }, expectedFps: {}, gpuFps: {} })
    expect(min.hourlyCostCap).toBeUndefined()
  })

  const BAD: Array<[string, (c: any) => void, RegExp]> = [
    ['no provider', (c) => { c.providers = {} }, /^cloud\.json: providers: configure at least one of aws, gcp, azure, local$/],
    ['unknown provider', (c) => { c.providers.ovh = {} }, /^cloud\.json: providers: Unrecognized key\(s\) in object: 'ovh'$/],
    ['bad AWS region', (c) => { c.providers.aws.region = 'us east' }, /^cloud\.json: providers\.aws\.region: must be an AWS region such as us-east-1$/],
    ['no instance types', (c) => { c.providers.aws.instanceTypes = [] }, /^cloud\.json: providers\.aws\.instanceTypes: list at least one$/],
    ['a type listed twice', (c) => { c.providers.gcp.machineTypes = ['g2-standard-4', 'g2-standard-4'] }, /providers\.gcp\.machineTypes: lists a type twice/],
    ['shell in an instance type', (c) => { c.providers.aws.instanceTypes = ['g5.xlarge;rm -rf /'] }, /providers\.aws\.instanceTypes\.0: must be 2–64 of/],
    ['bad ami', (c) => { c.providers.aws.ami = 'ubuntu' }, /providers\.aws\.ami: must look like ami-/],
    ['bad GCE zone', (c) => { c.providers.gcp.zone = 'us-central1' }, /providers\.gcp\.zone: must be a GCE zone such as us-central1-a/],
    ['bad subscription', (c) => { c.providers.azure.subscriptionId = 'mine' }, /providers\.azure\.subscriptionId: must be a subscription id \(a UUID\)/],
    ['too many local agents', (c) => { c.providers.local.maxInstances = 50 }, /providers\.local\.maxInstances: must be 1–8/],
    ['max below min', (c) => { c.minNodes = 3; c.maxNodes = 2 }, /^cloud\.json: maxNodes: must be ≥ minNodes \(3\)$/],
    ['fractional node count', (c) => { c.maxNodes = 2.5 }, /maxNodes: must be a whole number/],
    ['no budget', (c) => { delete c.budget }, /^cloud\.json: budget: Required$/],
    ['negative budget', (c) => { c.budget.amount = -1 }, /budget\.amount: must be ≥ 0 USD/],
    ['unknown period', (c) => { c.budget.period = 'year' }, /budget\.period: Invalid enum value. Expected 'day' \| 'week' \| 'month', received 'year'/],
    ['risk over 1', (c) => { c.spot.maxInterruptionRisk = 5 }, /spot\.maxInterruptionRisk: must be 0–1/],
    ['fps for an unknown preset', (c) => { c.expectedFps['g5.xlarge'] = { vp9: 10 } }, /expectedFps\.g5\.xlarge\.vp9: Invalid enum value/],
    ['zero fps', (c) => { c.gpuFps['NVIDIA T4'] = { ffv1: 0 } }, /gpuFps\.NVIDIA T4\.ffv1: fps must be > 0/],
    ['hourly cap 0', (c) => { c.hourlyCostCap = 0 }, /hourlyCostCap: must be > 0 USD per hour/],
    ['unknown top-level key', (c) => { c.maxnodes = 3 }, /^cloud\.json: \(root\): Unrecognized key\(s\) in object: 'maxnodes'$/],
    ['an AWS secret', (c) => { c.providers.aws.secretAccessKey = 'x' }, /^cloud\.json: providers\.aws\.secretAccessKey: credentials do not belong in cloud\.json; each cloud SDK finds its own/],
    ['an Azure client secret', (c) => { c.providers.azure.clientSecret = 'x' }, /providers\.azure\.clientSecret: credentials do not belong/],
    ['a GCP key file', (c) => { c.providers.gcp.credentials = { private_key: 'x' } }, /providers\.gcp\.credentials: credentials do not belong/],
    ['not an object', (c) => { for (const k of Object.keys(c)) delete c[k] }, /providers: Required/]
  ]
  for (const [what, mutate, message] of BAD) {
    it(`refuses ${what}, naming the field`, () => {
      const c = clone()
      mutate(c)
      expect(() => parseCloudConfig(c)).toThrow(CloudConfigError)
      expect(() => parseCloudConfig(c)).toThrow(message)
    })
  }
  it('instance types as keys (risk, fps) are not mistaken for secrets', () => {
    const c = clone()
    c.spot.interruptionRisk = { 'Standard_token_v3': 0.1 }
    expect(parseCloudConfig(c).spot.interruptionRisk).toEqual({ Standard_token_v3: 0.1 })
  })
})

describe('loading from the state dir', () => {
  it('reads <state-dir>/cloud.json; none means cloud burst off; bad JSON and bad fields name the file', async () => {
    const dir = await tmpDir('cloudcfg')
    expect(await loadCloudConfig(dir)).toBeUndefined()
    await writeFile(cloudConfigPath(dir), JSON.stringify(GOOD))
    expect((await loadCloudConfig(dir))?.budget).toEqual({ amount: 50, period: 'month' })
    await writeFile(cloudConfigPath(dir), '{"providers": ')
    await expect(loadCloudConfig(dir)).rejects.toThrow(new RegExp(`^${path.join(dir, 'cloud.json').replaceAll('/', '\\/')}: not valid JSON`))
    await writeFile(cloudConfigPath(dir), JSON.stringify({ ...GOOD, maxNodes: -1 }))
    await expect(loadCloudConfig(dir)).rejects.toThrow(/cloud\.json: maxNodes: must be 0–100|cloud\.json: maxNodes: Number must be greater/)
    const sub = path.join(dir, 'as-dir')
    await mkdir(path.join(sub, 'cloud.json'), { recursive: true })
    await expect(loadCloudConfig(sub)).rejects.toThrow(/cloud\.json: cannot read it/)
  })
})

describe('the autoscaler\'s view', () => {
  it('lists every allowed type with its price-table region, fps where measured', () => {
    const c = parseCloudConfig(GOOD)
    expect(gcpRegionOf('europe-west4-b')).toBe('europe-west4')
    expect(candidatesOf(c)).toEqual([
      { provider: 'aws', region: 'us-east-1', instanceType: 'g5.xlarge', fps: { ffv1: 150, h264: 90 } },
      { provider: 'aws', region: 'us-east-1', instanceType: 'g4dn.xlarge' },
      { provider: 'gcp', region: 'us-central1', instanceType: 'g2-standard-4' },
      { provider: 'gcp', region: 'us-central1', instanceType: 'n1-standard-4+nvidia-tesla-t4' },
      { provider: 'azure', region: 'eastus', instanceType: 'Standard_NC4as_T4_v3' },
      { provider: 'local', region: 'local', instanceType: 'local-agent' }
    ])
    // Every cloud candidate of this config is in the bundled price table.
    const prices = bundledPrices()
    for (const k of candidatesOf(c)) expect(prices.some((r) => r.provider === k.provider && r.region === k.region && r.instanceType === k.instanceType), `${k.provider} ${k.instanceType}`).toBe(true)
  })
  it('converts seconds to ms, carries budget and spend, and drives a decision', () => {
    const s = scalerConfigOf(parseCloudConfig(GOOD), { spentUsd: 12.5 })
    expect(s).toMatchObject({ minNodes: 0, maxNodes: 6, cooldownMs: 90_000, idleMs: 240_000, bootMs: 240_000, hourlyCostCapUsd: 5, budget: { capUsd: 50, spentUsd: 12.5 }, deadlineMargin: 0.15 })
    const now = Date.UTC(2026, 0, 1)
    const d = decide({
      nowMs: now, prices: bundledPrices(), config: s, pending: [],
      nodes: [{ peerId: 'l1', location: 'lan', fps: { ffv1: 100 }, slots: 1, busySlots: 1, costPerHour: 0, accepting: true }],
      jobs: [{ jobId: 'j', framesLeft: 100_000, preset: 'ffv1', width: 1280, height: 720, priority: 'high', createdMs: now, chunksQueued: 30, chunksLeased: 1, deadlineMs: now + 900_000 }]
    })
    // g5 (measured 150 fps, spot: 59% off, risk 0.05) and the T4 types (gpuFps 80) are the ones with a speed; local-agent has none.
    expect(d.launch?.reason).toBe('deadline')
    expect(['g5.xlarge', 'g4dn.xlarge', 'n1-standard-4+nvidia-tesla-t4', 'Standard_NC4as_T4_v3']).toContain(d.launch?.instanceType)
    expect(d.notes.join('\n')).toMatch(/g2-standard-4: no expected fps .*NVIDIA L4/)
  })
  it('budget periods start at UTC midnight, on Monday, on the 1st', () => {
    const t = Date.UTC(2026, 10, 26, 15, 30) // a Thursday
    expect(budgetPeriodStart('day', t)).toBe(Date.UTC(2026, 10, 26))
    expect(budgetPeriodStart('week', t)).toBe(Date.UTC(2026, 10, 23))
    expect(budgetPeriodStart('week', Date.UTC(2026, 10, 29, 23))).toBe(Date.UTC(2026, 10, 23)) // Sunday
    expect(budgetPeriodStart('month', t)).toBe(Date.UTC(2026, 10, 1))
  })
})
