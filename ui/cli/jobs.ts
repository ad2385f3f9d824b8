/**
 * The farm's job commands: submit, estimate, jobs, cancel, pause, resume, stop. Each talks to
 * the local agent through the SDK (ui/sdk/farm.ts), found by --state-dir.
 *
 *   renderswarm submit edit.json -o out.mkv --preset ffv1 --priority high --deadline 30m --max-cost 2
 *   renderswarm estimate edit.json --preset h264
 *   renderswarm jobs --json;  renderswarm cancel JOB;  renderswarm pause NODE|--all;  renderswarm stop --emergency
 *
 * Exit codes: 0 done, 2 refused input (nothing submitted), 1 anything else (the job failed,
 * was cancelled, or the agent is not running).
 */
import path from 'node:path'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { ApiError } from '../sdk/client.ts'
import { RenderFarm, type JobSummary, type Progress } from '../sdk/farm.ts'
import { clock, farmBar, farmBarDone, ProgressBar } from './progress.ts'

export class JobUsageError extends Error {
  override readonly name = 'UsageError'
}

function parse (args: string[], options: NonNullable<ParseArgsConfig['options']>): ReturnType<typeof parseArgs> {
  try {
    return parseArgs({ args, options: { ...options, 'state-dir': { type: 'string' }, json: { type: 'boolean', default: false } }, allowPositionals: true, strict: true })
  } catch (err) {
    throw new JobUsageError((err as Error).message)
  }
}

async function connect (values: Record<string, unknown>): Promise<RenderFarm> {
  const { defaultStateDir } = await import('../../agent/daemon.ts')
  return await RenderFarm.connect(path.resolve(typeof values['state-dir'] === 'string' ? values['state-dir'] : defaultStateDir()))
}

/** An agent's 4xx answer is the user's input at fault: exit 2 with its message. */
async function asUsage<T> (p: Promise<T>): Promise<T> {
  try {
    return await p
  } catch (err) {
    if (err instanceof ApiError && err.status >= 400 && err.status < 500) throw new JobUsageError(err.code === 'cost-exceeded' ? `CostExceeded: ${err.message}` : err.message)
    throw err
  }
}

const JOB_OPTIONS = {
  output: { type: 'string', short: 'o' }, preset: { type: 'string' }, priority: { type: 'string' }, deadline: { type: 'string' },
  'max-cost': { type: 'string' }, name: { type: 'string' }
} as const

function jobRequest (values: Record<string, unknown>, positionals: string[], needOutput: boolean): Record<string, unknown> {
  if (positionals.length !== 1) throw new JobUsageError(`usage: renderswarm ${needOutput ? 'submit TIMELINE -o OUT' : 'estimate TIMELINE'} [--preset P] [--priority low|normal|high|urgent] [--deadline 30m|ISO] [--max-cost USD]`)
  if (needOutput && typeof values.output !== 'string') throw new JobUsageError('-o OUT is required: where should the rendered file go?')
  let maxCost: number | undefined
  if (typeof values['max-cost'] === 'string') {
    maxCost = Number(values['max-cost'])
    if (!/^\d+(\.\d+)?$/.test(values['max-cost']) || !Number.isFinite(maxCost)) throw new JobUsageError(`--max-cost must be a number of US dollars (got "${values['max-cost']}")`)
  }
  return {
    timeline: path.resolve(positionals[0]!),
    ...(typeof values.output === 'string' ? { output: path.resolve(values.output) } : {}),
    ...(typeof values.preset === 'string' ? { preset: values.preset } : {}),
    ...(typeof values.priority === 'string' ? { priority: values.priority } : {}),
    ...(typeof values.deadline === 'string' ? { deadline: values.deadline } : {}),
    ...(maxCost !== undefined ? { maxCost } : {}),
    ...(typeof values.name === 'string' ? { name: values.name } : {})
  }
}

const usd = (n: number): string => `$${n < 0.01 ? n.toFixed(4) : n.toFixed(2)}`

