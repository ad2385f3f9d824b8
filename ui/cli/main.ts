/**
 * The `renderswarm` command line.
 *
 *   renderswarm sample DIR
 *   renderswarm render TIMELINE -o OUT [--preset P] [--chunks N] [--parallel J] [--json]
 *   renderswarm probe [--json]
 *   renderswarm demo               (what `npm start` runs)
 *
 * Exit codes: 0 done, 2 bad input (nothing written), 1 anything else.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import os from 'node:os'
import path from 'node:path'
import { locateFfmpeg, probeFfmpeg, FfmpegNotFoundError } from '../../agent/ffmpeg.ts'
import { renderTimeline } from '../../agent/render/local-render.ts'
import { UnknownPresetError, PRESET_NAMES } from '../../agent/render/presets.ts'
import { writeSample } from '../../agent/sample.ts'
import { PlanError } from '../../coordinator/planner.ts'
import { TimelineError } from '../../protocol/timeline.ts'
import { ProgressBar } from './progress.ts'

class UsageError extends Error {
  override readonly name = 'UsageError'
}

const USAGE = `usage: renderswarm <command>

  sample DIR                       write a sample timeline and its media into DIR
  render TIMELINE -o OUT           render TIMELINE on this machine
      [--preset ${PRESET_NAMES.join('|')}] [--chunks N] [--parallel J] [--no-gpu] [--json]
  probe [--json]                   show the ffmpeg in use and what it can do
  bench [--json] [--state-dir DIR] re-run the self-benchmark (fps per preset) and cache it
  demo [DIR] [--local]             a farm of three agents on this machine renders the sample (DIR default
                                   ./renderswarm-demo) and keeps running until Ctrl-C; --local: one-machine render
  agent [--state-dir DIR] [--listen MULTIADDR]… [--api-port N] [--name NAME]
        [--no-mdns] [--mdns-interface ADDR] [--bootstrap MULTIADDR]…
        [--when always|idle|schedule] [--schedule "mon-fri 19:00-07:00, sat-sun"] [--max-cpu PCT]
        [--slots N] [--cost-per-hour USD] [--chunk-seconds S] [--min-piece-seconds S] [--speculate-after S] [--location lan|cloud]
                                   run this machine's agent (farm member) until SIGINT/SIGTERM
  farm invite [--ttl 1h] [--state-dir DIR]
                                   print a single-use join token (a secret: it carries the farm's PSK)
  farm join TOKEN [--state-dir DIR] make this machine join that farm (restart its agent afterwards)
  farm revoke PEER [--reason TEXT] [--state-dir DIR]
                                   shut a machine out of the farm (on the machine holding the farm key)
  nodes [--json] [--state-dir DIR] the farm's members as the local agent sees them
  status [--json] [--state-dir DIR] the local agent's view of the farm
  submit TIMELINE -o OUT [--preset P] [--priority low|normal|high|urgent] [--deadline 30m|ISO]
        [--max-cost USD] [--detach] [--json] [--state-dir DIR]
                                   render TIMELINE on the farm; live progress; exit 0 once OUT is written and validated
  estimate TIMELINE [--preset P] [--json] [--state-dir DIR]
                                   time, cost range, nodes and completion time, without submitting
  jobs [--json]                    the farm's jobs;  cancel JOB  stops one on every node
  pause NODE | --all;  resume NODE | --all
                                   no new chunks for a node (running ones finish)
  stop --emergency                 stop every render on every node now and pause all nodes
  open [--no-browser] [--state-dir DIR]
                                   print (and open in the browser) this agent's dashboard URL, token included
  service install [--enable] [--dry-run] [--state-dir DIR] [-- AGENT FLAGS…]
                                   run the agent as a user service (systemd on Linux, launchd on macOS)
  service uninstall [--disable] [--dry-run];  service status [--json]
  cloud prices [--provider aws|gcp|azure|local] [--region R] [--json]
                                   bundled cloud list prices (USD per hour, dated, with sources), cheapest first
  cloud status [--json] [--state-dir DIR]
                                   cloud.json (providers, limits, budget), the farm's cloud nodes, spend
  cloud scale --provider P --count N [--type T] [--spot] [--state-dir DIR]
                                   ask the coordinator to launch N cloud nodes now
`

async function main (argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'sample': return await sampleCmd(rest)
    case 'render': return await renderCmd(rest)
    case 'probe': return await probeCmd(rest)
    case 'bench': return await benchCmd(rest)
    case 'demo': return await demoCmd(rest)
    case 'agent': return await agentCmd(rest)
    case 'farm': return await farmCmd(rest)
    case 'nodes': return await readCmd(rest, 'nodes')
    case 'status': return await readCmd(rest, 'status')
    case 'submit': return await (await import('./jobs.ts')).submitCmd(rest)
    case 'estimate': return await (await import('./jobs.ts')).estimateCmd(rest)
    case 'jobs': return await (await import('./jobs.ts')).jobsCmd(rest)
    case 'cancel': return await (await import('./jobs.ts')).cancelCmd(rest)
    case 'pause': return await (await import('./jobs.ts')).pauseCmd(rest, true)
    case 'resume': return await (await import('./jobs.ts')).pauseCmd(rest, false)
    case 'stop': return await (await import('./jobs.ts')).stopCmd(rest)
    case 'open': return await (await import('./open.ts')).openCmd(rest, (await import('../../agent/daemon.ts')).defaultStateDir)
    case 'service': return await (await import('./service.ts')).serviceCmd(rest, (await import('../../agent/daemon.ts')).defaultStateDir)
    case 'cloud': return await (await import('./cloud.ts')).cloudCmd(rest, (await import('../../agent/daemon.ts')).defaultStateDir)
    case undefined: case 'help': case '--help': case '-h':
      process.stdout.write(USAGE)
      return command === undefined ? 2 : 0
    default:
      throw new UsageError(`unknown command "${command}"\n${USAGE}`)
  }
}

function parse (args: string[], options: NonNullable<ParseArgsConfig['options']>): ReturnType<typeof parseArgs> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

async function sampleCmd (args: string[]): Promise<number> {
  const { positionals } = parse(args, {})
  if (positionals.length !== 1) throw new UsageError('usage: renderswarm sample DIR')
  const file = await writeSample(path.resolve(positionals[0]!), await locateFfmpeg())
  process.stdout.write(`wrote ${file}\nrender it with: renderswarm render ${path.relative(process.cwd(), file)} -o out.mkv\n`)
  return 0
}

function intOpt (v: unknown, name: string, dflt: number): number {
  if (v === undefined) return dflt
  if (typeof v !== 'string' || !/^\d+$/.test(v)) throw new UsageError(`--${name} must be a whole number ≥ 1 (got "${String(v)}")`)
  return Number(v)
}

async function renderCmd (args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    output: { type: 'string', short: 'o' },
    preset: { type: 'string', default: 'ffv1' },
    chunks: { type: 'string' },
    parallel: { type: 'string' },
    json: { type: 'boolean', default: false },
    'no-gpu': { type: 'boolean', default: false }
  })
  if (positionals.length !== 1) throw new UsageError('usage: renderswarm render TIMELINE -o OUT [--preset P] [--chunks N] [--parallel J] [--json]')
  if (typeof values.output !== 'string') throw new UsageError('-o OUT is required')
  const parallel = intOpt(values.parallel, 'parallel', Math.max(1, Math.min(os.availableParallelism(), 4)))
  const chunks = intOpt(values.chunks, 'chunks', parallel)
  return await doRender(positionals[0]!, values.output, String(values.preset), chunks, parallel, values.json === true, values['no-gpu'] !== true)
}

async function doRender (timeline: string, out: string, preset: string, chunks: number, parallel: number, json: boolean, gpu: boolean): Promise<number> {
  const bar = json ? undefined : new ProgressBar(process.stderr)
  // Ctrl-C / SIGTERM: stop ffmpeg, remove temporary files, leave any existing output as it was.
  const abort = new AbortController()
  let stoppedBy: NodeJS.Signals | undefined
  const stop = (sig: NodeJS.Signals): void => { stoppedBy ??= sig; abort.abort() }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  let result
  try {
    result = await renderTimeline({ timeline, out, preset, chunks, parallel, gpu, signal: abort.signal, onProgress: (p) => bar?.update(p) })
  } catch (err) {
    if (stoppedBy !== undefined) {
      bar?.done()
      process.stderr.write(`renderswarm: render stopped by ${stoppedBy}; temporary files removed\n`)
      return stoppedBy === 'SIGINT' ? 130 : 143
    }
    throw err
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  }
  bar?.done()
  if (json) {
    process.stdout.write(JSON.stringify({
      output: result.output, frames: result.frames, seconds: round(result.seconds), fps: round(result.fps),
      preset: result.preset, encoder: result.encoder, ffmpeg: result.ffmpeg,
      chunks: result.chunks.map((c) => ({ index: c.index, frameRange: [c.start, c.end], seconds: round(c.seconds) })),
      audioSeconds: result.validation.audioSeconds
    }) + '\n')
  } else {
    process.stdout.write(`rendered ${result.frames} frames in ${result.seconds.toFixed(1)} s (${result.fps.toFixed(1)} fps) as ${result.chunks.length} chunks with ${result.encoder}\n→ ${result.output}\n`)
  }
  return 0
}

async function probeCmd (args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean', default: false } })
  const tools = await locateFfmpeg()
  const caps = await probeFfmpeg(tools, { checkGpu: true })
  const info = {
    ffmpeg: tools.ffmpeg, ffmpegSource: tools.ffmpegSource, ffprobe: tools.ffprobe, ffprobeSource: tools.ffprobeSource,
    version: caps.version, gpuEncoders: caps.gpuEncoders, hwaccels: caps.hwaccels,
    encoders: ['libx264', 'libx265', 'h264_nvenc', 'hevc_nvenc', 'prores_ks', 'ffv1', 'aac', 'flac'].filter((e) => caps.encoders.has(e)),
    filters: caps.filters.size
  }
  if (values.json === true) process.stdout.write(JSON.stringify(info) + '\n')
  else {
    process.stdout.write(`ffmpeg   ${info.ffmpeg} (${info.ffmpegSource}, ${info.version})\nffprobe  ${info.ffprobe} (${info.ffprobeSource})\nencoders ${info.encoders.join(', ')}\nGPU      ${info.gpuEncoders.length > 0 ? info.gpuEncoders.join(', ') : 'none (CPU encoders)'}\nfilters  ${info.filters}\n`)
  }
  return 0
}

async function benchCmd (args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean', default: false }, 'state-dir': { type: 'string' } })
  const { defaultStateDir } = await import('../../agent/daemon.ts')
  const { benchmark, REFERENCE_FRAMES } = await import('../../agent/benchmark.ts')
  const { probeHardware } = await import('../../agent/hardware.ts')
  const { Store } = await import('../../agent/store.ts')
  const stateDir = stateDirOf(values, defaultStateDir)
  const tools = await locateFfmpeg()
  const [caps, hw] = await Promise.all([probeFfmpeg(tools, { checkGpu: true }), probeHardware()])
  const store = Store.open(path.join(stateDir, 'state.db'))
  try {
    const r = await benchmark(tools, caps, hw, store, { force: true })
    if (values.json === true) { process.stdout.write(JSON.stringify({ fps: r.fps, key: r.key, measuredAt: new Date(r.measuredAtMs).toISOString(), ffmpeg: caps.version }) + '\n'); return 0 }
    process.stdout.write(`self-benchmark: ${REFERENCE_FRAMES} frames of 1280x720 testsrc2 + blur + overlay, ffmpeg ${caps.version}, ${hw.cpu.model} (${hw.cpu.cores} cores)\n`)
    process.stdout.write('preset   fps\n')
    for (const [name, fps] of Object.entries(r.fps)) process.stdout.write(`${name.padEnd(8)} ${String(fps).padStart(6)}\n`)
    process.stdout.write('cached for this hardware and ffmpeg build; a running agent advertises it after a restart\n')
  } finally {
    store.close()
  }
  return 0
}

async function demoCmd (args: string[]): Promise<number> {
  const { positionals, values } = parse(args, { local: { type: 'boolean', default: false } })
  if (values.local !== true) return await (await import('./demo.ts')).farmDemo(positionals[0])
  const dir = path.resolve(positionals[0] ?? 'renderswarm-demo')
  process.stderr.write(`writing the sample project into ${dir} …\n`)
  const file = await writeSample(dir, await locateFfmpeg())
  const parallel = Math.max(1, Math.min(os.availableParallelism(), 4))
  return await doRender(file, path.join(dir, 'sample-render.mkv'), 'ffv1', 4, parallel, false, true)
}

async function agentCmd (args: string[]): Promise<number> {
  const { values } = parse(args, {
    'state-dir': { type: 'string' }, listen: { type: 'string', multiple: true }, 'api-port': { type: 'string' },
    name: { type: 'string' }, 'no-mdns': { type: 'boolean', default: false }, 'mdns-interface': { type: 'string' },
    bootstrap: { type: 'string', multiple: true }, when: { type: 'string' }, schedule: { type: 'string' }, 'max-cpu': { type: 'string' },
    slots: { type: 'string' }, 'cost-per-hour': { type: 'string' }, 'chunk-seconds': { type: 'string' }, 'min-piece-seconds': { type: 'string' }, 'speculate-after': { type: 'string' }, location: { type: 'string' }
  })
  const { Agent, defaultStateDir } = await import('../../agent/daemon.ts')
  const { parsePolicy, PolicyError } = await import('../../agent/availability.ts')
  let policy
  try {
    policy = parsePolicy({ when: values.when as string | undefined, schedule: values.schedule as string | undefined, maxCpuPct: values['max-cpu'] !== undefined ? Number(values['max-cpu']) : undefined })
  } catch (err) {
    if (err instanceof PolicyError) throw new UsageError(err.message)
    throw err
  }
  const apiPortRaw = values['api-port']
  if (apiPortRaw !== undefined && (typeof apiPortRaw !== 'string' || !/^\d{1,5}$/.test(apiPortRaw) || Number(apiPortRaw) > 65535)) throw new UsageError(`--api-port must be 0–65535 (got "${String(apiPortRaw)}")`)
  const slots = values.slots === undefined ? undefined : Number(values.slots)
  if (slots !== undefined && (!Number.isInteger(slots) || slots < 0 || slots > 64)) throw new UsageError(`--slots must be a whole number 0–64 (got "${String(values.slots)}")`)
  const costPerHour = values['cost-per-hour'] === undefined ? undefined : Number(values['cost-per-hour'])
  if (costPerHour !== undefined && (!Number.isFinite(costPerHour) || costPerHour < 0 || costPerHour > 1000)) throw new UsageError(`--cost-per-hour must be 0–1000 US dollars (got "${String(values['cost-per-hour'])}")`)
  const location = values.location as string | undefined
  if (location !== undefined && location !== 'lan' && location !== 'cloud') throw new UsageError(`--location must be lan or cloud (got "${location}")`)
  const chunkSeconds = values['chunk-seconds'] === undefined ? undefined : Number(values['chunk-seconds'])
  if (chunkSeconds !== undefined && (!Number.isFinite(chunkSeconds) || chunkSeconds < 1 || chunkSeconds > 3600)) throw new UsageError(`--chunk-seconds must be 1–3600 (got "${String(values['chunk-seconds'])}")`)
  const minPieceSeconds = values['min-piece-seconds'] === undefined ? undefined : Number(values['min-piece-seconds'])
  if (minPieceSeconds !== undefined && (!Number.isFinite(minPieceSeconds) || minPieceSeconds < 0 || minPieceSeconds > 3600)) throw new UsageError(`--min-piece-seconds must be 0 (never cut) to 3600 (got "${String(values['min-piece-seconds'])}")`)
  const speculateAfter = values['speculate-after'] === undefined ? undefined : Number(values['speculate-after'])
  if (speculateAfter !== undefined && (!Number.isFinite(speculateAfter) || speculateAfter < 0 || speculateAfter > 86400)) throw new UsageError(`--speculate-after must be 0 (off) to 86400 seconds (got "${String(values['speculate-after'])}")`)
  const stateDir = stateDirOf(values, defaultStateDir)
  const agent = await Agent.start({
    ...(speculateAfter !== undefined ? { speculateAfterMs: speculateAfter * 1000 } : {}),
    ...(slots !== undefined ? { slots } : {}),
    ...(location !== undefined ? { location } : {}),
    ...(chunkSeconds !== undefined ? { chunkSeconds } : {}),
    ...(minPieceSeconds !== undefined ? { minPieceSeconds } : {}),
    ...(costPerHour !== undefined ? { costPerHour } : {}),
    stateDir,
    listen: (values.listen as string[] | undefined) ?? ['/ip4/0.0.0.0/tcp/0'],
    apiPort: Number(apiPortRaw ?? 0),
    name: values.name as string | undefined,
    mdns: values['no-mdns'] !== true,
    mdnsInterface: values['mdns-interface'] as string | undefined,
    bootstrap: (values.bootstrap as string[] | undefined) ?? [],
    policy
  })
  process.stderr.write(`renderswarm agent ${agent.node.peerId.toString()} (${agent.name}) in farm ${agent.node.farmId}\n  libp2p ${agent.node.addrs().join(' ')}\n  api    ${agent.apiInfo!.url} (token in ${path.join(stateDir, 'api.json')})\n`)
  await new Promise<void>((resolve) => {
    const stop = (): void => { resolve() }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  await agent.stop()
  process.stderr.write('renderswarm agent stopped\n')
  return 0
}

function parseTtl (s: string): number {
  const m = /^(\d{1,6})(s|m|h|d)$/.exec(s)
  if (m === null) throw new UsageError(`--ttl must look like 30m, 2h or 7d (got "${s}")`)
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd']
}

async function farmCmd (args: string[]): Promise<number> {
  const [sub, ...rest] = args
  const { values, positionals } = parse(rest, { 'state-dir': { type: 'string' }, ttl: { type: 'string', default: '1h' }, json: { type: 'boolean', default: false }, reason: { type: 'string' } })
  const { defaultStateDir, makeInvite, acceptInvite } = await import('../../agent/daemon.ts')
  const stateDir = stateDirOf(values, defaultStateDir)
  if (sub === 'invite') {
    const { LocalClient } = await import('../sdk/client.ts')
    const status = await (await LocalClient.forStateDir(stateDir)).get<{ addrs: string[] }>('/v1/status')
    const inv = makeInvite(stateDir, status.addrs, parseTtl(String(values.ttl)))
    if (values.json === true) process.stdout.write(JSON.stringify(inv) + '\n')
    else process.stdout.write(`${inv.token}\n`)
    process.stderr.write(`single-use invite to farm ${inv.farm}, valid until ${new Date(inv.exp).toISOString()}; on the new machine: renderswarm farm join TOKEN\n`)
    return 0
  }
  if (sub === 'join') {
    if (positionals.length !== 1) throw new UsageError('usage: renderswarm farm join TOKEN [--state-dir DIR]')
    const { InviteError } = await import('../../protocol/farm-key.ts')
    let res
    try {
      res = acceptInvite(stateDir, positionals[0]!)
    } catch (err) {
      if (err instanceof InviteError) throw new UsageError(err.message)
      throw err
    }
    process.stdout.write(`joining farm ${res.farm}${res.replaced !== undefined && res.replaced !== res.farm ? ` (leaving farm ${res.replaced})` : ''}; (re)start the agent: renderswarm agent --state-dir ${stateDir}\n`)
    return 0
  }
  if (sub === 'revoke') {
    if (positionals.length !== 1) throw new UsageError('usage: renderswarm farm revoke PEER [--reason TEXT] [--state-dir DIR]')
    const { LocalClient, ApiError } = await import('../sdk/client.ts')
    const api = await LocalClient.forStateDir(stateDir)
    try {
      const r = await api.post<{ revoked: string; at: string }>('/v1/farm/revoke', { peerId: positionals[0], ...(typeof values.reason === 'string' ? { reason: values.reason } : {}) })
      process.stdout.write(`revoked ${r.revoked} at ${r.at}; every member drops it and refuses it from now on\n`)
    } catch (err) {
      if (err instanceof ApiError && err.status < 500) throw new UsageError(err.message)
      throw err
    }
    return 0
  }
  throw new UsageError('usage: renderswarm farm invite|join|revoke …')
}

async function readCmd (args: string[], what: 'nodes' | 'status'): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean', default: false }, 'state-dir': { type: 'string' } })
  const { defaultStateDir } = await import('../../agent/daemon.ts')
  const { LocalClient } = await import('../sdk/client.ts')
  const api = await LocalClient.forStateDir(stateDirOf(values, defaultStateDir))
  const body = await api.get(`/v1/${what}`)
  if (values.json === true) { process.stdout.write(JSON.stringify(body) + '\n'); return 0 }
  if (what === 'nodes') {
    for (const n of (body as { nodes: Array<{ name: string; peerId: string; state: string; self: boolean; info?: { cpu?: { cores?: number }; gpus?: unknown[]; ffmpeg?: { encoders?: string[] } } }> }).nodes) {
      process.stdout.write(`${n.self ? '*' : ' '} ${n.name.padEnd(20)} ${n.state.padEnd(8)} ${String(n.info?.cpu?.cores ?? '?').padStart(3)} cores  ${(n.info?.gpus?.length ?? 0)} GPU  ${(n.info?.ffmpeg?.encoders ?? []).join(',')}  ${n.peerId}\n`)
    }
  } else {
    process.stdout.write(JSON.stringify(body, null, 2) + '\n')
  }
  return 0
}

/** --state-dir, or the user's default: how every command finds its agent. */
function stateDirOf (values: Record<string, unknown>, fallback: () => string): string {
  return path.resolve(typeof values['state-dir'] === 'string' ? values['state-dir'] : fallback())
}

function round (n: number): number {
  return Math.round(n * 1000) / 1000
}

function isInputError (err: unknown): boolean {
  if (err instanceof Error && (err.name === 'AgentNotRunningError' || err.name === 'StoreError')) return false
  return err instanceof TimelineError || err instanceof UsageError || (err instanceof Error && err.name === 'UsageError') || err instanceof UnknownPresetError || err instanceof PlanError
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code }, (err: unknown) => {
  const msg = err instanceof Error ? err.message : String(err)
  process.stderr.write(`renderswarm: ${msg.split('\n')[0]}${msg.includes('\n') && err instanceof UsageError ? '\n' + msg.split('\n').slice(1).join('\n') : ''}\n`)
  process.exitCode = isInputError(err) ? 2 : (err instanceof FfmpegNotFoundError ? 1 : 1)
})
