/**
 * Coordinator dispatch throughput (issue H): the real Coordinator on a real FarmNode with a real
 * Store, and 24 real FarmNodes as workers, all in this one process on 127.0.0.1 (libp2p TCP +
 * pnet + Noise + yamux, farm certificates). Workers take each lease at once and report the
 * chunk done without running ffmpeg: this measures orchestration, not rendering.
 *
 *   node bin/run-ts.js bench/dispatch.ts [--quick] [--workers 24] [--slots 2] [--jobs 8] [--chunks 1000]
 *       [--heartbeat-ms 5000] [--profile FILE.cpuprofile] [--coordinator /tmp/before/agent/coordinator.ts] [--verbose]
 *
 * --quick: 4 jobs × 500 chunks and at most 30 s of dispatch (a run cut short reports over the
 * chunks it got to, and says so). --profile writes a CPU profile of the dispatch part only.
 * --coordinator runs another copy of agent/coordinator.ts (its imports made absolute), for
 * before/after figures on the same machine. Heartbeats are 5 s (not 1 s) so that the failure
 * detector does not drop members while 25 nodes form a mesh in one process on a loaded machine.
 *
 * Figures:
 * - dispatches/s: leases accepted by workers over the steady part (from the 10th to the 90th
 *   percentile of acceptance times), per second.
 * - lease latency (decided → received): the coordinator's clock when its scheduler decided the
 *   lease (lease.expiresAt − leaseMs; the coordinator stamps it at the start of the tick, whole
 *   ms) to the worker's handler receiving it (Date.now(), same process, same clock). Error ±1 ms.
 * - slot free → lease: a worker sends 'chunk-done' (its slot frees) → the next lease reaches
 *   that worker (performance.now()): the time a freed slot waits for work.
 * - CPU per chunk: this process's user + system CPU over the dispatch part / chunks done
 *   (coordinator and all workers together, status pushes included): what a chunk costs,
 *   whatever else the machine runs, unlike the rates above.
 * - status pushes: the JSON bytes of the job records and progress lists the coordinator pushed
 *   to members, per chunk done, beside the bytes of the lease and result themselves.
 *
 * The bench also exports startDispatchFarm for test/cluster/dispatch.test.ts.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import inspector from 'node:inspector/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Coordinator, type NodeView } from '../agent/coordinator.ts'
import { FarmNode } from '../agent/node.ts'
import { Store } from '../agent/store.ts'
import { generateFarmKey, issueCertificate, type FarmSecrets } from '../protocol/farm-key.ts'
import { MAX_FRAME_BYTES, PROTOCOLS } from '../protocol/ids.ts'
import { AckSchema, StatusPushSchema, SubmitReplySchema, WorkerRequestSchema, type JobRecord, type JobSpec, type StatusPush } from '../protocol/messages/jobs.ts'
import type { NodeInfo } from '../protocol/messages/membership.ts'

export interface LeaseSeen { jobId: string; chunkId: string; worker: number; decidedMs: number; receivedMs: number; receivedPerf: number; slotFreedPerf?: number | undefined }

export interface DispatchFarmOptions {
  workers: number
  slots: number
  leaseMs?: number
  heartbeatMs?: number
  log?: (line: string) => void
  /** Another build of the Coordinator class (for before/after runs); default the one in agent/. */
  CoordinatorClass?: typeof Coordinator
}

export interface DispatchFarm {
  coordinator: Coordinator
  /** Every lease a worker accepted, in arrival order. */
  leases: LeaseSeen[]
  /** chunk id → how many times a worker reported it done and the coordinator took the report. */
  completed: Map<string, number>
  /** Leases a worker refused (every slot busy): the coordinator offered more than it had room for. */
  refused: number
  /** Submits one job of `chunks` one-frame chunks (a colour-only timeline); resolves with its chunk ids. */
  submit: (name: string, chunks: number) => Promise<string[]>
  /** Waits until every chunk of every submitted job has been reported done: true, or false at timeoutMs. */
  waitAllDone: (timeoutMs: number) => Promise<boolean>
  /** JSON bytes of the leases workers took and the results they reported. */
  leaseBytes: number
  /** Status pushes the coordinator sent (one per member), by type: how many, and their JSON bytes. */
  pushes: Record<'job' | 'progress' | 'paused', { count: number; bytes: number }>
  /** Streams and peers the nodes refused (peer limits, …), summed over the coordinator and the workers by reason. */
  refusals: () => Record<string, number>
  /** The coordinator's stored record of a job. */
  record: (jobId: string) => JobRecord | undefined
  stop: () => Promise<void>
}

