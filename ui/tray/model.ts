/**
 * The tray app's model (spec M31), pure: from what the local agent's API answers, the farm's
 * health, the icon, the tooltip and the menu as data; each menu action as the API request it
 * makes. The Electron shell (ui/tray/main.ts) only fetches, draws and sends.
 *
 *   const view = trayView({ ok: true, status, nodes, jobs }, Date.now(), last?.refusedTotal)   // GET /v1/status, /v1/nodes, /v1/jobs
 *   view.health      // 'offline' | 'degraded' | 'rendering' | 'idle'
 *   view.icon        // 'tray-rendering' → ui/tray/icons/tray-rendering.png
 *   view.tooltip     // "renderswarm — rendering 2 jobs, 43% · 3/3 nodes"
 *   view.menu        // [{ kind: 'action', label: 'Open dashboard', action: { type: 'open-dashboard' } }, …]
 *   actionRequest({ type: 'pause-self', peerId })   // → { method: 'POST', path: '/v1/pause', body: { peerId } }
 *   trayView({ ok: false, error: 'connect ECONNREFUSED' }, now).health   // 'offline'
 *
 * Health, worst first: offline (the agent does not answer, or answers with an error);
 * degraded (a member suspect or dead, no coordinator, this agent cannot join its farm, a job
 * failed in the last 15 minutes, a running job retrying chunks or waiting for its owner, or the
 * agent refusing peers or requests since the last poll: a machine with the wrong farm key, a
 * revoked member, malformed messages); rendering (a job running or joining); idle.
 */

/** The parts of GET /v1/status the tray reads (agent/daemon.ts status()). */
export interface StatusView {
  name: string
  peerId: string
  joinError?: string
  nodes: { total: number; active: number }
  rendering?: { coordinator: { leader: string | null; self: boolean } }
  policy?: { when: 'always' | 'idle' | 'schedule'; maxCpuPct: number; schedule?: string }
  metrics?: { nodes: Array<{ peerId: string; paused: boolean }> }
  /** Inputs this agent refused, by reason (bad certificates, malformed messages, wrong tokens). */
  refused?: Record<string, number>
}

/** A member as GET /v1/nodes shows it (agent/daemon.ts nodes()). */
export interface NodeView {
  peerId: string
  name: string
  self: boolean
  state: string
  accepting?: boolean
  notAcceptingBecause?: string
  load?: { runningChunks?: number; cpuPct?: number }
}

/** A job as GET /v1/jobs shows it (agent/farm.ts summary()). */
export interface JobView {
  jobId: string
  name: string
  status: string
  frames: number
  framesDone: number
  chunks: Array<{ status: string; attempts: number }>
  error?: string
  completedAt?: string
}

export type TrayInput = { ok: true; status: StatusView; nodes: NodeView[]; jobs: JobView[] } | { ok: false; error: string }

export type Health = 'offline' | 'degraded' | 'rendering' | 'idle'

export type TrayAction =
  | { type: 'open-dashboard' }
  | { type: 'pause-self'; peerId: string }
  | { type: 'resume-self'; peerId: string }
  | { type: 'idle-only'; on: boolean }
  | { type: 'quit' }

export type MenuItem =
  | { kind: 'action'; label: string; action: TrayAction; enabled: boolean }
  | { kind: 'checkbox'; label: string; checked: boolean; action: TrayAction; enabled: boolean }
  | { kind: 'submenu'; label: string; items: MenuItem[] }
  | { kind: 'label'; label: string }
  | { kind: 'separator' }

export interface TrayView {
  health: Health; icon: `tray-${Health}`; tooltip: string; reasons: string[]; menu: MenuItem[]
  /** Refusals counted so far; give it back to the next trayView call. */
  refusedTotal: number
}

export interface ApiRequest { method: 'POST'; path: string; body: Record<string, unknown> }

