import { describe, expect, it } from 'vitest'
import { WireError } from '../../protocol/errors.ts'
import { decodeJson, encodeJson, FrameDecoder } from '../../protocol/framing.ts'
import { MAX_FRAME_BYTES } from '../../protocol/ids.ts'
import { MembershipMessageSchema, NodeInfoSchema, formatTxt, parseTxt } from '../../protocol/messages/membership.ts'

const PEER = '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf'
const FARM = '0123456789abcdef'

const hello = (): any => ({
  type: 'hello', v: 1, peerId: PEER, farm: FARM, name: 'edit-bay-2',
  cert: { farm: FARM, peer: PEER, sig: 'ab'.repeat(32) }, protocolMajor: 1,
  addrs: ['/ip4/192.168.1.20/tcp/4001', '/ip6/fe80::1/tcp/4001']
})
const heartbeat = (): any => ({
  type: 'heartbeat', peerId: PEER, seq: 42, sentAt: 1_700_000_000_000, incarnation: 3,
  load: { cpuPct: 37.5, memUsedBytes: 8e9, memTotalBytes: 32e9, gpuPct: 10, runningChunks: 1 },
  accepting: true, state: 'rendering'
})
const info = (): any => ({
  cpu: { model: 'AMD Ryzen 9 7950X', cores: 32 }, memBytes: 64e9,
  gpus: [{ model: 'NVIDIA RTX 4090', vramBytes: 24e9, driver: '550.54' }], os: 'linux 6.8',
  ffmpeg: { version: '7.0.1', encoders: ['libx264', 'h264_nvenc', 'prores_ks'] },
  bench: { '1080p-h264': 212.5, '4k_prores': 31 }
})
const nodeInfo = (): any => ({ type: 'node-info', peerId: PEER, info: info() })
const revoke = (): any => ({ type: 'revoke', revocation: { peer: PEER, at: 1, sig: 'cd'.repeat(32) } })

function refused (msg: unknown): WireError {
  const res = MembershipMessageSchema.safeParse(msg)
  expect(res.success, JSON.stringify(msg).slice(0, 200)).toBe(false)
  // Through the real path too: encode, frame, decode.
  const [frame] = new FrameDecoder(MAX_FRAME_BYTES.membership).push(encodeJson(msg, MAX_FRAME_BYTES.membership))
  try { decodeJson(frame!, MembershipMessageSchema) } catch (err) {
    expect(err).toBeInstanceOf(WireError)
    expect((err as WireError).code).toBe('schema')
    return err as WireError
  }
  throw new Error('expected a refusal')
}

