/**
 * The agent's cloud settings: which providers, regions and instance types the farm may rent, how
 * far it may scale, and what it may spend. One JSON file, `cloud.json`, in the agent's state dir
 * (next to state.db and api.json; `renderswarm agent --state-dir DIR` → DIR/cloud.json). No file:
 * cloud burst is off. Read at start and by `renderswarm cloud status`.
 *
 *   const cfg = await loadCloudConfig(stateDir)          // undefined when there is no cloud.json
 *   const scaler = scalerConfigOf(cfg, { spentUsd })     // the autoscaler's view (autoscaler.ts)
 *   budgetPeriodStart(cfg.budget.period, nowMs)          // when the current budget period began (UTC)
 *
 *   {
 *     "providers": {
 *       "aws": { "region": "us-east-1", "instanceTypes": ["g5.xlarge"], "ami": "ami-0abc…", "subnet": "subnet-…" },
 *       "gcp": { "project": "my-studio", "zone": "us-central1-a", "machineTypes": ["g2-standard-4"] },
 *       "azure": { "subscriptionId": "…", "resourceGroup": "render", "location": "eastus", "vmSizes": ["Standard_NC4as_T4_v3"] },
 *       "local": { "maxInstances": 2 }
 *     },
 *     "minNodes": 0, "maxNodes": 4, "cooldownSeconds": 120, "idleSeconds": 300,
 *     "hourlyCostCap": 5, "budget": { "amount": 50, "period": "month" },
 *     "spot": { "minSavings": 0.5, "maxInterruptionRisk": 0.1, "interruptionRisk": { "g5.xlarge": 0.05 } },
 *     "expectedFps": { "g5.xlarge": { "h264": 180 } }
 *   }
 *
 * Credentials are never in it: each SDK finds its own through its standard chain (AWS: env vars,
 * ~/.aws, instance role; GCP: GOOGLE_APPLICATION_CREDENTIALS or gcloud's application-default
 * login; Azure: DefaultAzureCredential — env, managed identity, `az login`). A key that looks like
 * one (secret, password, accessKey, privateKey, token, credentials…) is refused by name.
 */
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { z } from 'zod'
import { PRESET_NAMES } from '../../agent/render/presets.ts'
import type { ScalerCandidate, ScalerConfig } from '../autoscaler.ts'
import { INSTANCE_TYPE_RE, type ProviderName } from './provider.ts'

export const CLOUD_CONFIG_FILE = 'cloud.json'

export class CloudConfigError extends Error {
  override name = 'CloudConfigError'
}

const instanceType = z.string().regex(INSTANCE_TYPE_RE, 'must be 2–64 of A-Z, a-z, 0-9, ".", "_", "-", "+"')
const types = z.array(instanceType).min(1, 'list at least one').max(20, 'at most 20').refine((a) => new Set(a).size === a.length, 'lists a type twice')
const fraction = z.number().min(0, 'must be 0–1').max(1, 'must be 0–1')
const fpsByPreset = z.record(z.enum(PRESET_NAMES), z.number().positive('fps must be > 0').max(100_000, 'fps must be at most 100000'))
  .refine((r) => Object.keys(r).length > 0, 'give fps for at least one preset')

const AwsSchema = z.object({
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region such as us-east-1'),
  instanceTypes: types,
  /** Machine image; without it the farm cannot launch here (status says so). */
  ami: z.string().regex(/^ami-[0-9a-f]{8,17}$/, 'must look like ami-0123456789abcdef0').optional(),
  subnet: z.string().regex(/^subnet-[0-9a-f]{8,17}$/, 'must look like subnet-0123abcd').optional(),
  securityGroups: z.array(z.string().regex(/^sg-[0-9a-f]{8,17}$/, 'must look like sg-0123abcd')).max(5).optional()
}).strict()

const GcpSchema = z.object({
  project: z.string().regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, 'must be a GCP project id (6–30 of a-z, 0-9, "-")'),
  zone: z.string().regex(/^[a-z]+-[a-z]+\d+-[a-z]$/, 'must be a GCE zone such as us-central1-a'),
  machineTypes: types,
  image: z.string().regex(/^[A-Za-z0-9._/:-]{1,300}$/, 'must be an image URL or path such as projects/debian-cloud/global/images/family/debian-12').optional(),
  network: z.string().regex(/^[A-Za-z0-9._/:-]{1,300}$/, 'must be a network name or path').optional()
}).strict()

