/** The agent daemon in-process on loopback: local API with token, restart keeps identity and farm. */
import { afterAll, describe, expect, it } from 'vitest'
import { readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { Agent } from '../../agent/daemon.ts'
import { parsePolicy } from '../../agent/availability.ts'
import { LocalClient, ApiError } from '../../ui/sdk/client.ts'
import { cleanupTmp, tmpDir } from '../helpers/media.ts'

afterAll(cleanupTmp)

describe('agent daemon', () => {
  it('serves /v1/nodes and /v1/status to the token holder only, and keeps identity across restarts', async () => {
    const stateDir = await tmpDir('agent')
    const a = await Agent.start({ stateDir, listen: ['/ip4/127.0.0.1/tcp/0'], apiPort: 0, mdns: false, name: 'bay-1' })
    let peerId: string, farm: string
    try {
      const apiFile = path.join(stateDir, 'api.json')
      expect((await stat(apiFile)).mode & 0o777).toBe(0o600)
      expect((await stat(path.join(stateDir, 'state.db'))).mode & 0o777).toBe(0o600)
      const info = JSON.parse(await readFile(apiFile, 'utf8')) as { url: string; token: string }
      expect(info.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      const noToken = await fetch(`${info.url}/v1/nodes`)
      expect(noToken.status).toBe(401)
      const wrong = await fetch(`${info.url}/v1/status`, { headers: { authorization: 'Bearer nope' } })
      expect(wrong.status).toBe(401)
      expect((await wrong.json() as { message: string }).message).toMatch(/wrong access token/)
      const api = await LocalClient.forStateDir(stateDir)
      const { nodes } = await api.get<{ nodes: Array<{ name: string; self: boolean; info: { cpu: { cores: number }; ffmpeg: { encoders: string[] } } }> }>('/v1/nodes')
      expect(nodes).toHaveLength(1)
      expect(nodes[0]!.self).toBe(true)
      expect(nodes[0]!.name).toBe('bay-1')
      expect(nodes[0]!.info.ffmpeg.encoders).toContain('ffv1')
      expect((nodes[0] as unknown as { accepting: boolean }).accepting).toBe(true)
      const status = await api.get<{ peerId: string; farm: string; holdsFarmKey: boolean; refused: Record<string, number> }>('/v1/status')
      expect(status.holdsFarmKey).toBe(true)
      expect(status.refused['api-unauthorized']).toBe(2)
      await expect(api.get('/v1/nope')).rejects.toThrow(ApiError)
      // Metrics and events need the token too.
      expect((await fetch(`${info.url}/metrics`)).status).toBe(401)
      expect((await fetch(`${info.url}/v1/events`)).status).toBe(401)
      const metrics = await (await fetch(`${info.url}/metrics`, { headers: { authorization: `Bearer ${info.token}` } })).text()
      expect(metrics).toMatch(/^renderswarm_nodes\{state="alive"\} 1$/m)
      expect(metrics).toMatch(/^renderswarm_refused_total\{reason="api-unauthorized"\} [4-9]$/m)
      expect(metrics).toMatch(/^renderswarm_node_cpu_percent\{node="bay-1",peer="12D3KooW\w+"\} [\d.]+$/m)
      expect(metrics).toMatch(/^renderswarm_process_resident_memory_bytes \d+$/m)
      const events = new AbortController()
      const sse = await fetch(`${info.url}/v1/events`, { headers: { authorization: `Bearer ${info.token}` }, signal: events.signal })
      expect(sse.headers.get('content-type')).toBe('text/event-stream')
      const first = new TextDecoder().decode((await sse.body!.getReader().read()).value)
      expect(first).toMatch(/^event: hello\ndata: \{"peerId":"12D3KooW/)
      events.abort()
      peerId = status.peerId
      farm = status.farm
    } finally {
      await a.stop()
    }
    await expect(LocalClient.forStateDir(stateDir)).rejects.toThrow(/no agent is running/)
    const b = await Agent.start({ stateDir, listen: ['/ip4/127.0.0.1/tcp/0'], apiPort: 0, mdns: false })
    try {
      const status = await (await LocalClient.forStateDir(stateDir)).get<{ peerId: string; farm: string; name: string }>('/v1/status')
      expect(status.peerId).toBe(peerId)
      expect(status.farm).toBe(farm)
      expect(status.name).toBe('bay-1')
    } finally {
      await b.stop()
    }
  })

  it('advertises that it takes no work outside its schedule', async () => {
    const stateDir = await tmpDir('agent-sched')
    const otherDay = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'][(new Date().getDay() + 3) % 7]!
    const a = await Agent.start({ stateDir, listen: ['/ip4/127.0.0.1/tcp/0'], apiPort: 0, mdns: false, policy: parsePolicy({ when: 'schedule', schedule: otherDay, maxCpuPct: 50 }) })
    try {
      const { nodes } = await (await LocalClient.forStateDir(stateDir)).get<{ nodes: Array<{ accepting: boolean; notAcceptingBecause?: string; maxCpuPct: number }> }>('/v1/nodes')
      expect(nodes[0]).toMatchObject({ accepting: false, notAcceptingBecause: 'outside its render schedule', maxCpuPct: 50 })
    } finally {
      await a.stop()
    }
  })
})
