/**
 * The agent's side of the dashboard (ui/dashboard/serve.ts) and `renderswarm open`'s URL
 * (ui/cli/open.ts): which paths are static files, which requests a session cookie may
 * authenticate, and the URL with the token in its fragment. The real server, cookie and
 * browser are tested end to end in test/e2e/dashboard.test.ts.
 */
import type { IncomingMessage } from 'node:http'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { cookieToken, isStaticRequest, sessionCookie, staticPath } from '../../ui/dashboard/serve.ts'
import { dashboardUrl, openerFor } from '../../ui/cli/open.ts'

const ROOT = path.resolve('/srv/dash')
const req = (method: string, headers: Record<string, string>): IncomingMessage => ({ method, headers } as unknown as IncomingMessage)

describe('dashboard static files', () => {
  it('maps / and built asset names inside the build folder, and nothing else', () => {
    expect(staticPath(ROOT, '/')).toBe(path.join(ROOT, 'index.html'))
    expect(staticPath(ROOT, '/assets/index-BybiRv43.js')).toBe(path.join(ROOT, 'assets', 'index-BybiRv43.js'))
    expect(staticPath(ROOT, '/favicon.svg')).toBe(path.join(ROOT, 'favicon.svg'))
    for (const bad of ['/../package.json', '/assets/../../x.js', '/%2e%2e/x.js', '/..%2fx.js', '/.env.js', '/assets/.x.js', '/a\\b.js', '/x%00.js', '/api.json.txt', '/deep/er/x.js', '/%E0%A4%A.js', '/state.db']) {
      expect(staticPath(ROOT, bad), bad).toBeUndefined()
    }
  })

  it('GET/HEAD outside /v1 and /metrics are static; API routes never are', () => {
    const u = (p: string): URL => new URL(p, 'http://127.0.0.1')
    expect(isStaticRequest('GET', u('/'))).toBe(true)
    expect(isStaticRequest('HEAD', u('/assets/x.js'))).toBe(true)
    expect(isStaticRequest('POST', u('/'))).toBe(false)
    expect(isStaticRequest('GET', u('/v1/status'))).toBe(false)
    expect(isStaticRequest('GET', u('/v1'))).toBe(false)
    expect(isStaticRequest('GET', u('/metrics'))).toBe(false)
  })
})

describe('dashboard session cookie', () => {
  const port = 4321
  const cookie = `other=1; rs_session_${port}=tok123; rs_session_9999=nope`
  const base = { host: `127.0.0.1:${port}`, cookie }

  it('is HttpOnly, SameSite=Strict and named for the port', () => {
    expect(sessionCookie(port, 'tok123')).toBe('rs_session_4321=tok123; Path=/; HttpOnly; SameSite=Strict')
  })

  it('authenticates same-origin requests only', () => {
    expect(cookieToken(req('GET', base), port)).toBe('tok123')
    expect(cookieToken(req('GET', { ...base, 'sec-fetch-site': 'same-origin' }), port)).toBe('tok123')
    expect(cookieToken(req('POST', { ...base, origin: `http://127.0.0.1:${port}`, 'sec-fetch-site': 'same-origin' }), port)).toBe('tok123')
    // Another port on this machine, another site, a rebound host name, a POST without Origin:
    expect(cookieToken(req('POST', { ...base, origin: 'http://127.0.0.1:8080' }), port)).toBeUndefined()
    expect(cookieToken(req('GET', { ...base, 'sec-fetch-site': 'same-site' }), port)).toBeUndefined()
    expect(cookieToken(req('GET', { ...base, 'sec-fetch-site': 'cross-site' }), port)).toBeUndefined()
    expect(cookieToken(req('GET', { ...base, host: `evil.example:${port}` }), port)).toBeUndefined()
    expect(cookieToken(req('POST', base), port)).toBeUndefined()
    expect(cookieToken(req('GET', { host: base.host, cookie: 'rs_session_9999=nope' }), port)).toBeUndefined()
    expect(cookieToken(req('GET', { host: base.host }), port)).toBeUndefined()
  })
})

describe('renderswarm open', () => {
  it('puts the token in the fragment; refuses an api.json it cannot trust', () => {
    expect(dashboardUrl({ url: 'http://127.0.0.1:4321', token: 'AevDrDhLW48CgYwam504z4s-5vLOQw2f', pid: 1 })).toBe('http://127.0.0.1:4321/#token=AevDrDhLW48CgYwam504z4s-5vLOQw2f')
    expect(() => dashboardUrl({ url: 'http://evil.example:80', token: 'AevDrDhLW48CgYwam504z4s-5vLOQw2f' })).toThrow(/url/)
    expect(() => dashboardUrl({ url: 'http://127.0.0.1:4321', token: 'a b' })).toThrow(/token/)
    expect(() => dashboardUrl(null)).toThrow(/not a JSON object/)
  })

  it('picks the desktop opener by platform, when it is installed', () => {
    expect(openerFor('linux', (c) => c === 'xdg-open')).toEqual(['xdg-open'])
    expect(openerFor('linux', () => false)).toBeUndefined()
    expect(openerFor('darwin', (c) => c === 'open')).toEqual(['open'])
    expect(openerFor('win32', () => false)).toEqual(['cmd', '/c', 'start', ''])
  })
})
