/**
 * AWS EC2 behind the CloudProvider interface, with the real @aws-sdk/client-ec2 (its signing,
 * serialization, error parsing and retries). Point `endpoint` elsewhere for tests (the fake in
 * test/fakes/ec2.ts); leave `credentials` out in production to use the SDK's standard chain.
 *
 *   const aws = new AwsProvider({ region: 'us-east-1', imageId: 'ami-…', farmTag: 'farm-3fa2' })
 *   await aws.launch(2, 'g5.xlarge', { spot: true, userData: script, tags: { job: 'j1' } })
 *
 * Launch: one RunInstances with MinCount = MaxCount = count (all or nothing; with a boot script per
 * instance, one call each, and the started ones terminated if a later one fails), spot through
 * InstanceMarketOptions (one-time, terminate on interruption), the boot script as base64
 * UserData (≤ 16 KB), tags on the instance through TagSpecifications, including
 * `renderswarm=<farmTag>` by which `list()` finds the farm's machines. `waitRunningSeconds`
 * makes launch wait with the SDK's waitUntilInstanceRunning.
 * Throttling: the SDK retries RequestLimitExceeded itself (standard mode, `maxAttempts`, default
 * 3, with backoff); only when it gives up does the call fail, as CloudError 'throttled'.
 * Interruptions: DescribeSpotInstanceRequests for the farm's spot instances; `marked-for-*`
 * gives the two-minute warning (terminateAtMs = status time + 120 s), `instance-terminated-*`
 * a late notice. Prices: the bundled table, with spot figures from DescribeSpotPriceHistory
 * (lowest current Linux price over the region's zones) for this provider's region.
 */
import {
  DescribeInstancesCommand, DescribeSpotInstanceRequestsCommand, DescribeSpotPriceHistoryCommand, EC2Client, RunInstancesCommand,
  TerminateInstancesCommand, waitUntilInstanceRunning, type _InstanceType as Ec2InstanceType
} from '@aws-sdk/client-ec2'
import { z } from 'zod'
import { bundledPrices, pricesFor } from './prices.ts'
import { checkLaunch, CloudError, MANAGED_TAG, parseResponse, type CloudErrorCode, type CloudProvider, type Instance, type InstanceState, type InterruptionNotice, type LaunchOptions, type PriceRow, userDataFor } from './provider.ts'
import { EC2_USER_DATA_MAX_BYTES } from './bootstrap.ts'

export interface AwsOptions {
  region: string
  /** The machine image to boot (one with or without node; the boot script installs what is missing). */
  imageId: string
  /** Value of the `renderswarm` tag on every instance of this farm. */
  farmTag: string
  /** API endpoint (tests); default: the SDK's for the region. */
  endpoint?: string
  /** Static credentials (tests); default: the SDK's standard provider chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }
  /** Attempts per call, throttling retries included (SDK standard retry mode). Default 3. */
  maxAttempts?: number
  subnetId?: string
  securityGroupIds?: string[]
  /** Wait in launch until the instances run (seconds; 0: do not wait). Default 0. */
  waitRunningSeconds?: number
  prices?: PriceRow[]
  clock?: () => number
}

const CODES: Record<string, CloudErrorCode> = {
  InsufficientInstanceCapacity: 'capacity', InsufficientCapacity: 'capacity', InsufficientHostCapacity: 'capacity', InsufficientReservedInstanceCapacity: 'capacity',
  SpotMaxPriceTooLow: 'capacity', Unsupported: 'capacity',
  InstanceLimitExceeded: 'quota', VcpuLimitExceeded: 'quota', MaxSpotInstanceCountExceeded: 'quota', ResourceLimitExceeded: 'quota',
  'InvalidInstanceID.NotFound': 'not-found', 'InvalidInstanceID.Malformed': 'not-found',
  RequestLimitExceeded: 'throttled', Throttling: 'throttled', ThrottlingException: 'throttled',
  AuthFailure: 'auth', UnauthorizedOperation: 'auth', InvalidClientTokenId: 'auth', SignatureDoesNotMatch: 'auth', OptInRequired: 'auth',
  InvalidParameterValue: 'invalid', InvalidParameter: 'invalid', MissingParameter: 'invalid', InvalidParameterCombination: 'invalid', InvalidAction: 'invalid', 'InvalidAMIID.NotFound': 'invalid', 'InvalidAMIID.Malformed': 'invalid'
}

/** Maps an SDK error (its name is EC2's error code) to a CloudError. */
export function awsError (err: unknown, doing: string): CloudError {
  if (err instanceof CloudError) return err
  const e = err as { name?: string; Code?: string; message?: string; $metadata?: { attempts?: number } }
  const code = e.Code ?? e.name ?? 'Error'
  const mapped = CODES[code] ?? 'internal'
  const attempts = e.$metadata?.attempts
  return new CloudError(mapped, 'aws', `${doing}: ${code}: ${e.message ?? String(err)}${mapped === 'throttled' && attempts !== undefined ? ` (gave up after ${attempts} attempts)` : ''}`, { cause: err })
}

