/**
 * The dashboard (M30) in real headless Chromium against a real farm: three agent processes
 * and an editor's workstation (--slots 0) on four network-namespace hosts (startFarm), real
 * ffmpeg. Chromium runs inside the editor's namespace (test/helpers/browser.ts) and opens the
 * URL `renderswarm open --no-browser` prints there, as a user at that workstation would: the
 * editor's agent serves the page on its 127.0.0.1.
 *
 * It proves: static files only without the token, CSP, no CORS, the fragment token becomes an
 * HttpOnly SameSite=Strict cookie that works only same-origin; three rendering nodes and a
 * job's progress rising to 100 %; Pause all stops new chunk leases (checked through the API)
 * until Resume all; the submit dialog shows the estimate and submits a job that completes; the
 * chunk timeline matches the API's chunks; Emergency stop asks first, then cuts the renders in
 * flight (their chunks go back to the queue and render again after Resume all). Screenshots go to
 * RS_ARTIFACTS_DIR when set (docs/img/ holds copies). Needs root, iproute2 and chromium:
 * skipped without them, except under CI=true where it must run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { locateFfmpeg, type FfmpegTools } from '../../agent/ffmpeg.ts'
import { bundledFontPath, writeSample } from '../../agent/sample.ts'
import { CHROMIUM, hasChromium, launchChromium, watchPage, type PageWatch } from '../helpers/browser.ts'
import { cleanupTmp, run, tmpDir, writeKitchenSink } from '../helpers/media.ts'
import { canUseNetns, createLan, destroyLan, type Lan } from '../helpers/netns.ts'
import { cli, killAll, startFarm, statusOf, type AgentProc } from '../helpers/agents.ts'
import { waitFor } from '../helpers/wait.ts'

const canRun = canUseNetns() && hasChromium()
if (!canRun && process.env.CI === 'true') throw new Error('the dashboard tests need root, iproute2 (ip) and chromium (/usr/bin/chromium); CI runs as root: .ci/run installs them')
if (!canRun) console.warn(`dashboard browser tests skipped: ${hasChromium() ? 'network namespaces need root and iproute2' : `no chromium at ${CHROMIUM} (apt-get install chromium, or set RENDERSWARM_CHROMIUM)`}`)

interface Chunk { id: string; frameRange: [number, number]; status: string; node?: string; attempts: number; startedAt?: number; endedAt?: number }
interface Job { jobId: string; name: string; status: string; frames: number; framesDone: number; output?: string; error?: string; chunks: Chunk[] }

let lan: Lan | undefined
let dir: string
let tools: FfmpegTools
let editor: AgentProc
let editorNs: string
let workers: AgentProc[] = []
let browser: Browser | undefined
let page: Page
let seen: PageWatch
let dashUrl: string
let origin: string
let kitchen: string
let sample: string
/** Frames of a 1280x720 title timeline that the coordinator cuts into about 12 chunks (from the workers' benchmarks). */
let manyChunkFrames: number
const shots: string[] = []

async function shot (name: string): Promise<void> {
  const out = process.env.RS_ARTIFACTS_DIR ?? path.join(dir, 'artifacts')
  await mkdir(out, { recursive: true })
  const file = path.join(out, `${name}.png`)
  await page.screenshot({ path: file, fullPage: true })
  shots.push(file)
}

async function jobs (): Promise<Job[]> {
  return (await statusOf<{ jobs: Job[] }>(editorNs, editor.stateDir, 'jobs')).jobs
}
async function jobOf (jobId: string): Promise<Job> {
  const j = (await jobs()).find((x) => x.jobId === jobId)
  if (j === undefined) throw new Error(`job ${jobId} is not in the editor's list`)
  return j
}

async function submitDetached (timeline: string, out: string): Promise<string> {
  const r = await cli(editorNs, ['submit', timeline, '-o', out, '--detach', '--json', '--state-dir', editor.stateDir])
  if (r.code !== 0) throw new Error(`submit: ${r.stderr}`)
  return (JSON.parse(r.stdout) as Job).jobId
}