export async function submitCmd (args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...JOB_OPTIONS, detach: { type: 'boolean', default: false } })
  const req = jobRequest(values, positionals, true)
  const farm = await connect(values)
  const job = await asUsage(farm.submit(req as never))
  const json = values.json === true
  if (!json) process.stderr.write(`job ${job.jobId}: ${job.chunks.length} chunks, ${job.frames} frames${job.estimate !== undefined ? `, about ${clock(job.estimate.seconds.expected)} on ${job.estimate.nodes} node(s), ${usd(job.estimate.cost.expected)}` : ''}\n`)
  if (values.detach === true) {
    process.stdout.write(json ? JSON.stringify(final(job)) + '\n' : `${job.jobId}\n`)
    return 0
  }
  const bar = json ? undefined : new ProgressBar(process.stderr)
  const started = Date.now()
  const onProgress = (p: Progress): void => { bar?.update(farmBar(p, started)) }
  // Ctrl-C stops watching, not the job (use `renderswarm cancel`).
  const stopWatching = new AbortController()
  const onSigint = (): void => { stopWatching.abort() }
  process.once('SIGINT', onSigint)
  let result: JobSummary
  try {
    result = await farm.wait(job.jobId, { onProgress, signal: stopWatching.signal })
  } catch (err) {
    if (stopWatching.signal.aborted) { process.stderr.write(`\nstopped watching; job ${job.jobId} goes on (renderswarm jobs, renderswarm cancel ${job.jobId})\n`); return 1 }
    throw err
  } finally {
    process.off('SIGINT', onSigint)
  }
  if (bar !== undefined && result.status === 'done') {
    bar.update(farmBarDone(result))
    bar.done()
  }
  if (json) process.stdout.write(JSON.stringify(final(result)) + '\n')
  else if (result.status === 'done') process.stdout.write(`wrote ${result.output ?? '?'} (${result.frames} frames, ${result.chunks.length} chunks on ${new Set(result.chunks.map((c) => c.node)).size} node(s), cost ${usd(result.actualCost)})\n`)
  else process.stderr.write(`job ${result.jobId} ${result.status}${result.error !== undefined ? `: ${result.error}` : ''}\n`)
  return result.status === 'done' ? 0 : 1
}

function final (j: JobSummary): Record<string, unknown> {
  return { jobId: j.jobId, status: j.status, output: j.output, frames: j.frames, chunks: j.chunks.map((c) => ({ id: c.id, frameRange: c.frameRange, node: c.node, attempts: c.attempts })), ...(j.error !== undefined ? { error: j.error } : {}), estimate: j.estimate, actualCost: j.actualCost }
}

export async function estimateCmd (args: string[]): Promise<number> {
  const { values, positionals } = parse(args, JOB_OPTIONS)
  const farm = await connect(values)
  const est = await asUsage(farm.estimate(jobRequest(values, positionals, false) as never))
  if (values.json === true) { process.stdout.write(JSON.stringify(est) + '\n'); return 0 }
  process.stdout.write(`time        ${clock(est.seconds.expected)} (${clock(est.seconds.low)}–${clock(est.seconds.high)})\ncost        ${usd(est.cost.expected)} (${usd(est.cost.low)}–${usd(est.cost.high)})\nnodes       ${est.nodes}\nchunks      ${est.chunks}\nspeed       ${est.framesPerSecond.toFixed(1)} fps\ncompletion  ${est.completionAt}\n`)
  return 0
}

export async function jobsCmd (args: string[]): Promise<number> {
  const { values } = parse(args, {})
  const jobs = await (await connect(values)).jobs()
  if (values.json === true) { process.stdout.write(JSON.stringify({ jobs }) + '\n'); return 0 }
  if (jobs.length === 0) { process.stdout.write('no jobs\n'); return 0 }
  for (const j of jobs) {
    const pct = j.frames > 0 ? Math.round(j.framesDone / j.frames * 100) : 0
    process.stdout.write(`${j.jobId}  ${j.status.padEnd(9)} ${String(pct).padStart(3)}%  ${j.priority.padEnd(6)} ${j.preset.padEnd(6)} ${j.name}\n`)
  }
  return 0
}

export async function cancelCmd (args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {})
  if (positionals.length !== 1) throw new JobUsageError('usage: renderswarm cancel JOB')
  const farm = await connect(values)
  await asUsage(farm.cancel(positionals[0]!))
  process.stdout.write(`cancelled ${positionals[0]!}\n`)
  return 0
}

export async function pauseCmd (args: string[], paused: boolean): Promise<number> {
  const { values, positionals } = parse(args, { all: { type: 'boolean', default: false } })
  const verb = paused ? 'pause' : 'resume'
  if ((values.all === true) === (positionals.length === 1) || positionals.length > 1) throw new JobUsageError(`usage: renderswarm ${verb} NODE | --all`)
  const farm = await connect(values)
  if (values.all === true) await asUsage(paused ? farm.pauseAll() : farm.resumeAll())
  else await asUsage(paused ? farm.pause(positionals[0]!) : farm.resume(positionals[0]!))
  process.stdout.write(`${paused ? 'paused' : 'resumed'} ${values.all === true ? 'every node' : positionals[0]!}${paused ? ' (running chunks finish; no new ones start)' : ''}\n`)
  return 0
}

export async function stopCmd (args: string[]): Promise<number> {
  const { values } = parse(args, { emergency: { type: 'boolean', default: false } })
  if (values.emergency !== true) throw new JobUsageError('usage: renderswarm stop --emergency   (stops every render on every node now and pauses all nodes)')
  await asUsage((await connect(values)).emergencyStop())
  process.stdout.write('emergency stop: every render stopped, every node paused (renderswarm resume --all to go on)\n')
  return 0
}
