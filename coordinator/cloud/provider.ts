/**
 * One interface for every cloud the farm can rent machines from (AWS, GCP, Azure) and for the
 * `local` provider that starts real agents on this machine. The autoscaler talks only to this.
 *
 *   const p: CloudProvider = new AwsProvider({ region: 'us-east-1', ... })
 *   const [a, b] = await p.launch(2, 'g5.xlarge', { spot: true, userData: bootstrapScript(...), tags: { farm: id } })
 *   await p.list()                      // every instance this provider launched for the farm
 *   for (const n of await p.pollInterruptions()) drain(n.id, n.terminateAtMs)
 *   await p.terminate([a.id])           // unknown ids → CloudError 'not-found'
 *
 * Interruptions are *polled* (`pollInterruptions()` returns the notices that appeared since the
 * last call, each once): the autoscaler already runs on a tick with a fake-able clock, and the
 * clouds themselves only offer polling from the control plane (EC2 spot request status, GCE
 * `compute.instances.preempted` operations, an Azure VM gone without a delete).
 *
 * Errors. Every adapter maps its cloud's errors to one `CloudError` with a small code set, so a
 * caller decides without knowing the cloud: `capacity` (try another type/zone or on-demand),
 * `quota` (stop asking), `not-found`, `throttled` (the SDK's own retries gave up), `auth`,
 * `invalid` (a bad request, or a response that failed validation), `internal` (anything else).
 * Every response field an adapter uses is parsed with zod first (`parseResponse`), so an API
 * answering junk gives a clear error naming the field, never `undefined` further on.
 */
import { z } from 'zod'

export const PROVIDERS = ['aws', 'gcp', 'azure', 'local'] as const
export type ProviderName = typeof PROVIDERS[number]

export const INSTANCE_STATES = ['pending', 'running', 'stopping', 'terminated'] as const
export type InstanceState = typeof INSTANCE_STATES[number]

export interface LaunchOptions {
  /** Spot / preemptible capacity (cheaper, may be interrupted). */
  spot: boolean
  /**
   * The boot script (bootstrap.ts); each adapter encodes it the way its cloud wants. One per
   * instance (an array of `count`) when each needs its own single-use join token.
   */
  userData: string | string[]
  /** Labels on the instance (keys and values: 1–63 of a-z, 0-9, "_", "-", as GCP labels allow). */
  tags: Record<string, string>
}

export interface Instance {
  id: string
  provider: ProviderName
  region: string
  instanceType: string
  spot: boolean
  state: InstanceState
  launchedMs: number
  privateIp?: string
  tags: Record<string, string>
}

export interface InterruptionNotice {
  id: string
  provider: ProviderName
  /** When this notice was seen. */
  noticedMs: number
  /** When the cloud will take the machine (the notice time itself where no warning is given). */
  terminateAtMs: number
  reason: string
}

export const INSTANCE_TYPE_RE = /^[A-Za-z0-9._+-]{2,64}$/

export const PriceRowSchema = z.object({
  provider: z.enum(PROVIDERS),
  region: z.string().regex(/^[a-z0-9-]{2,40}$/, 'region must be 2–40 of a-z, 0-9, "-"'),
  /** Machine type; GCP adds an accelerator as `machine+accelerator` (n1-standard-4+nvidia-tesla-t4). */
  instanceType: z.string().regex(INSTANCE_TYPE_RE, 'instanceType must be 2–64 of A-Z, a-z, 0-9, ".", "_", "-", "+"'),
  onDemandPerHour: z.number().nonnegative('onDemandPerHour must not be negative').max(1000, 'onDemandPerHour must be at most 1000 USD'),
  spotPerHour: z.number().nonnegative('spotPerHour must not be negative').max(1000, 'spotPerHour must be at most 1000 USD'),
  vcpu: z.number().int().min(1).max(1024),
  ramGiB: z.number().positive().max(32_768),
  gpu: z.object({ model: z.string().min(1).max(64), count: z.number().int().min(0).max(16) }).strict(),
  /** The public page the figures come from (https; the local provider: urn:renderswarm:…). */
  source: z.string().url().refine((u) => u.startsWith('https://') || u.startsWith('urn:renderswarm:'), 'source must be an https URL'),
  /** When they were read (YYYY-MM-DD); figures are list prices in USD per hour. */
  date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'date must be YYYY-MM-DD')
}).strict()
export type PriceRow = z.infer<typeof PriceRowSchema>

