/**
 * The tray's pure model: health from the agent's answers, icon, tooltip, menu, and the API
 * request of every action. Job fixtures are JobRecords (the replicated record's type) passed
 * through the agent's own summary(); status.metrics comes from the real FarmFigures.
 */
import { describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import { promisify } from 'node:util'
import path from 'node:path'
import { crc32 as zlibCrc32, inflateSync } from 'node:zlib'
import { summary } from '../../agent/farm.ts'
import { FarmFigures } from '../../agent/metrics.ts'
import type { JobRecord } from '../../protocol/messages/jobs.ts'
import { allIcons, HEALTHS, ICON_DIR } from '../../ui/tray/icons.ts'
import { actionRequest, dashboardUrl, RECENT_FAILURE_MS, trayView, type JobView, type MenuItem, type NodeView, type StatusView, type TrayAction, type TrayInput } from '../../ui/tray/model.ts'

const NOW = Date.parse('2026-03-02T10:00:00Z')
const SELF = '12D3KooWSelfSelfSelfSelfSelfSelfSelfSelfSelfSelf1'
const BETA = '12D3KooWBetaBetaBetaBetaBetaBetaBetaBetaBetaBeta1'
const GAMMA = '12D3KooWGammaGammaGammaGammaGammaGammaGammaGamm1'

function record (id: string, status: JobRecord['status'], frames: number, framesDone: number, chunks: Array<Partial<JobRecord['chunks'][number]>> = [], extra: Partial<JobRecord> = {}): JobRecord {
  return {
    spec: {
      id, owner: SELF, name: `${id} edit`, user: 'ana', preset: 'ffv1', priority: 'normal', createdMs: NOW - 60_000, media: {}, assets: [],
      timeline: { schema: 'farm.timeline/1', fps: { num: 25, den: 1 }, width: 1280, height: 720, sampleRate: 48000, duration: frames, video: [], audio: [] }
    },
    status, framesDone, fps: status === 'running' ? 40 : 0, actualCost: 0, updatedMs: NOW,
    chunks: chunks.map((c, i) => ({ id: `${id}-${i}`, index: i, start: i * 100, end: (i + 1) * 100, status: 'queued', attempts: 0, framesDone: 0, ...c })),
    ...extra
  }
}
const job = (r: JobRecord): JobView => summary(r, undefined) as unknown as JobView

function node (peerId: string, name: string, state = 'alive', extra: Partial<NodeView> = {}): NodeView {
  return { peerId, name, self: peerId === SELF, state, accepting: true, load: { runningChunks: 0, cpuPct: 5 }, ...extra }
}

function status (nodes: NodeView[], extra: Partial<StatusView> = {}, paused: string[] = []): StatusView {
  const metrics = new FarmFigures(() => NOW).compute({ jobs: [], nodes: nodes.map((n) => ({ ...n, load: { ...n.load } })), paused, nowMs: NOW, selfUptimeSeconds: 60 })
  return {
    name: 'bay-1', peerId: SELF, nodes: { total: nodes.length, active: nodes.filter((n) => n.state === 'alive').length },
    rendering: { coordinator: { leader: SELF, self: true } }, policy: { when: 'always', maxCpuPct: 100 }, metrics, refused: { certificate: 0, 'api-unauthorized': 0 },
    ...extra
  }
}

const three = [node(SELF, 'bay-1'), node(BETA, 'beta'), node(GAMMA, 'gamma')]
const input = (nodes: NodeView[], jobs: JobView[], s: Partial<StatusView> = {}, paused: string[] = []): TrayInput => ({ ok: true, status: status(nodes, s, paused), nodes, jobs })

function find (menu: MenuItem[], label: RegExp): MenuItem {
  const hit = menu.find((m) => m.kind !== 'separator' && label.test(m.label))
  if (hit === undefined) throw new Error(`no menu item ${label}`)
  return hit
}
const submenu = (menu: MenuItem[], label: RegExp): MenuItem[] => { const m = find(menu, label); if (m.kind !== 'submenu') throw new Error('not a submenu'); return m.items }
const labels = (items: MenuItem[]): string[] => items.map((m) => m.kind === 'separator' ? '---' : m.label)

describe('health', () => {
  it('idle: every member alive, a coordinator, nothing running', () => {
    const v = trayView(input(three, [job(record('old', 'done', 200, 200, [{ status: 'done', node: BETA }, { status: 'done', node: GAMMA }], { completedMs: NOW - 1000 }))]), NOW)
    expect([v.health, v.icon, v.reasons]).toEqual(['idle', 'tray-idle', []])
    expect(v.tooltip).toBe('renderswarm — idle · 3/3 nodes')
  })

  it('rendering: jobs running or joining; the tooltip gives their count and the frames done over all of them', () => {
    const a = record('a', 'running', 400, 172, [{ status: 'done', node: BETA, framesDone: 100 }, { status: 'leased', node: GAMMA, framesDone: 72 }, {}, {}])
    const b = record('b', 'joining', 200, 200, [{ status: 'done' }, { status: 'done' }])
    const v = trayView(input(three, [job(a), job(b)]), NOW)
    expect([v.health, v.icon]).toEqual(['rendering', 'tray-rendering'])
    expect(v.tooltip).toBe('renderswarm — rendering 2 jobs, 62% · 3/3 nodes') // 372 of 600
    expect(trayView(input(three, [job(a)]), NOW).tooltip).toBe('renderswarm — rendering 1 job, 43% · 3/3 nodes')
  })

  it.each<[string, () => TrayInput, RegExp]>([
    ['a member is suspect', () => input([node(SELF, 'bay-1'), node(BETA, 'beta', 'suspect'), node(GAMMA, 'gamma')], []), /^beta is not answering$/],
    ['members are dead', () => input([node(SELF, 'bay-1'), node(BETA, 'beta', 'dead'), node(GAMMA, 'gamma', 'dead')], []), /^beta, gamma are not answering$/],
    ['no coordinator is elected', () => input(three, [], { rendering: { coordinator: { leader: null, self: false } } }), /^no coordinator elected$/],
    ['the agent cannot join its farm', () => input([node(SELF, 'bay-1')], [], { joinError: 'the invite has expired' }), /^cannot join the farm: the invite has expired$/],
    ['a job failed a minute ago', () => input(three, [job(record('x', 'failed', 100, 0, [{ status: 'failed', attempts: 3 }], { completedMs: NOW - 60_000, error: 'ffmpeg exited 1' }))]), /^job x edit failed$/],
    ['a running job retries chunks', () => input(three, [job(record('r', 'running', 200, 50, [{ status: 'leased', node: BETA, attempts: 1, framesDone: 50 }, {}]))]), /^job r edit is retrying chunks$/],
    ['a job waits for its owner', () => input(three, [job(record('p', 'paused', 200, 100, [{ status: 'done' }, {}], { note: 'owner offline' }))]), /^job p edit waits for its owner$/]
  ])('degraded when %s', (_what, make, reason) => {
    const v = trayView(make(), NOW)
    expect([v.health, v.icon]).toEqual(['degraded', 'tray-degraded'])
    expect(v.reasons).toHaveLength(1)
    expect(v.reasons[0]).toMatch(reason)
    expect(v.tooltip.startsWith(`renderswarm — degraded: ${v.reasons[0]!}`)).toBe(true)
  })

  it('a failure older than 15 minutes no longer counts; a cancelled job never does', () => {
    const old = job(record('x', 'failed', 100, 0, [{ status: 'failed', attempts: 3 }], { completedMs: NOW - RECENT_FAILURE_MS - 1 }))
    const cancelled = job(record('c', 'cancelled', 100, 0, [{}], { completedMs: NOW - 1000 }))
    expect(trayView(input(three, [old, cancelled]), NOW).health).toBe('idle')
  })

  it('refusals since the last look degrade it; the first look and a restarted agent (counts back at zero) do not', () => {
    const at = (n: number): TrayInput => input(three, [], { refused: { certificate: n, 'api-unauthorized': 1 } })
    const first = trayView(at(4), NOW)
    expect([first.health, first.refusedTotal]).toEqual(['idle', 5])
    expect(trayView(at(4), NOW, first.refusedTotal).health).toBe('idle')
    const more = trayView(at(6), NOW, first.refusedTotal)
    expect([more.health, more.reasons]).toEqual(['degraded', ['refused 2 peers or requests since the last look']])
    expect(trayView(at(0), NOW, 5).reasons).toEqual(['refused 1 peer or request since the last look'])
  })

  it('degraded while rendering says both, and still counts nodes', () => {
    const nodes = [node(SELF, 'bay-1'), node(BETA, 'beta', 'dead'), node(GAMMA, 'gamma')]
    const v = trayView(input(nodes, [job(record('a', 'running', 100, 25, [{ status: 'leased', node: GAMMA, framesDone: 25 }]))]), NOW)
    expect(v.tooltip).toBe('renderswarm — degraded: beta is not answering; rendering 1 job, 25% · 2/3 nodes')
  })

  it('offline when the agent is unreachable or answers with an error', () => {
    for (const error of ['connect ECONNREFUSED 127.0.0.1:4717', 'no agent is running for /home/ana/.local/state/renderswarm (no api.json)', 'HTTP 500: internal']) {
      const v = trayView({ ok: false, error }, NOW, 7)
      expect([v.health, v.icon, v.refusedTotal]).toEqual(['offline', 'tray-offline', 7])
      expect(v.tooltip).toBe(`renderswarm — offline: ${error}`)
      expect(labels(v.menu)).toEqual(['The agent is not running on this machine', 'Start it with: renderswarm agent (or renderswarm service install)', '---', 'Open dashboard', '---', 'Quit'])
      expect(find(v.menu, /^Open dashboard$/)).toMatchObject({ enabled: false })
    }
  })

  it('keeps tooltips within the 127 characters Windows shows', () => {
    const many = Array.from({ length: 30 }, (_, i) => node(`12D3KooWNode${String(i).padStart(37, '0')}`, `render-node-${i}`, 'dead'))
    const v = trayView(input([node(SELF, 'bay-1'), ...many], []), NOW)
    expect(v.tooltip.length).toBeLessThanOrEqual(127)
    expect(v.tooltip).toMatch(/^renderswarm — degraded: render-node-0, .*… · 1\/31 nodes$/)
  })
})

describe('menu', () => {
  it('has the spec\'s items in order: open, pause/resume this machine, idle-only, nodes, jobs, quit', () => {
    const v = trayView(input(three, []), NOW)
    expect(labels(v.menu)).toEqual(['idle', '---', 'Open dashboard', 'Pause this machine', 'Render only when idle', '---', 'Nodes (3/3)', 'Jobs (0 running)', '---', 'Quit'])
    expect(labels(submenu(v.menu, /^Jobs/))).toEqual(['No jobs yet'])
  })

  it('flips Pause to Resume when the coordinator has this machine paused (another member paused changes nothing)', () => {
    expect(find(trayView(input(three, [], {}, [BETA]), NOW).menu, /this machine$/)).toMatchObject({ label: 'Pause this machine', action: { type: 'pause-self', peerId: SELF } })
    expect(find(trayView(input(three, [], {}, [SELF]), NOW).menu, /this machine$/)).toMatchObject({ label: 'Resume this machine', action: { type: 'resume-self', peerId: SELF } })
  })

  it('checks "Render only when idle" from the policy in force, and the click asks for the other one', () => {
    const off = find(trayView(input(three, [], { policy: { when: 'always', maxCpuPct: 100 } }), NOW).menu, /only when idle/)
    expect(off).toMatchObject({ kind: 'checkbox', checked: false, action: { type: 'idle-only', on: true }, enabled: true })
    const on = find(trayView(input(three, [], { policy: { when: 'idle', maxCpuPct: 80 } }), NOW).menu, /only when idle/)
    expect(on).toMatchObject({ kind: 'checkbox', checked: true, action: { type: 'idle-only', on: false } })
    const sched = find(trayView(input(three, [], { policy: { when: 'schedule', maxCpuPct: 100, schedule: 'sat-sun' } }), NOW).menu, /only when idle/)
    expect(sched).toMatchObject({ checked: false, action: { type: 'idle-only', on: true } })
    // An agent too old to report its policy: the item is shown but cannot be used.
    const { policy: _p, ...noPolicy } = status(three)
    expect(find(trayView({ ok: true, status: noPolicy, nodes: three, jobs: [] }, NOW).menu, /only when idle/)).toMatchObject({ enabled: false })
  })

  it('lists every node with its state, and jobs running first with their progress', () => {
    const nodes = [node(SELF, 'bay-1', 'alive', { accepting: false, notAcceptingBecause: 'outside its render schedule' }), node(BETA, 'beta', 'alive', { load: { runningChunks: 2 } }), node(GAMMA, 'gamma', 'suspect')]
    const jobs = [
      job(record('done1', 'done', 100, 100, [{ status: 'done' }], { completedMs: NOW - 5000 })),
      job(record('run1', 'running', 300, 100, [{ status: 'done' }, { status: 'leased', node: BETA }, {}])),
      job(record('wait', 'queued', 100, 0, [{}]))
    ]
    const v = trayView(input(nodes, jobs, {}, [GAMMA]), NOW)
    expect(labels(submenu(v.menu, /^Nodes \(2\/3\)$/))).toEqual(['bay-1 (this machine) — not taking work', 'beta — rendering 2 chunks', 'gamma — suspect'])
    expect(labels(submenu(v.menu, /^Jobs \(1 running\)$/))).toEqual(['run1 edit — rendering 33%', 'done1 edit — done', 'wait edit — queued'])
    const paused = trayView(input(three, [], {}, [BETA]), NOW)
    expect(labels(submenu(paused.menu, /^Nodes/))).toContain('beta — paused')
  })

  it('lists at most ten jobs', () => {
    const jobs = Array.from({ length: 14 }, (_, i) => job(record(`j${i}`, 'done', 10, 10, [{ status: 'done' }], { completedMs: NOW })))
    expect(submenu(trayView(input(three, jobs), NOW).menu, /^Jobs/)).toHaveLength(10)
  })
})

describe('actionRequest', () => {
  it.each<[TrayAction, ReturnType<typeof actionRequest>]>([
    [{ type: 'pause-self', peerId: SELF }, { method: 'POST', path: '/v1/pause', body: { peerId: SELF } }],
    [{ type: 'resume-self', peerId: SELF }, { method: 'POST', path: '/v1/resume', body: { peerId: SELF } }],
    [{ type: 'idle-only', on: true }, { method: 'POST', path: '/v1/policy', body: { when: 'idle' } }],
    [{ type: 'idle-only', on: false }, { method: 'POST', path: '/v1/policy', body: { when: 'always' } }],
    [{ type: 'open-dashboard' }, null],
    [{ type: 'quit' }, null]
  ])('%j → %j', (action, want) => {
    expect(actionRequest(action)).toEqual(want)
  })

  it('every action in a menu maps to a request or to the shell', () => {
    const v = trayView(input(three, [], {}, [SELF]), NOW)
    const actions = v.menu.flatMap((m) => m.kind === 'action' || m.kind === 'checkbox' ? [m.action] : [])
    expect(actions.map((a) => actionRequest(a)?.path ?? a.type)).toEqual(['open-dashboard', '/v1/resume', '/v1/policy', 'quit'])
  })

  it('puts the token in the dashboard URL\'s fragment, encoded', () => {
    expect(dashboardUrl('http://127.0.0.1:4717', 'ab-_c')).toBe('http://127.0.0.1:4717/#token=ab-_c')
    expect(dashboardUrl('http://127.0.0.1:4717/', 'a+b/c=')).toBe('http://127.0.0.1:4717/#token=a%2Bb%2Fc%3D')
    expect(new URLSearchParams(new URL(dashboardUrl('http://127.0.0.1:1', 'a+b/c=')).hash.slice(1)).get('token')).toBe('a+b/c=')
  })
})

/** Reads a PNG strictly (signature, every chunk's CRC by node:zlib, IHDR, IDAT inflating to the right size); returns its size and alpha values. */
function readPng (buf: Buffer): { width: number; height: number; alpha: number[] } {
  expect(buf.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))
  let at = 8; let width = 0; let height = 0; const idat: Buffer[] = []; const types: string[] = []
  while (at < buf.length) {
    const len = buf.readUInt32BE(at); const type = buf.toString('ascii', at + 4, at + 8); const data = buf.subarray(at + 8, at + 8 + len)
    expect(buf.readUInt32BE(at + 8 + len), `CRC of ${type}`).toBe(zlibCrc32(buf.subarray(at + 4, at + 8 + len)))
    types.push(type)
    if (type === 'IHDR') { width = data.readUInt32BE(0); height = data.readUInt32BE(4); expect([...data.subarray(8)]).toEqual([8, 6, 0, 0, 0]) }
    if (type === 'IDAT') idat.push(data)
    at += 12 + len
  }
  expect(types).toEqual(['IHDR', 'IDAT', 'IEND'])
  const raw = inflateSync(Buffer.concat(idat))
  expect(raw.length).toBe(height * (width * 4 + 1))
  const alpha: number[] = []
  for (let y = 0; y < height; y++) { expect(raw[y * (width * 4 + 1)]).toBe(0); for (let x = 0; x < width; x++) alpha.push(raw[y * (width * 4 + 1) + 1 + x * 4 + 3]!) }
  return { width, height, alpha }
}

