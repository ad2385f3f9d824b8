import { describe, expect, it } from 'vitest'
import { parseSnapshot, parseTimelineFile, TimelineError, LIMITS } from '../../protocol/timeline.ts'

const SHA = 'c'.repeat(64)
const snapshot = (): any => ({
  schema: 'farm.timeline/1', fps: { num: 30000, den: 1001 }, width: 1920, height: 1080, sampleRate: 48000, duration: 300,
  video: [{
    clips: [
      { id: 'a', type: 'media', asset: SHA, start: 0, length: 120, srcIn: 0 },
      { id: 'b', type: 'media', asset: SHA, start: 100, length: 100, srcIn: 0, fx: [{ k: 'gblur', sigma: 2 }] },
      { id: 'c', type: 'color', color: '#000000', start: 200, length: 100 }
    ],
    transitions: [{ a: 'a', b: 'b', kind: 'wipeleft' }]
  }],
  audio: [{ clips: [{ id: 's', type: 'media', asset: SHA, start: 0, length: 300, srcIn: 0 }] }]
})

function refusal (mutate: (t: any) => void, form: 'snapshot' | 'file' = 'snapshot'): TimelineError {
  const t = snapshot()
  if (form === 'file') {
    t.assets = { clip: { path: 'a.mp4' } }
    for (const tr of [...t.video, ...t.audio]) for (const c of tr.clips) if (c.asset !== undefined) c.asset = 'clip'
  }
  mutate(t)
  try {
    if (form === 'file') parseTimelineFile(t)
    else parseSnapshot(t)
  } catch (err) {
    expect(err).toBeInstanceOf(TimelineError)
    return err as TimelineError
  }
  throw new Error('expected a refusal')
}

