/**
 * One ffmpeg run, as data: what compile produces, what run executes, what tests compare.
 *
 *   const argv = toArgv(inv)   // the exact argv, in the order fluent-ffmpeg emits it
 */
export interface FfmpegInput { options: string[]; file: string }
export interface FfmpegOutput { options: string[]; file: string }
/** A file the runner must create in the work dir before starting ffmpeg. */
export type WorkFile = { path: string; content: string } | { path: string; copyOf: string }

export interface FfmpegInvocation {
  inputs: FfmpegInput[]
  global: string[]
  filterComplex?: string | undefined
  outputs: FfmpegOutput[]
  files: WorkFile[]
  /** Frames the output must hold (progress and validation use it). */
  frames?: number | undefined
}

export function toArgv (inv: FfmpegInvocation): string[] {
  return [
    ...inv.inputs.flatMap((i) => [...i.options, '-i', i.file]),
    ...inv.global,
    '-y',
    ...(inv.filterComplex !== undefined ? ['-filter_complex', inv.filterComplex] : []),
    ...inv.outputs.flatMap((o) => [...o.options, o.file])
  ]
}

/** Options every run gets: no stdin, quiet logs with stats for progress. */
export const GLOBAL_OPTIONS = ['-nostdin', '-hide_banner', '-loglevel', 'error', '-stats']
/** Inputs may only be plain files. */
export const INPUT_GUARD = ['-protocol_whitelist', 'file']

/**
 * Escapes a value for a filter option inside -filter_complex (both escaping levels:
 * the option parser's `\ ' :` and the graph parser's `\ ' [ ] , ;`).
 */
export function escapeFilterValue (s: string): string {
  const level1 = s.replace(/[\\':]/g, (c) => `\\${c}`)
  return level1.replace(/[\\'[\],;]/g, (c) => `\\${c}`)
}

/** Seconds as a plain decimal with a leading zero (ffmpeg rejects `.5`). */
export function sec (seconds: number): string {
  const s = seconds.toFixed(6).replace(/0+$/, '').replace(/\.$/, '')
  return s === '-0' ? '0' : s
}
