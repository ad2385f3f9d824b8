/**
 * `renderswarm cloud prices|status|scale`: what renting machines costs, what the farm is allowed
 * to rent and what it rents now, and a manual scale-out.
 *
 *   renderswarm cloud prices [--provider aws|gcp|azure|local] [--region R] [--json]
 *   renderswarm cloud status [--json] [--state-dir DIR]
 *   renderswarm cloud scale --provider P --count N [--type T] [--spot] [--json] [--state-dir DIR]
 *
 * prices reads the bundled price table (coordinator/cloud/prices.json: list prices with their
 * date and source), cheapest first. status reads the agent's cloud.json (coordinator/cloud/config.ts)
 * and asks the running agent for its members (`/v1/nodes`, each with its location) and, when the
 * runtime reports it, what the cloud has cost this budget period (`cloud` in `/v1/status`);
 * until then it says "not metered yet". scale asks the agent (`POST /v1/cloud/scale`); an agent
 * whose burst controller is off (no cloud.json when it started, or not the farm key's machine)
 * answers 404 with the reason, which the command prints (exit 2) rather than pretending.
 *
 * Exit codes: 0 done, 2 refused input (bad flag, bad cloud.json, scaling not available), 1 anything else.
 */
import path from 'node:path'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import table from '../../coordinator/cloud/prices.json' with { type: 'json' }
import { budgetPeriodStart, candidatesOf, cloudConfigPath, CloudConfigError, loadCloudConfig, type CloudConfig } from '../../coordinator/cloud/config.ts'
import { parsePrices } from '../../coordinator/cloud/prices.ts'
import { INSTANCE_TYPE_RE, PROVIDERS, type PriceRow, type ProviderName } from '../../coordinator/cloud/provider.ts'
import { ApiError, LocalClient } from '../sdk/client.ts'

export class CloudUsageError extends Error {
  override readonly name = 'UsageError'
}

const USAGE = `usage: renderswarm cloud <command>
  prices [--provider ${PROVIDERS.join('|')}] [--region R] [--json]
                               bundled list prices (USD per hour), cheapest first
  status [--json] [--state-dir DIR]
                               cloud.json, the farm's cloud nodes, budget and spend
  scale --provider P --count N [--type T] [--spot] [--json] [--state-dir DIR]
                               ask the coordinator to launch N cloud nodes now`

function parse (args: string[], options: NonNullable<ParseArgsConfig['options']>): ReturnType<typeof parseArgs> {
  try {
    return parseArgs({ args, options: { ...options, json: { type: 'boolean', default: false } }, allowPositionals: false, strict: true })
  } catch (err) {
    throw new CloudUsageError(`cloud: ${(err as Error).message}`)
  }
}

export async function cloudCmd (args: string[], defaultStateDir: () => string): Promise<number> {
  const [sub, ...rest] = args
  const stateDirOf = (v: Record<string, unknown>): string => path.resolve(typeof v['state-dir'] === 'string' ? v['state-dir'] : defaultStateDir())
  switch (sub) {
    case 'prices': return pricesCmd(rest)
    case 'status': { const { values } = parse(rest, { 'state-dir': { type: 'string' } }); return await statusCmd(stateDirOf(values), values.json === true) }
    case 'scale': return await scaleCmd(rest, stateDirOf)
    case undefined: case 'help': case '--help': case '-h':
      process.stdout.write(USAGE + '\n')
      return sub === undefined ? 2 : 0
    default: throw new CloudUsageError(`unknown cloud command "${sub}" (prices, status or scale; see renderswarm cloud help)`)
  }
}

function providerOpt (v: unknown): ProviderName | undefined {
  if (v === undefined) return undefined
  if (!(PROVIDERS as readonly unknown[]).includes(v)) throw new CloudUsageError(`--provider must be one of ${PROVIDERS.join(', ')} (got "${String(v)}")`)
  return v as ProviderName
}

const money = (x: number): string => x.toFixed(4)

