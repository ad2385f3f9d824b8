/**
 * The bundled price table (prices.json): list prices per provider, region and instance type,
 * validated on load. Adapters answer `prices(region)` from it (AWS refreshes spot figures live).
 *
 *   const table = bundledPrices()                      // every row, checked
 *   const row = findPrice(table, 'aws', 'us-east-1', 'g5.xlarge')
 *   const usdPerHour = spot ? row.spotPerHour : row.onDemandPerHour
 *
 * A table with a malformed row, a duplicate (provider, region, instanceType) or a spot price not
 * below on-demand (for a cloud; the local provider charges 0 for both) is refused by `parsePrices`
 * with the row and field named.
 */
import { z } from 'zod'
import { PriceRowSchema, type PriceRow, type ProviderName } from './provider.ts'
// Imported, not read from beside this file: the release bundle inlines it (dist/ has no prices.json).
import table from './prices.json' with { type: 'json' }

export const PriceTableSchema = z.object({
  note: z.string().min(1).max(2000),
  rows: z.array(PriceRowSchema).min(1).max(10_000)
}).strict()

export class PriceTableError extends Error {
  override name = 'PriceTableError'
}

export function parsePrices (json: unknown): PriceRow[] {
  const r = PriceTableSchema.safeParse(json)
  if (!r.success) {
    const issue = r.error.issues[0]!
    throw new PriceTableError(`price table: ${issue.path.join('.') || '(root)'}: ${issue.message}`)
  }
  const seen = new Set<string>()
  r.data.rows.forEach((row, i) => {
    const key = `${row.provider}/${row.region}/${row.instanceType}`
    if (seen.has(key)) throw new PriceTableError(`price table: rows.${i}: duplicate row for ${key}`)
    seen.add(key)
    if (row.provider === 'local' ? row.spotPerHour > row.onDemandPerHour : row.spotPerHour >= row.onDemandPerHour) {
      throw new PriceTableError(`price table: rows.${i} (${key}): spotPerHour ${row.spotPerHour} must be below onDemandPerHour ${row.onDemandPerHour}`)
    }
  })
  return r.data.rows
}

let cached: PriceRow[] | undefined
/** The table shipped with renderswarm (read and checked once). */
export function bundledPrices (): PriceRow[] {
  cached ??= parsePrices(table as unknown)
  return cached.map((r) => ({ ...r, gpu: { ...r.gpu } }))
}

export function pricesFor (rows: PriceRow[], provider: ProviderName, region: string): PriceRow[] {
  return rows.filter((r) => r.provider === provider && r.region === region)
}

export function findPrice (rows: PriceRow[], provider: ProviderName, region: string, instanceType: string): PriceRow | undefined {
  return rows.find((r) => r.provider === provider && r.region === region && r.instanceType === instanceType)
}
