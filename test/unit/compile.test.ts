import { describe, expect, it } from 'vitest'
import { compileChunk, CompileError, sourceFrameAt } from '../../agent/render/compile.ts'
import { compileAudio } from '../../agent/render/audio.ts'
import { compileJoin } from '../../agent/render/join.ts'
import { toArgv } from '../../agent/render/invocation.ts'
import { resolvePreset } from '../../agent/render/presets.ts'
import { parseSnapshot } from '../../protocol/timeline.ts'
import { toFluent } from '../../agent/render/run.ts'

const A = 'a'.repeat(64)
const B = 'b'.repeat(64)
const F = 'f'.repeat(64)
const media = { [A]: { video: { width: 320, height: 240, fps: { num: 25, den: 1 }, frames: 200 }, audio: { sampleRate: 48000, channels: 2, seconds: 8 } }, [B]: { video: { width: 640, height: 360, fps: { num: 30000, den: 1001 }, frames: 300 } } }
const ctx = (t: object, preset = 'ffv1') => ({ timeline: parseSnapshot(t), media, assetPath: (s: string) => `/cache/${s}`, workDir: '/work/c1', preset: resolvePreset(preset) })
const t1 = { schema: 'farm.timeline/1', fps: { num: 25, den: 1 }, width: 320, height: 240, duration: 100, video: [{ clips: [{ id: 'm', type: 'media', asset: A, start: 0, length: 100, srcIn: 5 }] }] }

const t2 = { schema: 'farm.timeline/1', fps: { num: 30000, den: 1001 }, width: 320, height: 180, duration: 120, video: [{ clips: [
  { id: 'x', type: 'media', asset: A, start: 0, length: 60, srcIn: 0 },
  { id: 'y', type: 'media', asset: B, start: 50, length: 70, srcIn: 3, speed: 2, opacity: 0.5, fadeOut: 10 }], transitions: [{ a: 'x', b: 'y', kind: 'dissolve' }] }] }
const t3 = { schema: 'farm.timeline/1', fps: { num: 25, den: 1 }, width: 320, height: 240, duration: 50, video: [{ clips: [
  { id: 'c', type: 'color', color: '#102030', start: 0, length: 30 },
  { id: 'm', type: 'media', asset: A, start: 20, length: 30, srcIn: 0, fx: [{ k: 'eq', contrast: 1.2 }, { k: 'lut3d', lut: F }] }], transitions: [{ a: 'c', b: 'm', kind: 'wipeleft' }] },
  { clips: [{ id: 'title', type: 'text', text: "it's: a, b", font: F, size: 20, color: '#FFFFFF80', x: 5, y: 6, start: 10, length: 20 }] }],
  audio: [{ clips: [{ id: 's', type: 'media', asset: A, start: 10, length: 40, srcIn: 25, volume: 0.5, speed: 1.5 }], volume: 0.5 }, { clips: [{ id: 's2', type: 'media', asset: A, start: 0, length: 50, srcIn: 0 }] }] }

/*
 * Exact argv for several timelines (as Flamenco pins its commands). A change here is a change
 * to what every worker runs: review the new argv, then update the literal.
 */
