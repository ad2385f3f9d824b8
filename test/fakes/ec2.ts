/**
 * A small, honest fake of the EC2 Query API (form-encoded `Action=…` over HTTP POST, XML answers,
 * XML error envelopes with EC2's codes) for the AWS adapter's tests: the real @aws-sdk/client-ec2
 * serializes, signs, parses, classifies errors and retries against it.
 *
 *   const fake = await FakeEc2.start({ accessKeyId: 'AKIDTEST' })
 *   new EC2Client({ endpoint: fake.url, region: 'us-east-1', credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'x' } })
 *   fake.params('RunInstances')[0].get('UserData')    // exactly what the SDK sent
 *   fake.interrupt(id, 100)                           // spot request marked-for-termination, gone 100 ms later
 *
 * Keeps instances (pending → running on the next describe; shutting-down → terminated likewise),
 * enforces `knobs` (quota → InstanceLimitExceeded, capacity → InsufficientInstanceCapacity,
 * throttleNext → RequestLimitExceeded with HTTP 503), answers InvalidInstanceID.NotFound for
 * unknown ids and AuthFailure for a request signed with another access key.
 */
import type { Server } from 'node:http'
import { close, defaultKnobs, hexId, listen, privateIp, type Knobs, type RecordedRequest } from './common.ts'

interface FakeInstance {
  id: string; type: string; state: 'pending' | 'running' | 'shutting-down' | 'terminated'; launchTime: Date
  ip: string; spot: boolean; spotRequestId?: string; userData?: string; tags: Array<[string, string]>
  interruptAtMs?: number; noticeMs?: number; stateReason?: string
}

const STATE_CODES = { pending: 0, running: 16, 'shutting-down': 32, terminated: 48 } as const

function esc (s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!)
}

export class FakeEc2 {
  readonly requests: RecordedRequest[] = []
  readonly knobs: Knobs = defaultKnobs()
  readonly instances = new Map<string, FakeInstance>()
  /** Spot price answered by DescribeSpotPriceHistory, per instance type. */
  readonly spotPrices = new Map<string, number>()
  private launched = 0

  private constructor (private readonly server: Server, readonly url: string, private readonly opts: { accessKeyId: string; region: string }) {}

  static async start (opts: { accessKeyId?: string; region?: string } = {}): Promise<FakeEc2> {
    let fake: FakeEc2 | undefined
    const { server, url } = await listen((req, body, res) => {
      const r = fake!.handle(req.method ?? '', req.url ?? '', req.headers, body)
      res.writeHead(r.status, { 'content-type': 'text/xml;charset=UTF-8' }).end(r.xml)
    })
    fake = new FakeEc2(server, url, { accessKeyId: opts.accessKeyId ?? 'AKIDRENDERSWARMTEST', region: opts.region ?? 'us-east-1' })
    return fake
  }

  async stop (): Promise<void> { await close(this.server) }

  /** The decoded form parameters of every call of `action`, in order. */
  params (action: string): URLSearchParams[] {
    return this.requests.filter((r) => r.action === action).map((r) => new URLSearchParams(r.body))
  }

  /** A spot interruption: the request is marked for termination now; the instance goes after graceMs. */
  interrupt (id: string, graceMs: number): void {
    const i = this.instances.get(id)
    if (i === undefined || !i.spot) throw new Error(`fake ec2: ${id} is not a spot instance here`)
    i.noticeMs = Date.now()
    i.interruptAtMs = i.noticeMs + graceMs
  }

  private handle (method: string, path: string, headers: RecordedRequest['headers'], body: string): { status: number; xml: string } {
    const p = new URLSearchParams(body)
    const action = p.get('Action') ?? '(none)'
    this.requests.push({ method, path, action, headers, body })
    const auth = String(headers.authorization ?? '')
    if (!auth.includes(`Credential=${this.opts.accessKeyId}/`)) return this.error(401, 'AuthFailure', 'AWS was not able to validate the provided access credentials')
    if (this.knobs.throttleNext > 0) {
      this.knobs.throttleNext -= 1
      return this.error(503, 'RequestLimitExceeded', 'Request limit exceeded.')
    }
    this.advance()
    switch (action) {
      case 'RunInstances': return this.run(p)
      case 'DescribeInstances': return this.describe(p)
      case 'TerminateInstances': return this.terminate(p)
      case 'DescribeSpotPriceHistory': return this.spotHistory(p)
      case 'DescribeSpotInstanceRequests': return this.spotRequests(p)
      default: return this.error(400, 'InvalidAction', `The action ${action} is not valid for this web service.`)
    }
  }