const AzureSchema = z.object({
  subscriptionId: z.string().uuid('must be a subscription id (a UUID)'),
  resourceGroup: z.string().regex(/^[-\w.()]{1,90}$/, 'must be 1–90 of letters, digits, "-", "_", ".", "(", ")"'),
  location: z.string().regex(/^[a-z0-9]{2,40}$/, 'must be an Azure location such as eastus'),
  vmSizes: types,
  subnetId: z.string().regex(/^\/subscriptions\/[^\s]{1,400}$/, 'must be a subnet resource id (/subscriptions/…)').optional(),
  /** A public key: it lets the admin user log in and is not a secret. */
  sshPublicKey: z.string().regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]{16,}( [^\n]{0,200})?$/, 'must be an OpenSSH public key line').optional()
}).strict()

const LocalSchema = z.object({ maxInstances: z.number().int('must be a whole number').min(1, 'must be 1–8').max(8, 'must be 1–8') }).strict()

export const CloudConfigSchema = z.object({
  providers: z.object({ aws: AwsSchema.optional(), gcp: GcpSchema.optional(), azure: AzureSchema.optional(), local: LocalSchema.optional() }).strict()
    .refine((p) => Object.values(p).some((v) => v !== undefined), 'configure at least one of aws, gcp, azure, local'),
  minNodes: z.number().int('must be a whole number').min(0).max(100, 'must be 0–100').default(0),
  maxNodes: z.number().int('must be a whole number').min(0).max(100, 'must be 0–100').default(4),
  cooldownSeconds: z.number().min(0).max(86_400, 'must be 0–86400').default(120),
  idleSeconds: z.number().min(0).max(86_400, 'must be 0–86400').default(300),
  /** Launch to first chunk: boot, install, join. */
  bootSeconds: z.number().min(0).max(3600, 'must be 0–3600').default(240),
  /** USD per hour of all cloud machines together. */
  hourlyCostCap: z.number().positive('must be > 0 USD per hour').max(10_000).optional(),
  budget: z.object({
    amount: z.number().min(0, 'must be ≥ 0 USD').max(1_000_000, 'must be at most 1000000 USD'),
    period: z.enum(['day', 'week', 'month'])
  }).strict(),
  spot: z.object({
    minSavings: fraction.default(0.5),
    maxInterruptionRisk: fraction.default(0.1),
    /** Chance of an interruption per hour, by instance type (e.g. from AWS's Spot Instance Advisor). Unknown: on-demand. */
    interruptionRisk: z.record(instanceType, fraction).default({})
  }).strict().default({}),
  /** Reference fps per preset by instance type, when measured (`renderswarm bench` on one). */
  expectedFps: z.record(instanceType, fpsByPreset).default({}),
  /** Reference fps per preset by GPU model (the price table's gpu.model), for types not in expectedFps. */
  gpuFps: z.record(z.string().min(1).max(64), fpsByPreset).default({}),
  queue: z.object({ chunksPerNode: z.number().positive('must be > 0'), forSeconds: z.number().min(0).max(86_400) }).strict().optional(),
  utilisation: z.object({ above: fraction, forSeconds: z.number().min(0).max(86_400) }).strict().optional(),
  deadlineMargin: fraction.default(0.15)
}).strict().superRefine((c, ctx) => {
  if (c.maxNodes < c.minNodes) ctx.addIssue({ code: 'custom', path: ['maxNodes'], message: `must be ≥ minNodes (${c.minNodes})` })
})

export type CloudConfig = z.infer<typeof CloudConfigSchema>

const SECRET_KEY = /secret|password|passwd|accesskey|privatekey|private_key|token|credential|keyfile|apikey|api_key|connectionstring/i

function secretKeys (v: unknown, at: string[], out: string[]): string[] {
  if (Array.isArray(v)) v.forEach((x, i) => secretKeys(x, [...at, String(i)], out))
  else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) {
      // interruptionRisk / expectedFps are keyed by instance types, which are not secrets.
      if (SECRET_KEY.test(k) && !['interruptionRisk', 'expectedFps', 'gpuFps'].includes(at.at(-1) ?? '')) out.push([...at, k].join('.'))
      secretKeys(x, [...at, k], out)
    }
  }
  return out
}

