/**
 * Waits for a condition instead of sleeping (bounded in time).
 *
 *   const line = await waitFor(() => log.find((l) => /dead/.test(l)), 4000, 'the member to die')
 *
 * `fn` returns the value waited for, or undefined/false while it is not there yet.
 */
export async function waitFor<T> (fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, what: string, intervalMs = 20): Promise<T> {
  const started = Date.now()
  for (;;) {
    const v = await fn()
    if (v !== undefined && v !== false) return v
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}