function pricesCmd (args: string[]): number {
  const { values } = parse(args, { provider: { type: 'string' }, region: { type: 'string' } })
  const provider = providerOpt(values.provider)
  const region = values.region as string | undefined
  if (region !== undefined && !/^[a-z0-9-]{2,40}$/.test(region)) throw new CloudUsageError(`--region must be 2–40 of a-z, 0-9, "-" (got "${region}")`)
  const all = parsePrices(table)
  const rows = all
    .filter((r) => (provider === undefined || r.provider === provider) && (region === undefined || r.region === region))
    .sort((a, b) => a.onDemandPerHour - b.onDemandPerHour || a.spotPerHour - b.spotPerHour || key(a).localeCompare(key(b)))
  if (rows.length === 0) {
    const regions = [...new Set(all.filter((r) => provider === undefined || r.provider === provider).map((r) => `${r.provider} ${r.region}`))].sort()
    throw new CloudUsageError(`no bundled prices for ${provider ?? 'any provider'}${region !== undefined ? ` in region ${region}` : ''}; the table has: ${regions.join(', ')}`)
  }
  const dates = [...new Set(rows.map((r) => r.date))].sort()
  if (values.json === true) {
    process.stdout.write(JSON.stringify({ currency: 'USD', per: 'hour', dates, note: table.note, rows }) + '\n')
    return 0
  }
  const cols = ['provider', 'region', 'type', 'GPU', 'vCPU', 'RAM GiB', 'on-demand', 'spot', 'saving']
  const lines = rows.map((r) => [r.provider, r.region, r.instanceType, r.gpu.count > 0 ? `${r.gpu.count}× ${r.gpu.model}` : '-', String(r.vcpu), String(r.ramGiB), money(r.onDemandPerHour), money(r.spotPerHour),
    r.onDemandPerHour > 0 ? `${Math.round((1 - r.spotPerHour / r.onDemandPerHour) * 100)}%` : '-'])
  const width = cols.map((c, i) => Math.max(c.length, ...lines.map((l) => l[i]!.length)))
  const fmt = (l: string[]): string => l.map((x, i) => i >= 4 && i !== 3 ? x.padStart(width[i]!) : x.padEnd(width[i]!)).join('  ').trimEnd()
  process.stdout.write(`list prices in USD per hour, bundled with renderswarm, read ${dates.join(', ')}; spot prices move by zone and hour (indicative)\n`)
  process.stdout.write([fmt(cols), ...lines.map(fmt)].join('\n') + '\n')
  process.stdout.write(`sources: ${[...new Set(rows.map((r) => r.source))].join(' ')}\n`)
  return 0
}

function key (r: PriceRow): string {
  return `${r.provider}/${r.region}/${r.instanceType}`
}

async function readConfig (stateDir: string): Promise<CloudConfig | undefined> {
  try {
    return await loadCloudConfig(stateDir)
  } catch (err) {
    if (err instanceof CloudConfigError) throw new CloudUsageError(err.message)
    throw err
  }
}

interface NodeView { peerId: string; name: string; state: string; location?: string; self: boolean; accepting?: boolean }
/** What the runtime reports about cloud spend, once the autoscaler is wired in (optional). */
interface CloudRuntime { spentUsd?: number; hourlyRateUsd?: number; notes?: string[] }

