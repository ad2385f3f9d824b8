/**
 * Time and cost estimates for a job, and how many chunks to cut it into (pure).
 *
 *   const est = estimate({ frames: 9000, width: 1920, height: 1080, preset: 'h264', nodes, nowMs: now })
 *   checkMaxCost(est, job.maxCost)              // throws CostExceededError before anything runs
 *   planChunks(9000, est.chunks, { align: gop }) // est.chunks comes from chunkCount
 *
 * Speed. A node's benchmark is fps on a 1280x720 reference; a job at another size runs at
 * fps × (1280·720)/(width·height). A node renders one chunk at a time per slot, but its slots
 * share its cores, so its throughput is its fps whatever its slot count. Frames are pulled in
 * chunks, so each node ends up with frames in proportion to its speed and all finish together.
 *
 * Time. expected = fixed + frames / Σ fps  +  chunkOverhead × chunks / nodes  +  join,
 * where nodes are the fastest min(usable, chunks) nodes and each fps is after its host share
 * (below). low = 0.85 × expected and high = 1.3 × expected: the
 * benchmark is a short synthetic run, so real footage can go somewhat faster or slower (noise
 * both ways), and workstations are shared, so an owner's own work can slow a render far more
 * than anything can speed it up (hence the wider band above).
 *
 * Cost = Σ over the nodes used of costPerHour × render seconds / 3600, for each of
 * low/expected/high, rounded to 1e-6 USD. Render seconds are what a node spends on its chunks
 * (frames / Σ fps + the chunks' fixed cost, as above: all finish together), which is what a job's
 * actualCost meters: Σ over its chunks of lease → done (the worker fetching media it lacks,
 * rendering, handing the segment over, the owner's check) × the rate of the node that rendered
 * it. Not billed, on either side: the owner's preparation and probe, the wait from submit to the
 * first lease, the owner's audio, join, mux and validation, and any node's idle time. A chunk
 * slowed by another agent on its host is billed for the slow-down, and the estimate's shared
 * speeds predict it.
 *
 * Calibration (decision 29). The benchmark is a synthetic scene; a real timeline renders faster
 * or slower than it (a colour+text timeline ~5× faster, a many-input one slower). The owner
 * renders a short probe of the job's own timeline before submitting (agent/probe.ts) and sends
 * what it measured (JobSpec.probe): the frames/second of the probe with ffmpeg's start-up taken
 * out, that start-up, and how long its own preparation took. `speedFactor` = probe fps / the
 * owner's benchmark job fps (probeSpeedFactor) scales every node's job fps; the start-up becomes
 * part of the chunk overhead; `fixedSeconds` (preparation, submit, first lease) is added once.
 * Without a probe (an older owner) the factor is 1 and the defaults apply.
 *
 * Co-located agents (hosts). Agents on one machine share its cores: each reports its host (a
 * hash of the machine, boot and CPU set, and the cores it may use; agent/hardware.ts). A render
 * keeps `renderCores` cores busy (the probe measured ffmpeg's CPU seconds over wall seconds;
 * without it, a render is taken to fill its host). When k of the nodes put to work share a host
 * of C cores, each gets share = min(1, capacity / k) of its benchmark speed, capacity being the
 * renders' worth of work the host gets done: min(k, C / min(renderCores, C)) from the cores,
 * scaled, when the probe measured m renders side by side (`together`: worth w), by w over what the
 * cores said for m (hostShares): on a 2-core host, 1.3 cores a render said ×1.5 for three agents,
 * and they measured ×0.75–1; a chunk's fixed cost is not shared (the start-ups overlap the others' rendering). One agent per machine (a studio
 * farm) gives share 1: nothing changes. Nodes on one host are one machine, so they render at one
 * speed alone: the owner's (the probe's) when it is on that host, else the median of their
 * benchmarks (hostSpeeds), which differ only by what else ran while each was taken.
 *
 * Chunks. chunkCount = clamp(ceil(frames / (median fps × targetChunkSeconds)), nodes, frames/align),
 * each fps after its host share with every usable node at work (they all render at once):
 * a chunk takes about the target time (30 s) on a typical node, which keeps the ~0.3 s fixed
 * cost of a chunk (spawn, seek, upload) near 1 %, and the median ignores one very fast or very
 * slow machine; every usable node gets at least one chunk (or, with `chunkFloor`, that many: a job
 * queued behind others gets only its share of the nodes, nodes × its work / all open work, since
 * the coordinator cuts chunks smaller when it leases them as the farm drains, decision 41); there are never more chunks than
 * whole GOPs (align = keyframe interval of an inter-frame codec, 1 otherwise), nor more than
 * MAX_CHUNKS, nor fewer than one. The upper bounds win over "one chunk per node".
 */

