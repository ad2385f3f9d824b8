/**
 * Google Compute Engine behind the CloudProvider interface, with the real @google-cloud/compute
 * client over its REST transport (`fallback: true`). Tests point `apiEndpoint`/`port`/`protocol`
 * at the fake in test/fakes/gce.ts and pass a token-only `authClient`; production leaves both
 * out and gets Google's standard credential chain.
 *
 *   const gcp = new GcpProvider({ project: 'studio', zone: 'us-central1-a', image: 'projects/debian-cloud/global/images/family/debian-12', farmTag: 'farm-3fa2' })
 *   await gcp.launch(2, 'n1-standard-4+nvidia-tesla-t4', { spot: true, userData: script, tags: {} })
 *
 * Instance types: a machine type, optionally `+accelerator` (one GPU of that type attached).
 * Launch: one `instances.insert` per machine (named `rs-<farmTag>-<random>`), each with the boot
 * script as `startup-script` metadata, labels (tags + `renderswarm=<farmTag>`), spot through
 * scheduling.provisioningModel SPOT (terminationAction DELETE), and a requestId so that the
 * client's retries are idempotent; then each zone operation is waited on (zoneOperations.wait)
 * until DONE. GCE reports quota and stock-outs in the finished operation (QUOTA_EXCEEDED,
 * ZONE_RESOURCE_POOL_EXHAUSTED): those become CloudErrors, and the machines of the same launch
 * that did start are deleted again (all or nothing).
 * Retries: every call retries throttling (HTTP 429 / RESOURCE_EXHAUSTED) and unavailability (503 /
 * UNAVAILABLE) with the client's own backoff, `maxRetries` times (default 2); a call still throttled
 * then fails as CloudError 'throttled'.
 * Interruptions: zone operations of type `compute.instances.preempted` on the farm's instances;
 * GCE gives the VM 30 s after that (terminateAtMs = operation time + 30 s).
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { InstancesClient, ZoneOperationsClient } from '@google-cloud/compute'
import type { CallOptions } from 'google-gax' // the client's own call options (types only)
import { z } from 'zod'
import { bundledPrices, pricesFor } from './prices.ts'
import { checkLaunch, CloudError, MANAGED_TAG, parseResponse, type CloudErrorCode, type CloudProvider, type Instance, type InstanceState, type InterruptionNotice, type LaunchOptions, type PriceRow, userDataFor } from './provider.ts'

type ClientOptions = NonNullable<ConstructorParameters<typeof InstancesClient>[0]>

export interface GcpOptions {
  project: string
  zone: string
  /** Boot disk image (URL or path, e.g. projects/debian-cloud/global/images/family/debian-12). */
  image: string
  /** Value of the `renderswarm` label on every instance of this farm (a-z, 0-9, "-"). */
  farmTag: string
  network?: string
  /** Tests: host, port and protocol of the API. */
  apiEndpoint?: string
  port?: number
  protocol?: 'http' | 'https'
  /** Tests: a credential; default Google's standard chain. */
  authClient?: ClientOptions['authClient']
  /** Retries of throttled/unavailable calls (the client's backoff). Default 2. */
  maxRetries?: number
  /** Backoff start, ms. Default 250. */
  retryDelayMs?: number
  /** Longest wait for one zone operation. Default 5 min. */
  operationTimeoutMs?: number
  prices?: PriceRow[]
  clock?: () => number
}

/** GCE gives a preempted VM 30 s to shut down. */
export const PREEMPTION_WARNING_MS = 30_000

const OP_CODES: Record<string, CloudErrorCode> = {
  ZONE_RESOURCE_POOL_EXHAUSTED: 'capacity', ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS: 'capacity', RESOURCE_POOL_EXHAUSTED: 'capacity', STOCKOUT: 'capacity', RESOURCE_NOT_AVAILABLE: 'capacity',
  QUOTA_EXCEEDED: 'quota', QUOTA_LIMIT: 'quota',
  RESOURCE_NOT_FOUND: 'not-found', NOT_FOUND: 'not-found',
  RATE_LIMIT_EXCEEDED: 'throttled',
  PERMISSION_DENIED: 'auth',
  INVALID_FIELD_VALUE: 'invalid', REQUIRED_FIELD_MISSING: 'invalid', BAD_REQUEST: 'invalid'
}