/** A colour + title timeline (the font is its one asset). */
async function titleTimeline (name: string, frames: number): Promise<string> {
  const d = path.join(dir, name)
  await mkdir(d, { recursive: true })
  await copyFile(bundledFontPath(), path.join(d, 'font.ttf'))
  const t = {
    schema: 'farm.timeline/1', name, fps: { num: 25, den: 1 }, width: 1280, height: 720, duration: frames, assets: { font: { path: 'font.ttf' } },
    video: [
      { clips: [{ id: 'bg', type: 'color', color: '#203040', start: 0, length: frames }] },
      { clips: [{ id: 't', type: 'text', text: name, font: 'font', size: 64, color: '#FFFFFF', x: 60, y: 60, start: 0, length: frames }] }
    ]
  }
  const file = path.join(d, 'timeline.json')
  await writeFile(file, JSON.stringify(t))
  return file
}

/** A raw HTTP request from inside the editor's namespace (headers a browser would not let a test set). */
async function rawHttp (method: string, route: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const script = path.join(dir, 'http.mjs')
  if (!existsSync(script)) {
    await writeFile(script, `import http from 'node:http'
const [url, method, headers, body] = JSON.parse(process.argv[2])
const req = http.request(url, { method, headers, timeout: 10000 }, (res) => {
  let text = ''
  res.setEncoding('utf8'); res.on('data', (d) => { text += d })
  res.on('end', () => { process.stdout.write(JSON.stringify({ status: res.statusCode, headers: res.headers, body: text.slice(0, 20000) })) })
})
req.on('error', (e) => { process.stdout.write(JSON.stringify({ status: 0, headers: {}, body: e.message })) })
if (body !== null) req.write(body)
req.end()
`)
  }
  const r = await run('ip', ['netns', 'exec', editorNs, process.execPath, script, JSON.stringify([origin + route, method, headers, body ?? null])], { timeout: 20_000 })
  return JSON.parse(r.stdout) as { status: number; headers: Record<string, string>; body: string }
}

/** Once the page shows all three nodes paused: Resume all, then wait for the job to be done. */
async function resumeAllUntilDone (row: string, jobId: string): Promise<{ done: Job; resumedAt: number }> {
  await page.waitForFunction(() => Array.from(document.querySelectorAll('[data-test=node-row]')).filter((r) => r.getAttribute('data-activity') === 'paused').length === 3, null, { timeout: 10_000 })
  await page.click('[data-test=resume-all]')
  const resumedAt = Date.now()
  await page.waitForSelector(`${row}[data-status=done]`, { timeout: 120_000 })
  const done = await jobOf(jobId)
  expect(done.status, done.error).toBe('done')
  return { done, resumedAt }
}

/** data-activity of each node row, by node name. */
async function nodeActivities (): Promise<Record<string, string>> {
  return await page.$$eval('[data-test=node-row]', (rows) => Object.fromEntries(rows.map((r) => [r.getAttribute('data-node'), r.getAttribute('data-activity')])))
}