  /** Time passes between calls: pending machines boot, interrupted ones go, terminating ones end. */
  private advance (): void {
    const now = Date.now()
    for (const i of this.instances.values()) {
      if (i.interruptAtMs !== undefined && now >= i.interruptAtMs && i.state !== 'terminated') { i.state = 'terminated'; i.stateReason = 'Server.SpotInstanceTermination' }
    }
  }

  private live (): FakeInstance[] {
    return [...this.instances.values()].filter((i) => i.state !== 'terminated' && i.state !== 'shutting-down')
  }

  private run (p: URLSearchParams): { status: number; xml: string } {
    const min = Number(p.get('MinCount')); const max = Number(p.get('MaxCount'))
    const type = p.get('InstanceType')
    if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max < min) return this.error(400, 'InvalidParameterValue', 'MinCount and MaxCount must be whole numbers, 1 ≤ MinCount ≤ MaxCount')
    if (type === null || p.get('ImageId') === null) return this.error(400, 'MissingParameter', 'The request must contain the parameter ImageId and InstanceType')
    if (this.live().length + max > this.knobs.quota) return this.error(400, 'InstanceLimitExceeded', `You have requested more instances (${this.live().length + max}) than your current instance limit of ${this.knobs.quota} allows for the specified instance type.`)
    if (max > this.knobs.capacity) return this.error(500, 'InsufficientInstanceCapacity', `We currently do not have sufficient ${type} capacity in the Availability Zone you requested (${this.opts.region}a).`)
    this.knobs.capacity -= max
    const spot = p.get('InstanceMarketOptions.MarketType') === 'spot'
    const tags: Array<[string, string]> = []
    for (let t = 1; p.has(`TagSpecification.1.Tag.${t}.Key`); t++) tags.push([p.get(`TagSpecification.1.Tag.${t}.Key`)!, p.get(`TagSpecification.1.Tag.${t}.Value`) ?? ''])
    const made: FakeInstance[] = []
    for (let k = 0; k < max; k++) {
      const id = `i-${hexId(17)}`
      const ud = p.get('UserData')
      const inst: FakeInstance = { id, type, state: 'pending', launchTime: new Date(), ip: privateIp(this.launched++), spot, tags, ...(spot ? { spotRequestId: `sir-${hexId(8)}` } : {}), ...(ud !== null ? { userData: ud } : {}) }
      this.instances.set(id, inst)
      made.push(inst)
    }
    const xml = `<?xml version="1.0" encoding="UTF-8"?>
<RunInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>${hexId(8)}</requestId><reservationId>r-${hexId(17)}</reservationId><ownerId>123456789012</ownerId><groupSet/><instancesSet>${made.map((i) => this.instanceXml(i)).join('')}</instancesSet></RunInstancesResponse>`
    return { status: 200, xml }
  }

  private instanceXml (i: FakeInstance): string {
    return `<item><instanceId>${i.id}</instanceId><imageId>ami-0renderswarm</imageId><instanceState><code>${STATE_CODES[i.state]}</code><name>${i.state}</name></instanceState>` +
      (i.state === 'terminated' ? '' : `<privateIpAddress>${i.ip}</privateIpAddress>`) +
      `<instanceType>${esc(i.type)}</instanceType><launchTime>${i.launchTime.toISOString()}</launchTime><placement><availabilityZone>${this.opts.region}a</availabilityZone></placement>` +
      (i.spot ? `<instanceLifecycle>spot</instanceLifecycle><spotInstanceRequestId>${i.spotRequestId!}</spotInstanceRequestId>` : '') +
      (i.stateReason !== undefined ? `<stateReason><code>${i.stateReason}</code><message>${i.stateReason}</message></stateReason>` : '') +
      `<tagSet>${i.tags.map(([k, v]) => `<item><key>${esc(k)}</key><value>${esc(v)}</value></item>`).join('')}</tagSet></item>`
  }

  private list (p: URLSearchParams, prefix: string): string[] {
    const out: string[] = []
    for (let n = 1; p.has(`${prefix}.${n}`); n++) out.push(p.get(`${prefix}.${n}`)!)
    return out
  }

  private filters (p: URLSearchParams): Array<{ name: string; values: string[] }> {
    const out: Array<{ name: string; values: string[] }> = []
    for (let f = 1; p.has(`Filter.${f}.Name`); f++) out.push({ name: p.get(`Filter.${f}.Name`)!, values: this.list(p, `Filter.${f}.Value`) })
    return out
  }

  private describe (p: URLSearchParams): { status: number; xml: string } {
    const ids = this.list(p, 'InstanceId')
    for (const id of ids) if (!this.instances.has(id)) return this.error(400, 'InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`)
    let found = ids.length > 0 ? ids.map((id) => this.instances.get(id)!) : [...this.instances.values()]
    for (const f of this.filters(p)) {
      if (f.name.startsWith('tag:')) found = found.filter((i) => i.tags.some(([k, v]) => k === f.name.slice(4) && f.values.includes(v)))
      else if (f.name === 'instance-state-name') found = found.filter((i) => f.values.includes(i.state))
      else return this.error(400, 'InvalidParameterValue', `The filter '${f.name}' is invalid`)
    }
    const xml = `<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>${hexId(8)}</requestId><reservationSet>${found.map((i) => `<item><reservationId>r-${i.id.slice(2)}</reservationId><ownerId>123456789012</ownerId><instancesSet>${this.instanceXml(i)}</instancesSet></item>`).join('')}</reservationSet></DescribeInstancesResponse>`
    // Describing is how time shows: what was starting is now running, what was stopping is gone.
    for (const i of found) {
      if (i.state === 'pending') i.state = 'running'
      else if (i.state === 'shutting-down') i.state = 'terminated'
    }
    return { status: 200, xml }
  }

  private terminate (p: URLSearchParams): { status: number; xml: string } {
    const ids = this.list(p, 'InstanceId')
    if (ids.length === 0) return this.error(400, 'MissingParameter', 'The request must contain the parameter InstanceId')
    const unknown = ids.filter((id) => !this.instances.has(id))
    if (unknown.length > 0) return this.error(400, 'InvalidInstanceID.NotFound', `The instance IDs '${unknown.join(', ')}' do not exist`)
    const items = ids.map((id) => {
      const i = this.instances.get(id)!
      const prev = i.state
      if (i.state !== 'terminated') { i.state = 'shutting-down'; this.knobs.capacity += 1 }
      return `<item><instanceId>${id}</instanceId><currentState><code>${STATE_CODES[i.state]}</code><name>${i.state}</name></currentState><previousState><code>${STATE_CODES[prev]}</code><name>${prev}</name></previousState></item>`
    })
    return { status: 200, xml: `<?xml version="1.0" encoding="UTF-8"?>\n<TerminateInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>${hexId(8)}</requestId><instancesSet>${items.join('')}</instancesSet></TerminateInstancesResponse>` }
  }

  private spotHistory (p: URLSearchParams): { status: number; xml: string } {
    const types = this.list(p, 'InstanceType')
    const items = [...this.spotPrices].filter(([t]) => types.length === 0 || types.includes(t))
      .map(([t, price]) => `<item><instanceType>${esc(t)}</instanceType><productDescription>Linux/UNIX</productDescription><spotPrice>${price.toFixed(6)}</spotPrice><timestamp>${new Date().toISOString()}</timestamp><availabilityZone>${this.opts.region}a</availabilityZone></item>`)
    return { status: 200, xml: `<?xml version="1.0" encoding="UTF-8"?>\n<DescribeSpotPriceHistoryResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>${hexId(8)}</requestId><nextToken/><spotPriceHistorySet>${items.join('')}</spotPriceHistorySet></DescribeSpotPriceHistoryResponse>` }
  }

  private spotRequests (p: URLSearchParams): { status: number; xml: string } {
    let found = [...this.instances.values()].filter((i) => i.spot)
    for (const f of this.filters(p)) {
      if (f.name === 'instance-id') found = found.filter((i) => f.values.includes(i.id))
      else return this.error(400, 'InvalidParameterValue', `The filter '${f.name}' is invalid`)
    }
    const items = found.map((i) => {
      const marked = i.interruptAtMs !== undefined
      const code = i.state === 'terminated' && marked ? 'instance-terminated-by-service' : marked ? 'marked-for-termination' : 'fulfilled'
      return `<item><spotInstanceRequestId>${i.spotRequestId!}</spotInstanceRequestId><instanceId>${i.id}</instanceId><state>${i.state === 'terminated' ? 'closed' : 'active'}</state><type>one-time</type><status><code>${code}</code><updateTime>${new Date(marked ? i.noticeMs! : i.launchTime.getTime()).toISOString()}</updateTime><message>${code}</message></status></item>`
    })
    return { status: 200, xml: `<?xml version="1.0" encoding="UTF-8"?>\n<DescribeSpotInstanceRequestsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>${hexId(8)}</requestId><spotInstanceRequestSet>${items.join('')}</spotInstanceRequestSet></DescribeSpotInstanceRequestsResponse>` }
  }

  private error (status: number, code: string, message: string): { status: number; xml: string } {
    return { status, xml: `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${esc(code)}</Code><Message>${esc(message)}</Message></Error></Errors><RequestID>${hexId(8)}</RequestID></Response>` }
  }
}