/**
 * Error codes as the REST transport reports them: gRPC status numbers from the client itself,
 * HTTP statuses from the auth client's fetch (which throws on a non-2xx answer before the
 * client decodes it). Both kinds are listed in the retry codes for the same reason.
 */
const CODES: Record<number, CloudErrorCode> = {
  3: 'invalid', 5: 'not-found', 6: 'invalid', 7: 'auth', 8: 'throttled', 9: 'invalid', 16: 'auth',
  400: 'invalid', 401: 'auth', 403: 'auth', 404: 'not-found', 409: 'invalid', 412: 'invalid', 429: 'throttled'
}
const REASONS: Record<string, CloudErrorCode> = {
  quotaExceeded: 'quota', rateLimitExceeded: 'throttled', userRateLimitExceeded: 'throttled', notFound: 'not-found', authError: 'auth', forbidden: 'auth', invalid: 'invalid', required: 'invalid'
}
const RETRY_CODES = [8, 14, 429, 503]

export function gcpError (err: unknown, doing: string): CloudError {
  if (err instanceof CloudError) return err
  const e = err as { code?: unknown; status?: unknown; message?: string }
  let msg = e.message ?? String(err)
  let reason: string | undefined
  // The client's retry gave up: it reports the last error inside its own message.
  const gaveUp = /^Exceeded maximum number of retries/.test(msg)
  if (gaveUp) {
    const last = /retrying error (?:Error: )?(\{.*?\}\}) before/.exec(msg)
    msg = last !== null ? last[1]! : msg
  }
  // The HTTP error body (GCE's JSON error envelope) arrives as the message.
  if (msg.startsWith('{')) {
    try {
      const body = JSON.parse(msg) as { error?: { message?: unknown; errors?: Array<{ reason?: unknown }> } }
      if (typeof body.error?.message === 'string') msg = body.error.message
      if (typeof body.error?.errors?.[0]?.reason === 'string') reason = body.error.errors[0].reason
    } catch { /* not JSON after all: keep the text */ }
  }
  const num = typeof e.code === 'number' ? e.code : typeof e.status === 'number' ? e.status : undefined
  let code: CloudErrorCode = (reason !== undefined ? REASONS[reason] : undefined) ?? (num !== undefined ? CODES[num] : undefined) ?? 'internal'
  if (/quota/i.test(msg) && (code === 'auth' || code === 'throttled')) code = 'quota'
  return new CloudError(code, 'gcp', `${doing}: ${msg}${gaveUp ? ' (the client\'s retries gave up)' : ''}`, { cause: err })
}

const STATES: Record<string, InstanceState> = { PROVISIONING: 'pending', STAGING: 'pending', RUNNING: 'running', REPAIRING: 'running', STOPPING: 'stopping', SUSPENDING: 'stopping', SUSPENDED: 'stopping', STOPPED: 'stopping', TERMINATED: 'terminated' }

const GceInstanceSchema = z.object({
  name: z.string().regex(/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/, 'name must be a GCE instance name'),
  machineType: z.string().min(1),
  status: z.enum(Object.keys(STATES) as [string, ...string[]]),
  creationTimestamp: z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'creationTimestamp must be a time'),
  networkInterfaces: z.array(z.object({ networkIP: z.string().ip().optional() }).passthrough()).optional(),
  guestAccelerators: z.array(z.object({ acceleratorType: z.string() }).passthrough()).optional(),
  scheduling: z.object({ provisioningModel: z.string().nullish() }).passthrough().nullish(),
  labels: z.record(z.string()).nullish()
}).passthrough()
type GceInstance = z.infer<typeof GceInstanceSchema>

const OperationSchema = z.object({
  name: z.string().min(1),
  status: z.enum(['PENDING', 'RUNNING', 'DONE']),
  operationType: z.string().nullish(),
  targetLink: z.string().nullish(),
  insertTime: z.string().nullish(),
  error: z.object({ errors: z.array(z.object({ code: z.string().nullish(), message: z.string().nullish() }).passthrough()).nullish() }).passthrough().nullish()
}).passthrough()

export class GcpProvider implements CloudProvider {
  readonly name = 'gcp' as const
  readonly region: string
  readonly instances: InstancesClient
  readonly operations: ZoneOperationsClient
  private readonly noticed = new Set<string>()
  private readonly clock: () => number