/** A failed job counts against health for this long after it ended. */
export const RECENT_FAILURE_MS = 15 * 60_000
/** Windows cuts tooltips at 127 characters. */
const TOOLTIP_MAX = 127
const MAX_JOBS_LISTED = 10

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`

function degradedReasons (s: StatusView, nodes: NodeView[], jobs: JobView[], nowMs: number, refusedNew: number): string[] {
  const reasons: string[] = []
  const silent = nodes.filter((n) => n.state !== 'alive')
  if (silent.length > 0) reasons.push(`${silent.map((n) => n.name).join(', ')} ${silent.length === 1 ? 'is' : 'are'} not answering`)
  if (s.joinError !== undefined) reasons.push(`cannot join the farm: ${s.joinError}`)
  else if (s.rendering !== undefined && s.rendering.coordinator.leader === null) reasons.push('no coordinator elected')
  for (const j of jobs) {
    if (j.status === 'failed' && j.completedAt !== undefined && nowMs - Date.parse(j.completedAt) < RECENT_FAILURE_MS) reasons.push(`job ${j.name} failed`)
    else if (j.status === 'paused') reasons.push(`job ${j.name} waits for its owner`)
    else if (j.status === 'running' && j.chunks.some((c) => c.attempts > 0)) reasons.push(`job ${j.name} is retrying chunks`)
  }
  if (refusedNew > 0) reasons.push(`refused ${plural(refusedNew, 'peer or request', 'peers or requests')} since the last look`)
  return reasons
}

function jobLabel (j: JobView): string {
  const pct = j.frames > 0 ? Math.floor(j.framesDone / j.frames * 100) : 0
  const what = j.status === 'running' ? `rendering ${pct}%` : j.status === 'joining' ? 'joining' : j.status === 'queued' ? 'queued' : j.status === 'paused' ? `paused at ${pct}%` : j.status
  return `${j.name} — ${what}`
}

function nodeLabel (n: NodeView, paused: boolean): string {
  const running = n.load?.runningChunks ?? 0
  const state = n.state !== 'alive' ? n.state
    : paused ? 'paused'
      : running > 0 ? `rendering ${plural(running, 'chunk')}`
        : n.accepting === false ? 'not taking work'
          : 'idle'
  return `${n.name}${n.self ? ' (this machine)' : ''} — ${state}`
}

const clip = (s: string, max: number): string => s.length <= max ? s : `${s.slice(0, max - 1)}…`

export function trayView (input: TrayInput, nowMs: number, lastRefusedTotal?: number): TrayView {
  if (!input.ok) {
    return {
      health: 'offline', icon: 'tray-offline', reasons: [input.error], refusedTotal: lastRefusedTotal ?? 0,
      tooltip: clip(`renderswarm — offline: ${input.error}`, TOOLTIP_MAX),
      menu: [
        { kind: 'label', label: 'The agent is not running on this machine' },
        { kind: 'label', label: 'Start it with: renderswarm agent (or renderswarm service install)' },
        { kind: 'separator' },
        { kind: 'action', label: 'Open dashboard', action: { type: 'open-dashboard' }, enabled: false },
        { kind: 'separator' },
        { kind: 'action', label: 'Quit', action: { type: 'quit' }, enabled: true }
      ]
    }
  }
  const { status, nodes, jobs } = input
  const paused = new Set((status.metrics?.nodes ?? []).filter((n) => n.paused).map((n) => n.peerId))
  const refusedTotal = Object.values(status.refused ?? {}).reduce((a, b) => a + b, 0)
  // The first look has nothing to compare with; a restarted agent counts from zero again.
  const refusedNew = lastRefusedTotal === undefined ? 0 : refusedTotal >= lastRefusedTotal ? refusedTotal - lastRefusedTotal : refusedTotal
  const reasons = degradedReasons(status, nodes, jobs, nowMs, refusedNew)
  const running = jobs.filter((j) => j.status === 'running' || j.status === 'joining')
  const health: Health = reasons.length > 0 ? 'degraded' : running.length > 0 ? 'rendering' : 'idle'
  const frames = running.reduce((n, j) => n + j.frames, 0)
  const pct = frames > 0 ? Math.floor(running.reduce((n, j) => n + j.framesDone, 0) / frames * 100) : 0
  const doing = running.length > 0 ? `rendering ${plural(running.length, 'job')}, ${pct}%` : 'idle'
  const alive = nodes.filter((n) => n.state === 'alive').length
  const head = health === 'degraded' ? `degraded: ${reasons.join('; ')}${running.length > 0 ? `; ${doing}` : ''}` : doing
  const tail = ` · ${alive}/${nodes.length} nodes`
  const tooltip = `renderswarm — ${clip(head, TOOLTIP_MAX - 'renderswarm — '.length - tail.length)}${tail}`
  const selfPaused = paused.has(status.peerId)
  const listed = [...running, ...jobs.filter((j) => !running.includes(j))].slice(0, MAX_JOBS_LISTED)
  const menu: MenuItem[] = [
    { kind: 'label', label: clip(head, 80) },
    { kind: 'separator' },
    { kind: 'action', label: 'Open dashboard', action: { type: 'open-dashboard' }, enabled: true },
    selfPaused
      ? { kind: 'action', label: 'Resume this machine', action: { type: 'resume-self', peerId: status.peerId }, enabled: true }
      : { kind: 'action', label: 'Pause this machine', action: { type: 'pause-self', peerId: status.peerId }, enabled: true },
    { kind: 'checkbox', label: 'Render only when idle', checked: status.policy?.when === 'idle', action: { type: 'idle-only', on: status.policy?.when !== 'idle' }, enabled: status.policy !== undefined },
    { kind: 'separator' },
    { kind: 'submenu', label: `Nodes (${alive}/${nodes.length})`, items: nodes.map((n): MenuItem => ({ kind: 'label', label: nodeLabel(n, paused.has(n.peerId)) })) },
    { kind: 'submenu', label: `Jobs (${running.length} running)`, items: listed.length > 0 ? listed.map((j): MenuItem => ({ kind: 'label', label: jobLabel(j) })) : [{ kind: 'label', label: 'No jobs yet' }] },
    { kind: 'separator' },
    { kind: 'action', label: 'Quit', action: { type: 'quit' }, enabled: true }
  ]
  return { health, icon: `tray-${health}`, tooltip, reasons, menu, refusedTotal }
}

/** The API call an action makes, or null for actions the shell handles itself (open, quit). */
export function actionRequest (action: TrayAction): ApiRequest | null {
  switch (action.type) {
    case 'pause-self': return { method: 'POST', path: '/v1/pause', body: { peerId: action.peerId } }
    case 'resume-self': return { method: 'POST', path: '/v1/resume', body: { peerId: action.peerId } }
    case 'idle-only': return { method: 'POST', path: '/v1/policy', body: { when: action.on ? 'idle' : 'always' } }
    case 'open-dashboard': return null
    case 'quit': return null
  }
}

/** The dashboard with the token in the fragment (never sent to a server; ui/dashboard trades it for a cookie). */
export function dashboardUrl (apiUrl: string, token: string): string {
  return `${apiUrl.replace(/\/+$/, '')}/#${new URLSearchParams({ token }).toString()}`
}