describe('compileChunk: exact argv', () => {
  it('one media clip, same rate as the timeline, chunk [10, 40)', () => {
    expect(toArgv(compileChunk(ctx(t1), { start: 10, end: 40 }, '/work/seg-1.mkv'))).toEqual(["-protocol_whitelist","file","-ss","0.58","-t","1.28","-i","/cache/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","-nostdin","-hide_banner","-loglevel","error","-stats","-y","-filter_complex","color=c=black:s=320x240:r=25/1,trim=end_frame=30,settb=1/25,setpts=PTS+10,format=yuv420p[base];[0:v:0]setpts='(10+round((PTS-STARTPTS)*TB*25/1))*1/25/TB',settb=1/25,trim=start_pts=10:end_pts=40,format=yuv420p,format=yuva420p[v0];[base][v0]overlay=x=0:y=0:eof_action=pass[v1];[v1]setpts=PTS-STARTPTS,format=yuv420p[vout]","-map","[vout]","-frames:v","30","-c:v","ffv1","-level","3","-g","1","-slices","4","-slicecrc","1","-an","-f","matroska","/work/seg-1.mkv"])
  })

  it('29.97 fps: a 25 fps source (rate mapped), a dissolve into a 2x-speed clip with opacity and fade-out, h264', () => {
    expect(toArgv(compileChunk(ctx(t2, 'h264'), { start: 0, end: 60 }, '/work/seg-0.mp4'))).toEqual(["-protocol_whitelist","file","-t","2.06","-i","/cache/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","-protocol_whitelist","file","-ss","0.083417","-t","0.7007","-i","/cache/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","-nostdin","-hide_banner","-loglevel","error","-stats","-y","-filter_complex","color=c=black:s=320x180:r=30000/1001,trim=end_frame=60,settb=1001/30000,setpts=PTS+0,format=yuv420p[base];[0:v:0]setpts='(0+ceil((1200*(0+round((PTS-STARTPTS)*TB*25/1))-0)/1001))*1001/30000/TB',settb=1001/30000,fps=30000/1001,trim=start_pts=0:end_pts=60,scale=240:180,format=yuv420p,format=yuva420p[v0];[base][v0]overlay=x=40:y=0:eof_action=pass[v1];[1:v:0]setpts='(50+ceil((1*(3+round((PTS-STARTPTS)*TB*30000/1001))-3)/2))*1001/30000/TB',settb=1001/30000,fps=30000/1001,trim=start_pts=50:end_pts=60,scale=320:180,format=yuv420p,format=yuva420p,lut=a='val*0.5',fade=t=out:st=3.670333:d=0.333667:alpha=1,fade=t=in:st=1.668333:d=0.333667:alpha=1[v2];[v1][v2]overlay=x=0:y=0:eof_action=pass[v3];[v3]setpts=PTS-STARTPTS,format=yuv420p[vout]","-map","[vout]","-frames:v","60","-c:v","libx264","-preset","medium","-qp","18","-pix_fmt","yuv420p","-x264-params","open-gop=0:scenecut=0:b-adapt=0:log-level=error","-g","60","-an","-f","mp4","/work/seg-0.mp4"])
  })

  it('a colour clip wiped into a clip with eq and a LUT; a text title; work files', () => {
    const inv = compileChunk(ctx(t3), { start: 15, end: 35 }, '/work/seg-2.mkv')
    expect(toArgv(inv)).toEqual(["-protocol_whitelist","file","-t","0.66","-i","/cache/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","-nostdin","-hide_banner","-loglevel","error","-stats","-y","-filter_complex","color=c=black:s=320x240:r=25/1,trim=end_frame=20,settb=1/25,setpts=PTS+15,format=yuv420p[base];color=c=0x102030:s=320x240:r=25/1,trim=end_frame=15,settb=1/25,setpts=PTS+15,format=yuva420p[v0];[base][v0]overlay=x=0:y=0:eof_action=pass[v1];color=c=black:s=320x240:r=25/1,trim=end_frame=15,settb=1/25,setpts=PTS+20[v3k];color=c=white:s=320x240:r=25/1,trim=end_frame=15,settb=1/25,setpts=PTS+20[v3w];[v3k][v3w]overlay=x='320*(1-clip((t*25/1-20)/10,0,1))':y=0:eof_action=pass,format=gray[v3];[0:v:0]setpts='(20+round((PTS-STARTPTS)*TB*25/1))*1/25/TB',settb=1/25,trim=start_pts=20:end_pts=35,format=yuv420p,eq=contrast=1.2,lut3d=file=/work/c1/lut-ffffffffffffffff.cube,format=yuva420p[v4];[v4][v3]alphamerge[v2];[v1][v2]overlay=x=0:y=0:eof_action=pass[v5];[v5]drawtext=fontfile=/cache/ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff:textfile=/work/c1/text-title.txt:expansion=none:fontsize=20:fontcolor=0xFFFFFF80:x=5:y=6:enable='gte(t,0.38)*lt(t,1.18)'[v6];[v6]setpts=PTS-STARTPTS,format=yuv420p[vout]","-map","[vout]","-frames:v","20","-c:v","ffv1","-level","3","-g","1","-slices","4","-slicecrc","1","-an","-f","matroska","/work/seg-2.mkv"])
    expect(inv.files).toEqual([{"path":"/work/c1/lut-ffffffffffffffff.cube","copyOf":"/cache/ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"},{"path":"/work/c1/text-title.txt","content":"it's: a, b"}])
  })

  it('fluent-ffmpeg builds exactly the compiled argv', () => {
    for (const inv of [compileChunk(ctx(t2, 'h264'), { start: 0, end: 60 }, '/work/seg-0.mp4'), compileChunk(ctx(t3), { start: 15, end: 35 }, '/work/seg-2.mkv')]) {
      const cmd = toFluent(inv, '/usr/bin/ffmpeg') as unknown as { _getArguments: () => string[] }
      expect(cmd._getArguments()).toEqual(toArgv(inv))
    }
  })

  it('clips outside the chunk are left out entirely', () => {
    const inv = compileChunk(ctx(t2, 'ffv1'), { start: 100, end: 120 }, '/w/s.mkv')
    expect(inv.inputs).toHaveLength(1)
    expect(inv.inputs[0]!.file).toBe(`/cache/${B}`)
  })

  it('refuses ranges outside the timeline and chunk starts off the keyframe grid', () => {
    expect(() => compileChunk(ctx(t1), { start: 90, end: 101 }, '/w/s.mkv')).toThrow(CompileError)
    expect(() => compileChunk(ctx(t1), { start: 5, end: 5 }, '/w/s.mkv')).toThrow(/not inside the timeline/)
    expect(() => compileChunk(ctx(t1, 'h264'), { start: 10, end: 60 }, '/w/s.mp4')).toThrow(/not on a keyframe \(every 50 frames\)/)
  })
})

