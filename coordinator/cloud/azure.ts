/**
 * Azure virtual machines behind the CloudProvider interface, with the real @azure/arm-compute
 * client (its pipeline: bearer tokens, throttling retries; its long-running-operation poller).
 * Production: leave `credential` out for @azure/identity's DefaultAzureCredential (environment,
 * workload identity, managed identity, Azure CLI…). Tests: a fake ARM endpoint over HTTPS with a
 * self-signed certificate (`endpoint`, `ca`) and a credential that hands out a fixed test token.
 *
 *   const az = new AzureProvider({ subscriptionId, resourceGroup: 'render', location: 'eastus', subnetId, sshPublicKey, farmTag: 'farm-3fa2' })
 *   await az.launch(2, 'Standard_NC4as_T4_v3', { spot: true, userData: script, tags: {} })
 *
 * Launch: one VM per machine (named `rs-<farmTag>-<random>`), created with createOrUpdate and
 * its poller (Azure-AsyncOperation / Location polling until Succeeded or Failed), the boot script
 * as base64 osProfile.customData, tags (+ `renderswarm=<farmTag>`), Spot through priority 'Spot',
 * evictionPolicy 'Delete' and maxPrice −1 (never evicted for price). The NIC and OS disk are
 * created with the VM and deleted with it. VM settings are given flattened, as arm-compute 24
 * expects (it silently drops a nested `properties`). Quotas fail the PUT (409
 * OperationNotAllowed); stock-outs fail the operation (AllocationFailed, SkuNotAvailable); the
 * VMs of a launch that did start are deleted again (all or nothing).
 * Terminate: GET first (ARM deletes are idempotent, so an unknown VM would "succeed"), then
 * delete with its poller. Retries: the pipeline retries 429/503 after Retry-After, `maxRetries`
 * times (default 3); then CloudError 'throttled'.
 * Interruptions: Azure warns a Spot VM only from inside (Scheduled Events on the VM's metadata
 * endpoint); from the control plane an eviction with policy Delete shows as the VM being gone.
 * `pollInterruptions` reports each Spot VM this provider saw that vanished without `terminate`
 * (terminateAtMs = when it was found gone).
 */
import { randomBytes } from 'node:crypto'
import { ComputeManagementClient, type VirtualMachine } from '@azure/arm-compute'
import type { TokenCredential } from '@azure/core-auth'
import { z } from 'zod'
import { bundledPrices, pricesFor } from './prices.ts'
import { checkLaunch, CloudError, MANAGED_TAG, parseResponse, type CloudErrorCode, type CloudProvider, type Instance, type InstanceState, type InterruptionNotice, type LaunchOptions, type PriceRow, userDataFor } from './provider.ts'

export interface AzureOptions {
  subscriptionId: string
  resourceGroup: string
  location: string
  /** Subnet the VMs' NICs join (resource id). */
  subnetId: string
  adminUsername?: string
  /** OpenSSH public key for the admin user (password login is off). */
  sshPublicKey: string
  /** Default: Ubuntu 24.04 LTS. */
  image?: { publisher: string; offer: string; sku: string; version: string }
  /** Value of the `renderswarm` tag on every VM of this farm (a-z, 0-9, "-"). */
  farmTag: string
  /** Default: DefaultAzureCredential from @azure/identity. */
  credential?: TokenCredential
  /** Tests: the ARM endpoint and the CA its certificate is signed by. */
  endpoint?: string
  ca?: string
  /** Pipeline retries of throttled (429) and unavailable (503) calls. Default 3. */
  maxRetries?: number
  /** Poll interval of long-running operations when the service names none. Default 2 s. */
  pollIntervalMs?: number
  prices?: PriceRow[]
  clock?: () => number
}

/** Azure's customData limit: 64 KB of base64. */
const CUSTOM_DATA_MAX_BYTES = Math.floor(65_535 / 4) * 3

