/**
 * Joins rendered segments (concat demuxer, no re-encode) and muxes the job's audio.
 *
 *   const inv = compileJoin({ segments, audio, preset, listFile, outFile })
 */
import path from 'node:path'
import { GLOBAL_OPTIONS, type FfmpegInvocation } from './invocation.ts'
import type { Preset } from './presets.ts'

export interface JoinSpec {
  /** Segment files in timeline order; all in the same directory as listFile. */
  segments: string[]
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
    if (path.dirname(seg) !== dir) throw new Error(`segment ${seg} is not in ${dir}`)
    lines.push(`file '${path.basename(seg)}'`)
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