export const REFERENCE_PIXELS = 1280 * 720
export const LOW_FACTOR = 0.85
export const HIGH_FACTOR = 1.3
/** A job record holds at most this many chunks (protocol/messages/jobs.ts). */
export const MAX_CHUNKS = 100_000

export interface EstimateNode {
  peerId: string
  /** benchmark fps at the 1280x720 reference, per preset */
  fps: Record<string, number>
  slots: number
  /** USD; local machines have a small power cost */
  costPerHour: number
  accepting: boolean
  /** The machine this node runs on and the cores it may use there (nodes with one id share those cores). Absent: a machine of its own. */
  host?: { id: string; cores: number } | undefined
}

export interface EstimateInput {
  frames: number
  width: number
  height: number
  preset: string
  nodes: readonly EstimateNode[]
  nowMs: number
  /** Fixed cost of one chunk in seconds. Default 0.3. */
  chunkOverheadSeconds?: number
  /** Joining the segments at the end. Default 1 s. */
  joinSeconds?: number
  /** Default 30 s. */
  targetChunkSeconds?: number
  /** At least this many chunks (a job's share of the farm's nodes); default, and at most, one per usable node. */
  chunkFloor?: number | undefined
  /** Keyframe interval in frames for inter-frame codecs (chunk boundaries fall on keyframes). */
  align?: number | undefined
  /** Multiplies every node's job fps: this timeline's speed relative to the benchmark (probeSpeedFactor). Default 1. */
  speedFactor?: number | undefined
  /** Time before the first chunk starts (the owner's preparation, submit, first lease), in seconds. Default 0. */
  fixedSeconds?: number | undefined
  /** Cores one render of this job keeps busy (the probe's CPU seconds / wall seconds). Default: all of its host's. */
  renderCores?: number | undefined
  /** What renders side by side got done on the owner's machine (the probe's `together`). Default: as renderCores says. */
  together?: { renders: number; worth: number } | undefined
  /** The owner's peer id: nodes on its host render at its speed (hostSpeeds). */
  owner?: string | undefined
}

export interface Range { low: number; expected: number; high: number }
export interface Estimate {
  seconds: Range
  cost: Range & { currency: 'USD' }
  /** Nodes the estimate puts to work. */
  nodes: number
  /** ISO time, from expected. */
  completionAt: string
  chunks: number
  /** The farm's throughput for this job (sum of the used nodes' job fps). */
  framesPerSecond: number
}

export class EstimateError extends Error {
  override readonly name = 'EstimateError'
}

function usd (x: number, decimals: number): string {
  return `$${x.toFixed(decimals)}`
}

export class CostExceededError extends Error {
  override readonly name = 'CostExceededError'
  readonly code = 'cost-exceeded'
  constructor (readonly estimate: Estimate, readonly maxCost: number) {
    // Enough decimals that the two figures differ on screen (0.0113 vs 0.01, not 0.01 vs 0.01).
    let d = 2
    while (d < 6 && usd(estimate.cost.expected, d) === usd(maxCost, d)) d++
    super(`the estimated cost ${usd(estimate.cost.expected, d)} USD exceeds the job's maximum of ${usd(maxCost, d)} USD; raise maxCost or use fewer or cheaper nodes`)
  }
}

/** Throws CostExceededError when the expected cost is over maxCost (no limit when undefined). */
export function checkMaxCost (est: Estimate, maxCost: number | undefined): void {
  if (maxCost === undefined) return
  if (!Number.isFinite(maxCost) || maxCost < 0) throw new EstimateError(`maxCost must be a number ≥ 0 (got ${maxCost})`)
  if (est.cost.expected > maxCost) throw new CostExceededError(est, maxCost)
}