describe('membership messages', () => {
  it('accepts valid examples of each kind', () => {
    for (const m of [hello(), heartbeat(), nodeInfo(), revoke()]) {
      const [frame] = new FrameDecoder(MAX_FRAME_BYTES.membership).push(encodeJson(m, MAX_FRAME_BYTES.membership))
      expect(decodeJson(frame!, MembershipMessageSchema)).toEqual(m)
    }
    const hb = heartbeat(); delete hb.load.gpuPct
    expect(MembershipMessageSchema.parse(hb).type).toBe('heartbeat')
    expect(NodeInfoSchema.parse({ ...info(), gpus: [], bench: {} }).gpus).toEqual([])
  })

  const cases: Array<[string, () => any, string]> = [
    ['unknown type', () => ({ ...heartbeat(), type: 'gossip' }), 'type'],
    ['wrong type of field', () => ({ ...heartbeat(), seq: '42' }), 'seq'],
    ['extra field', () => ({ ...hello(), admin: true }), 'admin'],
    ['extra nested field', () => { const m = heartbeat(); m.load.temp = 90; return m }, 'load.temp'],
    ['negative seq', () => ({ ...heartbeat(), seq: -1 }), 'seq'],
    ['huge seq', () => ({ ...heartbeat(), seq: 1e300 }), 'seq'],
    ['fractional incarnation', () => ({ ...heartbeat(), incarnation: 1.5 }), 'incarnation'],
    ['cpu over 100%', () => { const m = heartbeat(); m.load.cpuPct = 100.1; return m }, 'load.cpuPct'],
    ['gpu under 0%', () => { const m = heartbeat(); m.load.gpuPct = -1; return m }, 'load.gpuPct'],
    ['unknown state', () => ({ ...heartbeat(), state: 'melting' }), 'state'],
    ['missing field', () => { const m = heartbeat(); delete m.accepting; return m }, 'accepting'],
    ['wrong message version', () => ({ ...hello(), v: 2 }), 'v'],
    ['bad farm id', () => ({ ...hello(), farm: '0123456789ABCDEF' }), 'farm'],
    ['bad peer id', () => ({ ...hello(), peerId: 'not/a/peer' }), 'peerId'],
    ['long peer id', () => ({ ...hello(), peerId: '1'.repeat(129) }), 'peerId'],
    ['long name', () => ({ ...hello(), name: 'n'.repeat(65) }), 'name'],
    ['control chars in name', () => ({ ...hello(), name: 'a\u0000b' }), 'name'],
    ['too many addrs', () => ({ ...hello(), addrs: Array(17).fill('/ip4/1.2.3.4/tcp/1') }), 'addrs'],
    ['long addr', () => ({ ...hello(), addrs: ['/' + 'a'.repeat(256)] }), 'addrs[0]'],
    ['addr not a multiaddr', () => ({ ...hello(), addrs: ['1.2.3.4:4001'] }), 'addrs[0]'],
    ['cert not an object', () => ({ ...hello(), cert: 'x' }), 'cert'],
    ['cert too big', () => ({ ...hello(), cert: { blob: 'x'.repeat(9000) } }), 'cert'],
    ['revocation too many keys', () => ({ type: 'revoke', revocation: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, i])) }), 'revocation'],
    ['zero cores', () => { const m = nodeInfo(); m.info.cpu.cores = 0; return m }, 'info.cpu.cores'],
    ['too many gpus', () => { const m = nodeInfo(); m.info.gpus = Array(17).fill(info().gpus[0]); return m }, 'info.gpus'],
    ['long driver', () => { const m = nodeInfo(); m.info.gpus[0].driver = 'd'.repeat(65); return m }, 'info.gpus[0].driver'],
    ['bad encoder name', () => { const m = nodeInfo(); m.info.ffmpeg.encoders = ['libx264; rm -rf']; return m }, 'info.ffmpeg.encoders[0]'],
    ['too many encoders', () => { const m = nodeInfo(); m.info.ffmpeg.encoders = Array(65).fill('aac'); return m }, 'info.ffmpeg.encoders'],
    ['negative fps', () => { const m = nodeInfo(); m.info.bench.x = -1; return m }, 'info.bench.x'],
    ['absurd fps', () => { const m = nodeInfo(); m.info.bench.x = 1e300; return m }, 'info.bench.x'],
    ['too many presets', () => { const m = nodeInfo(); m.info.bench = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`p${i}`, 1])); return m }, 'info.bench'],
    ['bad preset name', () => { const m = nodeInfo(); m.info.bench['../x'] = 1; return m }, 'info.bench.../x']
  ]
  for (const [name, make, field] of cases) {
    it(`refuses ${name}, naming ${field}`, () => {
      const err = refused(make())
      expect(err.field).toBe(field)
      expect(err.message.startsWith(`${field}`)).toBe(true)
    })
  }
})

