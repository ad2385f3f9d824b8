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
  constructor (readonly status: number, message: string) { super(message) }
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

  async post<T = Record<string, unknown>> (route: string, body: unknown): Promise<T> {
    return await this.request<T>('POST', route, body)
  }

  private async request<T> (method: string, route: string, body?: unknown): Promise<T> {
    let res: Response
    try {
      res = await fetch(`${this.url}${route}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(10_000)
      })
    } catch (err) {
      throw new AgentNotRunningError(`the agent at ${this.url} does not answer (${(err as Error).message}); is it running?`)
    }
    const json = await res.json().catch(() => ({})) as { message?: string }
    if (!res.ok) throw new ApiError(res.status, json.message ?? `HTTP ${res.status}`)
    return json as T
  }
}
