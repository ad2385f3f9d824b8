/** The bundled price table: every row parses, no duplicates, spot below on-demand; bad tables are refused by name. */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { bundledPrices, findPrice, parsePrices, PriceTableError } from '../../coordinator/cloud/prices.ts'

const raw = JSON.parse(readFileSync(new URL('../../coordinator/cloud/prices.json', import.meta.url), 'utf8')) as { note: string; rows: Array<Record<string, unknown>> }

describe('bundled price table', () => {
  const rows = bundledPrices()
  it('parses every row and covers GPU types on every cloud', () => {
    expect(rows.length).toBe(raw.rows.length)
    for (const p of ['aws', 'gcp', 'azure'] as const) {
      const gpuRows = rows.filter((r) => r.provider === p && r.gpu.count > 0)
      expect(gpuRows.length, p).toBeGreaterThanOrEqual(2)
    }
    expect(findPrice(rows, 'aws', 'us-east-1', 'g5.xlarge')?.gpu.model).toBe('NVIDIA A10G')
    expect(findPrice(rows, 'gcp', 'us-central1', 'n1-standard-4+nvidia-tesla-t4')?.gpu.model).toBe('NVIDIA T4')
    expect(findPrice(rows, 'azure', 'eastus', 'Standard_NC4as_T4_v3')?.vcpu).toBe(4)
    expect(findPrice(rows, 'local', 'local', 'local-agent')?.onDemandPerHour).toBe(0)
  })
  it('has no duplicates and spot is below on-demand on every cloud row', () => {
    const keys = rows.map((r) => `${r.provider}/${r.region}/${r.instanceType}`)
    expect(new Set(keys).size).toBe(keys.length)
    for (const r of rows) if (r.provider !== 'local') expect(r.spotPerHour, r.instanceType).toBeLessThan(r.onDemandPerHour)
  })
  it('names the source and date of every figure', () => {
    for (const r of rows) {
      expect(r.source).toMatch(/^(https:\/\/|urn:renderswarm:)/)
      expect(Number.isNaN(Date.parse(r.date))).toBe(false)
    }
    expect(raw.note).toMatch(/list prices/i)
  })
})

describe('parsePrices refuses', () => {
  const good = raw.rows[0]!
  const table = (rows: unknown[]): unknown => ({ note: 'n', rows })
  it('a duplicate row', () => {
    expect(() => parsePrices(table([good, { ...good }]))).toThrow(/rows.1: duplicate row for aws\/us-east-1\/g4dn.xlarge/)
  })
  it('spot not below on-demand', () => {
    expect(() => parsePrices(table([{ ...good, spotPerHour: 0.9, onDemandPerHour: 0.9 }]))).toThrow(/spotPerHour 0.9 must be below/)
  })
  it('a malformed field, naming it', () => {
    expect(() => parsePrices(table([{ ...good, onDemandPerHour: -1 }]))).toThrow(/rows.0.onDemandPerHour: onDemandPerHour must not be negative/)
    expect(() => parsePrices(table([{ ...good, source: 'http://x.example' }]))).toThrow(/rows.0.source/)
    expect(() => parsePrices(table([{ ...good, date: '29/11/2026' }]))).toThrow(PriceTableError)
    expect(() => parsePrices(table([{ ...good, extra: 1 }]))).toThrow(/Unrecognized key/)
    expect(() => parsePrices({ rows: [good] })).toThrow(/note/)
  })
})