describe('farm.timeline/1 validation', () => {
  it('accepts a valid snapshot and applies defaults', () => {
    const t = snapshot()
    delete t.audio[0].clips[0].srcIn
    const parsed = parseSnapshot(t)
    expect(parsed.audio[0]!.clips[0]!.srcIn).toBe(0)
    expect(parsed.fps).toEqual({ num: 30000, den: 1001 })
  })

  it.each([
    ['unknown schema', (t: any) => { t.schema = 'x' }, 'schema', /unknown schema/],
    ['fps 0/0', (t: any) => { t.fps = { num: 0, den: 0 } }, 'fps.num', /positive/],
    ['fps over the limit', (t: any) => { t.fps = { num: 1000, den: 1 } }, 'fps', /over 240 fps/],
    ['odd width', (t: any) => { t.width = 1921 }, 'width', /even/],
    ['huge height', (t: any) => { t.height = 10000 }, 'height', /at most 8192/],
    ['a 10^9-frame duration', (t: any) => { t.duration = 1e9 }, 'duration', /over the 24 h limit/],
    ['negative start', (t: any) => { t.video[0].clips[2].start = -1 }, 'video[0].clips[2].start', /negative/],
    ['fractional length', (t: any) => { t.video[0].clips[2].length = 1.5 }, 'video[0].clips[2].length', /whole number/],
    ['string frames', (t: any) => { t.video[0].clips[2].length = '10' }, 'video[0].clips[2].length', /must be a number of frames/],
    ['clip past the end', (t: any) => { t.video[0].clips[2].length = 101 }, 'video[0].clips[2]', /past the timeline's end/],
    ['duplicate ids', (t: any) => { t.video[0].clips[2].id = 'a' }, 'video[0].clips[2].id', /duplicate clip id "a"/],
    ['overlap without a transition', (t: any) => { t.video[0].transitions = [] }, 'video[0].clips[1]', /overlaps "a" without a transition/],
    ['transition between non-adjacent clips', (t: any) => { t.video[0].transitions = [{ a: 'a', b: 'c', kind: 'dissolve' }] }, 'video[0].transitions[0]', /not adjacent/],
    ['transition naming a missing clip', (t: any) => { t.video[0].transitions[0].b = 'zz' }, 'video[0].transitions[0].b', /no clip "zz"/],
    ['transition without overlap', (t: any) => { t.video[0].clips[1].start = 120; t.video[0].clips[1].length = 80 }, 'video[0].transitions[0]', /do not overlap/],
    ['unknown transition kind', (t: any) => { t.video[0].transitions[0].kind = 'xfade' }, 'video[0].transitions[0].kind', /Invalid enum value/],
    ['unknown effect', (t: any) => { t.video[0].clips[1].fx = [{ k: 'frei0r' }] }, 'video[0].clips[1].fx[0].k', /unknown effect "frei0r"/],
    ['effect out of range', (t: any) => { t.video[0].clips[1].fx = [{ k: 'gblur', sigma: 1e9 }] }, 'video[0].clips[1].fx[0].sigma', /less than or equal to 100/],
    ['a path as an asset', (t: any) => { t.video[0].clips[0].asset = '/etc/passwd' }, 'video[0].clips[0].asset', /looks like a path or URL; a snapshot names assets only by sha256/],
    ['a URL as an asset', (t: any) => { t.video[0].clips[0].asset = 'https://x/y' }, 'video[0].clips[0].asset', /looks like a path or URL/],
    ['a short hash', (t: any) => { t.video[0].clips[0].asset = 'abc' }, 'video[0].clips[0].asset', /not a sha256/],
    ['uppercase hash', (t: any) => { t.video[0].clips[0].asset = SHA.toUpperCase() }, 'video[0].clips[0].asset', /not a sha256/],
    ['a colour with a filter in it', (t: any) => { t.video[0].clips[2].color = 'black:movie=x' }, 'video[0].clips[2].color', /#RRGGBB/],
    ['an id with filter syntax', (t: any) => { t.video[0].clips[2].id = 'c];[x' }, 'video[0].clips[2].id', /clip id must be/],
    ['speed with too many decimals', (t: any) => { t.video[0].clips[0].speed = 1.0001 }, 'video[0].clips[0].speed', /at most 3 decimals/],
    ['an unknown field', (t: any) => { t.video[0].clips[0].args = ['-i', 'x'] }, 'video[0].clips[0]', /Unrecognized key/],
    ['fades longer than the clip', (t: any) => { t.video[0].clips[0].fadeIn = 100; t.video[0].clips[0].fadeOut = 21 }, 'video[0].clips[0]', /fadeIn \+ fadeOut \(121\) is longer than the clip \(120\)/],
    ['too many clips (10^5)', (t: any) => { t.video = [{ clips: Array.from({ length: 100_000 }, (_, i) => ({ id: `k${i}`, type: 'color', color: '#000000', start: 0, length: 1 })) }] }, 'video[0].clips', new RegExp(`at most ${LIMITS.maxClips}|${LIMITS.maxClips}`)]
  ])('refuses %s', (_name, mutate, field, message) => {
    const err = refusal(mutate)
    expect(err.field).toBe(field)
    expect(err.problem).toMatch(message)
    expect(err.message).toBe(`${field}: ${err.problem}`)
  })

  it('refuses text with NUL or control characters', () => {
    const mk = (text: string) => (t: any) => { t.video.push({ clips: [{ id: 'tt', type: 'text', text, font: SHA, size: 20, color: '#ffffff', x: 0, y: 0, start: 0, length: 10 }] }) }
    expect(refusal(mk('a\u0000b')).problem).toMatch(/NUL/)
    expect(refusal(mk('a\u001bb')).problem).toMatch(/control characters/)
    expect(() => parseSnapshot((() => { const t = snapshot(); mk('two\nlines — ünïcode')(t); return t })())).not.toThrow()
  })

  it('editor form: keys must be in the assets map and never look like paths', () => {
    expect(refusal((t) => { t.video[0].clips[0].asset = 'nope' }, 'file').problem).toMatch(/asset "nope" is not in the top-level "assets" map/)
    expect(refusal((t) => { t.video[0].clips[0].asset = '../a.mp4' }, 'file').problem).toMatch(/looks like a path or URL; name media by a key/)
    expect(refusal((t) => { t.video[0].clips[0].asset = 'C:\\media\\a.mp4' }, 'file').problem).toMatch(/looks like a path or URL/)
    expect(refusal((t) => { t.assets['../x'] = { path: 'x' } }, 'file').field).toBe('assets.../x')
    expect(refusal((t) => { t.assets.clip.sha256 = 'zz' }, 'file').problem).toMatch(/64 lowercase hex/)
  })
})
