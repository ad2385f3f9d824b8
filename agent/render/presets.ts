/**
 * Output presets: the only encoder settings a job can ask for, by name.
 *
 *   const p = resolvePreset('h264', caps)   // picks h264_nvenc when a GPU encoder works
 */
import type { FfmpegCapabilities } from '../ffmpeg.ts'

export const PRESET_NAMES = ['ffv1', 'h264', 'hevc', 'prores'] as const
export type PresetName = typeof PRESET_NAMES[number]

export interface Preset {
  name: PresetName
  /** Container of chunks and of the final output (chunks join with -c copy). */
  ext: '.mkv' | '.mp4' | '.mov'
  format: 'matroska' | 'mp4' | 'mov'
  encoder: string
  pixFmt: string
  videoArgs: string[]
  audioArgs: string[]
  audioExt: '.mka' | '.m4a' | '.wav'
  audioFormat: 'matroska' | 'ipod' | 'wav'
  lossless: boolean
  /** Extra output flags for the final file. */
  muxArgs: string[]
}

export class UnknownPresetError extends Error {
  override readonly name = 'UnknownPresetError'
}

export function isPresetName (s: string): s is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(s)
}

export function resolvePreset (name: string, caps?: Pick<FfmpegCapabilities, 'encoders' | 'gpuEncoders'>, opts: { gpu?: boolean } = {}): Preset {
  if (!isPresetName(name)) throw new UnknownPresetError(`unknown preset "${name.slice(0, 40)}"; choose one of ${PRESET_NAMES.join(', ')}`)
  const gpu = opts.gpu !== false
  const has = (e: string): boolean => caps === undefined || caps.encoders.has(e)
  const gpuOk = (e: string): boolean => gpu && caps !== undefined && caps.gpuEncoders.includes(e)
  let p: Preset
  switch (name) {
    case 'ffv1':
      p = {
        name, ext: '.mkv', format: 'matroska', encoder: 'ffv1', pixFmt: 'yuv420p',
        videoArgs: ['-c:v', 'ffv1', '-level', '3', '-g', '1', '-slices', '4', '-slicecrc', '1'],
        audioArgs: ['-c:a', 'flac'], audioExt: '.mka', audioFormat: 'matroska', lossless: true, muxArgs: []
      }
      break
    case 'h264':
      p = gpuOk('h264_nvenc')
        ? { ...mp4(name, 'h264_nvenc'), videoArgs: ['-c:v', 'h264_nvenc', '-preset', 'p5', '-rc', 'vbr', '-cq', '19', '-b:v', '0', '-pix_fmt', 'yuv420p'] }
        : { ...mp4(name, 'libx264'), videoArgs: ['-c:v', 'libx264', '-preset', 'medium', '-crf', '18', '-pix_fmt', 'yuv420p', '-x264-params', 'open-gop=0:log-level=error'] }
      break
    case 'hevc':
      p = gpuOk('hevc_nvenc')
        ? { ...mp4(name, 'hevc_nvenc'), videoArgs: ['-c:v', 'hevc_nvenc', '-preset', 'p5', '-rc', 'vbr', '-cq', '21', '-b:v', '0', '-pix_fmt', 'yuv420p', '-tag:v', 'hvc1'] }
        : { ...mp4(name, 'libx265'), videoArgs: ['-c:v', 'libx265', '-preset', 'medium', '-crf', '20', '-pix_fmt', 'yuv420p', '-x265-params', 'open-gop=0:log-level=error', '-tag:v', 'hvc1'] }
      break
    case 'prores':
      p = {
        name, ext: '.mov', format: 'mov', encoder: 'prores_ks', pixFmt: 'yuv422p10le',
        videoArgs: ['-c:v', 'prores_ks', '-profile:v', '3', '-pix_fmt', 'yuv422p10le'],
        audioArgs: ['-c:a', 'pcm_s16le'], audioExt: '.wav', audioFormat: 'wav', lossless: false, muxArgs: []
      }
      break
  }
  if (!has(p.encoder)) throw new UnknownPresetError(`preset "${name}" needs the ${p.encoder} encoder, which this ffmpeg lacks`)
  return p
}

function mp4 (name: PresetName, encoder: string): Preset {
  return {
    name, ext: '.mp4', format: 'mp4', encoder, pixFmt: 'yuv420p', videoArgs: [],
    audioArgs: ['-c:a', 'aac', '-b:a', '192k'], audioExt: '.m4a', audioFormat: 'ipod', lossless: false,
    muxArgs: ['-movflags', '+faststart']
  }
}