describe('icons', () => {
  it('has a 16 px and a 32 px PNG for every health state the model names, as drawn by ui/tray/icons.ts', () => {
    const drawn = allIcons()
    for (const h of HEALTHS) {
      for (const [suffix, size] of [['', 16], ['@2x', 32]] as const) {
        const file = readFileSync(path.join(ICON_DIR, `tray-${h}${suffix}.png`))
        expect(file.equals(drawn.get(`tray-${h}${suffix}.png`)!), `tray-${h}${suffix}.png is stale: node bin/run-ts.js ui/tray/make-icons.ts`).toBe(true)
        const png = readPng(file)
        expect([png.width, png.height]).toEqual([size, size])
        expect(png.alpha[0]).toBe(0) // transparent corner
        // The offline ring is hollow; the others are filled in the middle.
        expect(png.alpha[(size / 2) * size + size / 2]).toBe(h === 'offline' ? 0 : 255)
      }
    }
    expect(readPng(readFileSync(path.join(ICON_DIR, 'app.png')))).toMatchObject({ width: 512, height: 512 })
    // Four distinct pictures.
    expect(new Set(HEALTHS.map((h) => drawn.get(`tray-${h}.png`)!.toString('base64'))).size).toBe(4)
  })
})

describe('the Electron shell', () => {
  const launch = path.join(ICON_DIR, '..', 'launch.mjs')
  const run = promisify(execFile)

  it('bundles ui/tray/main.ts with nothing of the agent in it (electron and node built-ins stay outside)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rs-tray-'))
    try {
      const out = path.join(dir, 'main.mjs')
      await run(process.execPath, [launch, '--build-only', '--out', out], { timeout: 60_000 })
      const code = readFileSync(out, 'utf8')
      const imported = [...code.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]!)
      expect(imported).toContain('electron')
      expect(imported.filter((m) => m !== 'electron' && !m.startsWith('node:'))).toEqual([])
      expect(code).toContain('Render only when idle')
      expect(code).not.toMatch(/libp2p|better-sqlite3/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  const hasElectron = (() => { try { return existsSync(createRequire(import.meta.url)('electron') as string) } catch { return false } })()
  it.skipIf(hasElectron)('npm run tray says clearly that Electron is missing, and how to get it', async () => {
    const err = await run(process.execPath, [launch], { timeout: 30_000 }).then(() => undefined, (e: { code: number; stderr: string }) => e)
    expect(err?.code).toBe(1)
    expect(err?.stderr).toMatch(/^renderswarm tray: Electron is not available here/)
    expect(err?.stderr).toMatch(/npm install electron/)
    expect(err?.stderr).toMatch(/renderswarm open/)
  })
})