  constructor (private readonly opts: GcpOptions) {
    if (!/^[a-z0-9-]{1,40}$/.test(opts.farmTag)) throw new CloudError('invalid', 'gcp', `farmTag must be 1–40 of a-z, 0-9, "-" (got ${JSON.stringify(opts.farmTag)})`)
    this.region = opts.zone
    this.clock = opts.clock ?? Date.now
    const client: ClientOptions = {
      fallback: true,
      ...(opts.apiEndpoint !== undefined ? { apiEndpoint: opts.apiEndpoint } : {}),
      ...(opts.port !== undefined ? { port: opts.port } : {}),
      ...(opts.protocol !== undefined ? { protocol: opts.protocol } : {}),
      ...(opts.authClient !== undefined ? { authClient: opts.authClient } : {})
    }
    this.instances = new InstancesClient(client)
    this.operations = new ZoneOperationsClient(client)
  }

  /** Call options: the client's own retry on throttling (429) and unavailability. */
  private call (): CallOptions {
    const delay = this.opts.retryDelayMs ?? 250
    return {
      retry: {
        retryCodes: RETRY_CODES,
        backoffSettings: { initialRetryDelayMillis: delay, retryDelayMultiplier: 2, maxRetryDelayMillis: delay * 8, initialRpcTimeoutMillis: 60_000, rpcTimeoutMultiplier: 1, maxRpcTimeoutMillis: 60_000, maxRetries: (this.opts.maxRetries ?? 2) + 1 } // gax counts the first call
      }
    }
  }

  private get where (): { project: string; zone: string } {
    return { project: this.opts.project, zone: this.opts.zone }
  }

  async launch (count: number, instanceType: string, o: LaunchOptions): Promise<Instance[]> {
    checkLaunch('gcp', count, instanceType, o, 256 * 1024)
    const [machine, accelerator, extra] = instanceType.split('+')
    if (machine === undefined || extra !== undefined) throw new CloudError('invalid', 'gcp', `instance type must be MACHINE or MACHINE+ACCELERATOR (got ${JSON.stringify(instanceType)})`)
    const z = this.opts.zone
    const labels = { ...o.tags, [MANAGED_TAG]: this.opts.farmTag }
    const names = Array.from({ length: count }, () => `rs-${this.opts.farmTag}-${randomBytes(4).toString('hex')}`.slice(0, 63))
    const started: string[] = []
    const failures: CloudError[] = []
    await Promise.all(names.map(async (name, idx) => {
      try {
        const [op] = await this.instances.insert({
          ...this.where,
          requestId: randomUUID(),
          instanceResource: {
            name,
            machineType: `zones/${z}/machineTypes/${machine}`,
            disks: [{ boot: true, autoDelete: true, initializeParams: { sourceImage: this.opts.image } }],
            networkInterfaces: [{ network: this.opts.network ?? 'global/networks/default' }],
            ...(accelerator !== undefined ? { guestAccelerators: [{ acceleratorType: `zones/${z}/acceleratorTypes/${accelerator}`, acceleratorCount: 1 }] } : {}),
            scheduling: o.spot
              ? { provisioningModel: 'SPOT', instanceTerminationAction: 'DELETE', onHostMaintenance: 'TERMINATE', automaticRestart: false }
              : { provisioningModel: 'STANDARD', onHostMaintenance: accelerator !== undefined ? 'TERMINATE' : 'MIGRATE', automaticRestart: true },
            metadata: { items: [{ key: 'startup-script', value: userDataFor(o, idx) }] },
            labels
          }
        }, this.call())
        await this.wait(opName(op), `launching ${name} (${instanceType}${o.spot ? ', spot' : ''})`)
        started.push(name)
      } catch (err) {
        failures.push(gcpError(err, `launching ${name} (${instanceType}${o.spot ? ', spot' : ''})`))
      }
    }))
    if (failures.length > 0) {
      // All or nothing, as on EC2: a half-launched set is given back.
      await Promise.allSettled(started.map(async (n) => { await this.terminate([n]) }))
      throw failures[0]!
    }
    return await Promise.all(started.map(async (n) => {
      try {
        const [inst] = await this.instances.get({ ...this.where, instance: n }, this.call())
        return this.toInstance(parseResponse('gcp', 'instances.get', GceInstanceSchema, inst))
      } catch (err) {
        throw gcpError(err, `reading ${n}`)
      }
    }))
  }

