/**
 * Hostile timelines are refused before any ffmpeg renders, and nothing ever reads a canary file
 * outside the asset cache. Real CLI processes (`renderswarm render`) with FFMPEG_PATH/FFPROBE_PATH
 * pointing at wrapper scripts that log every invocation, run under strace (every open and exec
 * of the whole process tree) where strace exists, else the canary's atime is compared (with
 * strictatime not guaranteed, so strace is required when CI=true). The network form (the
 * snapshot a member sends in a submit) is checked through the real wire decoder.
 *
 * Cases: filter injection through every string field, movie=/amovie=, subtitles= with a path,
 * ../ and absolute paths, file:// and http:// URLs, a font outside the cache, a 10^9-frame
 * duration, 10^5 clips. Injection through the text of a text clip is not refused (text may hold
 * any characters): it renders, literally, and the canary is still never opened.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { locateFfmpeg } from '../../agent/ffmpeg.ts'
import { bundledFontPath } from '../../agent/sample.ts'
import { WireError } from '../../protocol/errors.ts'
import { decodeJson } from '../../protocol/framing.ts'
import { CoordinatorRequestSchema } from '../../protocol/messages/jobs.ts'
import { parseSnapshot, TimelineError } from '../../protocol/timeline.ts'
import { BIN } from '../helpers/agents.ts'
import { cleanupTmp, tmpDir } from '../helpers/media.ts'

const hasStrace = (() => { try { execFileSync('strace', ['-V'], { stdio: 'ignore' }); return true } catch { return false } })()
if (!hasStrace && process.env.CI === 'true') throw new Error('CI=true but strace is missing: the canary check needs it')

let dir: string
let canary: string
let canaryFont: string
let callLog: string
let env: Record<string, string>

/** A small valid editor timeline: colour, a text clip on a font asset, 2 frames of 64×64. */
function base (): Record<string, unknown> {
  return {
    schema: 'farm.timeline/1', name: 'hostile', fps: { num: 25, den: 1 }, width: 64, height: 64, duration: 2,
    assets: { font: { path: 'font.ttf' } },
    video: [
      { clips: [{ id: 'bg', type: 'color', color: '#304050', start: 0, length: 2 }] },
      { clips: [{ id: 't', type: 'text', text: 'ok', font: 'font', size: 12, color: '#ffffff', x: 2, y: 2, start: 0, length: 2 }] }
    ]
  }
}
type Edit = (t: Record<string, any>) => void // eslint-disable-line @typescript-eslint/no-explicit-any

interface Run { code: number; stderr: string; calls: string[]; opened: string[] }

/** `renderswarm render` on a timeline (as written by `edit`), traced. */
async function render (name: string, edit: Edit): Promise<Run> {
  const t = base()
  edit(t)
  const file = path.join(dir, `${name}.json`)
  await writeFile(file, JSON.stringify(t))
  await writeFile(callLog, '')
  const trace = path.join(dir, `${name}.strace`)
  const args = [BIN, 'render', file, '-o', path.join(dir, 'out', `${name}.mkv`), '--preset', 'ffv1', '--chunks', '1', '--no-gpu']
  const [cmd, argv] = hasStrace
    ? ['strace', ['-f', '-qq', '-s', '512', '-e', 'trace=open,openat,openat2,execve,stat,newfstatat,statx,access,readlink', '-o', trace, process.execPath, ...args]]
    : [process.execPath, args]
  const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve) => {
    const c = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env }, timeout: 120_000 })
    let err = ''
    c.stderr.on('data', (d: Buffer) => { err += d.toString() })
    c.on('close', (code) => { resolve({ code: code ?? 1, stderr: err }) })
  })
  const calls = (await readFile(callLog, 'utf8')).split('\n').filter((l) => l !== '')
  const opened = hasStrace ? (await readFile(trace, 'utf8')).split('\n').filter((l) => l.includes(path.join(dir, 'canary'))) : []
  return { code, stderr, calls, opened }
}

/** An ffmpeg invocation that renders (compiled graphs always guard inputs or carry a graph). */
const renders = (calls: string[]): string[] => calls.filter((c) => c.startsWith('ffmpeg ') && /-filter_complex|-protocol_whitelist/.test(c))

beforeAll(async () => {
  dir = await tmpDir('hostile')
  await mkdir(path.join(dir, 'canary'))
  await mkdir(path.join(dir, 'out'))
  canary = path.join(dir, 'canary', 'secret.txt')
  canaryFont = path.join(dir, 'canary', 'font.ttf')
  await writeFile(canary, 'the studio\'s secret\n')
  await writeFile(canaryFont, await readFile(bundledFontPath()))
  await writeFile(path.join(dir, 'font.ttf'), await readFile(bundledFontPath()))
  const tools = await locateFfmpeg()
  callLog = path.join(dir, 'calls.log')
  for (const [name, real] of [['ffmpeg', tools.ffmpeg], ['ffprobe', tools.ffprobe]] as const) {
    const w = path.join(dir, 'bin', name)
    await mkdir(path.dirname(w), { recursive: true })
    await writeFile(w, `#!/bin/sh\necho "${name} $*" >> '${callLog}'\nexec '${real}' "$@"\n`)
    await chmod(w, 0o755)
  }
  env = { FFMPEG_PATH: path.join(dir, 'bin', 'ffmpeg'), FFPROBE_PATH: path.join(dir, 'bin', 'ffprobe'), XDG_CACHE_HOME: path.join(dir, 'cache') }
})
afterAll(cleanupTmp)

