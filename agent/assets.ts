/**
 * Content-addressed asset cache: every input ffmpeg reads is `<dir>/<sha256>`.
 *
 *   const cache = new AssetCache(dir)
 *   const sha = await cache.put('/media/a.mp4')      // hash + copy in (no-op when cached)
 *   const file = await cache.verified(sha)            // path, re-hashed if the file changed
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { copyFile, mkdir, rename, rm, stat, writeFile, readFile } from 'node:fs/promises'
import path from 'node:path'
import { randomUUID } from 'node:crypto'

export class AssetError extends Error {
  override readonly name = 'AssetError'
}

export async function sha256File (file: string): Promise<string> {
  const h = createHash('sha256')
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer)
  return h.digest('hex')
}

export class AssetCache {
  constructor (readonly dir: string) {}

  pathOf (sha: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha)) throw new AssetError(`"${sha.slice(0, 70)}" is not a sha256`)
    return path.join(this.dir, sha)
  }

  /** Hashes `file` and copies it in under its hash; returns the hash. */
  async put (file: string, expectSha?: string): Promise<string> {
    await mkdir(this.dir, { recursive: true })
    const sha = await sha256File(file)
    if (expectSha !== undefined && sha !== expectSha) throw new AssetError(`${file}: sha256 is ${sha.slice(0, 12)}…, expected ${expectSha.slice(0, 12)}…`)
    const dest = this.pathOf(sha)
    if (await this.isVerified(sha)) return sha
    const tmp = `${dest}.${randomUUID()}.tmp`
    try {
      await copyFile(file, tmp)
      if (await sha256File(tmp) !== sha) throw new AssetError(`${file} changed while it was being copied into the cache`)
      await rename(tmp, dest)
    } finally {
      await rm(tmp, { force: true })
    }
    await this.mark(sha)
    return sha
  }

  /** The cached file for `sha`, hash-checked (re-hashed when size or mtime changed since the last check). */
  async verified (sha: string): Promise<string> {
    const file = this.pathOf(sha)
    if (await this.isVerified(sha)) return file
    let actual: string
    try {
      actual = await sha256File(file)
    } catch (err) {
      throw new AssetError(`asset ${sha.slice(0, 12)}… is not in the cache (${this.dir})`, { cause: err })
    }
    if (actual !== sha) {
      await rm(file, { force: true })
      throw new AssetError(`asset ${sha.slice(0, 12)}… in the cache is corrupt (hash ${actual.slice(0, 12)}…); removed it`)
    }
    await this.mark(sha)
    return file
  }

  private async isVerified (sha: string): Promise<boolean> {
    try {
      const st = await stat(this.pathOf(sha))
      const mark = await readFile(`${this.pathOf(sha)}.ok`, 'utf8')
      return mark === `${st.size}:${st.mtimeMs}`
    } catch {
      return false
    }
  }

  private async mark (sha: string): Promise<void> {
    const st = await stat(this.pathOf(sha))
    await writeFile(`${this.pathOf(sha)}.ok`, `${st.size}:${st.mtimeMs}`)
  }
}
