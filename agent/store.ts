/**
 * The agent's durable state in one SQLite file (better-sqlite3): identity, farm membership,
 * benchmark cache, known peers. Survives restarts; written in transactions.
 *
 *   const store = Store.open(path.join(stateDir, 'state.db'))
 *   store.setJson('identity', { peerKey })
 *   store.putBenchmark(key, { ffv1: 93.1 })
 *   store.close()
 */
import Database from 'better-sqlite3'
import { chmodSync, mkdirSync } from 'node:fs'
import path from 'node:path'

export class StoreError extends Error {
  override readonly name = 'StoreError'
}

export interface PeerRow { peerId: string; name: string; addrs: string[]; lastSeenMs: number; info: unknown }

/** Schema migrations, applied in order; the database's user_version says how many ran. */
const MIGRATIONS: string[] = [
  `CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
   CREATE TABLE benchmarks (key TEXT PRIMARY KEY, result TEXT NOT NULL, measured_at INTEGER NOT NULL) STRICT;
   CREATE TABLE peers (peer_id TEXT PRIMARY KEY, name TEXT NOT NULL, addrs TEXT NOT NULL, last_seen INTEGER NOT NULL, info TEXT NOT NULL) STRICT;`,
  // Job records: every member keeps a copy (the coordinator replicates them), so a successor can go on.
  `CREATE TABLE jobs (id TEXT PRIMARY KEY, record TEXT NOT NULL, updated INTEGER NOT NULL, owner INTEGER NOT NULL DEFAULT 0, output TEXT) STRICT;`
]

export class Store {
  private constructor (private readonly db: Database.Database, readonly file: string) {}

  static open (file: string): Store {
    if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
    let db: Database.Database
    try {
      db = new Database(file)
      // The state holds this machine's identity key and possibly the farm key: owner only.
      if (file !== ':memory:') chmodSync(file, 0o600)
      // The agent and a CLI (farm invite, join…) share this file: wait for each other's locks.
      db.pragma('busy_timeout = 5000')
      db.pragma('journal_mode = WAL')
      db.pragma('synchronous = NORMAL')
      const version = db.pragma('user_version', { simple: true }) as number
      if (version > MIGRATIONS.length) throw new StoreError(`${file} was written by a newer renderswarm (schema ${version}, this one knows ${MIGRATIONS.length}); upgrade renderswarm`)
      db.transaction(() => {
        for (let v = version; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!)
        db.pragma(`user_version = ${MIGRATIONS.length}`)
      }).immediate()
    } catch (err) {
      if (err instanceof StoreError) throw err
      throw new StoreError(`opening the agent's state ${file}: ${(err as Error).message}`, { cause: err })
    }
    return new Store(db, file)
  }

  getJson<T> (key: string): T | undefined {
    const row = this.db.prepare('SELECT value FROM kv WHERE key = ?').get(key) as { value: string } | undefined
    return row === undefined ? undefined : JSON.parse(row.value) as T
  }

  setJson (key: string, value: unknown): void {
    this.db.prepare('INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, JSON.stringify(value))
  }

  deleteKey (key: string): void {
    this.db.prepare('DELETE FROM kv WHERE key = ?').run(key)
  }

  getBenchmark<T> (key: string): { result: T; measuredAtMs: number } | undefined {
    const row = this.db.prepare('SELECT result, measured_at FROM benchmarks WHERE key = ?').get(key) as { result: string; measured_at: number } | undefined
    return row === undefined ? undefined : { result: JSON.parse(row.result) as T, measuredAtMs: row.measured_at }
  }

  putBenchmark (key: string, result: unknown, measuredAtMs: number): void {
    this.db.prepare('INSERT INTO benchmarks (key, result, measured_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET result = excluded.result, measured_at = excluded.measured_at')
      .run(key, JSON.stringify(result), measuredAtMs)
  }

  upsertPeer (p: PeerRow): void {
    this.db.prepare(`INSERT INTO peers (peer_id, name, addrs, last_seen, info) VALUES (@peerId, @name, @addrs, @lastSeenMs, @info)
      ON CONFLICT(peer_id) DO UPDATE SET name = excluded.name, addrs = excluded.addrs, last_seen = excluded.last_seen, info = excluded.info`)
      .run({ ...p, addrs: JSON.stringify(p.addrs), info: JSON.stringify(p.info) })
  }

  listPeers (): PeerRow[] {
    const rows = this.db.prepare('SELECT peer_id, name, addrs, last_seen, info FROM peers ORDER BY peer_id').all() as Array<{ peer_id: string; name: string; addrs: string; last_seen: number; info: string }>
    return rows.map((r) => ({ peerId: r.peer_id, name: r.name, addrs: JSON.parse(r.addrs) as string[], lastSeenMs: r.last_seen, info: JSON.parse(r.info) as unknown }))
  }

  removePeer (peerId: string): void {
    this.db.prepare('DELETE FROM peers WHERE peer_id = ?').run(peerId)
  }

  /** Stores a job record if it is newer than the one held (replication is idempotent). */
  putJob (id: string, record: unknown, updatedMs: number): boolean {
    const res = this.db.prepare(`INSERT INTO jobs (id, record, updated) VALUES (?, ?, ?)
      ON CONFLICT(id) DO UPDATE SET record = excluded.record, updated = excluded.updated WHERE excluded.updated >= jobs.updated`)
      .run(id, JSON.stringify(record), updatedMs)
    return res.changes > 0
  }

  getJob<T> (id: string): T | undefined {
    const row = this.db.prepare('SELECT record FROM jobs WHERE id = ?').get(id) as { record: string } | undefined
    return row === undefined ? undefined : JSON.parse(row.record) as T
  }

  /** When the stored copy of a job record was last updated (the record's updatedMs), or undefined. */
  jobUpdated (id: string): number | undefined {
    const row = this.db.prepare('SELECT updated FROM jobs WHERE id = ?').get(id) as { updated: number } | undefined
    return row?.updated
  }

  /** Ids of the jobs updated at or after sinceMs, newest first, with when. */
  jobsSince (sinceMs: number, limit: number): Array<{ jobId: string; updatedMs: number }> {
    return this.db.prepare('SELECT id AS jobId, updated AS updatedMs FROM jobs WHERE updated >= ? ORDER BY updated DESC LIMIT ?').all(sinceMs, limit) as Array<{ jobId: string; updatedMs: number }>
  }

  listJobs<T> (limit = 500): T[] {
    const rows = this.db.prepare('SELECT record FROM jobs ORDER BY updated DESC LIMIT ?').all(limit) as Array<{ record: string }>
    return rows.map((r) => JSON.parse(r.record) as T)
  }

  /** The owner's side of a job: where the editor asked for the output. */
  setJobOutput (id: string, output: string): void {
    this.db.prepare('UPDATE jobs SET owner = 1, output = ? WHERE id = ?').run(output, id)
  }

  jobOutput (id: string): string | undefined {
    const row = this.db.prepare('SELECT output FROM jobs WHERE id = ? AND owner = 1').get(id) as { output: string | null } | undefined
    return row?.output ?? undefined
  }

  /**
   * Runs fn in one transaction: all of its writes land, or none. IMMEDIATE: the write lock is
   * taken (waiting up to the busy timeout) when it begins, so a read-then-write cannot fail with
   * "database is locked" when another process (the agent, a CLI) wrote in between.
   */
  transaction<T> (fn: () => T): T {
    return this.db.transaction(fn).immediate()
  }

  close (): void {
    if (this.db.open) this.db.close()
  }
}