const REL = '../canary/secret.txt'
const ABS = (): string => canary
/** [name, edit, what the error must say]. Every string field gets an injection attempt. */
const CASES: Array<[string, Edit, RegExp]> = [
  ['id injection', (t) => { t.video[0].clips[0].id = "bg[x];movie=/etc/passwd[y]" }, /id: clip id must be 1–64 letters/],
  ['colour movie=', (t) => { t.video[0].clips[0].color = '#304050:movie=../canary/secret.txt' }, /color: colour must be #RRGGBB/],
  ['text colour amovie=', (t) => { t.video[1].clips[0].color = "white',amovie=/dev/zero" }, /color: colour must be #RRGGBB/],
  ['clip type subtitles=', (t) => { t.video[0].clips[0].type = `subtitles=${REL}` }, /clip type must be "media", "text" or "color"/],
  ['effect subtitles= with a path', (t) => { t.video[1].clips.push({ id: 'm', type: 'media', asset: 'font', start: 0, length: 1, fx: [{ k: `subtitles=filename=${REL}` }] }) }, /unknown effect "subtitles=filename=/],
  ['effect field injection', (t) => { t.video[1].clips.push({ id: 'm', type: 'media', asset: 'font', start: 0, length: 1, fx: [{ k: 'hue', deg: '30,movie=x' }] }) }, /deg: Expected number/],
  ['transition kind sendcmd', (t) => { t.video[0].clips.push({ id: 'c2', type: 'color', color: '#000000', start: 1, length: 1 }); t.video[0].clips[0].length = 2; t.video[0].transitions = [{ a: 'bg', b: 'c2', kind: 'sendcmd=f=/tmp/x' }] }, /kind: Invalid enum value/],
  ['fit injection', (t) => { t.video[1].clips.push({ id: 'm', type: 'media', asset: 'font', start: 0, length: 1, fit: "cover:x='1'" }) }, /fit: Invalid enum value/],
  ['schema swap', (t) => { t.schema = 'farm.timeline/1;movie=x' }, /unknown schema/],
  ['asset ref ../ path', (t) => { t.video[1].clips.push({ id: 'm', type: 'media', asset: REL, start: 0, length: 1 }) }, /looks like a path or URL/],
  ['asset ref absolute path', (t) => { t.video[1].clips.push({ id: 'm', type: 'media', asset: ABS(), start: 0, length: 1 }) }, /looks like a path or URL/],
  ['asset ref file:// URL', (t) => { t.video[1].clips.push({ id: 'm', type: 'media', asset: `file://${ABS()}`, start: 0, length: 1 }) }, /looks like a path or URL/],
  ['asset ref http:// URL', (t) => { t.video[1].clips.push({ id: 'm', type: 'media', asset: 'http://127.0.0.1:9/a.mov', start: 0, length: 1 }) }, /looks like a path or URL/],
  ['lut ref absolute path', (t) => { t.video[1].clips.push({ id: 'm', type: 'media', asset: 'font', start: 0, length: 1, fx: [{ k: 'lut3d', lut: ABS() }] }) }, /looks like a path or URL/],
  ['font outside the cache (absolute path)', (t) => { t.video[1].clips[0].font = canaryFont }, /font: ".*" looks like a path or URL/],
  ['font outside the cache (../)', (t) => { t.video[1].clips[0].font = '../canary/font.ttf' }, /font: ".*" looks like a path or URL/],
  ['asset key that is a path', (t) => { t.assets[REL] = { path: 'font.ttf' } }, /asset keys must be|not a valid asset key|assets/],
  ['10^9-frame duration', (t) => { t.duration = 1e9; t.video[0].clips[0].length = 1e9 }, /duration: 1000000000 frames is over the 24 h limit/],
  ['10^5 clips', (t) => { t.video[0].clips = Array.from({ length: 100_000 }, (_, i) => ({ id: `c${i}`, type: 'color', color: '#000000', start: 0, length: 1 })) }, /clips: must have at most 2000 items/]
]

describe('hostile timelines through the CLI', () => {
  it('the control: a clean timeline renders, and the probes and the render show in the log', async () => {
    const r = await render('clean', () => {})
    expect(r.code, r.stderr).toBe(0)
    expect(renders(r.calls).length).toBeGreaterThan(0)
    if (hasStrace) expect(r.opened).toEqual([])
  })

  it.skipIf(!hasStrace)('the detector works: the editor\'s own assets map may name the canary font, and then the trace shows it read', async () => {
    const r = await render('detector', (t) => { t.assets.font = { path: canaryFont } })
    expect(r.code, r.stderr).toBe(0)
    expect(r.opened.length).toBeGreaterThan(0)
  })

  for (const [name, edit, why] of CASES) {
    it(`refused before ffmpeg renders: ${name}`, async () => {
      const before = hasStrace ? undefined : (await stat(canary)).atimeMs
      const r = await render(name.replace(/[^a-z0-9]+/gi, '-'), edit)
      expect(r.code, r.stderr).not.toBe(0)
      expect(r.stderr).toMatch(why)
      expect(r.stderr).not.toMatch(/\n\s+at /) // no stack trace
      expect(renders(r.calls)).toEqual([])
      expect(r.calls.filter((c) => c.includes('canary'))).toEqual([])
      if (hasStrace) expect(r.opened).toEqual([])
      else expect((await stat(canary)).atimeMs).toBe(before)
    })
  }

  it('injection through the text of a text clip renders the text literally; the canary is never opened', async () => {
    const text = `x',drawtext=textfile=${canary}:text='%{pts} ;movie=${canary}[a];[a]overlay`
    const r = await render('text-injection', (t) => { t.video[1].clips[0].text = text })
    expect(r.code, r.stderr).toBe(0)
    expect(renders(r.calls).length).toBeGreaterThan(0)
    if (hasStrace) expect(r.opened).toEqual([])
    expect(existsSync(path.join(dir, 'out', 'text-injection.mkv'))).toBe(true)
  })
})

describe('hostile snapshots on the wire (what a member sends in a submit)', () => {
  const SHA = 'ab'.repeat(32)
  const snapshot = (): Record<string, any> => ({ // eslint-disable-line @typescript-eslint/no-explicit-any
    schema: 'farm.timeline/1', fps: { num: 25, den: 1 }, width: 64, height: 64, duration: 2,
    video: [{ clips: [{ id: 't', type: 'text', text: 'ok', font: SHA, size: 12, color: '#ffffff', x: 2, y: 2, start: 0, length: 2 }] }], audio: []
  })
  const submit = (timeline: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify({
    type: 'submit',
    job: { id: 'job-1', owner: '12D3KooWDRt1LLtoiW3sf63xyb1jHD5zT8nLK8EAofAjTiRHU2z1', name: 'n', user: 'u', preset: 'ffv1', priority: 'normal', createdMs: 1, timeline, media: {}, assets: [] }
  }))
  const WIRE: Array<[string, (s: Record<string, any>) => void, RegExp]> = [ // eslint-disable-line @typescript-eslint/no-explicit-any
    ['font outside the cache', (s) => { s.video[0].clips[0].font = '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf' }, /font: .* looks like a path or URL; a snapshot names assets only by sha256/],
    ['font ../', (s) => { s.video[0].clips[0].font = '../../canary/font.ttf' }, /looks like a path or URL/],
    ['asset file://', (s) => { s.video[0].clips.push({ id: 'm', type: 'media', asset: 'file:///etc/passwd', start: 0, length: 1 }) }, /looks like a path or URL/],
    ['asset http://', (s) => { s.video[0].clips.push({ id: 'm', type: 'media', asset: 'http://10.0.0.1/x.mov', start: 0, length: 1 }) }, /looks like a path or URL/],
    ['asset key instead of a hash', (s) => { s.video[0].clips.push({ id: 'm', type: 'media', asset: 'clip.mov', start: 0, length: 1 }) }, /is not a sha256/],
    ['movie= in a colour', (s) => { s.video[0].clips.push({ id: 'c', type: 'color', color: 'movie=/etc/passwd', start: 0, length: 1 }) }, /colour must be #RRGGBB/],
    ['10^9 frames', (s) => { s.duration = 1e9 }, /over the 24 h limit/],
    ['10^5 clips', (s) => { s.video[0].clips = Array.from({ length: 100_000 }, (_, i) => ({ id: `c${i}`, type: 'color', color: '#000000', start: 0, length: 1 })) }, /must have at most 2000 items/]
  ]
  for (const [name, edit, why] of WIRE) {
    // A submit is decoded by its schema, then the coordinator runs parseSnapshot on the
    // timeline before planning anything (agent/coordinator.ts); one of the two refuses it.
    it(`refused by the submit decoder or the coordinator's parseSnapshot: ${name}`, () => {
      const s = snapshot()
      edit(s)
      expect(() => parseSnapshot(s)).toThrow(TimelineError)
      expect(() => parseSnapshot(s)).toThrow(why)
      let err: unknown
      try {
        const msg = decodeJson(submit(s), CoordinatorRequestSchema)
        if (msg.type === 'submit') parseSnapshot(msg.job.timeline)
      } catch (e) { err = e }
      expect(err instanceof WireError || err instanceof TimelineError, String(err)).toBe(true)
    })
  }
  it('the clean snapshot passes both (so each refusal above is the edit)', () => {
    expect(parseSnapshot(snapshot()).duration).toBe(2)
    expect(decodeJson(submit(snapshot()), CoordinatorRequestSchema).type).toBe('submit')
  })
})

afterAll(async () => { if (dir !== undefined) await rm(dir, { recursive: true, force: true }) })
