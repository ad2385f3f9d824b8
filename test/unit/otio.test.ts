import { describe, it, expect } from 'vitest'
import { importOtio, fpsFromRate } from '../../protocol/otio.ts'
import { parseTimelineFile, TimelineError } from '../../protocol/timeline.ts'

const NTSC = 30000 / 1001
const rt = (value: number, rate = NTSC) => ({ OTIO_SCHEMA: 'RationalTime.1', value, rate })
const range = (start: number, duration: number, rate = NTSC) => ({ OTIO_SCHEMA: 'TimeRange.1', start_time: rt(start, rate), duration: rt(duration, rate) })
const ext = (url: string, avail?: [number, number], rate = NTSC) => ({
  OTIO_SCHEMA: 'ExternalReference.1', target_url: url, available_range: avail ? range(avail[0], avail[1], rate) : null, metadata: {}
})
function clip (name: string, url: string, src: [number, number], o: { avail?: [number, number]; rate?: number; effects?: unknown[]; ref?: unknown } = {}) {
  return {
    OTIO_SCHEMA: 'Clip.2', name, source_range: range(src[0], src[1], o.rate),
    media_references: { DEFAULT_MEDIA: o.ref ?? ext(url, o.avail, o.rate) }, active_media_reference_key: 'DEFAULT_MEDIA',
    effects: o.effects ?? [], markers: [{ OTIO_SCHEMA: 'Marker.2', name: 'm', marked_range: range(0, 0, o.rate) }]
  }
}
const gap = (d: number, rate = NTSC) => ({ OTIO_SCHEMA: 'Gap.1', source_range: range(0, d, rate) })
const dissolve = (i: number, o: number, type = 'SMPTE_Dissolve') => ({ OTIO_SCHEMA: 'Transition.1', transition_type: type, in_offset: rt(i), out_offset: rt(o) })
const track = (kind: string, children: unknown[]) => ({ OTIO_SCHEMA: 'Track.1', kind, children, effects: [], source_range: null })
const timeline = (tracks: unknown[], extra: Record<string, unknown> = {}) => ({
  OTIO_SCHEMA: 'Timeline.1', name: 'cut', global_start_time: null, ...extra, tracks: { OTIO_SCHEMA: 'Stack.1', children: tracks }
})
const refused = (json: unknown): string => {
  try { importOtio(json) } catch (e) { expect(e).toBeInstanceOf(TimelineError); return (e as Error).message }
  throw new Error('expected importOtio to refuse')
}

