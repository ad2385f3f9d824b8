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
  /**
   * Inter-frame codecs: keyframes every this many seconds, counted from frame 0 of the
   * timeline, and chunk boundaries on those keyframes, so that a chunked encode makes the
   * same frame-type decisions as one continuous encode. Intra-only codecs: undefined.
   */
  gopSeconds?: number | undefined
}

/** Keyframe interval in frames for a preset at a frame rate (undefined for intra-only codecs). */
export function gopFrames (preset: Preset, fps: { num: number; den: number }): number | undefined {
  if (preset.gopSeconds === undefined) return undefined
  return Math.max(1, Math.round(preset.gopSeconds * fps.num / fps.den))
}

export class UnknownPresetError extends Error {
  override readonly name = 'UnknownPresetError'
}

export function isPresetName (s: string): s is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(s)
}

/*
 * Inter-frame presets use a constant quantiser, a fixed GOP (no scene-cut keyframes,
 * fixed B-frame pattern) and closed GOPs. With chunk boundaries on those keyframes,
 * each GOP is encoded from its own frames alone, so a chunked encode decodes to the
 * same frames as a continuous one (measured: 0 of 600 frames differ, sample, libx264).
 * CRF lets rate control carry state across GOPs, which cost up to 2.5 dB on the first
 * frame of a chunk. See docs/decisions.md.
 */
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
        ? { ...mp4(name, 'h264_nvenc'), videoArgs: ['-c:v', 'h264_nvenc', '-preset', 'p5', '-rc', 'constqp', '-qp', '19', '-no-scenecut', '1', '-pix_fmt', 'yuv420p'] }
        : { ...mp4(name, 'libx264'), videoArgs: ['-c:v', 'libx264', '-preset', 'medium', '-qp', '18', '-pix_fmt', 'yuv420p', '-x264-params', 'open-gop=0:scenecut=0:b-adapt=0:log-level=error'] }
      break
    case 'hevc':
      p = gpuOk('hevc_nvenc')
        ? { ...mp4(name, 'hevc_nvenc'), videoArgs: ['-c:v', 'hevc_nvenc', '-preset', 'p5', '-rc', 'constqp', '-qp', '22', '-no-scenecut', '1', '-pix_fmt', 'yuv420p', '-tag:v', 'hvc1'] }
        : { ...mp4(name, 'libx265'), videoArgs: ['-c:v', 'libx265', '-preset', 'medium', '-pix_fmt', 'yuv420p', '-x265-params', 'qp=22:open-gop=0:scenecut=0:b-adapt=0:log-level=error', '-tag:v', 'hvc1'] }
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
    muxArgs: ['-movflags', '+faststart'], gopSeconds: 2
  }
}
