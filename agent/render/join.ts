/**
 * Joins rendered segments (concat demuxer, no re-encode) and muxes the job's audio.
 *
 *   const inv = compileJoin({ segments: [{ file, frames }, …], fps, audio, preset, listFile, outFile, frames })
 *
 * Each segment's exact duration (frames / fps, to the microsecond) is written into the concat
 * list: left to itself the demuxer starts each file where the previous one's container says it
 * ended, which Matroska rounds to the millisecond, and at 30 fps those thirds of a millisecond
 * add up over dozens of chunks until a frame lands half a frame early.
 */
import path from 'node:path'
import { GLOBAL_OPTIONS, type FfmpegInvocation } from './invocation.ts'
import type { Preset } from './presets.ts'

export interface JoinSpec {
  /** Segment files in timeline order, with their frame counts; all in the same directory as listFile. */
  segments: Array<{ file: string; frames: number }>
  fps: { num: number; den: number }
  audio?: string | undefined
  preset: Preset
  listFile: string
  outFile: string
  frames: number
}

export function compileJoin (spec: JoinSpec): FfmpegInvocation {
  const dir = path.dirname(spec.listFile)
  const lines = ['ffconcat version 1.0']
  for (const seg of spec.segments) {
    if (path.dirname(seg.file) !== dir) throw new Error(`segment ${seg.file} is not in ${dir}`)
    if (!Number.isInteger(seg.frames) || seg.frames < 1) throw new Error(`segment ${seg.file}: frame count must be a whole number ≥ 1 (got ${seg.frames})`)
    lines.push(`file '${path.basename(seg.file)}'`, `duration ${(seg.frames * spec.fps.den / spec.fps.num).toFixed(6)}`)
  }
  const inputs = [{ options: ['-f', 'concat', '-safe', '1', '-protocol_whitelist', 'file'], file: spec.listFile }]
  const maps = ['-map', '0:v:0']
  if (spec.audio !== undefined) {
    inputs.push({ options: ['-protocol_whitelist', 'file'], file: spec.audio })
    maps.push('-map', '1:a:0')
  }
  return {
    inputs,
    global: [...GLOBAL_OPTIONS],
    outputs: [{ options: [...maps, '-c', 'copy', ...spec.preset.muxArgs, '-f', spec.preset.format], file: spec.outFile }],
    files: [{ path: spec.listFile, content: lines.join('\n') + '\n' }],
    frames: spec.frames
  }
}