const STATE: Record<string, InstanceState> = { pending: 'pending', running: 'running', 'shutting-down': 'stopping', stopping: 'stopping', stopped: 'stopping', terminated: 'terminated' }

const Ec2InstanceSchema = z.object({
  InstanceId: z.string().regex(/^i-[0-9a-f]{8,17}$/, 'InstanceId must look like i-0123abcd'),
  InstanceType: z.string().min(1),
  State: z.object({ Name: z.enum(['pending', 'running', 'shutting-down', 'terminated', 'stopping', 'stopped']) }).passthrough(),
  LaunchTime: z.date({ invalid_type_error: 'LaunchTime must be a time' }),
  PrivateIpAddress: z.string().ip().optional(),
  InstanceLifecycle: z.string().optional(),
  Tags: z.array(z.object({ Key: z.string(), Value: z.string() }).passthrough()).optional()
}).passthrough()
type Ec2Instance = z.infer<typeof Ec2InstanceSchema>

const RunSchema = z.object({ Instances: z.array(Ec2InstanceSchema).min(1, 'no instances in the answer') }).passthrough()
const DescribeSchema = z.object({ Reservations: z.array(z.object({ Instances: z.array(Ec2InstanceSchema).default([]) }).passthrough()).default([]), NextToken: z.string().optional() }).passthrough()
const SpotHistorySchema = z.object({
  SpotPriceHistory: z.array(z.object({ InstanceType: z.string(), SpotPrice: z.string().regex(/^\d+(\.\d+)?$/, 'SpotPrice must be a decimal number'), AvailabilityZone: z.string().optional() }).passthrough()).default([])
}).passthrough()
const SpotRequestsSchema = z.object({
  SpotInstanceRequests: z.array(z.object({
    InstanceId: z.string().optional(),
    Status: z.object({ Code: z.string(), UpdateTime: z.date().optional() }).passthrough().optional()
  }).passthrough()).default([])
}).passthrough()

/** EC2's two-minute warning before a spot instance is taken. */
export const SPOT_WARNING_MS = 120_000

export class AwsProvider implements CloudProvider {
  readonly name = 'aws' as const
  readonly region: string
  readonly client: EC2Client
  private readonly noticed = new Set<string>()
  private readonly clock: () => number

  constructor (private readonly opts: AwsOptions) {
    this.region = opts.region
    this.clock = opts.clock ?? Date.now
    this.client = new EC2Client({
      region: opts.region,
      maxAttempts: opts.maxAttempts ?? 3,
      ...(opts.endpoint !== undefined ? { endpoint: opts.endpoint } : {}),
      ...(opts.credentials !== undefined ? { credentials: opts.credentials } : {})
    })
  }

  async launch (count: number, instanceType: string, o: LaunchOptions): Promise<Instance[]> {
    checkLaunch('aws', count, instanceType, o, EC2_USER_DATA_MAX_BYTES)
    if (!Array.isArray(o.userData) || count === 1) return await this.run(count, instanceType, o, userDataFor(o, 0))
    // One RunInstances carries one UserData: a script per instance takes a call per instance.
    const out: Instance[] = []
    try {
      for (let i = 0; i < count; i++) out.push(...await this.run(1, instanceType, o, userDataFor(o, i)))
    } catch (err) {
      await this.terminate(out.map((x) => x.id)).catch(() => {}) // all or nothing
      throw err
    }
    return out
  }