describe('importOtio', () => {
  it('lays out clips and gaps at 29.97 fps', () => {
    const doc = importOtio(timeline([track('Video', [
      clip('Shot A', '/media/a.mov', [10, 48], { avail: [0, 200] }),
      gap(12),
      clip('Shot B', 'media/b.mov', [86400 + 5, 30], { avail: [86400, 100] })
    ])]))
    expect(doc.fps).toEqual({ num: 30000, den: 1001 })
    expect(doc.width).toBe(1920)
    expect(doc.height).toBe(1080)
    expect(doc.sampleRate).toBe(48000)
    expect(doc.duration).toBe(90)
    expect(doc.name).toBe('cut')
    expect(doc.video[0]!.clips).toEqual([
      { id: 'Shot_A', type: 'media', start: 0, length: 48, asset: 'a.mov', srcIn: 10 },
      { id: 'Shot_B', type: 'media', start: 60, length: 30, asset: 'b.mov', srcIn: 5 }
    ])
    expect(doc.assets).toEqual({ 'a.mov': { path: '/media/a.mov' }, 'b.mov': { path: 'media/b.mov' } })
    expect(doc.audio).toEqual([])
  })

  it('turns a SMPTE_Dissolve into overlapping clips and a dissolve', () => {
    const doc = importOtio(timeline([track('Video', [
      clip('a', '/m/a.mov', [0, 50], { avail: [0, 100] }),
      dissolve(6, 4),
      clip('b', '/m/b.mov', [20, 40], { avail: [0, 100] })
    ])]))
    const [a, b] = doc.video[0]!.clips as Array<{ start: number; length: number; srcIn: number }>
    expect(a).toMatchObject({ start: 0, length: 54, srcIn: 0 })
    expect(b).toMatchObject({ start: 44, length: 46, srcIn: 14 })
    expect(a!.start + a!.length - b!.start).toBe(10)
    expect(doc.video[0]!.transitions).toEqual([{ a: 'a', b: 'b', kind: 'dissolve' }])
    expect(doc.duration).toBe(90)
  })

  it('refuses a dissolve with too little media before the incoming clip', () => {
    expect(refused(timeline([track('Video', [clip('a', '/a.mov', [0, 50]), dissolve(6, 0), clip('b', '/b.mov', [2, 40])])])))
      .toMatch(/children\[1\].*"b".*in_offset/)
  })

  it('maps LinearTimeWarp to speed and moves srcIn by in_offset·speed', () => {
    const warp = { OTIO_SCHEMA: 'LinearTimeWarp.1', name: '', effect_name: 'LinearTimeWarp', time_scalar: 2 }
    const doc = importOtio(timeline([track('Video', [
      clip('a', '/a.mov', [0, 24], { rate: 24 }),
      dissolve(0, 0),
      clip('b', '/b.mov', [48, 24], { rate: 24, effects: [warp] })
    ])]))
    expect(doc.fps).toEqual({ num: 24, den: 1 })
    expect(doc.video[0]!.clips[1]).toMatchObject({ id: 'b', start: 24, length: 24, srcIn: 48, speed: 2 })
    expect(doc.video[0]!.transitions).toBeUndefined()
  })

  it('puts audio tracks in audio and reuses one asset per target_url', () => {
    const doc = importOtio(timeline([
      track('Video', [clip('pic', '/m/take.mov', [0, 24], { rate: 24 })]),
      track('Audio', [gap(12, 24), clip('pic', '/m/take.mov', [0, 12], { rate: 24 })]),
      track('Audio', [clip('music', '/other/take.mov', [0, 36], { rate: 24 })])
    ]))
    expect(doc.audio).toHaveLength(2)
    expect(doc.audio[0]!.clips[0]).toMatchObject({ id: 'pic-2', start: 12, length: 12, asset: 'take.mov' })
    expect(doc.audio[1]!.clips[0]).toMatchObject({ id: 'music', asset: 'take-2.mov' })
    expect(doc.assets).toEqual({ 'take.mov': { path: '/m/take.mov' }, 'take-2.mov': { path: '/other/take.mov' } })
    expect(doc.duration).toBe(36)
  })

  it('decodes file:// URLs and honours opts', () => {
    const doc = importOtio(timeline([track('Video', [clip('', 'file:///media/My%20Clip.mov', [0, 10], { rate: 25 })])]),
      { width: 1280, height: 720, sampleRate: 44100, fps: { num: 50, den: 1 } })
    expect(doc.assets).toEqual({ 'My_Clip.mov': { path: '/media/My Clip.mov' } })
    expect(doc.video[0]!.clips[0]).toMatchObject({ id: 'clip1', length: 20, asset: 'My_Clip.mov' })
    expect(doc).toMatchObject({ width: 1280, height: 720, sampleRate: 44100, fps: { num: 50, den: 1 } })
  })

  it('takes fps from global_start_time', () => {
    const doc = importOtio(timeline([track('Video', [clip('a', '/a.mov', [0, 10], { rate: 24 })])], { global_start_time: rt(0, 23.976) }))
    expect(doc.fps).toEqual({ num: 24000, den: 1001 })
    expect(fpsFromRate(59.94)).toEqual({ num: 60000, den: 1001 })
    expect(fpsFromRate(25)).toEqual({ num: 25, den: 1 })
  })

  it('refuses remote media, naming the clip and scheme', () => {
    const msg = refused(timeline([track('Video', [clip('web', 'http://example.com/a.mov', [0, 10])])]))
    expect(msg).toContain('"web"')
    expect(msg).toContain('http:')
    expect(msg).toContain('only local paths and file:// URLs')
  })

  it('refuses unsupported schemas by name', () => {
    const freeze = { OTIO_SCHEMA: 'FreezeFrame.1', effect_name: 'FreezeFrame', time_scalar: 0 }
    expect(refused(timeline([track('Video', [clip('a', '/a.mov', [0, 10], { effects: [freeze] })])])))
      .toBe('tracks[0].children[0].effects[0]: OTIO "FreezeFrame.1" is not supported (supported: LinearTimeWarp)')
    const seq = { OTIO_SCHEMA: 'ImageSequenceReference.1', target_url_base: '/seq/' }
    expect(refused(timeline([track('Video', [clip('a', '', [0, 10], { ref: seq })])]))).toContain('"ImageSequenceReference.1" is not supported')
    const nested = { OTIO_SCHEMA: 'Stack.1', children: [] }
    expect(refused(timeline([track('Video', [clip('a', '/a.mov', [0, 10]), nested])])))
      .toBe('tracks[0].children[1]: OTIO "Stack.1" is not supported (supported: Clip, Gap, Transition, ExternalReference, LinearTimeWarp)')
    expect(refused(timeline([track('Video', [clip('a', '/a.mov', [0, 10]), dissolve(2, 2, 'SMPTE_Wipe'), clip('b', '/b.mov', [5, 10])])])))
      .toContain('"SMPTE_Wipe" is not supported (supported: SMPTE_Dissolve)')
  })

  it('refuses input that is not a timeline', () => {
    expect(refused({ OTIO_SCHEMA: 'Track.1', children: [] })).toMatch(/^not an OpenTimelineIO timeline: .*"Track.1"/)
    expect(refused([])).toMatch(/^not an OpenTimelineIO timeline/)
    expect(refused('x')).toMatch(/^not an OpenTimelineIO timeline/)
  })

  it('refuses bad RationalTimes and stray transitions', () => {
    const bad = clip('a', '/a.mov', [0, 10])
    bad.source_range.duration.value = Number.NaN
    expect(refused(timeline([track('Video', [bad])]))).toContain('source_range.duration.value: must be a finite number')
    expect(refused(timeline([track('Video', [dissolve(1, 1), clip('a', '/a.mov', [0, 10])])]))).toContain('between two clips')
  })

  it('refuses a dissolve past the outgoing clip\'s media, and too many clips', () => {
    expect(refused(timeline([track('Video', [clip('a', '/a.mov', [0, 50], { avail: [0, 52] }), dissolve(0, 4), clip('b', '/b.mov', [0, 40])])])))
      .toMatch(/"a" has too little media after its out point/)
    const many = Array.from({ length: 2001 }, (_, i) => clip(`c${i}`, '/a.mov', [0, 1]))
    expect(refused(timeline([track('Video', many)]))).toBe('tracks[0].children[2000]: more than 2000 clips in the timeline')
  })

  it('keeps a disabled clip as a gap', () => {
    const off = { ...clip('off', '/off.mov', [0, 20], { rate: 24 }), enabled: false }
    const doc = importOtio(timeline([track('Video', [off, clip('on', '/on.mov', [0, 10], { rate: 24 })])]))
    expect(doc.video[0]!.clips).toEqual([{ id: 'on', type: 'media', start: 20, length: 10, asset: 'on.mov', srcIn: 0 }])
    expect(Object.keys(doc.assets)).toEqual(['on.mov'])
  })

  it('round-trips through parseTimelineFile', () => {
    const doc = importOtio(timeline([
      track('Video', [clip('a', '/a.mov', [0, 50], { avail: [0, 100] }), dissolve(5, 5), clip('b', '/b.mov', [10, 50])]),
      track('Audio', [clip('snd', 'file:///s.wav', [0, 90])])
    ]))
    expect(parseTimelineFile(JSON.parse(JSON.stringify(doc)))).toEqual(doc)
  })
})
