#!/usr/bin/env node
/**
 * Refreshes coordinator/cloud/prices.json from the providers' public price sources (needs the
 * internet; run by a maintainer, never by the agent).
 *
 *   node scripts/refresh-prices.mjs            # all providers it can refresh; writes only if every row checks out
 *   node scripts/refresh-prices.mjs --dry-run  # print the new table instead of writing it
 *
 * Sources:
 * - Azure: the Retail Prices API (https://prices.azure.com/api/retail/prices, public, no key):
 *   pay-as-you-go Linux "Consumption" prices, the regular and the "Spot" meter of each size.
 * - AWS: the Price List bulk offer file of each region
 *   (https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonEC2/current/REGION/index.json,
 *   public but several hundred MB): on-demand Linux, shared tenancy. Spot has no public file;
 *   the table's spot figures stay, and the AWS adapter reads live ones with DescribeSpotPriceHistory.
 * - GCP: prices are per vCPU, GB and GPU in the Cloud Billing Catalog API, which needs an API key
 *   and a mapping from SKU descriptions to machine types; not automated — update the gcp rows by
 *   hand from https://cloud.google.com/compute/gpus-pricing and …/vm-instance-pricing.
 * Any fetch that fails, or a row that fails the checks (a positive price, spot below on-demand),
 * stops the script with a message and leaves prices.json untouched.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const FILE = fileURLToPath(new URL('../coordinator/cloud/prices.json', import.meta.url))
const dryRun = process.argv.includes('--dry-run')
const today = new Date().toISOString().slice(0, 10)

function fail (msg) {
  process.stderr.write(`refresh-prices: ${msg}\nprices.json was not changed.\n`)
  process.exit(1)
}

async function getJson (url, what) {
  let res
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(120_000) })
  } catch (err) {
    fail(`${what}: could not reach ${new URL(url).host} (${err.cause?.code ?? err.message}); this needs the internet`)
  }
  if (!res.ok) fail(`${what}: ${url} answered HTTP ${res.status}`)
  try {
    return await res.json()
  } catch (err) {
    fail(`${what}: the answer from ${url} is not JSON (${err.message})`)
  }
}

function positive (v, what) {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > 1000) fail(`${what}: ${JSON.stringify(v)} is not a price in USD per hour`)
  return v
}

async function azure (row) {
  const filter = `serviceName eq 'Virtual Machines' and armRegionName eq '${row.region}' and armSkuName eq '${row.instanceType}' and priceType eq 'Consumption'`
  let url = `https://prices.azure.com/api/retail/prices?currencyCode=USD&$filter=${encodeURIComponent(filter)}`
  const items = []
  for (let page = 0; url && page < 20; page++) {
    const body = await getJson(url, `azure ${row.instanceType} ${row.region}`)
    if (!Array.isArray(body.Items)) fail(`azure ${row.instanceType}: the answer has no Items list`)
    items.push(...body.Items)
    url = body.NextPageLink
  }
  // Linux: product names without "Windows"; no Low Priority meters.
  const linux = items.filter((i) => typeof i.productName === 'string' && !/windows/i.test(i.productName) && !/low priority/i.test(String(i.meterName)) && i.unitOfMeasure === '1 Hour')
  const od = linux.find((i) => !/spot/i.test(String(i.meterName)))
  const spot = linux.find((i) => /spot/i.test(String(i.meterName)))
  if (od === undefined || spot === undefined) fail(`azure ${row.instanceType} ${row.region}: no Linux pay-as-you-go ${od === undefined ? 'regular' : 'Spot'} meter found`)
  return { ...row, onDemandPerHour: positive(od.retailPrice, `azure ${row.instanceType} on-demand`), spotPerHour: positive(spot.retailPrice, `azure ${row.instanceType} spot`), source: 'https://prices.azure.com/api/retail/prices', date: today }
}

const awsOffers = new Map()
async function aws (row) {
  if (!awsOffers.has(row.region)) awsOffers.set(row.region, await getJson(`https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonEC2/current/${row.region}/index.json`, `aws ${row.region} offer file`))
  const offer = awsOffers.get(row.region)
  const sku = Object.values(offer.products ?? {}).find((p) => {
    const a = p.attributes ?? {}
    return a.instanceType === row.instanceType && a.operatingSystem === 'Linux' && a.tenancy === 'Shared' && a.preInstalledSw === 'NA' && a.capacitystatus === 'Used' && a.licenseModel === 'No License required'
  })
  if (sku === undefined) fail(`aws ${row.instanceType} ${row.region}: no Linux shared-tenancy product in the offer file`)
  const terms = Object.values(offer.terms?.OnDemand?.[sku.sku] ?? {})
  const dims = terms.flatMap((t) => Object.values(t.priceDimensions ?? {}))
  const hourly = dims.find((d) => d.unit === 'Hrs')
  const od = positive(Number(hourly?.pricePerUnit?.USD), `aws ${row.instanceType} on-demand`)
  return { ...row, onDemandPerHour: od, source: `https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonEC2/current/${row.region}/index.json`, date: today }
}

const table = JSON.parse(readFileSync(FILE, 'utf8'))
const rows = []
for (const row of table.rows) {
  if (row.provider === 'azure') rows.push(await azure(row))
  else if (row.provider === 'aws') rows.push(await aws(row))
  else {
    if (row.provider === 'gcp') process.stderr.write(`refresh-prices: gcp ${row.instanceType} ${row.region}: kept (${row.date}); update by hand, see the comment at the top of this script\n`)
    rows.push(row)
  }
}
for (const r of rows) {
  if (r.provider !== 'local' && !(r.spotPerHour < r.onDemandPerHour)) fail(`${r.provider} ${r.instanceType} ${r.region}: spot ${r.spotPerHour} is not below on-demand ${r.onDemandPerHour}`)
}
const out = JSON.stringify({ ...table, rows }, null, 1) + '\n'
if (dryRun) {
  process.stdout.write(out)
} else {
  writeFileSync(`${FILE}.tmp`, out)
  renameSync(`${FILE}.tmp`, FILE)
  process.stderr.write(`refresh-prices: wrote ${rows.length} rows to ${FILE}; run the price table test (npx vitest run test/cloud/prices.test.ts)\n`)
}
