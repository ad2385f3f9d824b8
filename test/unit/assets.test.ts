import { afterAll, describe, expect, it } from 'vitest'
import { createHash } from 'node:crypto'
import { appendFile, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { AssetCache, AssetError, sha256File } from '../../agent/assets.ts'
import { cleanupTmp, tmpDir } from '../helpers/media.ts'

afterAll(cleanupTmp)

describe('AssetCache', () => {
  it('stores files under their sha256, verifies them, and drops a corrupted copy', async () => {
    const dir = await tmpDir('assets')
    const src = path.join(dir, 'a.bin')
    await writeFile(src, 'frames and frames')
    const want = createHash('sha256').update('frames and frames').digest('hex')
    expect(await sha256File(src)).toBe(want)
    const cache = new AssetCache(path.join(dir, 'cache'))
    expect(await cache.put(src)).toBe(want)
    expect(await cache.put(src)).toBe(want)
    const file = await cache.verified(want)
    expect(file).toBe(path.join(dir, 'cache', want))
    expect(await readFile(file, 'utf8')).toBe('frames and frames')
    await appendFile(file, 'tampered')
    await expect(cache.verified(want)).rejects.toThrow(/is corrupt .*removed it/)
    await expect(cache.verified(want)).rejects.toThrow(/is not in the cache/)
  })

  it('refuses a wrong expected hash and anything that is not a hash as a name', async () => {
    const dir = await tmpDir('assets2')
    const src = path.join(dir, 'a.bin')
    await writeFile(src, 'x')
    const cache = new AssetCache(path.join(dir, 'cache'))
    await expect(cache.put(src, '0'.repeat(64))).rejects.toThrow(AssetError)
    expect(() => cache.pathOf('../../etc/passwd')).toThrow(/is not a sha256/)
  })
})
