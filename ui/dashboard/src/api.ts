/**
 * The dashboard's side of the agent's local API (same origin as the page).
 *
 *   await startSession(location.hash)        // '#token=…' → HttpOnly cookie, fragment dropped
 *   const nodes = await api.get('/v1/nodes', NodesReply)
 *   const stop = followEvents((ev) => …, { onOpen, onDown })
 *
 * Authentication: `renderswarm open` gives the page its token in the URL fragment, which the
 * browser never sends to a server. The page hands it once to POST /v1/session (as the usual
 * Bearer header); the agent answers with an HttpOnly, SameSite=Strict cookie, and from then on
 * every request, EventSource included (it cannot set headers), is authenticated by that cookie.
 * The token is then dropped from the address bar and kept nowhere the page's scripts can read.
 */
import type { z } from 'zod'
import { ErrorReply, parseEvent, EVENT_NAMES, type FarmEvent } from './schemas.ts'

export class ApiError extends Error {
  override readonly name = 'ApiError'
  constructor (readonly status: number, message: string, readonly field?: string | undefined, readonly code?: string | undefined) { super(message) }
}

/** The token in a fragment such as "#token=abc" (other fragment parameters are ignored). */
export function tokenFromFragment (hash: string): string | undefined {
  const t = new URLSearchParams(hash.replace(/^#/, '')).get('token')
  return t !== null && /^[A-Za-z0-9_-]{16,128}$/.test(t) ? t : undefined
}

/**
 * Trades a fragment token for the session cookie. Returns 'cookie' when the page may go on
 * (a token was traded, or none was given and a cookie from earlier may still hold).
 */
export async function startSession (hash: string): Promise<'traded' | 'no-token'> {
  const token = tokenFromFragment(hash)
  if (token === undefined) return 'no-token'
  const res = await fetch('/v1/session', { method: 'POST', headers: { authorization: `Bearer ${token}` }, credentials: 'same-origin', cache: 'no-store' })
  // The token leaves the address bar (and this history entry) whatever the answer.
  history.replaceState(null, '', location.pathname + location.search)
  if (!res.ok) throw await apiError(res, 'starting the dashboard session')
  return 'traded'
}

async function apiError (res: Response, what: string): Promise<ApiError> {
  const body = ErrorReply.safeParse(await res.json().catch(() => ({})))
  const msg = body.success ? body.data.message : undefined
  if (res.status === 401) return new ApiError(401, `${what}: not signed in to this agent (${msg ?? 'unauthorized'}). Open the dashboard with \`renderswarm open\` on this machine.`)
  return new ApiError(res.status, msg ?? `${what}: HTTP ${res.status}`, body.success ? body.data.field : undefined, body.success ? body.data.error : undefined)
}

async function request<S extends z.ZodTypeAny> (method: 'GET' | 'POST', route: string, schema: S, body?: unknown, timeoutMs = 60_000): Promise<z.infer<S>> {
  let res: Response
  try {
    res = await fetch(route, {
      method,
      credentials: 'same-origin',
      cache: 'no-store',
      headers: body !== undefined ? { 'content-type': 'application/json' } : {},
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(timeoutMs)
    })
  } catch (err) {
    throw new ApiError(0, `${method} ${route}: the agent does not answer (${(err as Error).message})`)
  }
  if (!res.ok) throw await apiError(res, `${method} ${route}`)
  const parsed = schema.safeParse(await res.json().catch(() => undefined))
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new ApiError(res.status, `${method} ${route}: the agent's answer is not what this page expects (${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}); reload the page`)
  }
  return parsed.data as z.infer<S>
}

export const api = {
  get: async <S extends z.ZodTypeAny>(route: string, schema: S): Promise<z.infer<S>> => await request('GET', route, schema),
  post: async <S extends z.ZodTypeAny>(route: string, body: unknown, schema: S): Promise<z.infer<S>> => await request('POST', route, schema, body)
}

export interface EventHandlers {
  /** The stream is (again) open: re-fetch what may have changed while it was down. */
  onOpen: () => void
  /** The stream broke: `closed` when the browser gave up (the agent refused it), else it retries on its own. */
  onDown: (closed: boolean) => void
  /** An event whose data failed its schema (counted, not drawn). */
  onMalformed?: (type: string) => void
}

/** Follows /v1/events; returns a function that closes the stream. */
export function followEvents (on: (ev: FarmEvent) => void, h: EventHandlers): () => void {
  const es = new EventSource('/v1/events', { withCredentials: false })
  for (const type of EVENT_NAMES) {
    es.addEventListener(type, (e) => {
      let data: unknown
      try { data = JSON.parse((e as MessageEvent<string>).data) } catch { h.onMalformed?.(type); return }
      const ev = parseEvent(type, data)
      if (ev === undefined) { h.onMalformed?.(type); return }
      on(ev)
    })
  }
  es.addEventListener('open', () => { h.onOpen() })
  es.addEventListener('error', () => { h.onDown(es.readyState === EventSource.CLOSED) })
  return () => { es.close() }
}
