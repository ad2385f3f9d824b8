/**
 * A small, honest fake of Azure Resource Manager's virtual machine API (JSON over HTTPS with a
 * self-signed certificate, long-running operations through Azure-AsyncOperation and Location
 * headers) for the Azure adapter's tests: the real @azure/arm-compute client, its pipeline
 * (bearer token, throttling retries) and its LRO poller run against it.
 *
 *   const fake = await FakeArm.start({ token: 'test-token' })
 *   new ComputeManagementClient(staticToken, 'sub', { endpoint: fake.url, tlsOptions: { ca: fake.cert } })
 *   fake.puts()[0].properties.osProfile.customData      // the VM body exactly as the client sent it
 *
 * PUT a VM: 201 with provisioningState Creating and an Azure-AsyncOperation URL; the operation
 * is InProgress once, then Succeeded (the VM exists) or Failed with AllocationFailed when
 * `knobs.capacity` is used up. Over `knobs.quota` live VMs the PUT itself fails 409
 * OperationNotAllowed (as ARM does for core quotas). DELETE: 202 with Location and
 * Azure-AsyncOperation; a VM that does not exist is 204 (ARM deletes are idempotent), GET of one
 * is 404 ResourceNotFound. POST …/simulateEviction evicts a Spot VM (evictionPolicy Delete: it is
 * deleted). throttleNext: 429 TooManyRequests with retry-after headers. A wrong bearer token: 401.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { close, defaultKnobs, hexId, listen, type Knobs, type RecordedRequest } from './common.ts'
import { selfSignedCert } from './tls.ts'

interface ArmVm { name: string; rg: string; location: string; tags: Record<string, string>; properties: Record<string, any>; created: Date }
interface ArmOp { id: string; polls: number; then: () => { code: string; message: string } | undefined; status?: 'Succeeded' | 'Failed'; error?: { code: string; message: string } }

export class FakeArm {
  readonly requests: RecordedRequest[] = []
  readonly knobs: Knobs = defaultKnobs()
  readonly vms = new Map<string, ArmVm>()
  private readonly ops = new Map<string, ArmOp>()
  /** VMs accepted but not yet created: they count against the quota already, as on ARM. */
  private creating = 0

  private constructor (private readonly server: Server, readonly url: string, readonly cert: string, private readonly token: string) {}

  static async start (opts: { token?: string } = {}): Promise<FakeArm> {
    const tls = selfSignedCert()
    let fake: FakeArm | undefined
    const { server, url } = await listen((req, body, res) => { fake!.handle(req, body, res) }, tls)
    fake = new FakeArm(server, url, tls.cert, opts.token ?? 'renderswarm-test-token')
    return fake
  }

  async stop (): Promise<void> { await close(this.server) }

  /** Bodies of every VM PUT, as sent (ARM wire shape: settings under `properties`). */
  puts (): Array<Record<string, any>> {
    return this.requests.filter((r) => r.action === 'virtualMachines.createOrUpdate').map((r) => JSON.parse(r.body) as Record<string, any>)
  }

  /** A Spot eviction with evictionPolicy Delete: the VM is gone. */
  interrupt (name: string): void {
    if (!this.vms.delete(name)) throw new Error(`fake arm: no VM ${name}`)
    this.knobs.capacity += 1
  }

  private handle (req: IncomingMessage, body: string, res: ServerResponse): void {
    const u = new URL(req.url ?? '/', this.url)
    const method = req.method ?? ''
    const vmRe = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Compute\/virtualMachines(?:\/([^/]+))?(\/simulateEviction)?$/i
    const opRe = /^\/subscriptions\/([^/]+)\/providers\/Microsoft\.Compute\/locations\/([^/]+)\/operations\/([^/]+)$/i
    const vm = vmRe.exec(u.pathname); const op = opRe.exec(u.pathname)
    const action = vm !== null
      ? `virtualMachines.${vm[4] !== undefined ? 'simulateEviction' : vm[3] === undefined ? 'list' : method === 'PUT' ? 'createOrUpdate' : method === 'DELETE' ? 'delete' : 'get'}`
      : op !== null ? 'operations.get' : `${method} ${u.pathname}`
    this.requests.push({ method, path: req.url ?? '', action, headers: req.headers, body })
    const send = (status: number, json: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'x-ms-request-id': hexId(12), ...headers })
      res.end(json === undefined ? '' : JSON.stringify(json))
    }
    const fail = (status: number, code: string, message: string, headers: Record<string, string> = {}): void => { send(status, { error: { code, message } }, headers) }
    if (req.headers.authorization !== `Bearer ${this.token}`) { fail(401, 'AuthenticationFailed', 'Authentication failed. The \'Authorization\' header is missing or invalid.'); return }
    if (this.knobs.throttleNext > 0) {
      this.knobs.throttleNext -= 1
      fail(429, 'TooManyRequests', 'The request is being throttled as the limit has been reached for operation type - Write_ObservationWindow_00:01:00.', { 'Retry-After': '1', 'x-ms-retry-after-ms': '20' }); return
    }
    if (u.searchParams.get('api-version') === null) { fail(400, 'MissingApiVersionParameter', "The api-version query parameter (?api-version=) is required for all requests."); return }
    if (op !== null) {
      const o = this.ops.get(op[3]!)
      if (o === undefined) { fail(404, 'NotFound', `operation ${op[3]!} not found`); return }
      // InProgress on the first poll, so the client's poller really polls.
      if (o.status === undefined && o.polls++ >= 1) {
        const err = o.then()
        o.status = err === undefined ? 'Succeeded' : 'Failed'
        if (err !== undefined) o.error = err
      }
      send(200, { name: o.id, status: o.status ?? 'InProgress', startTime: new Date().toISOString(), ...(o.error !== undefined ? { error: o.error } : {}) }, o.status === undefined ? { 'Retry-After': '0' } : {})
      return
    }
    if (vm === null) { fail(404, 'InvalidResourceType', `The resource type could not be found for ${u.pathname}`); return }
    const [, sub, rg, name] = vm as unknown as [string, string, string, string | undefined]
    const opUrl = (o: ArmOp, loc: string): string => `${this.url}/subscriptions/${sub}/providers/Microsoft.Compute/locations/${loc}/operations/${o.id}?api-version=${u.searchParams.get('api-version')!}`
    const json = (v: ArmVm, state: string): Record<string, unknown> => ({
      id: `/subscriptions/${sub}/resourceGroups/${v.rg}/providers/Microsoft.Compute/virtualMachines/${v.name}`, name: v.name, type: 'Microsoft.Compute/virtualMachines', location: v.location, tags: v.tags,
      properties: { ...stripSecrets(v.properties), provisioningState: state, vmId: `${hexId(8)}-0000-4000-8000-${hexId(12)}`, timeCreated: v.created.toISOString() }
    })
    if (action === 'virtualMachines.list') {
      send(200, { value: [...this.vms.values()].filter((v) => v.rg === rg).map((v) => json(v, 'Succeeded')) }); return
    }
    const existing = this.vms.get(name!)
    if (action === 'virtualMachines.get') {
      if (existing === undefined) { fail(404, 'ResourceNotFound', `The Resource 'Microsoft.Compute/virtualMachines/${name!}' under resource group '${rg}' was not found.`); return }
      send(200, json(existing, 'Succeeded')); return
    }
    if (action === 'virtualMachines.simulateEviction') {
      if (existing === undefined) { fail(404, 'ResourceNotFound', `The Resource 'Microsoft.Compute/virtualMachines/${name!}' under resource group '${rg}' was not found.`); return }
      if (existing.properties.priority !== 'Spot') { fail(409, 'OperationNotAllowed', 'Simulate eviction is only allowed on Spot virtual machines.'); return }
      this.interrupt(name!)
      send(204, undefined); return
    }
    if (action === 'virtualMachines.delete') {
      if (existing === undefined) { send(204, undefined); return }
      const o: ArmOp = { id: hexId(16), polls: 0, then: () => { if (this.vms.delete(name!)) this.knobs.capacity += 1; return undefined } }
      this.ops.set(o.id, o)
      send(202, undefined, { 'Azure-AsyncOperation': opUrl(o, existing.location), Location: opUrl(o, existing.location), 'Retry-After': '0' }); return
    }
    if (action === 'virtualMachines.createOrUpdate') {
      let b: { location?: unknown; tags?: unknown; properties?: Record<string, any> }
      try { b = JSON.parse(body) as typeof b } catch { fail(400, 'InvalidRequestContent', 'The request content was invalid and could not be deserialized.'); return }
      if (typeof b.location !== 'string' || b.properties === undefined) { fail(400, 'InvalidRequestContent', "The request content must have 'location' and 'properties'."); return }
      const size = b.properties.hardwareProfile?.vmSize
      if (typeof size !== 'string') { fail(400, 'InvalidParameter', "Required parameter 'hardwareProfile.vmSize' is missing (null).", {}); return }
      if (this.vms.size + this.creating + 1 > this.knobs.quota) {
        fail(409, 'OperationNotAllowed', `Operation could not be completed as it results in exceeding approved Total Regional Cores quota. Location: ${b.location}, Current Limit: ${this.knobs.quota * 4}, Current Usage: ${this.vms.size * 4}, Additional Required: 4.`); return
      }
      const v: ArmVm = { name: name!, rg, location: b.location, tags: (b.tags ?? {}) as Record<string, string>, properties: b.properties, created: new Date() }
      const o: ArmOp = {
        id: hexId(16), polls: 0,
        then: () => {
          this.creating -= 1
          if (this.knobs.capacity < 1) return { code: 'AllocationFailed', message: `Allocation failed. We do not have sufficient capacity for the requested VM size ${size} in this region.` }
          this.knobs.capacity -= 1
          this.vms.set(v.name, v)
          return undefined
        }
      }
      this.creating += 1
      this.ops.set(o.id, o)
      send(201, json(v, 'Creating'), { 'Azure-AsyncOperation': opUrl(o, b.location), 'Retry-After': '0' })
      return
    }
    fail(405, 'MethodNotAllowed', `${method} is not supported here`)
  }
}

/** ARM never returns customData or admin secrets. */
function stripSecrets (p: Record<string, any>): Record<string, any> {
  if (p.osProfile === undefined) return p
  const { customData: _c, adminPassword: _a, ...os } = p.osProfile as Record<string, unknown>
  return { ...p, osProfile: os }
}