describe('mDNS TXT record', () => {
  const txt = (): Record<string, unknown> => ({
    farm: FARM, peer: PEER, addrs: '/ip4/192.168.1.20/tcp/4001,/dns4/bay2.local/tcp/4001', v: '1', score: '212.5', gpu: 'NVIDIA RTX 4090'
  })

  it('parses strings and bytes, ignores unknown keys', () => {
    const bytes = Object.fromEntries(Object.entries(txt()).map(([k, v]) => [k, Buffer.from(String(v))]))
    for (const rec of [txt(), bytes, { ...txt(), future: 'x' }]) {
      expect(parseTxt(rec)).toEqual({
        farm: FARM, peer: PEER, addrs: ['/ip4/192.168.1.20/tcp/4001', '/dns4/bay2.local/tcp/4001'], v: 1, score: 212.5, gpu: 'NVIDIA RTX 4090'
      })
    }
    const min = txt(); delete min.score; delete min.gpu
    expect(parseTxt(min).score).toBeUndefined()
  })

  it('formats a record that parses back', () => {
    const fields = parseTxt(txt())
    expect(formatTxt(fields)).toEqual(txt())
    expect(parseTxt(formatTxt(fields))).toEqual(fields)
    expect(formatTxt({ ...fields, gpu: 'Radeon™ Pro\u0000' }).gpu).toBe('Radeon? Pro?')
    const many = Array.from({ length: 8 }, (_, i) => `/ip6/fe80::aaaa:bbbb:cccc:${i}/tcp/4001`)
    const out = formatTxt({ ...fields, addrs: many })
    expect(`addrs=${out.addrs!}`.length).toBeLessThanOrEqual(255)
    expect(parseTxt(out).addrs).toEqual(many.slice(0, parseTxt(out).addrs.length))
    expect(() => formatTxt({ ...fields, farm: 'nope' })).toThrow(WireError)
  })

  const garbage: Array<[string, (r: Record<string, unknown>) => unknown, RegExp]> = [
    ['not an object', () => null, /record must be an object/],
    ['array record', () => [], /record must be an object/],
    ['missing farm', (r) => { delete r.farm }, /missing key "farm"/],
    ['missing addrs', (r) => { delete r.addrs }, /missing key "addrs"/],
    ['number value', (r) => { r.v = 1 }, /v: must be a string or bytes, got number/],
    ['null value', (r) => { r.peer = null }, /peer: must be a string or bytes, got null/],
    ['array value', (r) => { r.addrs = ['/ip4/1.2.3.4/tcp/1'] }, /addrs: must be a string or bytes/],
    ['NUL in value', (r) => { r.gpu = 'RTX\u00004090' }, /gpu: value contains NUL/],
    ['invalid UTF-8 bytes', (r) => { r.peer = Uint8Array.of(0xff, 0xfe) }, /peer: value is not valid UTF-8/],
    ['huge value', (r) => { r.gpu = 'x'.repeat(100_000) }, /gpu: value of 100000 characters is too long/],
    ['huge bytes', (r) => { r.addrs = new Uint8Array(1_000_000) }, /addrs: value of 1000000 bytes is too long/],
    ['non-numeric v', (r) => { r.v = 'one' }, /mDNS TXT v: /],
    ['v with exponent', (r) => { r.v = '1e3' }, /mDNS TXT v: /],
    ['uppercase farm', (r) => { r.farm = FARM.toUpperCase() }, /mDNS TXT farm: /],
    ['bad peer', (r) => { r.peer = 'Qm0OIl' }, /mDNS TXT peer: /],
    ['addr with bad scheme', (r) => { r.addrs = '/unix/tmp/sock' }, /mDNS TXT addrs\[0\]: /],
    ['empty addrs', (r) => { r.addrs = '' }, /mDNS TXT addrs\[0\]: /],
    ['too many addrs', (r) => { r.addrs = Array(9).fill('/ip4/1.2.3.4/tcp/1').join(',') }, /mDNS TXT addrs: at most 8/],
    ['long addr', (r) => { r.addrs = '/ip4/' + '1'.repeat(252) }, /mDNS TXT addrs\[0\]: /],
    ['negative score', (r) => { r.score = '-1' }, /mDNS TXT score: /],
    ['score NaN', (r) => { r.score = 'NaN' }, /mDNS TXT score: /],
    ['long gpu', (r) => { r.gpu = 'g'.repeat(65) }, /mDNS TXT gpu: /],
    ['control chars in gpu', (r) => { r.gpu = 'RTX\u001b[31m' }, /mDNS TXT gpu: /]
  ]
  for (const [name, mutate, message] of garbage) {
    it(`refuses ${name}`, () => {
      const rec = txt()
      const replaced = mutate(rec)
      const input = (replaced === undefined ? rec : replaced) as Record<string, unknown>
      let caught: unknown
      try { parseTxt(input) } catch (err) { caught = err }
      expect(caught).toBeInstanceOf(WireError)
      expect((caught as WireError).code).toBe('schema')
      expect((caught as WireError).message).toMatch(message)
    })
  }
})