/** Checks a parsed cloud.json; the error names the file, the field and the problem. */
export function parseCloudConfig (json: unknown, file = CLOUD_CONFIG_FILE): CloudConfig {
  const secrets = secretKeys(json, [], [])
  if (secrets.length > 0) {
    throw new CloudConfigError(`${file}: ${secrets[0]!}: credentials do not belong in ${path.basename(file)}; each cloud SDK finds its own (AWS: environment or ~/.aws or the instance role; GCP: GOOGLE_APPLICATION_CREDENTIALS or gcloud auth application-default login; Azure: environment, managed identity or az login)`)
  }
  const r = CloudConfigSchema.safeParse(json)
  if (!r.success) {
    const issue = r.error.issues[0]!
    throw new CloudConfigError(`${file}: ${issue.path.length > 0 ? issue.path.join('.') : '(root)'}: ${issue.message}`)
  }
  return r.data
}

export function cloudConfigPath (stateDir: string): string {
  return path.join(stateDir, CLOUD_CONFIG_FILE)
}

/** The state dir's cloud.json, checked; undefined when there is none (cloud burst off). */
export async function loadCloudConfig (stateDir: string): Promise<CloudConfig | undefined> {
  const file = cloudConfigPath(stateDir)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new CloudConfigError(`${file}: cannot read it (${(err as Error).message})`)
  }
  if (Buffer.byteLength(text) > 256 * 1024) throw new CloudConfigError(`${file}: larger than 256 KiB; is it the right file?`)
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new CloudConfigError(`${file}: not valid JSON (${(err as Error).message})`)
  }
  return parseCloudConfig(json, file)
}

/** The price-table region of a GCE zone (us-central1-a → us-central1). */
export function gcpRegionOf (zone: string): string {
  return zone.replace(/-[a-z]$/, '')
}

/** Every (provider, region, type) the config allows, with its measured fps if any. */
export function candidatesOf (cfg: CloudConfig): ScalerCandidate[] {
  const out: ScalerCandidate[] = []
  const add = (provider: ProviderName, region: string, list: readonly string[]): void => {
    for (const t of list) {
      const fps = cfg.expectedFps[t]
      out.push({ provider, region, instanceType: t, ...(fps !== undefined ? { fps: fps as Record<string, number> } : {}) })
    }
  }
  const p = cfg.providers
  if (p.aws !== undefined) add('aws', p.aws.region, p.aws.instanceTypes)
  if (p.gcp !== undefined) add('gcp', gcpRegionOf(p.gcp.zone), p.gcp.machineTypes)
  if (p.azure !== undefined) add('azure', p.azure.location, p.azure.vmSizes)
  if (p.local !== undefined) add('local', 'local', ['local-agent'])
  return out
}

/** The autoscaler's config from cloud.json and what the budget period has spent so far. */
export function scalerConfigOf (cfg: CloudConfig, spend: { spentUsd: number }): ScalerConfig {
  return {
    candidates: candidatesOf(cfg),
    defaultFpsByGpu: cfg.gpuFps as Record<string, Record<string, number>>,
    minNodes: cfg.minNodes,
    maxNodes: cfg.maxNodes,
    cooldownMs: cfg.cooldownSeconds * 1000,
    idleMs: cfg.idleSeconds * 1000,
    bootMs: cfg.bootSeconds * 1000,
    ...(cfg.hourlyCostCap !== undefined ? { hourlyCostCapUsd: cfg.hourlyCostCap } : {}),
    budget: { capUsd: cfg.budget.amount, spentUsd: spend.spentUsd },
    spot: { minSavings: cfg.spot.minSavings, maxInterruptionRisk: cfg.spot.maxInterruptionRisk, interruptionRisk: cfg.spot.interruptionRisk },
    ...(cfg.queue !== undefined ? { queue: { chunksPerNode: cfg.queue.chunksPerNode, forMs: cfg.queue.forSeconds * 1000 } } : {}),
    ...(cfg.utilisation !== undefined ? { utilisation: { above: cfg.utilisation.above, forMs: cfg.utilisation.forSeconds * 1000 } } : {}),
    deadlineMargin: cfg.deadlineMargin
  }
}

/** Start (UTC) of the budget period holding `nowMs`: the day, the week (from Monday), the month. */
export function budgetPeriodStart (period: CloudConfig['budget']['period'], nowMs: number): number {
  const d = new Date(nowMs)
  const day = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate())
  if (period === 'day') return day
  if (period === 'week') return day - ((d.getUTCDay() + 6) % 7) * 86_400_000
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)
}