  private async run (count: number, instanceType: string, o: LaunchOptions, userData: string): Promise<Instance[]> {
    const tags = { ...o.tags, [MANAGED_TAG]: this.opts.farmTag }
    let out
    try {
      out = await this.client.send(new RunInstancesCommand({
        ImageId: this.opts.imageId,
        InstanceType: instanceType as Ec2InstanceType,
        MinCount: count,
        MaxCount: count,
        UserData: Buffer.from(userData, 'utf8').toString('base64'),
        ...(o.spot ? { InstanceMarketOptions: { MarketType: 'spot', SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' } } } : {}),
        TagSpecifications: [{ ResourceType: 'instance', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }],
        ...(this.opts.subnetId !== undefined ? { SubnetId: this.opts.subnetId } : {}),
        ...(this.opts.securityGroupIds !== undefined ? { SecurityGroupIds: this.opts.securityGroupIds } : {})
      }))
    } catch (err) {
      throw awsError(err, `launching ${count} × ${instanceType}${o.spot ? ' (spot)' : ''}`)
    }
    const run = parseResponse('aws', 'RunInstances', RunSchema, out)
    const wait = this.opts.waitRunningSeconds ?? 0
    if (wait > 0) {
      try {
        await waitUntilInstanceRunning({ client: this.client, maxWaitTime: wait, minDelay: 1, maxDelay: 5 }, { InstanceIds: run.Instances.map((i) => i.InstanceId) })
      } catch (err) {
        throw awsError(err, `waiting for ${run.Instances.map((i) => i.InstanceId).join(', ')} to run`)
      }
      return await this.describe(run.Instances.map((i) => i.InstanceId))
    }
    return run.Instances.map((i) => this.toInstance(i))
  }

  async terminate (ids: string[]): Promise<void> {
    if (ids.length === 0) return
    try {
      await this.client.send(new TerminateInstancesCommand({ InstanceIds: ids }))
    } catch (err) {
      throw awsError(err, `terminating ${ids.join(', ')}`)
    }
  }

  async list (): Promise<Instance[]> {
    return await this.describe()
  }

  private async describe (ids?: string[]): Promise<Instance[]> {
    const out: Instance[] = []
    let token: string | undefined
    for (let page = 0; page < 100; page++) {
      let res
      try {
        res = await this.client.send(new DescribeInstancesCommand({
          ...(ids !== undefined ? { InstanceIds: ids } : { Filters: [{ Name: `tag:${MANAGED_TAG}`, Values: [this.opts.farmTag] }] }),
          ...(token !== undefined ? { NextToken: token } : {})
        }))
      } catch (err) {
        throw awsError(err, 'listing instances')
      }
      const d = parseResponse('aws', 'DescribeInstances', DescribeSchema, res)
      for (const r of d.Reservations) for (const i of r.Instances) out.push(this.toInstance(i))
      token = d.NextToken === '' ? undefined : d.NextToken
      if (token === undefined) break
    }
    return out
  }

  private toInstance (i: Ec2Instance): Instance {
    return {
      id: i.InstanceId,
      provider: 'aws',
      region: this.region,
      instanceType: i.InstanceType,
      spot: i.InstanceLifecycle === 'spot',
      state: STATE[i.State.Name]!,
      launchedMs: i.LaunchTime.getTime(),
      ...(i.PrivateIpAddress !== undefined ? { privateIp: i.PrivateIpAddress } : {}),
      tags: Object.fromEntries((i.Tags ?? []).map((t) => [t.Key, t.Value]))
    }
  }

  async prices (region = this.region): Promise<PriceRow[]> {
    const rows = pricesFor(this.opts.prices ?? bundledPrices(), 'aws', region)
    if (region !== this.region || rows.length === 0) return rows
    let res
    try {
      res = await this.client.send(new DescribeSpotPriceHistoryCommand({
        InstanceTypes: rows.map((r) => r.instanceType as Ec2InstanceType),
        ProductDescriptions: ['Linux/UNIX'],
        StartTime: new Date(this.clock())
      }))
    } catch (err) {
      throw awsError(err, 'reading spot prices')
    }
    const h = parseResponse('aws', 'DescribeSpotPriceHistory', SpotHistorySchema, res)
    const lowest = new Map<string, number>()
    for (const p of h.SpotPriceHistory) {
      const v = Number(p.SpotPrice)
      if (v > 0 && v < (lowest.get(p.InstanceType) ?? Infinity)) lowest.set(p.InstanceType, v)
    }
    // A live spot figure replaces the table's; one at or above on-demand is not a spot price.
    return rows.map((r) => {
      const live = lowest.get(r.instanceType)
      return live !== undefined && live < r.onDemandPerHour ? { ...r, spotPerHour: live } : r
    })
  }

  async pollInterruptions (): Promise<InterruptionNotice[]> {
    const spot = (await this.list()).filter((i) => i.spot && !this.noticed.has(i.id))
    if (spot.length === 0) return []
    let res
    try {
      res = await this.client.send(new DescribeSpotInstanceRequestsCommand({ Filters: [{ Name: 'instance-id', Values: spot.map((i) => i.id) }] }))
    } catch (err) {
      throw awsError(err, 'reading spot request status')
    }
    const now = this.clock()
    const out: InterruptionNotice[] = []
    for (const r of parseResponse('aws', 'DescribeSpotInstanceRequests', SpotRequestsSchema, res).SpotInstanceRequests) {
      const code = r.Status?.Code
      if (r.InstanceId === undefined || code === undefined || this.noticed.has(r.InstanceId)) continue
      const warned = code.startsWith('marked-for-')
      if (!warned && !code.startsWith('instance-terminated-')) continue
      const at = r.Status?.UpdateTime?.getTime() ?? now
      this.noticed.add(r.InstanceId)
      out.push({ id: r.InstanceId, provider: 'aws', noticedMs: now, terminateAtMs: warned ? at + SPOT_WARNING_MS : Math.min(at, now), reason: code })
    }
    return out
  }

  async close (): Promise<void> {
    this.client.destroy()
  }
}
