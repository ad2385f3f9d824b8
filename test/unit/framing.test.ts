import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { FrameDecoder, decodeJson, encodeFrame, encodeJson, encodeVarint, MAX_JSON_DEPTH } from '../../protocol/framing.ts'
import { WireError, WIRE_ERRORS, WIRE_ERROR_DESCRIPTIONS, fromWire, toWire } from '../../protocol/errors.ts'
import { MAX_FRAME_BYTES, PROTOCOLS } from '../../protocol/ids.ts'
import { seeded as prng } from '../helpers/prng.ts'


const concat = (parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.length }
  return out
}

function wireError (fn: () => unknown): WireError {
  try { fn() } catch (err) {
    expect(err).toBeInstanceOf(WireError)
    return err as WireError
  }
  throw new Error('expected a WireError')
}

describe('ids', () => {
  it('names every protocol /renderswarm/<name>/1 with a cap', () => {
    for (const [name, id] of Object.entries(PROTOCOLS)) {
      expect(id).toBe(`/renderswarm/${name}/1`)
      expect(MAX_FRAME_BYTES[name as keyof typeof PROTOCOLS]).toBeGreaterThan(0)
    }
    expect(MAX_FRAME_BYTES.submit).toBe(4 * 1024 * 1024)
  })
})

describe('varint framing', () => {
  it('round-trips many frames under random chunking', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rnd = prng(seed)
      const payloads: Uint8Array[] = []
      for (let k = 0; k < 30; k++) {
        const len = rnd() < 0.2 ? 0 : rnd() < 0.8 ? Math.floor(rnd() * 200) : Math.floor(rnd() * 40_000)
        payloads.push(Uint8Array.from({ length: len }, () => Math.floor(rnd() * 256)))
      }
      const wire = concat(payloads.map((p) => encodeFrame(p, 65536)))
      const dec = new FrameDecoder(65536)
      const got: Uint8Array[] = []
      let i = 0
      while (i < wire.length) {
        const n = rnd() < 0.3 ? 1 : Math.floor(rnd() * 3000)
        got.push(...dec.push(wire.subarray(i, i + n)))
        expect(dec.buffered).toBeLessThanOrEqual(65536 + 5)
        i += n
      }
      dec.end()
      expect(got.length, `seed ${seed}`).toBe(payloads.length)
      got.forEach((g, k) => { expect(Buffer.from(g).equals(Buffer.from(payloads[k]!)), `seed ${seed} frame ${k}`).toBe(true) })
    }
  })

  it('handles a varint split at every byte, several frames in one chunk, and empty frames', () => {
    const body = new Uint8Array(300).fill(7) // 300 needs a 2-byte prefix
    const wire = concat([encodeFrame(body, 1000), encodeFrame(new Uint8Array(0), 1000), encodeFrame(Uint8Array.of(1, 2), 1000)])
    expect([...wire.subarray(0, 2)]).toEqual([0xac, 0x02])
    for (let cut = 0; cut <= wire.length; cut++) {
      const dec = new FrameDecoder(1000)
      const frames = [...dec.push(wire.subarray(0, cut)), ...dec.push(wire.subarray(cut))]
      expect(frames.map((f) => f.length)).toEqual([300, 0, 2])
    }
    const one = new FrameDecoder(10)
    expect(one.push(Uint8Array.of(0, 0, 0)).map((f) => f.length)).toEqual([0, 0, 0])
    expect(one.push(new Uint8Array(0))).toEqual([])
  })

  it('returns copies, not views of the caller\'s chunk', () => {
    const chunk = encodeFrame(Uint8Array.of(1, 2, 3), 10)
    const [frame] = new FrameDecoder(10).push(chunk)
    chunk.fill(9)
    expect([...frame!]).toEqual([1, 2, 3])
  })

  it('encodes varints minimally', () => {
    expect([...encodeVarint(0)]).toEqual([0])
    expect([...encodeVarint(127)]).toEqual([127])
    expect([...encodeVarint(128)]).toEqual([0x80, 1])
    expect([...encodeVarint(0xffffffff)]).toEqual([0xff, 0xff, 0xff, 0xff, 0x0f])
  })

  it('refuses a declared length over the cap before the body arrives', () => {
    const dec = new FrameDecoder(1024)
    expect(dec.push(Uint8Array.of(0x81))).toEqual([]) // first byte of 1025 = 0x81 0x08
    const err = wireError(() => dec.push(Uint8Array.of(0x08)))
    expect(err.code).toBe('frame-too-large')
    expect(dec.buffered).toBeLessThanOrEqual(5)
    expect(wireError(() => dec.push(Uint8Array.of(1))).code).toBe('frame-too-large') // stays failed
    // A 4 GiB declaration is refused from its 5 prefix bytes alone.
    expect(wireError(() => new FrameDecoder(1024).push(encodeVarint(0xffffffff))).code).toBe('frame-too-large')
  })

  it('refuses over-long and non-minimal prefixes', () => {
    expect(wireError(() => new FrameDecoder(1024).push(Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x01))).code).toBe('bad-frame')
    expect(wireError(() => new FrameDecoder(1024).push(Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80))).code).toBe('bad-frame')
    expect(wireError(() => new FrameDecoder(1024).push(Uint8Array.of(0x80, 0x00))).code).toBe('bad-frame')
    expect(wireError(() => new FrameDecoder(1024).push(Uint8Array.of(0x85, 0x80, 0x00))).code).toBe('bad-frame')
    expect(wireError(() => new FrameDecoder(0xffffffff).push(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x1f))).code).toBe('bad-frame')
  })

  it('refuses an encode over the cap and a stream that ends mid-frame', () => {
    expect(wireError(() => encodeFrame(new Uint8Array(11), 10)).code).toBe('frame-too-large')
    expect(encodeFrame(new Uint8Array(10), 10).length).toBe(11)
    expect(wireError(() => encodeJson({ s: 'x'.repeat(100) }, 50)).code).toBe('frame-too-large')
    const dec = new FrameDecoder(10)
    dec.push(Uint8Array.of(5, 1, 2))
    expect(wireError(() => { dec.end() }).code).toBe('bad-frame')
  })
})