describe.skipIf(!canRun)('the dashboard in headless Chromium against a real three-agent farm', () => {
  beforeAll(async () => {
    // The page under test is this checkout's sources, built the way `npm install` builds them.
    await run(process.execPath, [path.resolve('node_modules/vite/bin/vite.js'), 'build', '--config', 'ui/dashboard/vite.config.ts'], { timeout: 120_000 })
    dir = await tmpDir('dashboard')
    tools = await locateFfmpeg()
    lan = createLan(`rd${process.pid % 100000}`, 4, `10.79.${process.pid % 200}`)
    // Chunks of about 2 s of one node's work, so a job has several and a pause lands between them.
    const farm = await startFarm(lan.hosts, dir, ['--chunk-seconds', '2'])
    workers = farm.workers
    editor = farm.editor
    editorNs = farm.hosts[3]!.ns
    kitchen = await writeKitchenSink(path.join(dir, 'kitchen'), tools.ffmpeg)
    sample = await writeSample(path.join(dir, 'sample'), tools)
    // The coordinator sizes chunks from the workers' benchmarks scaled by a probe of the job's own
    // timeline, which this machine's load moves a lot: ask the farm's own estimate how many frames
    // a chunk of this timeline gets, and size the pause test's job to about 12 chunks.
    const probe = await titleTimeline('sizing', 3000)
    const est = await cli(editorNs, ['estimate', probe, '--json', '--state-dir', editor.stateDir])
    expect(est.code, est.stderr).toBe(0)
    const chunks = (JSON.parse(est.stdout) as { chunks: number }).chunks
    manyChunkFrames = Math.max(48, Math.round(12 * 3000 / chunks))
    console.log(`a 3000-frame title timeline is cut into ${chunks} chunks: pause/stop jobs of ${manyChunkFrames} frames`)
    const open = await cli(editorNs, ['open', '--no-browser', '--state-dir', editor.stateDir])
    expect(open.code, open.stderr).toBe(0)
    dashUrl = open.stdout.trim()
    expect(dashUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/#token=[A-Za-z0-9_-]+$/)
    origin = new URL(dashUrl).origin
    browser = await launchChromium({ dir, netns: editorNs })
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } })
    seen = watchPage(page)
  }, 240_000)

  afterAll(async () => {
    if (process.env.RS_DEBUG_NETNS === '1') for (const a of [...workers, editor]) console.log(a.log.join('\n'))
    if (shots.length > 0) console.log(`screenshots: ${shots.join(' ')}`)
    await browser?.close().catch(() => {})
    await killAll()
    if (lan !== undefined) destroyLan(lan)
    await cleanupTmp()
  })

  it('serves only static files without the token (CSP, no CORS); the fragment token becomes an HttpOnly cookie that works same-origin only', async () => {
    const index = await rawHttp('GET', '/')
    expect(index.status).toBe(200)
    expect(index.headers['content-security-policy']).toMatch(/default-src 'self'/)
    expect(index.headers['access-control-allow-origin']).toBeUndefined()
    expect(index.body).toContain('<div id="app">')
    const token = new URL(dashUrl).hash.replace('#token=', '')
    expect(index.body).not.toContain(token)
    expect((await rawHttp('GET', '/v1/status')).status).toBe(401)
    expect((await rawHttp('GET', '/..%2f..%2fapi.json')).status).toBe(404)
    expect((await rawHttp('GET', '/assets/..%2f..%2f..%2fstate.db')).status).toBe(404)
    expect((await rawHttp('OPTIONS', '/v1/jobs', { origin: 'http://evil.example', 'access-control-request-method': 'POST' })).headers['access-control-allow-origin']).toBeUndefined()
    // The handshake needs the token itself; a cookie is accepted only from this API's own page.
    expect((await rawHttp('POST', '/v1/session')).status).toBe(401)
    const session = await rawHttp('POST', '/v1/session', { authorization: `Bearer ${token}` })
    expect(session.status).toBe(204)
    const setCookie = String(session.headers['set-cookie'])
    expect(setCookie).toMatch(/HttpOnly/)
    expect(setCookie).toMatch(/SameSite=Strict/)
    const cookie = setCookie.split(';')[0]!
    const host = new URL(origin).host
    expect((await rawHttp('GET', '/v1/status', { cookie, 'sec-fetch-site': 'same-origin' })).status).toBe(200)
    expect((await rawHttp('GET', '/v1/status', { cookie, 'sec-fetch-site': 'same-site' })).status).toBe(401)
    expect((await rawHttp('GET', '/v1/status', { cookie, host: `rebound.example:${new URL(origin).port}` })).status).toBe(401)
    expect((await rawHttp('POST', '/v1/estimate', { cookie, origin: 'http://127.0.0.1:1' }, '{}')).status).toBe(401)
    // Authenticated (same origin): refused for its body, not for who sent it.
    const est = await rawHttp('POST', '/v1/estimate', { cookie, origin, host, 'content-type': 'application/json' }, '{}')
    expect(est.status).toBe(400)
    expect(est.body).toMatch(/timeline/)

    await page.goto(dashUrl)
    await page.waitForSelector('[data-test=link][data-state=live]', { timeout: 20_000 })
    await page.waitForSelector('[data-test=node-row]')
    expect(page.url()).toBe(`${origin}/`) // the token left the address bar
    expect(await page.evaluate(() => document.cookie)).toBe('') // HttpOnly: scripts cannot read it
    const cookies = await page.context().cookies()
    expect(cookies.find((c) => c.name === `rs_session_${new URL(origin).port}`)).toMatchObject({ httpOnly: true, sameSite: 'Strict' })
    await page.waitForFunction(() => document.querySelectorAll('[data-test=node-row]').length === 4, null, { timeout: 10_000 })
    expect(await nodeActivities()).toEqual({ alpha: 'idle', beta: 'idle', gamma: 'idle', editor: 'editor' })
    expect(await page.textContent('[data-test=card-nodes] .card-value')).toBe('4 / 4')
    expect(await page.getAttribute('[data-test=scale-up]', 'title')).toBe('cloud scaling not configured')
    expect(await page.isDisabled('[data-test=scale-up]')).toBe(true)
    await shot('dashboard-idle')
    // Everything the page loaded came from the agent; nothing from the internet, no CSP violation.
    expect(seen.requests.filter((u) => !u.startsWith(origin + '/'))).toEqual([])
    expect(seen.errors).toEqual([])
  }, 60_000)

  it('shows three nodes rendering a real job and its progress rising to 100 %; the chunk timeline matches the API', async () => {
    const jobId = await submitDetached(sample, path.join(dir, 'sample-farm.mkv'))
    const row = `[data-test=job-row][data-job="${jobId}"]`
    await page.waitForSelector(row, { timeout: 20_000 })
    await page.waitForFunction(() => document.querySelectorAll('[data-test=node-row][data-activity=rendering]').length === 3, null, { timeout: 60_000, polling: 50 })
    expect(await nodeActivities()).toEqual({ alpha: 'rendering', beta: 'rendering', gamma: 'rendering', editor: 'editor' })
    await shot('dashboard-rendering-start')
    // The bar's value as the page shows it, sampled until the job is done (bounded).
    const values: number[] = []
    let midShot = false
    let fastestFps = 0
    const end = Date.now() + 120_000
    while (Date.now() < end) {
      const v = Number(await page.getAttribute(`${row} [role=progressbar]`, 'aria-valuenow'))
      if (values.at(-1) !== v) values.push(v)
      fastestFps = Math.max(fastestFps, parseFloat(await page.textContent('[data-test=card-fps] .card-value') ?? '0'))
      if (!midShot && v >= 30 && Object.values(await nodeActivities()).filter((a) => a === 'rendering').length === 3) { await shot('dashboard-rendering'); midShot = true }
      if (await page.getAttribute(row, 'data-status') === 'done') break
      await new Promise((r) => setTimeout(r, 100))
    }
    console.log(`progress as the dashboard showed it: ${values.join(' → ')} %; fastest farm speed shown ${fastestFps} fps`)
    expect(fastestFps).toBeGreaterThan(0)
    expect(values.at(-1)).toBe(100)
    expect(values.filter((v) => v > 0 && v < 100).length).toBeGreaterThanOrEqual(2) // it rose, not jumped
    for (let i = 1; i < values.length; i++) expect(values[i]!).toBeGreaterThanOrEqual(values[i - 1]! - 5) // allowing an older record to land after a progress push
    const job = await jobOf(jobId)
    expect(job.status, job.error).toBe('done')
    expect(existsSync(job.output!)).toBe(true)

    await page.click(`${row} button:has-text("Chunks")`)
    await page.waitForSelector(`[data-test=job-detail][data-job="${jobId}"] [data-test=chunk-bar]`)
    const bars = await page.$$eval('[data-test=chunk-bar]', (els) => els.map((e) => ({ chunk: e.getAttribute('data-chunk'), node: e.closest('[data-test=lane]')!.getAttribute('data-node') })))
    const names = new Map((await statusOf<{ nodes: Array<{ peerId: string; name: string }> }>(editorNs, editor.stateDir, 'nodes')).nodes.map((n) => [n.peerId, n.name]))
    expect(bars.map((b) => `${b.chunk}@${b.node}`).sort()).toEqual(job.chunks.map((c) => `${c.id}@${names.get(c.node!)}`).sort())
    expect(new Set(bars.map((b) => b.node))).toEqual(new Set(['alpha', 'beta', 'gamma']))
    await shot('dashboard-job-timeline')
    await page.click('[data-test=job-detail] button:has-text("Close")')
  }, 180_000)

  it('Pause all stops new chunks from starting (no lease after the pause, checked through the API); Resume all finishes the job', async () => {
    const t = await titleTimeline('pause-all', manyChunkFrames)
    const jobId = await submitDetached(t, path.join(dir, 'pause.mkv'))
    const row = `[data-test=job-row][data-job="${jobId}"]`
    // Pause as soon as the dashboard shows the job under way: most of its chunks are still queued.
    await page.waitForSelector(`${row}[data-status=running]`, { timeout: 60_000 })
    const [res] = await Promise.all([page.waitForResponse((r) => r.url() === `${origin}/v1/pause` && r.request().method() === 'POST'), page.click('[data-test=pause-all]')])
    const pausedAt = Date.now()
    let resumed = false
    try {
      expect(res.status()).toBe(200)
      // Chunks in flight finish; none starts after the pause.
      const settled = await waitFor(async () => { const j = await jobOf(jobId); return j.chunks.every((c) => c.status !== 'leased') ? j : undefined }, 60_000, 'leased chunks to finish', 300)
      await new Promise((r) => setTimeout(r, 2500)) // several scheduler ticks with every node paused
      const held = await jobOf(jobId)
      const late = held.chunks.filter((c) => c.startedAt !== undefined && c.startedAt > pausedAt)
      console.log(`pause: ${held.chunks.length} chunks, ${held.chunks.filter((c) => c.status === 'done').length} done, ${held.chunks.filter((c) => c.status === 'queued').length} queued, ${late.length} started after the pause`)
      expect(held.chunks.length).toBeGreaterThanOrEqual(6)
      expect(late).toEqual([])
      expect(held.status).not.toBe('done')
      expect(held.chunks.filter((c) => c.status === 'queued').length).toBeGreaterThan(0)
      expect(held.chunks.map((c) => c.status)).toEqual(settled.chunks.map((c) => c.status))
      await page.waitForFunction(() => Array.from(document.querySelectorAll('[data-test=node-row]')).filter((r) => r.getAttribute('data-activity') === 'paused').length === 3, null, { timeout: 10_000 })
      await shot('dashboard-paused')
      // A reload has no token in its URL any more: the session cookie alone carries it, and the
      // fresh snapshot still knows every node is paused.
      await page.reload()
      await page.waitForSelector('[data-test=link][data-state=live]', { timeout: 20_000 })
      const { done, resumedAt } = await resumeAllUntilDone(row, jobId)
      resumed = true
      expect(done.chunks.some((c) => c.startedAt! >= resumedAt - 1000)).toBe(true)
      // Its timeline: every chunk once, on the node the API names, with the pause as a gap.
      await page.click(`${row} button:has-text("Chunks")`)
      await page.waitForSelector(`[data-test=job-detail][data-job="${jobId}"] [data-test=chunk-bar]`)
      expect(await page.$$eval('[data-test=chunk-bar]', (els) => els.length)).toBe(done.chunks.length)
      await shot('dashboard-job-timeline-paused')
      await page.click('[data-test=job-detail] button:has-text("Close")')
    } finally {
      // Later tests need a working farm even when this one failed half-way.
      if (!resumed) await cli(editorNs, ['resume', '--all', '--state-dir', editor.stateDir])
    }
  }, 240_000)

  it('the submit dialog shows the estimate (time, cost range, servers, completion) before Submit, and submits a job that completes', async () => {
    const out = path.join(dir, 'from-dialog.mkv')
    await page.click('[data-test=open-submit]')
    const dialog = '[data-test=submit-dialog]'
    await page.waitForSelector(`${dialog}[open]`)
    expect(await page.isDisabled('[data-test=submit-job]')).toBe(true)
    expect(await page.isDisabled('[data-test=spot-toggle]')).toBe(true)
    await page.fill(`${dialog} input[name=timeline]`, path.join(dir, 'missing.json'))
    await page.waitForSelector('[data-test=estimate][data-state=error]', { timeout: 20_000 })
    expect(await page.textContent('[data-test=estimate]')).toMatch(/timeline.*cannot read/)
    expect(await page.isDisabled('[data-test=submit-job]')).toBe(true)
    await page.fill(`${dialog} input[name=timeline]`, kitchen)
    await page.fill(`${dialog} input[name=output]`, out)
    await page.selectOption(`${dialog} select[name=priority]`, 'high')
    await page.waitForSelector('[data-test=estimate][data-state=ok]', { timeout: 20_000 })
    expect(await page.textContent('[data-test=est-servers]')).toMatch(/^3 \(\d+ chunks\)$/)
    expect(await page.textContent('[data-test=est-time]')).toMatch(/^\d+:\d\d \(\d+:\d\d–\d+:\d\d\)$/)
    expect(await page.textContent('[data-test=est-cost]')).toMatch(/\$.*–.*\$/)
    expect(await page.textContent('[data-test=est-done]')).toMatch(/^\d\d:\d\d:\d\d$/)
    expect(await page.isEnabled('[data-test=submit-job]')).toBe(true)
    await shot('dashboard-submit-dialog')
    const [res] = await Promise.all([page.waitForResponse((r) => r.url() === `${origin}/v1/jobs` && r.request().method() === 'POST'), page.click('[data-test=submit-job]')])
    expect(res.status()).toBe(201)
    const jobId = ((await res.json()) as { job: Job }).job.jobId
    await page.waitForSelector(`${dialog}:not([open])`, { state: 'attached' })
    await page.waitForSelector(`[data-test=job-row][data-job="${jobId}"][data-status=done]`, { timeout: 120_000 })
    const job = await jobOf(jobId)
    expect(job.status, job.error).toBe('done')
    expect(job.output).toBe(out)
    expect(existsSync(out)).toBe(true)
    expect((await readFile(out)).length).toBeGreaterThan(1000)
  }, 180_000)

  it('Emergency stop asks first; confirmed, it cuts the renders in flight (their chunks go back to the queue) and pauses every node', async () => {
    const t = await titleTimeline('emergency', manyChunkFrames)
    const jobId = await submitDetached(t, path.join(dir, 'emergency.mkv'))
    const row = `[data-test=job-row][data-job="${jobId}"]`
    await page.waitForSelector('[data-test=node-row][data-activity=rendering] [data-test=node-chunk][data-chunk]', { timeout: 60_000 })
    const posted: string[] = []
    const onRequest = (r: { method: () => string; url: () => string }): void => { if (r.method() === 'POST') posted.push(new URL(r.url()).pathname) }
    page.on('request', onRequest)
    page.once('dialog', (d) => { void d.dismiss() })
    await page.click('[data-test=emergency-stop]')
    await new Promise((r) => setTimeout(r, 300))
    expect(posted).toEqual([]) // dismissed: nothing sent
    page.off('request', onRequest)
    page.once('dialog', (d) => { void d.accept() })
    // The chunks the page shows in flight right before the stop.
    const inFlight = await page.$$eval('[data-test=node-chunk][data-chunk]', (els) => els.map((e) => e.getAttribute('data-chunk')!))
    const [res] = await Promise.all([page.waitForResponse((r) => r.url() === `${origin}/v1/stop`), page.click('[data-test=emergency-stop]')])
    expect(res.status()).toBe(200)
    let resumed = false
    try {
      const after = await jobOf(jobId)
      expect(after.chunks.filter((c) => c.status === 'leased')).toEqual([]) // every lease taken back at once
      const cut = after.chunks.filter((c) => inFlight.includes(c.id) && c.status === 'queued').map((c) => c.id)
      console.log(`emergency stop: ${inFlight.length} chunk(s) in flight on the page, ${cut.length} of them back in the queue`)
      expect(cut.length).toBeGreaterThan(0)
      const { done, resumedAt } = await resumeAllUntilDone(row, jobId)
      resumed = true
      // The cut chunks were rendered again after the resume.
      for (const id of cut) expect(done.chunks.find((c) => c.id === id)!.startedAt!).toBeGreaterThanOrEqual(resumedAt - 1000)
    } finally {
      if (!resumed) await cli(editorNs, ['resume', '--all', '--state-dir', editor.stateDir])
    }
    expect(seen.errors.filter((e) => !/status of 400/.test(e))).toEqual([]) // the 400 is the missing timeline's estimate above
  }, 240_000)

  it('`renderswarm open` hands the URL to the desktop opener as one argument', async () => {
    const bin = path.join(dir, 'bin')
    await mkdir(bin, { recursive: true })
    const got = path.join(dir, 'opened.txt')
    await writeFile(path.join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s\\n' "$#" "$@" > ${JSON.stringify(got)}\n`, { mode: 0o755 })
    const r = await run(process.execPath, [path.resolve('bin/renderswarm.js'), 'open', '--state-dir', editor.stateDir], { env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` }, timeout: 60_000 })
    expect(r.stdout.trim()).toBe(dashUrl)
    const lines = (await waitFor(async () => existsSync(got) ? await readFile(got, 'utf8') : undefined, 10_000, 'the opener to run')).trim().split('\n')
    expect(lines).toEqual(['1', dashUrl])
  }, 60_000)
})