const CODES: Record<string, CloudErrorCode> = {
  AllocationFailed: 'capacity', ZonalAllocationFailed: 'capacity', SkuNotAvailable: 'capacity', OverconstrainedAllocationRequest: 'capacity', OverconstrainedZonalAllocationRequest: 'capacity',
  QuotaExceeded: 'quota',
  ResourceNotFound: 'not-found', NotFound: 'not-found', ResourceGroupNotFound: 'not-found',
  TooManyRequests: 'throttled', SubscriptionRequestsThrottled: 'throttled', RetryableError: 'throttled',
  AuthenticationFailed: 'auth', AuthorizationFailed: 'auth', InvalidAuthenticationToken: 'auth', InvalidAuthenticationTokenTenant: 'auth', ExpiredAuthenticationToken: 'auth',
  InvalidParameter: 'invalid', InvalidRequestContent: 'invalid', BadRequest: 'invalid', MissingApiVersionParameter: 'invalid', InvalidResourceType: 'invalid'
}
const STATUSES: Record<number, CloudErrorCode> = { 400: 'invalid', 401: 'auth', 403: 'auth', 404: 'not-found', 429: 'throttled' }

export function azureError (err: unknown, doing: string): CloudError {
  if (err instanceof CloudError) return err
  const e = err as { code?: unknown; statusCode?: unknown; message?: string }
  const code = typeof e.code === 'string' ? e.code : undefined
  const msg = e.message ?? String(err)
  let mapped: CloudErrorCode = (code !== undefined ? CODES[code] : undefined) ?? (typeof e.statusCode === 'number' ? STATUSES[e.statusCode] : undefined) ?? 'internal'
  if ((code === 'OperationNotAllowed' || mapped === 'auth') && /quota/i.test(msg)) mapped = 'quota'
  if (mapped === 'internal') for (const [c, m] of Object.entries(CODES)) if (msg.includes(c)) { mapped = m; break }
  return new CloudError(mapped, 'azure', `${doing}: ${code !== undefined ? `${code}: ` : ''}${msg}`, { cause: err })
}

const STATES: Record<string, InstanceState> = { Creating: 'pending', Updating: 'running', Succeeded: 'running', Migrating: 'running', Failed: 'running', Deleting: 'stopping', Canceled: 'running' }

const VmSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/, 'name must be a VM name'),
  location: z.string().min(1),
  tags: z.record(z.string()).optional(),
  hardwareProfile: z.object({ vmSize: z.string().min(1) }).passthrough(),
  priority: z.string().optional(),
  provisioningState: z.string().optional(),
  timeCreated: z.date({ invalid_type_error: 'timeCreated must be a time' }).optional()
}).passthrough()
type Vm = z.infer<typeof VmSchema>

export class AzureProvider implements CloudProvider {
  readonly name = 'azure' as const
  readonly region: string
  private clientP: Promise<ComputeManagementClient> | undefined
  private readonly clock: () => number
  /** Spot VMs seen (name → launched ms), to notice evictions; removed on terminate. */
  private readonly spotSeen = new Map<string, number>()
  /** VMs this provider deleted (their disappearance is no eviction). */
  private readonly deleted = new Set<string>()

  constructor (private readonly opts: AzureOptions) {
    if (!/^[a-z0-9-]{1,40}$/.test(opts.farmTag)) throw new CloudError('invalid', 'azure', `farmTag must be 1–40 of a-z, 0-9, "-" (got ${JSON.stringify(opts.farmTag)})`)
    this.region = opts.location
    this.clock = opts.clock ?? Date.now
  }

  /** The client (made on first use: DefaultAzureCredential is loaded only when needed). */
  client (): Promise<ComputeManagementClient> {
    this.clientP ??= (async () => {
      const credential = this.opts.credential ?? new (await import('@azure/identity')).DefaultAzureCredential()
      return new ComputeManagementClient(credential, this.opts.subscriptionId, {
        ...(this.opts.endpoint !== undefined ? { endpoint: this.opts.endpoint } : {}),
        ...(this.opts.ca !== undefined ? { tlsOptions: { ca: this.opts.ca } } : {}),
        retryOptions: { maxRetries: this.opts.maxRetries ?? 3 }
      })
    })()
    return this.clientP
  }