const FAKE_SHA = 'ab'.repeat(32)
const info = (slots: number): NodeInfo => ({
  cpu: { model: 'bench', cores: 2 }, memBytes: 1e9, gpus: [], os: 'linux',
  ffmpeg: { version: 'bench', encoders: ['ffv1'] }, bench: { ffv1: 25 }, slots, costPerHour: 0
})

async function makeNode (farm: FarmSecrets, name: string, slots: number, heartbeatMs: number): Promise<FarmNode> {
  const privateKey = await generateKeyPair('Ed25519')
  const peerId = peerIdFromPrivateKey(privateKey).toString()
  const node = new FarmNode({
    privateKey, name, listen: ['/ip4/127.0.0.1/tcp/0'], farm: { publicKey: farm.publicKey, psk: farm.psk },
    certificate: issueCertificate(farm, { peerId, name, issuedAtMs: Date.now() }), heartbeatMs, helloTimeoutMs: 5000,
    info: () => info(slots), accepting: () => true
  })
  await node.start()
  return node
}

/** The coordinator, its node and store, and `workers` worker nodes that finish every lease at once. */
export async function startDispatchFarm (o: DispatchFarmOptions): Promise<DispatchFarm> {
  const leaseMs = o.leaseMs ?? 15_000
  const heartbeatMs = o.heartbeatMs ?? 1000
  const log = o.log ?? (() => {})
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rs-bench-dispatch-'))
  const store = Store.open(path.join(dir, 'state.db'))
  const farm = generateFarmKey()
  const started: FarmNode[] = []
  const coordNode = await makeNode(farm, 'coordinator', 0, heartbeatMs)
  started.push(coordNode)
  const self = coordNode.peerId.toString()
  const workers: FarmNode[] = []
  try {
    for (let i = 0; i < o.workers; i++) { workers.push(await makeNode(farm, `w${i}`, o.slots, heartbeatMs)); started.push(workers.at(-1)!) }
    await formFarm()
  } catch (err) {
    // A farm that did not form leaves nothing behind: nodes stopped, temp dir removed.
    await Promise.all(started.map(async (n) => { await n.stop().catch(() => {}) }))
    store.close()
    await rm(dir, { recursive: true, force: true })
    throw err
  }
  async function formFarm (): Promise<void> {
    for (const w of workers) {
      // A loaded machine (2 shared cores) can take seconds per handshake: a few tries, each bounded.
      for (let attempt = 1; ; attempt++) {
        try { await w.dial(coordNode.addrs()[0]!, 20_000); break } catch (err) { if (attempt >= 3) throw err }
      }
    }
    const deadline = Date.now() + 90_000
    let nudged = Date.now()
    while (coordNode.list().filter((m) => m.state === 'alive' && m.info !== undefined).length < o.workers || workers.some((w) => !w.isMember(self))) {
      // Forming a 25-node mesh in one process on a loaded machine can stall the event loop past the
      // failure detector; a member taken for dead rejoins with a fresh Hello.
      if (Date.now() - nudged > 3000) {
        nudged = Date.now()
        const alive = new Set(coordNode.list().filter((m) => m.state === 'alive').map((m) => m.peerId))
        for (const w of workers) if (!alive.has(w.peerId.toString()) || !w.isMember(self)) void w.dial(coordNode.addrs()[0]!, 20_000).then(async () => { await w.announce() }).catch(() => {})
      }
      if (Date.now() > deadline) {
        const states = coordNode.list().map((m) => m.state).join(' ')
        throw new Error(`the farm did not form in 90 s: the coordinator sees [${states}] of ${o.workers} workers; ${workers.filter((w) => !w.isMember(self)).length} worker(s) do not see it`)
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  // As agent/farm.ts wires it: live members from the node's table, self first; a status push to each.
  const nodes = (): NodeView[] => [
    { peerId: self, name: 'coordinator', slots: 0, encoders: ['ffv1'], gpu: false, fps: { ffv1: 25 }, accepting: true, costPerHour: 0 },
    ...coordNode.list().filter((m) => m.state === 'alive' && m.info !== undefined).map((m): NodeView => ({
      peerId: m.peerId, name: m.name, slots: m.info!.slots ?? 1, encoders: m.info!.ffmpeg.encoders, gpu: m.info!.gpus.length > 0,
      fps: m.info!.bench, accepting: m.accepting ?? true, costPerHour: m.info!.costPerHour ?? 0
    }))
  ]
  let term = 1
  const pushes = { job: { count: 0, bytes: 0 }, progress: { count: 0, bytes: 0 }, paused: { count: 0, bytes: 0 } }
  const coordinator = new (o.CoordinatorClass ?? Coordinator)({
    node: coordNode, store, log, nodes, leaseMs, chunkSeconds: 0.001, speculateAfterMs: 0,
    checkTerm: (t) => { if (t > term) term = t },
    broadcast: async (msg: StatusPush, timeoutMs: number) => {
      const to = nodes()
      const kind = msg.type === 'job' ? 'job' : msg.type === 'progress' ? 'progress' : 'paused'
      pushes[kind].count += to.length
      pushes[kind].bytes += JSON.stringify(msg).length * to.length
      await Promise.allSettled(to.map(async (n) => { await coordNode.request(n.peerId, PROTOCOLS.status, msg, AckSchema, { timeoutMs }) }))
    }
  })
  // Every member keeps the pushed records; the coordinator's own copy goes to its store, as in agent/farm.ts.
  await coordNode.serve(PROTOCOLS.status, MAX_FRAME_BYTES.status * 64, StatusPushSchema, async (msg) => {
    if (msg.type === 'job') store.putJob(msg.record.spec.id, msg.record, msg.record.updatedMs)
    return { ok: true }
  })

  const leases: LeaseSeen[] = []
  const completed = new Map<string, number>()
  const jobChunks = new Map<string, Set<string>>()
  let refused = 0
  const chunkBytes = { n: 0 }
  let doneCount = 0
  let total = 0
  const finishing = new Set<Promise<unknown>>()
  workers.forEach((w, index) => {
    let running = 0
    const freed: number[] = []
    // Members ack pushes after their schema check (the serve does it); their stores are their own machines' work.
    void w.serve(PROTOCOLS.status, MAX_FRAME_BYTES.status * 64, StatusPushSchema, async () => ({ ok: true }))
    void w.serve(PROTOCOLS.chunk, MAX_FRAME_BYTES.chunk, WorkerRequestSchema, async (msg) => {
      if (msg.type !== 'lease') return { ok: true }
      const l = msg.lease
      if (running >= o.slots) { refused++; return { accepted: false, reason: `all ${o.slots} slot(s) busy` } }
      running++
      chunkBytes.n += JSON.stringify(msg).length
      leases.push({ jobId: l.jobId, chunkId: l.chunkId, worker: index, decidedMs: l.expiresAt - leaseMs, receivedMs: Date.now(), receivedPerf: performance.now(), slotFreedPerf: freed.shift() })
      // Done at once, after the lease reply has gone out.
      setImmediate(() => {
        running--
        freed.push(performance.now())
        const done = { type: 'chunk-done', term: l.term, jobId: l.jobId, chunkId: l.chunkId, leaseToken: l.leaseToken, sha256: FAKE_SHA, frames: l.end - l.start }
        chunkBytes.n += JSON.stringify(done).length
        const p = w.request(self, PROTOCOLS.submit, done, AckSchema, { timeoutMs: 10_000 })
          .then(() => {
            completed.set(l.chunkId, (completed.get(l.chunkId) ?? 0) + 1)
            const left = jobChunks.get(l.jobId)
            if (left?.delete(l.chunkId) === true) {
              doneCount++
              // The owner's part once every segment is in: job-finished, so the coordinator drops the job.
              if (left.size === 0) return coordNode.request(self, PROTOCOLS.submit, { type: 'job-finished', jobId: l.jobId, ok: true }, AckSchema)
            }
          })
          .catch((err: unknown) => { log(`chunk-done for ${l.chunkId}: ${(err as Error).message}`) })
        finishing.add(p)
        void p.finally(() => finishing.delete(p))
      })
      return { accepted: true }
    })
  })
  await coordinator.start()
  coordinator.lead(term)

  let seq = 0
  return {
    coordinator, leases, completed, pushes,
    record: (jobId) => store.getJob<JobRecord>(jobId),
    refusals: () => {
      const out: Record<string, number> = {}
      for (const n of [coordNode, ...workers]) for (const [k, v] of Object.entries(n.stats().refused)) out[k] = (out[k] ?? 0) + v
      return out
    },
    get refused () { return refused },
    get leaseBytes () { return chunkBytes.n },
    submit: async (name, chunks) => {
      const id = `bench-${process.pid}-${seq++}`
      const job: JobSpec = {
        id, owner: self, name, user: 'bench', preset: 'ffv1', priority: 'normal', createdMs: Date.now(), media: {}, assets: [],
        timeline: { schema: 'farm.timeline/1', fps: { num: 25, den: 1 }, width: 320, height: 180, sampleRate: 48000, duration: chunks, video: [{ clips: [{ id: 'bg', type: 'color', color: '#304050', start: 0, length: chunks }] }], audio: [] }
      }
      const reply = await coordNode.request(self, PROTOCOLS.submit, { type: 'submit', job }, SubmitReplySchema, { timeoutMs: 30_000 })
      const ids = reply.record.chunks.map((c) => c.id)
      jobChunks.set(id, new Set(ids))
      total += ids.length
      return ids
    },
    waitAllDone: async (timeoutMs) => {
      const until = Date.now() + timeoutMs
      while (doneCount < total) {
        if (Date.now() > until) return false
        await new Promise((r) => setTimeout(r, 20))
      }
      await Promise.allSettled([...finishing])
      return true
    },
    stop: async () => {
      coordinator.stop()
      await Promise.allSettled([...finishing])
      await Promise.all([coordNode, ...workers].map(async (n) => { await n.stop().catch(() => {}) }))
      store.close()
      await rm(dir, { recursive: true, force: true })
    }
  }
}

const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p / 100 * s.length) - 1))]!
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false }, workers: { type: 'string' }, slots: { type: 'string' },
      jobs: { type: 'string' }, chunks: { type: 'string' }, verbose: { type: 'boolean', default: false },
      /** Writes a CPU profile of the dispatch part only (submit → last done) to this file. */
      profile: { type: 'string' }, 'heartbeat-ms': { type: 'string' },
      /** A copy of agent/coordinator.ts to run instead (imports made absolute), e.g. the code before a change. */
      coordinator: { type: 'string' }
    }
  })
  const quick = values.quick === true
  const WORKERS = Math.max(1, Math.min(64, Number(values.workers ?? 24)))
  const SLOTS = Math.max(1, Math.min(16, Number(values.slots ?? 2)))
  const JOBS = Math.max(1, Math.min(100, Number(values.jobs ?? (quick ? 4 : 8))))
  const CHUNKS = Math.max(WORKERS, Math.min(20_000, Number(values.chunks ?? (quick ? 500 : 1000))))
  const started = Date.now()
  const HEARTBEAT_MS = Math.max(250, Math.min(10_000, Number(values['heartbeat-ms'] ?? 5000)))
  const CoordinatorClass = values.coordinator !== undefined ? (await import(path.resolve(values.coordinator)) as { Coordinator: typeof Coordinator }).Coordinator : undefined
  const farm = await startDispatchFarm({ workers: WORKERS, slots: SLOTS, heartbeatMs: HEARTBEAT_MS, ...(CoordinatorClass !== undefined ? { CoordinatorClass } : {}), log: values.verbose === true ? (l) => { console.error(l) } : undefined })
  console.log(`coordinator: ${values.coordinator ?? 'agent/coordinator.ts'}`)
  console.log(`farm of ${WORKERS} workers × ${SLOTS} slot(s) up in ${((Date.now() - started) / 1000).toFixed(1)} s; submitting ${JOBS} job(s) of ${CHUNKS} chunks`)
  try {
    const session = values.profile !== undefined ? new inspector.Session() : undefined
    if (session !== undefined) {
      session.connect()
      await session.post('Profiler.enable')
      await session.post('Profiler.start')
    }
    const pushed0 = structuredClone(farm.pushes)
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    await Promise.all(Array.from({ length: JOBS }, async (_, i) => await farm.submit(`job ${i}`, CHUNKS)))
    const tSubmitted = performance.now()
    const all = await farm.waitAllDone((quick ? 30 : 240) * 1000)
    const tDone = performance.now()
    const cpu = process.cpuUsage(cpu0)
    const cpuMs = (cpu.user + cpu.system) / 1000
    if (session !== undefined) {
      const { profile } = await session.post('Profiler.stop')
      await writeFile(values.profile!, JSON.stringify(profile))
      session.disconnect()
    }
    // A run cut short still gives its figures, over the leases it got to.
    const leases = [...farm.leases]
    if (leases.length < 10) throw new Error(`only ${leases.length} lease(s) in ${((tDone - t0) / 1000).toFixed(0)} s: nothing to measure`)
    const n = leases.length
    const t10 = leases[Math.floor(n * 0.1)]!.receivedPerf
    const t90 = leases[Math.floor(n * 0.9)]!.receivedPerf
    const steady = (Math.floor(n * 0.9) - Math.floor(n * 0.1)) / ((t90 - t10) / 1000)
    const overall = farm.completed.size / ((tDone - t0) / 1000)
    const decided = leases.map((l) => l.receivedMs - l.decidedMs)
    const slotWait = leases.filter((l) => l.slotFreedPerf !== undefined).map((l) => l.receivedPerf - l.slotFreedPerf!)
    const twice = [...farm.completed.values()].filter((k) => k > 1).length
    // CPU this process spent per chunk (coordinator and all 24 workers together, pushes included):
    // what a dispatch costs whatever else the machine runs, unlike the rates above.
    const cpuPerChunk = cpuMs / Math.max(1, farm.completed.size)
    const rows = [
      { figure: 'dispatches/s (steady, 10th–90th pct of leases)', value: steady.toFixed(0), target: '≥ 1000', pass: steady >= 1000 },
      { figure: 'chunks done/s (whole run, submit → last done)', value: overall.toFixed(0), target: '', pass: null },
      { figure: 'lease latency decided → received p50 (ms)', value: pct(decided, 50).toFixed(0), target: '', pass: null },
      { figure: 'lease latency decided → received p99 (ms)', value: pct(decided, 99).toFixed(0), target: '< 20', pass: pct(decided, 99) < 20 },
      { figure: 'slot free → next lease p50 (ms)', value: pct(slotWait, 50).toFixed(1), target: '', pass: null },
      { figure: 'slot free → next lease p99 (ms)', value: pct(slotWait, 99).toFixed(1), target: '', pass: null },
      { figure: 'CPU per chunk, whole process (ms)', value: cpuPerChunk.toFixed(2), target: '', pass: null },
      { figure: 'chunks per CPU-second (1000 / CPU per chunk)', value: (1000 / cpuPerChunk).toFixed(0), target: '', pass: null }
    ]
    const method = `${WORKERS} in-process FarmNode workers × ${SLOTS} slots + the real Coordinator/FarmNode/Store, one process, 127.0.0.1 TCP+pnet+Noise+yamux; ${JOBS} jobs × ${CHUNKS} one-frame chunks (${n} leases); workers accept and report done at once (no ffmpeg); latency = coordinator's decision stamp (whole ms) → worker handler, same clock`
    console.log('')
    console.log('| figure | value | target |')
    console.log('|---|---|---|')
    for (const r of rows) console.log(`| ${r.figure} | ${r.value} | ${r.target} |`)
    console.log('')
    if (!all) console.log(`NOT COMPLETE: ${farm.completed.size} of ${JOBS * CHUNKS} chunks done when the time ran out; figures are over those`)
    console.log(`submits answered in ${(tSubmitted - t0).toFixed(0)} ms; ran ${((tDone - t0) / 1000).toFixed(2)} s; leases refused by a busy worker: ${farm.refused}; chunks reported done twice: ${twice}`)
    const jobMB = (farm.pushes.job.bytes - pushed0.job.bytes) / 1e6
    const progressMB = (farm.pushes.progress.bytes - pushed0.progress.bytes) / 1e6
    console.log(`status pushes to members: job records ${farm.pushes.job.count - pushed0.job.count} (${jobMB.toFixed(1)} MB), progress ${farm.pushes.progress.count - pushed0.progress.count} (${progressMB.toFixed(1)} MB): ${((jobMB + progressMB) * 1000 / Math.max(1, farm.completed.size)).toFixed(1)} KB per chunk done; leases and results ${(farm.leaseBytes / Math.max(1, farm.leases.length) / 1000).toFixed(2)} KB per chunk`)
    console.log(`refusals by the nodes (peer limits and others): ${JSON.stringify(farm.refusals())}`)
    console.log(`process CPU ${(cpuMs / 1000).toFixed(1)} s over ${((tDone - t0) / 1000).toFixed(1)} s wall (${(cpuMs / (tDone - t0) * 100).toFixed(0)}% of one core); load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} on ${os.cpus().length} cores`)
    console.log(`method: ${method}`)
    console.log(`BENCH ${JSON.stringify({ script: 'bench/dispatch.ts', rows: rows.map((r) => ({ ...r, method })) })}`)
  } finally {
    await farm.stop()
  }
}

// Run as a script (bin/run-ts.js), not when the cluster test imports the farm.
if (process.env.VITEST === undefined) {
  main().then(() => process.exit(0), (err: unknown) => { console.error(err); process.exit(1) })
}
