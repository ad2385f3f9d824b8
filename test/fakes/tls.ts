/**
 * A throw-away self-signed certificate for 127.0.0.1, made at test time with openssl (Azure's
 * SDK refuses plain HTTP for bearer tokens, so the ARM fake serves HTTPS). Nothing is kept:
 * the key lives only in memory once read.
 *
 *   const { key, cert } = selfSignedCert()     // cert doubles as the CA the client trusts
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export function selfSignedCert (): { key: string; cert: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rs-tls-'))
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 })
    return { key: readFileSync(path.join(dir, 'key.pem'), 'utf8'), cert: readFileSync(path.join(dir, 'cert.pem'), 'utf8') }
  } catch (err) {
    throw new Error(`making a self-signed certificate with openssl failed (is openssl installed?): ${(err as Error).message}`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
