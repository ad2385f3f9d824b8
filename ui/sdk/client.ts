/**
 * Talks to the local agent's HTTP API, found through `<state-dir>/api.json`.
 *
 *   const api = await LocalClient.forStateDir(stateDir)
 *   const { nodes } = await api.get('/v1/nodes')
 */
import { readFile } from 'node:fs/promises'
import path from 'node:path'

export class AgentNotRunningError extends Error {
  override readonly name = 'AgentNotRunningError'
}

export class ApiError extends Error {
  override readonly name = 'ApiError'
  constructor (readonly status: number, message: string, readonly code?: string, readonly field?: string) { super(message) }
}

export class LocalClient {
  constructor (readonly url: string, private readonly token: string) {}

  static async forStateDir (stateDir: string): Promise<LocalClient> {
    let info: { url?: unknown; token?: unknown }
    try {
      info = JSON.parse(await readFile(path.join(stateDir, 'api.json'), 'utf8')) as typeof info
    } catch {
      throw new AgentNotRunningError(`no agent is running for ${stateDir} (no api.json); start one with: renderswarm agent --state-dir ${stateDir}`)
    }
    if (typeof info.url !== 'string' || typeof info.token !== 'string' || !info.url.startsWith('http://127.0.0.1:')) throw new AgentNotRunningError(`${path.join(stateDir, 'api.json')} is unreadable`)
    return new LocalClient(info.url, info.token)
  }

  async get<T = Record<string, unknown>> (route: string): Promise<T> {
    return await this.request<T>('GET', route)
  }

  async post<T = Record<string, unknown>> (route: string, body: unknown, timeoutMs?: number): Promise<T> {
    return await this.request<T>('POST', route, body, timeoutMs)
  }

  /** Reads the agent's Server-Sent Events until `signal` aborts or the agent goes away. */
  async events (on: (type: string, data: unknown) => void, signal: AbortSignal): Promise<void> {
    const res = await fetch(`${this.url}/v1/events`, { headers: { authorization: `Bearer ${this.token}` }, signal })
    if (!res.ok || res.body === null) throw new ApiError(res.status, `events: HTTP ${res.status}`)
    const decoder = new TextDecoder()
    let buf = ''
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true })
      let end: number
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end)
        buf = buf.slice(end + 2)
        let type = 'message'
        let data = ''
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) type = line.slice(7)
          else if (line.startsWith('data: ')) data += line.slice(6)
        }
        if (data !== '') {
          try { on(type, JSON.parse(data)) } catch { /* a malformed event is skipped */ }
        }
      }
    }
  }

  private async request<T> (method: string, route: string, body?: unknown, timeoutMs = 10_000): Promise<T> {
    let res: Response
    try {
      res = await fetch(`${this.url}${route}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs)
      })
    } catch (err) {
      throw new AgentNotRunningError(`the agent at ${this.url} does not answer (${(err as Error).message}); is it running?`)
    }
    const json = await res.json().catch(() => ({})) as { message?: string; error?: string; field?: string }
    if (!res.ok) throw new ApiError(res.status, json.message ?? `HTTP ${res.status}`, json.error, json.field)
    return json as T
  }
}