  async launch (count: number, instanceType: string, o: LaunchOptions): Promise<Instance[]> {
    checkLaunch('azure', count, instanceType, o, CUSTOM_DATA_MAX_BYTES)
    const c = await this.client()
    const names = Array.from({ length: count }, () => `rs-${this.opts.farmTag}-${randomBytes(4).toString('hex')}`.slice(0, 64))
    const made: Vm[] = []
    const failures: CloudError[] = []
    await Promise.all(names.map(async (name, idx) => {
      // Flattened settings: arm-compute 24 serializes these into the wire's `properties`.
      const vm: VirtualMachine = {
        location: this.opts.location,
        tags: { ...o.tags, [MANAGED_TAG]: this.opts.farmTag },
        hardwareProfile: { vmSize: instanceType },
        storageProfile: {
          imageReference: this.opts.image ?? { publisher: 'Canonical', offer: 'ubuntu-24_04-lts', sku: 'server', version: 'latest' },
          osDisk: { createOption: 'FromImage', deleteOption: 'Delete', managedDisk: { storageAccountType: 'StandardSSD_LRS' } }
        },
        osProfile: {
          computerName: name,
          adminUsername: this.opts.adminUsername ?? 'renderswarm',
          customData: Buffer.from(userDataFor(o, idx), 'utf8').toString('base64'),
          linuxConfiguration: { disablePasswordAuthentication: true, ssh: { publicKeys: [{ path: `/home/${this.opts.adminUsername ?? 'renderswarm'}/.ssh/authorized_keys`, keyData: this.opts.sshPublicKey }] } }
        },
        networkProfile: {
          networkApiVersion: '2020-11-01',
          networkInterfaceConfigurations: [{ name: `${name}-nic`, primary: true, deleteOption: 'Delete', ipConfigurations: [{ name: 'ipconfig1', subnet: { id: this.opts.subnetId } }] }]
        },
        ...(o.spot ? { priority: 'Spot', evictionPolicy: 'Delete', billingProfile: { maxPrice: -1 } } : { priority: 'Regular' })
      }
      try {
        const res = await c.virtualMachines.createOrUpdate(this.opts.resourceGroup, name, vm, { updateIntervalInMs: this.opts.pollIntervalMs ?? 2000 })
        made.push(parseResponse('azure', 'virtualMachines.createOrUpdate', VmSchema, res))
      } catch (err) {
        failures.push(azureError(err, `launching ${name} (${instanceType}${o.spot ? ', spot' : ''})`))
      }
    }))
    if (failures.length > 0) {
      await Promise.allSettled(made.map(async (v) => { await this.terminate([v.name]) }))
      throw failures[0]!
    }
    return made.map((v) => this.toInstance(v))
  }

  async terminate (ids: string[]): Promise<void> {
    const c = await this.client()
    for (const id of ids) {
      try {
        await c.virtualMachines.get(this.opts.resourceGroup, id)
        this.deleted.add(id)
        this.spotSeen.delete(id)
        await c.virtualMachines.delete(this.opts.resourceGroup, id, { updateIntervalInMs: this.opts.pollIntervalMs ?? 2000 })
      } catch (err) {
        throw azureError(err, `terminating ${id}`)
      }
    }
  }

  async list (): Promise<Instance[]> {
    const c = await this.client()
    const out: Instance[] = []
    try {
      let n = 0
      for await (const raw of c.virtualMachines.list(this.opts.resourceGroup)) {
        if (++n > 10_000) break
        const v = parseResponse('azure', 'virtualMachines.list', VmSchema, raw)
        if (v.tags?.[MANAGED_TAG] === this.opts.farmTag) out.push(this.toInstance(v))
      }
    } catch (err) {
      throw azureError(err, 'listing VMs')
    }
    return out
  }

  private toInstance (v: Vm): Instance {
    const spot = v.priority === 'Spot'
    const launchedMs = v.timeCreated?.getTime() ?? this.clock()
    if (spot && v.provisioningState !== 'Deleting' && !this.deleted.has(v.name)) this.spotSeen.set(v.name, launchedMs)
    return {
      id: v.name,
      provider: 'azure',
      region: v.location,
      instanceType: v.hardwareProfile.vmSize,
      spot,
      state: STATES[v.provisioningState ?? 'Succeeded'] ?? 'running',
      launchedMs,
      tags: { ...(v.tags ?? {}) }
    }
  }

  async prices (region = this.region): Promise<PriceRow[]> {
    return pricesFor(this.opts.prices ?? bundledPrices(), 'azure', region)
  }

  async pollInterruptions (): Promise<InterruptionNotice[]> {
    const before = [...this.spotSeen.keys()]
    const present = new Set((await this.list()).map((i) => i.id))
    const now = this.clock()
    const out: InterruptionNotice[] = []
    for (const name of before) {
      if (present.has(name)) continue
      this.spotSeen.delete(name)
      out.push({ id: name, provider: 'azure', noticedMs: now, terminateAtMs: now, reason: 'evicted (Spot VM gone without a delete from this farm)' })
    }
    return out
  }

  async close (): Promise<void> {
    this.clientP = undefined
  }
}