describe('compileAudio and compileJoin: exact argv', () => {
  it('two audio tracks: placement by sample, tempo, volumes, one mix', () => {
    expect(toArgv(compileAudio(ctx(t3, 'h264'), '/work/audio.m4a'))).toEqual(["-protocol_whitelist","file","-ss","1","-t","2.9","-i","/cache/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","-protocol_whitelist","file","-t","2.5","-i","/cache/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","-nostdin","-hide_banner","-loglevel","error","-stats","-y","-filter_complex","anullsrc=r=48000:cl=stereo,atrim=end_sample=19200,aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo[a0s];[0:a:0]aresample=48000,aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo,asetpts=PTS-STARTPTS,atempo=1.5,apad,atrim=end_sample=76800,volume=0.25[a0c];[a0s][a0c]concat=n=2:v=0:a=1,apad,atrim=end_sample=96000[a0];[1:a:0]aresample=48000,aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo,asetpts=PTS-STARTPTS,apad,atrim=end_sample=96000,apad,atrim=end_sample=96000[a1];[a0][a1]amix=inputs=2:duration=first:dropout_transition=0,volume=2[aout]","-map","[aout]","-c:a","aac","-b:a","192k","-vn","-f","ipod","/work/audio.m4a"])
  })

  it('join: every segment\'s exact duration in the concat list (no millisecond drift over many chunks)', () => {
    const inv = compileJoin({ segments: [{ file: '/w/seg-0.mkv', frames: 13 }, { file: '/w/seg-1.mkv', frames: 12 }], fps: { num: 30, den: 1 }, preset: resolvePreset('ffv1'), listFile: '/w/list.ffconcat', outFile: '/out/x.mkv', frames: 25 })
    expect(inv.files).toEqual([{ path: '/w/list.ffconcat', content: "ffconcat version 1.0\nfile 'seg-0.mkv'\nduration 0.433333\nfile 'seg-1.mkv'\nduration 0.400000\n" }])
    expect(() => compileJoin({ segments: [{ file: '/w/seg-0.mkv', frames: 0 }], fps: { num: 30, den: 1 }, preset: resolvePreset('ffv1'), listFile: '/w/list.ffconcat', outFile: '/out/x.mkv', frames: 0 })).toThrow(/whole number ≥ 1/)
  })

  it('join: concat demuxer, stream copy, audio muxed', () => {
    expect(toArgv(compileJoin({ segments: [{ file: '/w/seg-0.mp4', frames: 5 }, { file: '/w/seg-1.mp4', frames: 5 }], fps: { num: 30000, den: 1001 }, audio: '/w/audio.m4a', preset: resolvePreset('h264'), listFile: '/w/list.ffconcat', outFile: '/out/x.mp4', frames: 10 }))).toEqual(["-f","concat","-safe","1","-protocol_whitelist","file","-i","/w/list.ffconcat","-protocol_whitelist","file","-i","/w/audio.m4a","-nostdin","-hide_banner","-loglevel","error","-stats","-y","-map","0:v:0","-map","1:a:0","-c","copy","-movflags","+faststart","-f","mp4","/out/x.mp4"])
  })
})

describe('sourceFrameAt: timeline frame → source frame', () => {
  const fps = { num: 30000, den: 1001 }
  it('is the identity shift at the same rate and speed 1', () => {
    expect(sourceFrameAt({ start: 10, srcIn: 4 }, 10, fps, fps)).toBe(4)
    expect(sourceFrameAt({ start: 10, srcIn: 4 }, 109, fps, fps)).toBe(103)
  })
  it('samples and holds across rates and speeds, exactly', () => {
    expect(sourceFrameAt({ start: 0, srcIn: 0 }, 30, fps, { num: 25, den: 1 })).toBe(25)
    expect(sourceFrameAt({ start: 0, srcIn: 0, speed: 2 }, 7, fps, fps)).toBe(14)
    expect(sourceFrameAt({ start: 0, srcIn: 0, speed: 0.5 }, 7, fps, fps)).toBe(3)
    expect(sourceFrameAt({ start: 0, srcIn: 0, speed: 1.001 }, 1000, fps, fps)).toBe(1001)
  })
})
