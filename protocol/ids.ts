/**
 * The one place protocol ids and per-protocol frame caps live.
 *
 *   node.handle(PROTOCOLS.heartbeat, ...)
 *   const decoder = new FrameDecoder(MAX_FRAME_BYTES.heartbeat)
 *
 * Ids are '/renderswarm/<name>/<major>'. A breaking change gets a new major (a new id);
 * within a major, messages only gain optional fields and enums only grow at the end.
 * Asset and segment streams send one JSON header frame (capped like a control message),
 * then the bulk bytes as raw frames of at most MAX_RAW_FRAME_BYTES each.
 */

export const PROTOCOL_MAJOR = 1

export const PROTOCOLS = {
  membership: '/renderswarm/membership/1',
  heartbeat: '/renderswarm/heartbeat/1',
  status: '/renderswarm/status/1',
  submit: '/renderswarm/submit/1',
  chunk: '/renderswarm/chunk/1',
  asset: '/renderswarm/asset/1',
  segment: '/renderswarm/segment/1',
  election: '/renderswarm/election/1',
  /** The one protocol a machine without a certificate may use: redeem an invite. */
  join: '/renderswarm/join/1'
} as const

export type ProtocolName = keyof typeof PROTOCOLS
export type ProtocolId = (typeof PROTOCOLS)[ProtocolName]

const KiB = 1024
const MiB = 1024 * KiB

/** Largest JSON frame each protocol accepts; a larger one is a 'frame-too-large' error to the peer. */
export const MAX_FRAME_BYTES = {
  membership: 64 * KiB,
  heartbeat: 64 * KiB,
  status: 64 * KiB,
  /** A submit carries a whole timeline snapshot. */
  submit: 4 * MiB,
  chunk: 64 * KiB,
  /** The header only; the bytes follow as raw frames. */
  asset: 64 * KiB,
  /** The header only; the bytes follow as raw frames. */
  segment: 64 * KiB,
  election: 64 * KiB,
  join: 16 * KiB
} as const satisfies Record<ProtocolName, number>

/** Largest raw (non-JSON) frame of bulk bytes after an asset or segment header. */
export const MAX_RAW_FRAME_BYTES = 1 * MiB