export interface CloudProvider {
  readonly name: ProviderName
  /** AWS region, GCP zone, Azure location, or 'local'. */
  readonly region: string
  launch (count: number, instanceType: string, opts: LaunchOptions): Promise<Instance[]>
  terminate (ids: string[]): Promise<void>
  list (): Promise<Instance[]>
  /** Price rows for a region (default: this provider's), spot prices live where the cloud offers them. */
  prices (region?: string): Promise<PriceRow[]>
  pollInterruptions (): Promise<InterruptionNotice[]>
  /** Releases clients and timers (not the instances). */
  close (): Promise<void>
}

export const CLOUD_ERROR_CODES = ['capacity', 'quota', 'not-found', 'throttled', 'auth', 'invalid', 'internal'] as const
export type CloudErrorCode = typeof CLOUD_ERROR_CODES[number]

export class CloudError extends Error {
  override name = 'CloudError'
  constructor (readonly code: CloudErrorCode, readonly provider: ProviderName, message: string, options?: { cause?: unknown }) {
    super(`${provider}: ${message}`, options)
  }
}

/** Parses an API response with its schema; junk becomes CloudError 'invalid' naming the field. */
export function parseResponse<T> (provider: ProviderName, what: string, schema: z.ZodType<T, z.ZodTypeDef, unknown>, value: unknown): T {
  const r = schema.safeParse(value)
  if (r.success) return r.data
  const issue = r.error.issues[0]!
  const at = issue.path.length > 0 ? issue.path.join('.') : '(root)'
  throw new CloudError('invalid', provider, `${what}: unexpected response at ${at}: ${issue.message}`, { cause: r.error })
}

const TAG_RE = /^[a-z0-9_-]{1,63}$/
/** Checks launch arguments the same way for every provider (before any request is sent). */
export function checkLaunch (provider: ProviderName, count: number, instanceType: string, opts: LaunchOptions, maxUserDataBytes: number): void {
  if (!Number.isInteger(count) || count < 1 || count > 100) throw new CloudError('invalid', provider, `launch count must be a whole number 1–100 (got ${String(count)})`)
  if (!INSTANCE_TYPE_RE.test(instanceType)) throw new CloudError('invalid', provider, `instance type must be 2–64 of A-Z, a-z, 0-9, ".", "_", "-", "+" (got ${JSON.stringify(instanceType)})`)
  if (Array.isArray(opts.userData) && opts.userData.length !== count) throw new CloudError('invalid', provider, `${opts.userData.length} boot scripts for ${count} instances: give one, or one per instance`)
  for (const script of Array.isArray(opts.userData) ? opts.userData : [opts.userData]) {
    const size = Buffer.byteLength(script)
    if (size > maxUserDataBytes) throw new CloudError('invalid', provider, `user data is ${size} bytes; at most ${maxUserDataBytes} are allowed`)
  }
  const entries = Object.entries(opts.tags)
  if (entries.length > 32) throw new CloudError('invalid', provider, `at most 32 tags (got ${entries.length})`)
  for (const [k, v] of entries) {
    if (!TAG_RE.test(k)) throw new CloudError('invalid', provider, `tag key ${JSON.stringify(k)} must be 1–63 of a-z, 0-9, "_", "-"`)
    if (!TAG_RE.test(v)) throw new CloudError('invalid', provider, `tag ${k}'s value ${JSON.stringify(v)} must be 1–63 of a-z, 0-9, "_", "-"`)
  }
}

/** The boot script of the i-th instance of a launch. */
export function userDataFor (opts: LaunchOptions, i: number): string {
  return Array.isArray(opts.userData) ? opts.userData[i]! : opts.userData
}

/** Tag every adapter puts on its instances, so `list()` returns only the farm's machines. */
export const MANAGED_TAG = 'renderswarm'
