/**
 * A small, honest fake of the Compute Engine REST API (JSON over HTTP, zone operations) for the
 * GCP adapter's tests: the real @google-cloud/compute client (REST transport, its encoding,
 * error parsing and retries) talks to it.
 *
 *   const fake = await FakeGce.start({ token: 'test-token' })
 *   new InstancesClient({ apiEndpoint: '127.0.0.1', port: fake.port, protocol: 'http', fallback: true, authClient })
 *   fake.inserted()[0].metadata.items            // the Instance body exactly as the client sent it
 *   fake.interrupt('rs-1')                       // a compute.instances.preempted operation; the VM goes
 *
 * insert/delete answer an Operation (PENDING); the work is done and the operation DONE at the
 * first `wait` or `get` on it — or DONE with an error: quota (QUOTA_EXCEEDED) and capacity
 * (ZONE_RESOURCE_POOL_EXHAUSTED) fail in the operation, as GCE does. throttleNext answers
 * HTTP 429 rateLimitExceeded; an unknown instance is a 404 notFound; a wrong bearer token a 401.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { close, defaultKnobs, hexId, listen, privateIp, type Knobs, type RecordedRequest } from './common.ts'

interface GceInstance { id: string; name: string; zone: string; body: Record<string, unknown>; status: string; created: Date; ip: string }
interface GceOperation { id: string; name: string; zone: string; operationType: string; targetLink: string; status: 'PENDING' | 'RUNNING' | 'DONE'; insertTime: Date; run?: () => { code: string; message: string } | undefined; error?: { code: string; message: string } }

export class FakeGce {
  readonly requests: RecordedRequest[] = []
  readonly knobs: Knobs = defaultKnobs()
  readonly instances = new Map<string, GceInstance>()
  readonly operations = new Map<string, GceOperation>()
  private launched = 0

  private constructor (private readonly server: Server, readonly url: string, private readonly token: string) {}

  get port (): number { return Number(new URL(this.url).port) }

  static async start (opts: { token?: string } = {}): Promise<FakeGce> {
    let fake: FakeGce | undefined
    const { server, url } = await listen((req, body, res) => { fake!.handle(req, body, res) })
    fake = new FakeGce(server, url, opts.token ?? 'renderswarm-test-token')
    return fake
  }

  async stop (): Promise<void> { await close(this.server) }

  /** Instance bodies of every insert, as sent. */
  inserted (): Array<Record<string, any>> {
    return this.requests.filter((r) => r.action === 'instances.insert').map((r) => JSON.parse(r.body) as Record<string, any>)
  }

  /** Spot preemption: a compute.instances.preempted operation now; the instance is deleted (its terminationAction). */
  interrupt (name: string): void {
    const i = this.instances.get(name)
    if (i === undefined) throw new Error(`fake gce: no instance ${name}`)
    this.instances.delete(name)
    const op = this.op(i.zone, 'compute.instances.preempted', i.name)
    op.status = 'DONE'
  }

  private op (zone: string, type: string, target: string, run?: GceOperation['run']): GceOperation {
    const id = String(BigInt('0x' + hexId(15)))
    const op: GceOperation = { id, name: `operation-${hexId(12)}`, zone, operationType: type, targetLink: `https://www.googleapis.com/compute/v1/projects/p/zones/${zone}/instances/${target}`, status: 'PENDING', insertTime: new Date(), ...(run !== undefined ? { run } : {}) }
    this.operations.set(op.name, op)
    return op
  }

  private handle (req: IncomingMessage, body: string, res: ServerResponse): void {
    const u = new URL(req.url ?? '/', 'http://x')
    const m = /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/(instances|operations)(?:\/([^/]+))?(\/wait)?$/.exec(u.pathname)
    const method = req.method ?? ''
    const action = m === null ? `${method} ${u.pathname}` : `${m[3]}.${m[5] !== undefined ? 'wait' : method === 'POST' ? 'insert' : method === 'DELETE' ? 'delete' : m[4] !== undefined ? 'get' : 'list'}`
    this.requests.push({ method, path: req.url ?? '', action, headers: req.headers, body })
    const send = (status: number, json: unknown): void => { res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' }).end(JSON.stringify(json)) }
    const fail = (status: number, reason: string, message: string, grpc: string): void => { send(status, { error: { code: status, message, errors: [{ message, domain: 'global', reason }], status: grpc } }) }
    if (req.headers.authorization !== `Bearer ${this.token}`) { fail(401, 'authError', 'Request had invalid authentication credentials.', 'UNAUTHENTICATED'); return }
    if (this.knobs.throttleNext > 0) {
      this.knobs.throttleNext -= 1
      fail(429, 'rateLimitExceeded', 'Rate Limit Exceeded', 'RESOURCE_EXHAUSTED'); return
    }
    if (m === null) { fail(404, 'notFound', `The requested URL ${u.pathname} was not found`, 'NOT_FOUND'); return }
    const [, , zone, kind, name] = m as unknown as [string, string, string, string, string | undefined]
    if (kind === 'instances') {
      if (action === 'instances.insert') {
        let inst: Record<string, unknown>
        try { inst = JSON.parse(body) as Record<string, unknown> } catch { fail(400, 'parseError', 'This API does not support parsing form-encoded input.', 'INVALID_ARGUMENT'); return }
        const iname = inst.name
        if (typeof iname !== 'string' || !/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(iname)) { fail(400, 'invalid', "Invalid value for field 'resource.name'", 'INVALID_ARGUMENT'); return }
        if (typeof inst.machineType !== 'string') { fail(400, 'required', "Required field 'resource.machineType' not specified", 'INVALID_ARGUMENT'); return }
        if (this.instances.has(iname)) { fail(409, 'alreadyExists', `The resource 'projects/p/zones/${zone}/instances/${iname}' already exists`, 'ALREADY_EXISTS'); return }
        const op = this.op(zone, 'insert', iname, () => {
          if (this.instances.size + 1 > this.knobs.quota) return { code: 'QUOTA_EXCEEDED', message: `Quota 'INSTANCES' exceeded. Limit: ${this.knobs.quota}.0 in region ${zone.replace(/-[a-z]$/, '')}.` }
          if (this.knobs.capacity < 1) return { code: 'ZONE_RESOURCE_POOL_EXHAUSTED', message: `The zone 'projects/p/zones/${zone}' does not have enough resources available to fulfill the request. Try a different zone, or try again later.` }
          this.knobs.capacity -= 1
          this.instances.set(iname, { id: String(BigInt('0x' + hexId(15))), name: iname, zone, body: inst, status: 'RUNNING', created: new Date(), ip: privateIp(this.launched++) })
          return undefined
        })
        send(200, this.opJson(op)); return
      }
      if (action === 'instances.list') {
        const f = u.searchParams.get('filter')
        let all = [...this.instances.values()]
        if (f !== null) {
          const lm = /^labels\.([a-z0-9_-]+)\s*=\s*"?([a-z0-9_-]+)"?$/.exec(f)
          if (lm === null) { fail(400, 'invalid', `Invalid value for field 'filter': '${f}'. Invalid list filter expression.`, 'INVALID_ARGUMENT'); return }
          all = all.filter((i) => (i.body.labels as Record<string, string> | undefined)?.[lm[1]!] === lm[2])
        }
        send(200, { kind: 'compute#instanceList', id: `projects/p/zones/${zone}/instances`, items: all.map((i) => this.instJson(i)), selfLink: `https://www.googleapis.com/compute/v1/projects/p/zones/${zone}/instances` }); return
      }
      const inst = name !== undefined ? this.instances.get(name) : undefined
      if (inst === undefined) { fail(404, 'notFound', `The resource 'projects/p/zones/${zone}/instances/${name ?? ''}' was not found`, 'NOT_FOUND'); return }
      if (action === 'instances.get') { send(200, this.instJson(inst)); return }
      if (action === 'instances.delete') {
        inst.status = 'STOPPING'
        const op = this.op(zone, 'delete', inst.name, () => { this.instances.delete(inst.name); this.knobs.capacity += 1; return undefined })
        send(200, this.opJson(op)); return
      }
    }
    if (kind === 'operations') {
      if (action === 'operations.list') {
        const f = u.searchParams.get('filter')
        let ops = [...this.operations.values()].filter((o) => o.zone === zone)
        if (f !== null) {
          const om = /^operationType\s*=\s*"?([a-zA-Z0-9._]+)"?$/.exec(f)
          if (om === null) { fail(400, 'invalid', `Invalid value for field 'filter': '${f}'. Invalid list filter expression.`, 'INVALID_ARGUMENT'); return }
          ops = ops.filter((o) => o.operationType === om[1])
        }
        send(200, { kind: 'compute#operationList', id: `projects/p/zones/${zone}/operations`, items: ops.map((o) => this.opJson(o)) }); return
      }
      const op = name !== undefined ? this.operations.get(name) : undefined
      if (op === undefined) { fail(404, 'notFound', `The resource 'projects/p/zones/${zone}/operations/${name ?? ''}' was not found`, 'NOT_FOUND'); return }
      if (op.status !== 'DONE') {
        const err = op.run?.()
        op.status = 'DONE'
        if (err !== undefined) op.error = err
      }
      send(200, this.opJson(op)); return
    }
    fail(400, 'badRequest', `${action} is not supported by this fake`, 'INVALID_ARGUMENT')
  }

  private opJson (o: GceOperation): Record<string, unknown> {
    return {
      kind: 'compute#operation', id: o.id, name: o.name, zone: `https://www.googleapis.com/compute/v1/projects/p/zones/${o.zone}`, operationType: o.operationType,
      targetLink: o.targetLink, status: o.status, progress: o.status === 'DONE' ? 100 : 0, insertTime: o.insertTime.toISOString(),
      selfLink: `https://www.googleapis.com/compute/v1/projects/p/zones/${o.zone}/operations/${o.name}`,
      ...(o.error !== undefined ? { error: { errors: [o.error] }, httpErrorStatusCode: o.error.code === 'QUOTA_EXCEEDED' ? 403 : 503, httpErrorMessage: o.error.code === 'QUOTA_EXCEEDED' ? 'FORBIDDEN' : 'SERVICE UNAVAILABLE' } : {})
    }
  }

  private instJson (i: GceInstance): Record<string, unknown> {
    const b = i.body
    return {
      kind: 'compute#instance', id: i.id, name: i.name, creationTimestamp: i.created.toISOString(), status: i.status,
      zone: `https://www.googleapis.com/compute/v1/projects/p/zones/${i.zone}`,
      machineType: `https://www.googleapis.com/compute/v1/projects/p/${String(b.machineType)}`,
      networkInterfaces: [{ name: 'nic0', network: 'https://www.googleapis.com/compute/v1/projects/p/global/networks/default', networkIP: i.ip }],
      ...(b.guestAccelerators !== undefined ? { guestAccelerators: b.guestAccelerators } : {}),
      ...(b.scheduling !== undefined ? { scheduling: b.scheduling } : {}),
      ...(b.metadata !== undefined ? { metadata: { kind: 'compute#metadata', fingerprint: 'abc=', ...(b.metadata as object) } } : {}),
      ...(b.labels !== undefined ? { labels: b.labels } : {})
    }
  }
}
