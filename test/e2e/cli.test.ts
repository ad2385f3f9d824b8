/**
 * The CLI as a user meets it: real processes, real ffmpeg. Every bad input is refused with
 * one clear line naming the field, exit code 2, and nothing written (no output, no temp
 * files, nothing in the asset cache).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { locateFfmpeg } from '../../agent/ffmpeg.ts'
import { sha256File } from '../../agent/assets.ts'
import { cleanupTmp, gen, H264, tmpDir } from '../helpers/media.ts'

const BIN = fileURLToPath(new URL('../../bin/renderswarm.js', import.meta.url))
let dir: string
let good: Record<string, unknown>

interface Ran { code: number; stdout: string; stderr: string }
function cli (args: string[], env: Record<string, string> = {}, cwd = dir): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (typeof err.code === 'number' ? err.code : 1), stdout, stderr })
    })
  })
}

beforeAll(async () => {
  dir = await tmpDir('cli')
  const { ffmpeg } = await locateFfmpeg()
  await gen(ffmpeg, path.join(dir, 'media', 'a.mp4'), ['-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25:d=3', '-f', 'lavfi', '-i', 'sine=d=3', ...H264, '-c:a', 'aac', '-shortest'])
  await writeFile(path.join(dir, 'media', 'font.ttf'), await readFile(path.join(path.dirname(fileURLToPath(import.meta.resolve('dejavu-fonts-ttf/package.json'))), 'ttf', 'DejaVuSans.ttf')))
  good = {
    schema: 'farm.timeline/1', fps: { num: 25, den: 1 }, width: 160, height: 120, sampleRate: 48000, duration: 60,
    assets: { a: { path: 'media/a.mp4' }, font: { path: 'media/font.ttf' } },
    video: [
      {
        clips: [
          { id: 'one', type: 'media', asset: 'a', start: 0, length: 30, srcIn: 0 },
          { id: 'two', type: 'media', asset: 'a', start: 25, length: 30, srcIn: 10 },
          { id: 'three', type: 'media', asset: 'a', start: 55, length: 5, srcIn: 0 }
        ],
        transitions: [{ a: 'one', b: 'two', kind: 'dissolve' }]
      },
      { clips: [{ id: 'title', type: 'text', text: 'hello', font: 'font', size: 12, color: '#FFFFFF', x: 4, y: 4, start: 0, length: 20 }] }
    ],
    audio: [{ clips: [{ id: 'snd', type: 'media', asset: 'a', start: 0, length: 50, srcIn: 0 }] }]
  }
})
afterAll(cleanupTmp)

type Mutate = (t: any) => void
const clip = (t: any, i: number): any => t.video[0].clips[i]
const BAD: Array<[string, Mutate, RegExp, string[]?]> = [
  ['unknown schema', (t) => { t.schema = 'farm.timeline/9' }, /^renderswarm: schema: unknown schema "farm\.timeline\/9"/],
  ['missing asset', (t) => { t.assets.a.path = 'media/nope.mp4' }, /assets\.a\.path: cannot read asset "media\/nope\.mp4": ENOENT/],
  ['unreadable asset (a directory)', (t) => { t.assets.a.path = 'media' }, /assets\.a\.path: cannot read asset "media"/],
  ['asset that is not media', (t) => { t.assets.a.path = 'media/font.ttf' }, /assets\.a\.path: probing .*not a readable media file/],
  ['asset hash mismatch', (t) => { t.assets.a.sha256 = '0'.repeat(64) }, /assets\.a\.sha256: asset hash mismatch/],
  ['negative frames', (t) => { clip(t, 0).start = -3 }, /video\[0\]\.clips\[0\]\.start: start must not be negative/],
  ['non-integer frames', (t) => { clip(t, 2).length = 2.5 }, /video\[0\]\.clips\[2\]\.length: length must be a whole number of frames/],
  ['clip past the end', (t) => { clip(t, 2).length = 6 }, /video\[0\]\.clips\[2\]: clip "three" ends at frame 61, past the timeline's end \(60\)/],
  ['source past the media end', (t) => { clip(t, 2).srcIn = 72 }, /video\[0\]\.clips\[2\]: clip "three" needs source frame 76 but its media has 75 frames/],
  ['overlap without a transition', (t) => { t.video[0].transitions = [] }, /video\[0\]\.clips\[1\]: clip "two" overlaps "one" without a transition/],
  ['transition between non-adjacent clips', (t) => { t.video[0].transitions = [{ a: 'one', b: 'three', kind: 'dissolve' }] }, /video\[0\]\.transitions\[0\]: clips "one" and "three" are not adjacent/],
  ['fps 0/0', (t) => { t.fps = { num: 0, den: 0 } }, /fps\.num: fps\.num must be positive/],
  ['odd width', (t) => { t.width = 161 }, /width: must be even/],
  ['height over 8192', (t) => { t.height = 8194 }, /height: must be at most 8192/],
  ['unknown effect', (t) => { clip(t, 0).fx = [{ k: 'movie', filename: '/etc/passwd' }] }, /video\[0\]\.clips\[0\]\.fx\[0\]\.k: unknown effect "movie"/],
  ['text with NUL', (t) => { t.video[1].clips[0].text = 'a\u0000b' }, /video\[1\]\.clips\[0\]\.text: text must not contain NUL/],
  ['a path where an asset key belongs', (t) => { clip(t, 0).asset = '../media/a.mp4' }, /video\[0\]\.clips\[0\]\.asset: "\.\.\/media\/a\.mp4" looks like a path or URL/],
  ['an absolute path as a font', (t) => { t.video[1].clips[0].font = '/etc/passwd' }, /video\[1\]\.clips\[0\]\.font: "\/etc\/passwd" looks like a path or URL/],
  ['a URL where an asset key belongs', (t) => { clip(t, 0).asset = 'http://evil.example/a.mp4' }, /video\[0\]\.clips\[0\]\.asset: "http:\/\/evil\.example\/a\.mp4" looks like a path or URL/],
  ['a URL as an asset path', (t) => { t.assets.a.path = 'file:///etc/passwd' }, /assets\.a\.path: "file:\/\/\/etc\/passwd" is a URL/],
  ['a filter string smuggled into a colour', (t) => { clip(t, 2).type = 'color'; clip(t, 2).color = 'red,movie=/etc/passwd'; delete clip(t, 2).asset; delete clip(t, 2).srcIn }, /video\[0\]\.clips\[2\]\.color: colour must be #RRGGBB/],
  ['unknown field', (t) => { clip(t, 0).filter = 'eq' }, /video\[0\]\.clips\[0\]: Unrecognized key\(s\) in object: 'filter'/],
  ['unknown preset', () => {}, /^renderswarm: unknown preset "vp9"/, ['--preset', 'vp9']],
  ['wrong output extension', () => {}, /^renderswarm: -o: output "out\.mkv" should end in \.mp4 for preset h264/, ['--preset', 'h264']]
]

describe('bad input is refused: exit 2, one line naming the field, nothing written', () => {
  it.each(BAD)('%s', async (_name, mutate, message, extra = []) => {
    const t = structuredClone(good)
    mutate(t)
    const caseDir = await tmpDir('bad')
    const tmp = path.join(caseDir, 'tmp')
    const cache = path.join(caseDir, 'cache')
    await mkdir(tmp)
    await writeFile(path.join(dir, `${_name.replace(/\W+/g, '-')}.json`), JSON.stringify(t))
    const out = path.join(caseDir, 'out.mkv')
    const r = await cli(['render', `${_name.replace(/\W+/g, '-')}.json`, '-o', out, '--chunks', '3', ...extra], { TMPDIR: tmp, XDG_CACHE_HOME: cache })
    expect(r.stderr).toMatch(message)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.code).toBe(2)
    expect(await readdir(caseDir)).toEqual(['tmp'])
    // tsx keeps its transpile cache in TMPDIR (tsx-<uid>); nothing of the render may remain.
    expect((await readdir(tmp)).filter((f) => !f.startsWith('tsx-'))).toEqual([])
  })

  it('invalid JSON and a missing timeline file', async () => {
    await writeFile(path.join(dir, 'broken.json'), '{"schema": ')
    const r1 = await cli(['render', 'broken.json', '-o', 'x.mkv'])
    expect(r1.code).toBe(2)
    expect(r1.stderr).toMatch(/^renderswarm: .*broken\.json is not valid JSON/)
    const r2 = await cli(['render', 'missing.json', '-o', 'x.mkv'])
    expect(r2.code).toBe(2)
    expect(r2.stderr).toMatch(/^renderswarm: cannot read timeline missing\.json/)
  })
})

describe('rendering from the CLI', () => {
  it('prints progress and a summary, or one JSON object with --json', async () => {
    await writeFile(path.join(dir, 'good.json'), JSON.stringify(good))
    const plain = await cli(['render', 'good.json', '-o', 'good.mkv', '--chunks', '3', '--parallel', '2'])
    expect(plain.code).toBe(0)
    expect(plain.stderr.trim().split('\n').at(-1)).toMatch(/^\[#{30}\] 100%\s+60\/60 frames .* chunks 3\/3$/)
    expect(plain.stdout).toMatch(/^rendered 60 frames in [\d.]+ s \([\d.]+ fps\) as 3 chunks with ffv1\n→ .*good\.mkv\n$/)
    const json = await cli(['render', 'good.json', '-o', 'good2.mp4', '--preset', 'h264', '--chunks', '2', '--json'])
    expect(json.code).toBe(0)
    const res = JSON.parse(json.stdout) as { frames: number; output: string; chunks: Array<{ frameRange: number[] }>; audioSeconds: number }
    expect(res.frames).toBe(60)
    expect(res.output).toBe(path.join(dir, 'good2.mp4'))
    expect(res.chunks.map((c) => c.frameRange)).toEqual([[0, 50], [50, 60]])
    expect(Math.abs(res.audioSeconds - 2.4)).toBeLessThanOrEqual(0.04)
    expect(json.stderr).toBe('')
  })

  it('SIGTERM mid-render stops ffmpeg and removes every temporary file', async () => {
    const { spawn } = await import('node:child_process')
    const caseDir = await tmpDir('sigterm')
    const tmp = path.join(caseDir, 'tmp')
    await mkdir(tmp)
    await cli(['sample', 'smp-stop'])
    const child = spawn(process.execPath, [BIN, 'render', 'smp-stop/sample.timeline.json', '-o', path.join(caseDir, 'out.mkv'), '--chunks', '6', '--parallel', '2'], { cwd: dir, env: { ...process.env, TMPDIR: tmp } })
    let stderr = ''
    const code = await new Promise<number | null>((resolve) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString()
        if (/frames/.test(stderr) && !child.killed) child.kill('SIGTERM')
      })
      child.on('close', (c) => resolve(c))
    })
    expect(stderr).toMatch(/render stopped by SIGTERM; temporary files removed/)
    expect(code).toBe(143)
    expect(await readdir(caseDir)).toEqual(['tmp'])
    expect((await readdir(tmp)).filter((f) => !f.startsWith('tsx-'))).toEqual([])
  })

  it('renders an OpenTimelineIO file', async () => {
    const rt = (value: number) => ({ OTIO_SCHEMA: 'RationalTime.1', value, rate: 25 })
    const range = (start: number, duration: number) => ({ OTIO_SCHEMA: 'TimeRange.1', start_time: rt(start), duration: rt(duration) })
    const otioClip = (name: string, start: number, duration: number) => ({
      OTIO_SCHEMA: 'Clip.2', name, source_range: range(start, duration), effects: [], markers: [],
      media_references: { DEFAULT_MEDIA: { OTIO_SCHEMA: 'ExternalReference.1', target_url: 'media/a.mp4', available_range: range(0, 75) } },
      active_media_reference_key: 'DEFAULT_MEDIA'
    })
    const otio = {
      OTIO_SCHEMA: 'Timeline.1', name: 'cut', global_start_time: rt(0),
      tracks: { OTIO_SCHEMA: 'Stack.1', children: [
        { OTIO_SCHEMA: 'Track.1', kind: 'Video', children: [otioClip('one', 0, 20), { OTIO_SCHEMA: 'Gap.1', source_range: range(0, 5) }, otioClip('two', 30, 25)] },
        { OTIO_SCHEMA: 'Track.1', kind: 'Audio', children: [otioClip('snd', 0, 50)] }
      ] }
    }
    await writeFile(path.join(dir, 'cut.otio'), JSON.stringify(otio))
    const r = await cli(['render', 'cut.otio', '-o', 'cut.mkv', '--chunks', '2', '--json'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout).frames).toBe(50)
  })

  it('sample writes a timeline whose assets all exist and hash', async () => {
    const r = await cli(['sample', 'smp'])
    expect(r.code).toBe(0)
    const t = JSON.parse(await readFile(path.join(dir, 'smp', 'sample.timeline.json'), 'utf8')) as { duration: number; width: number; assets: Record<string, { path: string }>; video: unknown[]; audio: unknown[] }
    expect(t.duration).toBe(600)
    expect(t.width).toBe(1280)
    expect(t.audio).toHaveLength(2)
    for (const a of Object.values(t.assets)) expect(await sha256File(path.join(dir, 'smp', a.path))).toMatch(/^[0-9a-f]{64}$/)
  })

  it('unknown commands and bad numbers are usage errors (exit 2)', async () => {
    expect((await cli(['frobnicate'])).code).toBe(2)
    const r = await cli(['render', 'good.json', '-o', 'z.mkv', '--chunks', 'many'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--chunks must be a whole number/)
  })
})