/** A node's fps for a job of this frame size, from its fps on the 1280x720 reference (0 if it has none). */
export function jobFps (benchFps: number, width: number, height: number): number {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new EstimateError(`frame size must be whole pixels ≥ 1 (got ${width}x${height})`)
  if (!Number.isFinite(benchFps) || benchFps <= 0) return 0
  return benchFps * REFERENCE_PIXELS / (width * height)
}

function median (xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** How many chunks to cut a job into (formula in the module comment). */
export function chunkCount (input: { frames: number; fpsPerNode: readonly number[]; targetChunkSeconds?: number | undefined; align?: number | undefined; floor?: number | undefined }): number {
  const { frames } = input
  const target = input.targetChunkSeconds ?? 30
  const align = input.align ?? 1
  if (!Number.isInteger(frames) || frames < 1) throw new EstimateError(`frames must be a whole number ≥ 1 (got ${frames})`)
  if (!Number.isFinite(target) || target <= 0) throw new EstimateError(`targetChunkSeconds must be a number > 0 (got ${target})`)
  if (!Number.isInteger(align) || align < 1) throw new EstimateError(`alignment must be a whole number ≥ 1 (got ${align})`)
  if (input.floor !== undefined && !(Number.isInteger(input.floor) && input.floor >= 1)) throw new EstimateError(`the chunk floor must be a whole number ≥ 1 (got ${input.floor})`)
  const fps = input.fpsPerNode.filter((f) => Number.isFinite(f) && f > 0)
  if (fps.length === 0) throw new EstimateError('sizing chunks: no node has a speed for this job')
  const byTarget = Math.ceil(frames / (median(fps) * target))
  const most = Math.max(1, Math.min(MAX_CHUNKS, Math.floor(frames / align)))
  return Math.min(most, Math.max(byTarget, Math.min(fps.length, input.floor ?? fps.length)))
}

/** The probe's speed factor is kept within these bounds (a probe of a few frames can mislead; a factor past them is noise). */
export const MIN_SPEED_FACTOR = 0.05
export const MAX_SPEED_FACTOR = 20

/**
 * How much faster (>1) or slower (<1) this timeline renders than the benchmark says: the probe's
 * fps (frames / seconds, start-up excluded) over the owner's benchmark fps scaled to the job's
 * frame size, clamped to [MIN_SPEED_FACTOR, MAX_SPEED_FACTOR]. 1 when either figure is missing.
 */
export function probeSpeedFactor (probe: { frames: number; seconds: number } | undefined, ownerBenchFps: number | undefined, width: number, height: number): number {
  if (probe === undefined || ownerBenchFps === undefined) return 1
  const bench = jobFps(ownerBenchFps, width, height)
  if (bench <= 0 || !Number.isFinite(probe.frames) || !Number.isFinite(probe.seconds) || probe.frames <= 0 || probe.seconds <= 0) return 1
  return Math.min(MAX_SPEED_FACTOR, Math.max(MIN_SPEED_FACTOR, probe.frames / probe.seconds / bench))
}

/**
 * Each node's share of its own speed when `nodes` all render at once: nodes with the same host id
 * split that host's capacity, from the cores a render wants (min(renderCores, cores)) and, when
 * measured, what renders side by side did (`together`; the module comment).
 * 1 for a node alone on its host or without a host; renderCores undefined = a render fills its host.
 */
export function hostShares (nodes: ReadonlyArray<{ host?: { id: string; cores: number } | undefined }>, renderCores?: number, together?: { renders: number; worth: number }): number[] {
  if (renderCores !== undefined && !(Number.isFinite(renderCores) && renderCores > 0)) throw new EstimateError(`renderCores must be a number > 0 (got ${renderCores})`)
  if (together !== undefined && !(Number.isInteger(together.renders) && together.renders >= 2 && Number.isFinite(together.worth) && together.worth > 0 && together.worth <= together.renders)) {
    throw new EstimateError(`together must be 2 or more renders that got more than 0 and at most as many renders' worth done (got ${JSON.stringify(together)})`)
  }
  const count = new Map<string, number>()
  for (const n of nodes) if (n.host !== undefined) count.set(n.host.id, (count.get(n.host.id) ?? 0) + 1)
  return nodes.map((n) => {
    if (n.host === undefined) return 1
    const k = count.get(n.host.id)!
    if (k === 1) return 1
    const cores = Math.max(1, n.host.cores)
    const want = Math.min(renderCores ?? cores, cores)
    // Renders' worth of work the host gets done with k at it: by the cores, k up to cores / want;
    // scaled by how the measured renders side by side did against what the cores said for them.
    const byCores = (m: number): number => Math.min(m, Math.max(1, cores / want))
    const capacity = together === undefined ? byCores(k) : byCores(k) * together.worth / byCores(together.renders)
    return Math.min(1, capacity / k)
  })
}

/**
 * Nodes on one host are one machine's speed: each takes the owner's fps when the owner is on that
 * host (the probe measured this timeline there; the owner's fps × the speed factor is the probe's
 * own figure), else the median of theirs. Their benchmarks differ only by what else ran when each
 * was taken.
 */
export function hostSpeeds<T extends { node: { peerId: string; host?: { id: string } | undefined }; fps: number }> (usable: readonly T[], owner?: string): T[] {
  const byHost = new Map<string, number[]>()
  for (const u of usable) if (u.node.host !== undefined) byHost.set(u.node.host.id, [...(byHost.get(u.node.host.id) ?? []), u.fps])
  const own = usable.find((u) => u.node.peerId === owner && u.node.host !== undefined)
  return usable.map((u) => {
    if (u.node.host === undefined || byHost.get(u.node.host.id)!.length < 2) return u
    return { ...u, fps: own !== undefined && own.node.host!.id === u.node.host.id ? own.fps : median(byHost.get(u.node.host.id)!) }
  })
}

const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits

export interface FinishInput {
  frames: number
  /** Job fps (jobFps) of each node at work from `startSeconds` on; zeros are ignored. */
  fps: readonly number[]
  /** Chunks still to render. */
  chunks: number
  /** Default 0.3. */
  chunkOverheadSeconds?: number
  /** Default 1. */
  joinSeconds?: number
  /** When this job's turn starts, seconds from now (the jobs ahead of it in the queue). Default 0. */
  startSeconds?: number
  /** Nodes that start work later (cloud machines still booting): job fps and when, seconds from now. */
  joining?: ReadonlyArray<{ fps: number; atSeconds: number }>
}
export interface Finish {
  /** Last chunk rendered, seconds from now (Infinity when no node can render it). */
  renderedSeconds: number
  /** Output joined: renderedSeconds + join. */
  finishSeconds: number
}

/**
 * When a job's frames are rendered and joined, on nodes working from `startSeconds` and others
 * joining later: frames flow at Σ fps, rising as each joining node arrives, plus each chunk's
 * fixed cost spread over the nodes, plus the join. With no joining nodes and start 0 this is the
 * estimate's `frames / Σ fps + overhead × chunks / nodes + join`. The autoscaler runs it per job in
 * queue order to see which deadlines local capacity misses and how many cloud nodes fix that.
 */
export function predictFinish (input: FinishInput): Finish {
  const { frames, chunks } = input
  const overhead = input.chunkOverheadSeconds ?? 0.3
  const join = input.joinSeconds ?? 1
  const start = input.startSeconds ?? 0
  if (!Number.isFinite(frames) || frames < 0) throw new EstimateError(`frames must be a number ≥ 0 (got ${frames})`)
  if (!Number.isFinite(chunks) || chunks < 0) throw new EstimateError(`chunks must be a number ≥ 0 (got ${chunks})`)
  if (!Number.isFinite(start) || start < 0) throw new EstimateError(`startSeconds must be a number ≥ 0 (got ${start})`)
  const now = input.fps.filter((f) => Number.isFinite(f) && f > 0)
  const later = (input.joining ?? []).filter((j) => Number.isFinite(j.fps) && j.fps > 0 && Number.isFinite(j.atSeconds)).sort((a, b) => a.atSeconds - b.atSeconds)
  let rate = now.reduce((s, f) => s + f, 0)
  let nodes = now.length
  let t = start
  let left = frames
  for (const j of later) {
    if (left <= 0) break
    if (j.atSeconds > t) {
      if (rate > 0 && left / rate <= j.atSeconds - t) break
      left -= rate * (j.atSeconds - t)
      t = j.atSeconds
    }
    rate += j.fps
    nodes++
  }
  if (left > 0 && rate <= 0) return { renderedSeconds: Infinity, finishSeconds: Infinity }
  const rendered = (left > 0 ? t + left / rate : t) + (nodes > 0 ? overhead * chunks / nodes : 0)
  return { renderedSeconds: rendered, finishSeconds: rendered + join }
}

export function estimate (input: EstimateInput): Estimate {
  const { frames, width, height, preset, nowMs } = input
  const overhead = input.chunkOverheadSeconds ?? 0.3
  const join = input.joinSeconds ?? 1
  const factor = input.speedFactor ?? 1
  const fixed = input.fixedSeconds ?? 0
  if (!Number.isFinite(factor) || factor <= 0) throw new EstimateError(`speedFactor must be a number > 0 (got ${factor})`)
  if (!Number.isFinite(fixed) || fixed < 0) throw new EstimateError(`fixedSeconds must be a number ≥ 0 (got ${fixed})`)
  if (!Number.isFinite(nowMs)) throw new EstimateError(`nowMs must be a number (got ${nowMs})`)
  if (!Number.isFinite(overhead) || overhead < 0) throw new EstimateError(`chunkOverheadSeconds must be a number ≥ 0 (got ${overhead})`)
  if (!Number.isFinite(join) || join < 0) throw new EstimateError(`joinSeconds must be a number ≥ 0 (got ${join})`)
  const usable = hostSpeeds(input.nodes
    .map((node) => ({ node, fps: jobFps(node.fps[preset] ?? 0, width, height) * factor }))
    .filter((u) => u.node.accepting && u.node.slots >= 1 && u.fps > 0), input.owner)
    .sort((a, b) => b.fps - a.fps || (a.node.peerId < b.node.peerId ? -1 : 1))
  if (usable.length === 0) throw new EstimateError(`no accepting node can render preset "${preset}" (none has a benchmark for it); wait for nodes to benchmark it or choose another preset`)
  for (const { node } of usable) {
    if (!Number.isFinite(node.costPerHour) || node.costPerHour < 0) throw new EstimateError(`node ${node.peerId}: costPerHour must be a number ≥ 0 (got ${node.costPerHour})`)
  }
  // Chunks are sized on the speeds the nodes will have while all of them render at once: a chunk
  // of "2 s" on each of three agents sharing one machine's cores takes about 2 s, not 6.
  const allShares = hostShares(usable.map((u) => u.node), input.renderCores, input.together)
  const chunks = chunkCount({ frames, fpsPerNode: usable.map((u, i) => u.fps * allShares[i]!), targetChunkSeconds: input.targetChunkSeconds, align: input.align, floor: input.chunkFloor })
  const used = usable.slice(0, Math.min(usable.length, chunks))
  // Nodes on one host split its cores (hostShares).
  const shares = hostShares(used.map((u) => u.node), input.renderCores, input.together)
  const usedFps = used.map((u, i) => u.fps * shares[i]!)
  const fps = usedFps.reduce((s, f) => s + f, 0)
  // A chunk's fixed cost is not slowed by the share: measured with bench/estimate on a quiet
  // machine, three co-located agents took 7.00 s for the sample where one took 6.96 s (their
  // start-ups overlap the others' rendering).
  const finish = predictFinish({ frames, fps: usedFps, chunks, chunkOverheadSeconds: overhead, joinSeconds: join })
  const expected = fixed + finish.finishSeconds
  const seconds = { low: round(expected * LOW_FACTOR, 3), expected: round(expected, 3), high: round(expected * HIGH_FACTOR, 3) }
  const perHour = used.reduce((s, u) => s + u.node.costPerHour, 0)
  const costOf = (f: number): number => round(perHour * finish.renderedSeconds * f / 3600, 6)
  return {
    seconds,
    cost: { low: costOf(LOW_FACTOR), expected: costOf(1), high: costOf(HIGH_FACTOR), currency: 'USD' },
    nodes: used.length,
    completionAt: new Date(nowMs + Math.round(seconds.expected * 1000)).toISOString(),
    chunks,
    framesPerSecond: round(fps, 3)
  }
}