async function statusCmd (stateDir: string, json: boolean): Promise<number> {
  const cfg = await readConfig(stateDir)
  const api = await LocalClient.forStateDir(stateDir)
  const { nodes } = await api.get<{ nodes: NodeView[] }>('/v1/nodes')
  const status = await api.get<{ cloud?: CloudRuntime }>('/v1/status')
  const cloudNodes = nodes.filter((n) => n.location === 'cloud').map((n) => ({ name: n.name, peerId: n.peerId, state: n.state, self: n.self }))
  const spent = typeof status.cloud?.spentUsd === 'number' ? status.cloud.spentUsd : undefined
  const file = cloudConfigPath(stateDir)
  const providers = cfg === undefined ? [] : candidatesOf(cfg).reduce<Array<{ provider: ProviderName; region: string; types: string[] }>>((acc, k) => {
    const p = acc.find((x) => x.provider === k.provider)
    if (p === undefined) acc.push({ provider: k.provider, region: k.region, types: [k.instanceType] }); else p.types.push(k.instanceType)
    return acc
  }, [])
  const now = Date.now()
  const out = {
    config: cfg === undefined ? { file, present: false } : { file, present: true, providers, minNodes: cfg.minNodes, maxNodes: cfg.maxNodes, cooldownSeconds: cfg.cooldownSeconds, idleSeconds: cfg.idleSeconds, hourlyCostCap: cfg.hourlyCostCap ?? null, spot: { minSavings: cfg.spot.minSavings, maxInterruptionRisk: cfg.spot.maxInterruptionRisk } },
    nodes: { total: nodes.length, lan: nodes.length - cloudNodes.length, cloud: cloudNodes },
    budget: cfg === undefined ? null : { amount: cfg.budget.amount, period: cfg.budget.period, periodStart: new Date(budgetPeriodStart(cfg.budget.period, now)).toISOString(), spentUsd: spent ?? null, metered: spent !== undefined },
    ...(status.cloud !== undefined ? { runtime: status.cloud } : {})
  }
  if (json) { process.stdout.write(JSON.stringify(out) + '\n'); return 0 }
  const w = (s: string): void => { process.stdout.write(s + '\n') }
  if (cfg === undefined) w(`cloud burst: off (no ${file}; see README "Cloud burst" for an example)`)
  else {
    w(`cloud config: ${file}`)
    for (const p of providers) w(`  ${p.provider.padEnd(6)} ${p.region.padEnd(14)} ${p.types.join(', ')}`)
    w(`  nodes ${cfg.minNodes}–${cfg.maxNodes}, cooldown ${cfg.cooldownSeconds} s, idle after ${cfg.idleSeconds} s${cfg.hourlyCostCap !== undefined ? `, at most $${cfg.hourlyCostCap}/h` : ''}; spot when ≥ ${Math.round(cfg.spot.minSavings * 100)}% cheaper and interruption risk ≤ ${Math.round(cfg.spot.maxInterruptionRisk * 100)}%`)
    w(`budget: $${cfg.budget.amount} per ${cfg.budget.period} (since ${out.budget!.periodStart}); spent: ${spent !== undefined ? `$${money(spent)}` : 'not metered yet (this agent does not run the autoscaler yet)'}`)
  }
  w(`farm: ${nodes.length} node(s), ${cloudNodes.length} in the cloud`)
  for (const n of cloudNodes) w(`  ${n.name.padEnd(20)} ${n.state.padEnd(8)} ${n.peerId}`)
  for (const note of status.cloud?.notes ?? []) w(`note: ${note}`)
  return 0
}

async function scaleCmd (args: string[], stateDirOf: (v: Record<string, unknown>) => string): Promise<number> {
  const { values } = parse(args, { provider: { type: 'string' }, count: { type: 'string' }, type: { type: 'string' }, spot: { type: 'boolean', default: false }, 'state-dir': { type: 'string' } })
  if (values.provider === undefined) throw new CloudUsageError('cloud scale: --provider is required (aws, gcp, azure or local)')
  const provider = providerOpt(values.provider)!
  const countRaw = values.count
  if (countRaw === undefined) throw new CloudUsageError('cloud scale: --count N is required')
  if (typeof countRaw !== 'string' || !/^\d{1,3}$/.test(countRaw) || Number(countRaw) < 1 || Number(countRaw) > 100) throw new CloudUsageError(`--count must be a whole number 1–100 (got "${String(countRaw)}")`)
  const type = values.type as string | undefined
  if (type !== undefined && !INSTANCE_TYPE_RE.test(type)) throw new CloudUsageError(`--type must be 2–64 of A-Z, a-z, 0-9, ".", "_", "-", "+" (got "${type}")`)
  const stateDir = stateDirOf(values)
  const cfg = await readConfig(stateDir)
  if (cfg === undefined) throw new CloudUsageError(`cloud burst is off: no ${cloudConfigPath(stateDir)} (see README "Cloud burst")`)
  const allowed = candidatesOf(cfg).filter((k) => k.provider === provider).map((k) => k.instanceType)
  if (allowed.length === 0) throw new CloudUsageError(`--provider ${provider} is not configured in ${cloudConfigPath(stateDir)} (configured: ${[...new Set(candidatesOf(cfg).map((k) => k.provider))].join(', ')})`)
  if (type !== undefined && !allowed.includes(type)) throw new CloudUsageError(`--type ${type} is not one of ${provider}'s configured types: ${allowed.join(', ')}`)
  const api = await LocalClient.forStateDir(stateDir)
  let res: Record<string, unknown>
  try {
    res = await api.post('/v1/cloud/scale', { provider, count: Number(countRaw), ...(type !== undefined ? { instanceType: type } : {}), spot: values.spot === true }, 120_000)
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 405)) {
      process.stderr.write(`renderswarm: ${err.message}; nothing was launched (restart the agent after writing cloud.json)\n`)
      return 2
    }
    if (err instanceof ApiError && err.status >= 400 && err.status < 500) throw new CloudUsageError(err.message)
    throw err
  }
  process.stdout.write(values.json === true ? JSON.stringify(res) + '\n' : `${JSON.stringify(res, null, 2)}\n`)
  return 0
}