describe('decodeJson', () => {
  const Schema = z.object({ a: z.object({ b: z.array(z.number().int()) }).strict() }).strict()
  const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)

  it('round-trips through encodeJson and the decoder', () => {
    const [frame] = new FrameDecoder(100).push(encodeJson({ a: { b: [1, 2] } }, 100))
    expect(decodeJson(frame!, Schema)).toEqual({ a: { b: [1, 2] } })
  })

  it('refuses invalid UTF-8 and invalid JSON as bad-frame', () => {
    expect(wireError(() => decodeJson(Uint8Array.of(0x7b, 0xff, 0x7d), Schema)).code).toBe('bad-frame')
    expect(wireError(() => decodeJson(Uint8Array.of(0xc0, 0x80), Schema)).code).toBe('bad-frame') // overlong NUL
    expect(wireError(() => decodeJson(bytes('{"a":'), Schema)).code).toBe('bad-frame')
    expect(wireError(() => decodeJson(bytes(''), Schema)).code).toBe('bad-frame')
    expect(wireError(() => decodeJson(bytes('NaN'), Schema)).code).toBe('bad-frame')
  })

  it('refuses deep nesting quickly, without a stack overflow', () => {
    const started = Date.now()
    const err = wireError(() => decodeJson(bytes('['.repeat(100_000) + ']'.repeat(100_000)), Schema))
    expect(err.code).toBe('bad-frame')
    expect(err.message).toMatch(/deeper/)
    expect(Date.now() - started).toBeLessThan(1000)
    const ok = '['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH)
    expect(wireError(() => decodeJson(bytes(ok), Schema)).code).toBe('schema') // parses; just the wrong shape
    expect(wireError(() => decodeJson(bytes('[' + ok + ']'), Schema)).code).toBe('bad-frame')
    // Brackets inside strings (escaped quotes included) do not count.
    const s = JSON.stringify({ a: { b: [] }, x: '\\"' + '['.repeat(100) })
    expect(wireError(() => decodeJson(bytes(s), Schema)).message).toMatch(/^x: unknown field/)
  })

  it('names the first failing field', () => {
    const err = wireError(() => decodeJson(bytes('{"a":{"b":[1,2.5]}}'), Schema))
    expect(err.code).toBe('schema')
    expect(err.field).toBe('a.b[1]')
    expect(err.message).toMatch(/^a\.b\[1\]: /)
    expect(wireError(() => decodeJson(bytes('{"a":{"b":[],"c":1}}'), Schema)).field).toBe('a.c')
  })
})

describe('wire errors', () => {
  it('has a description for every code', () => {
    for (const code of WIRE_ERRORS) expect(WIRE_ERROR_DESCRIPTIONS[code].length).toBeGreaterThan(5)
    expect(WIRE_ERRORS[0]).toBe('bad-frame') // append-only: existing positions never move
    expect(WIRE_ERRORS.indexOf('internal')).toBe(11)
  })

  it('sends unknown errors as internal without stack or message', () => {
    const secret = new Error('ENOENT: /home/alice/secret.key')
    const wire = toWire(secret)
    expect(wire.code).toBe('internal')
    expect(JSON.stringify(wire)).not.toMatch(/alice|at |\.ts|Error:/)
    expect(toWire('boom').code).toBe('internal')
    expect(toWire(undefined).code).toBe('internal')
    expect(toWire(new WireError('busy', 'queue full'))).toEqual({ code: 'busy', message: 'queue full' })
  })

  it('reads error frames with validation', () => {
    const err = fromWire({ code: 'stale-term', message: 'term 3 < 4' })
    expect(err).toBeInstanceOf(WireError)
    expect(err.code).toBe('stale-term')
    expect(fromWire({ code: 'some-future-code', message: 'x' }).code).toBe('internal')
    expect(wireError(() => fromWire({ code: 'busy' })).code).toBe('schema')
    expect(wireError(() => fromWire({ code: 'busy', message: 'x'.repeat(10_000) })).code).toBe('schema')
    expect(wireError(() => fromWire(null)).code).toBe('schema')
    expect(wireError(() => fromWire({ code: 'busy', message: '', stack: 'x' })).code).toBe('schema')
  })
})