  /** Waits for a zone operation to finish; an operation that finished with an error throws it. */
  private async wait (name: string, doing: string): Promise<void> {
    const deadline = this.clock() + (this.opts.operationTimeoutMs ?? 300_000)
    for (let i = 0; i < 1000; i++) {
      let res
      try {
        [res] = await this.operations.wait({ ...this.where, operation: name }, this.call())
      } catch (err) {
        throw gcpError(err, `${doing}: waiting for operation ${name}`)
      }
      const op = parseResponse('gcp', 'zoneOperations.wait', OperationSchema, res)
      if (op.status === 'DONE') {
        const e = op.error?.errors?.[0]
        if (e !== undefined) throw new CloudError(OP_CODES[e.code ?? ''] ?? 'internal', 'gcp', `${doing}: ${e.code ?? 'ERROR'}: ${e.message ?? ''}`)
        return
      }
      if (this.clock() > deadline) break
    }
    throw new CloudError('internal', 'gcp', `${doing}: operation ${name} did not finish in ${(this.opts.operationTimeoutMs ?? 300_000) / 1000} s`)
  }

  async terminate (ids: string[]): Promise<void> {
    const ops: Array<[string, string]> = []
    for (const id of ids) {
      try {
        const [op] = await this.instances.delete({ ...this.where, instance: id, requestId: randomUUID() }, this.call())
        ops.push([id, opName(op)])
      } catch (err) {
        throw gcpError(err, `terminating ${id}`)
      }
    }
    for (const [id, op] of ops) await this.wait(op, `terminating ${id}`)
  }

  async list (): Promise<Instance[]> {
    let items
    try {
      [items] = await this.instances.list({ ...this.where, filter: `labels.${MANAGED_TAG} = "${this.opts.farmTag}"` }, this.call())
    } catch (err) {
      throw gcpError(err, 'listing instances')
    }
    return parseResponse('gcp', 'instances.list', z.array(GceInstanceSchema), items).map((i) => this.toInstance(i))
  }

  private toInstance (i: GceInstance): Instance {
    const ip = i.networkInterfaces?.[0]?.networkIP
    const machine = i.machineType.split('/').pop()!
    const acc = i.guestAccelerators?.[0]?.acceleratorType.split('/').pop()
    return {
      id: i.name,
      provider: 'gcp',
      region: this.region,
      instanceType: acc !== undefined ? `${machine}+${acc}` : machine,
      spot: i.scheduling?.provisioningModel === 'SPOT',
      state: STATES[i.status]!,
      launchedMs: Date.parse(i.creationTimestamp),
      ...(ip !== undefined && ip !== null ? { privateIp: ip } : {}),
      tags: { ...(i.labels ?? {}) }
    }
  }

  /** The bundled table for the zone's region (GCE has no price API in the compute client). */
  async prices (region = this.region): Promise<PriceRow[]> {
    return pricesFor(this.opts.prices ?? bundledPrices(), 'gcp', region.replace(/-[a-z]$/, ''))
  }

  async pollInterruptions (): Promise<InterruptionNotice[]> {
    let items
    try {
      [items] = await this.operations.list({ ...this.where, filter: 'operationType = "compute.instances.preempted"' }, this.call())
    } catch (err) {
      throw gcpError(err, 'listing preemptions')
    }
    const now = this.clock()
    const out: InterruptionNotice[] = []
    for (const op of parseResponse('gcp', 'zoneOperations.list', z.array(OperationSchema), items)) {
      const target = op.targetLink?.split('/').pop()
      if (target === undefined || !target.startsWith(`rs-${this.opts.farmTag}-`) || this.noticed.has(op.name)) continue
      this.noticed.add(op.name)
      const at = op.insertTime !== undefined && op.insertTime !== null && !Number.isNaN(Date.parse(op.insertTime)) ? Date.parse(op.insertTime) : now
      out.push({ id: target, provider: 'gcp', noticedMs: now, terminateAtMs: at + PREEMPTION_WARNING_MS, reason: 'compute.instances.preempted' })
    }
    return out
  }

  async close (): Promise<void> {
    await this.instances.close()
    await this.operations.close()
  }
}

/** The operation name from what insert/delete return (`{ latestResponse: Operation, name }`). */
function opName (op: unknown): string {
  const o = op as { latestResponse?: { name?: unknown }; name?: unknown } | undefined
  const n = o?.latestResponse?.name ?? o?.name
  if (typeof n !== 'string' || n === '') throw new CloudError('invalid', 'gcp', 'unexpected response: no operation name')
  return n
}
