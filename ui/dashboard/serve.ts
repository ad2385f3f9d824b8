/**
 * The agent's side of the dashboard: serves the production build (dist/dashboard/) from the
 * local API server without a token (static files only: no data, no secrets), and the
 * session cookie the page trades its fragment token for. Used by agent/daemon.ts.
 *
 *   const files = new DashboardFiles()                           // finds dist/dashboard/
 *   if (isStaticRequest(req.method, url)) { void files.serve(req, res, url); return }   // GET /, /assets/…
 *   res.setHeader('set-cookie', sessionCookie(port, token))        // POST /v1/session, after the Bearer check
 *   const fromCookie = cookieToken(req, port)                      // a token a same-origin page request carries
 *
 * The cookie is HttpOnly (page scripts cannot read it) and SameSite=Strict. Cookies are scoped
 * by host, not port, so its name carries the port (several agents on one machine keep theirs
 * apart), and `cookieToken` accepts it only from a same-origin request: Host is this API's
 * 127.0.0.1:port, Sec-Fetch-Site (when sent) is same-origin, and anything but GET/HEAD must
 * carry Origin http://127.0.0.1:port, so no other site or local port can act through it.
 */
import { createReadStream, existsSync } from 'node:fs'
import { stat } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** Sent with every static file: nothing from anywhere but this agent, no framing, no referrer. */
export const DASHBOARD_CSP = "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'"

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json'
}

/**
 * Where the build is: dist/dashboard/ beside the sources (agent run through tsx), or beside
 * the CLI bundle's directory (dist/renderswarm/ → dist/dashboard/). Undefined when not built.
 */
export function findDashboardDir (from = import.meta.url): string | undefined {
  const here = path.dirname(fileURLToPath(from))
  for (const dir of [path.resolve(here, '..', '..', 'dist', 'dashboard'), path.resolve(here, '..', 'dashboard')]) {
    if (existsSync(path.join(dir, 'index.html'))) return dir
  }
  return undefined
}

/** The file under `root` a URL path names, or undefined when it is not a plain name inside it. */
export function staticPath (root: string, pathname: string): string | undefined {
  let p: string
  try { p = decodeURIComponent(pathname) } catch { return undefined }
  if (p === '/' || p === '/index.html') return path.join(root, 'index.html')
  // Only /name.ext and /assets/name.ext: no dot-segments, no hidden files, no backslashes, no NUL.
  if (!/^\/(assets\/)?[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/.test(p) || p.includes('..')) return undefined
  if (TYPES[path.extname(p)] === undefined) return undefined
  const file = path.resolve(root, '.' + p)
  return file.startsWith(root + path.sep) ? file : undefined
}

/** GET/HEAD of anything outside /v1 and /metrics is the dashboard's, served without a token. */
export function isStaticRequest (method: string | undefined, url: URL): boolean {
  return (method === 'GET' || method === 'HEAD') && url.pathname !== '/v1' && !url.pathname.startsWith('/v1/') && url.pathname !== '/metrics'
}

export class DashboardFiles {
  constructor (readonly root: string | undefined = findDashboardDir()) {}

  /** Serves a static file (or its 404) for a request that `isStaticRequest`; false when it is not one. */
  async serve (req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    if (!isStaticRequest(req.method, url)) return false
    const headers = {
      'content-security-policy': DASHBOARD_CSP,
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
      'cross-origin-resource-policy': 'same-origin'
    }
    if (this.root === undefined) {
      res.writeHead(url.pathname === '/' ? 503 : 404, { ...headers, 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' })
      res.end(url.pathname === '/' ? 'The renderswarm dashboard is not built. Run `npm run dashboard:build` in the renderswarm folder, then reload.\n' : 'not found\n')
      return true
    }
    const file = staticPath(this.root, url.pathname)
    const s = file === undefined ? undefined : await stat(file).catch(() => undefined)
    if (file === undefined || s?.isFile() !== true) {
      res.writeHead(404, { ...headers, 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' })
      res.end('not found\n')
      return true
    }
    // Vite names assets by content hash: they never change. index.html always revalidates.
    const immutable = url.pathname.startsWith('/assets/')
    res.writeHead(200, { ...headers, 'content-type': TYPES[path.extname(file)]!, 'content-length': s.size, 'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache' })
    if (req.method === 'HEAD') { res.end(); return true }
    createReadStream(file).on('error', () => { res.destroy() }).pipe(res)
    return true
  }
}

export function cookieName (port: number): string {
  return `rs_session_${port}`
}

/** The Set-Cookie header for POST /v1/session (a session cookie: gone when the browser closes). */
export function sessionCookie (port: number, token: string): string {
  return `${cookieName(port)}=${token}; Path=/; HttpOnly; SameSite=Strict`
}

/**
 * The token carried by this API's session cookie, when the request is one this API's own page
 * made (see the module comment); undefined otherwise.
 */
export function cookieToken (req: IncomingMessage, port: number): string | undefined {
  const raw = req.headers.cookie
  if (raw === undefined) return undefined
  const origin = `http://127.0.0.1:${port}`
  if (req.headers.host !== `127.0.0.1:${port}`) return undefined
  const site = req.headers['sec-fetch-site']
  if (site !== undefined && site !== 'same-origin') return undefined
  if (req.method !== 'GET' && req.method !== 'HEAD' && req.headers.origin !== origin) return undefined
  const name = cookieName(port) + '='
  for (const part of raw.split(';')) {
    const kv = part.trim()
    if (kv.startsWith(name)) return kv.slice(name.length)
  }
  return undefined
}
