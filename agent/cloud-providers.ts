/**
 * The cloud clients an agent launches through, made from its cloud.json.
 *
 *   const { providers, notes } = cloudProviders(config, { farmTag: farmTagOf(farmId), local: { bin } })
 *   notes.forEach(log)           // why a configured provider has no client (e.g. no AMI given)
 *
 * Credentials and API endpoints come from each SDK's standard chain, never from cloud.json:
 * AWS from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or an instance role (endpoint
 * override: AWS_ENDPOINT_URL_EC2); GCP from Application Default Credentials; Azure from
 * DefaultAzureCredential (environment, managed identity, Azure CLI). `overrides` lets tests
 * point GCP and Azure at the in-repo fakes with a test credential.
 */
import type { AwsOptions } from '../coordinator/cloud/aws.ts'
import type { AzureOptions } from '../coordinator/cloud/azure.ts'
import type { CloudConfig } from '../coordinator/cloud/config.ts'
import type { GcpOptions } from '../coordinator/cloud/gcp.ts'
import type { LocalOptions } from '../coordinator/cloud/local.ts'
import type { CloudProvider, ProviderName } from '../coordinator/cloud/provider.ts'

/** Debian 12's image family: the boot script installs Node and ffmpeg on it. */
export const DEFAULT_GCP_IMAGE = 'projects/debian-cloud/global/images/family/debian-12'

export interface ProviderOverrides {
  aws?: Partial<AwsOptions>
  gcp?: Partial<GcpOptions>
  azure?: Partial<AzureOptions>
}

export interface CloudProvidersOptions {
  /** Label/tag value that marks this farm's machines (a-z, 0-9, "-"). */
  farmTag: string
  /** The local provider's agent binary and options (tests, demos). */
  local?: LocalOptions
  overrides?: ProviderOverrides
}

/** A farm's tag on its cloud machines: `rs-` and its id (already 16 hex digits). */
export function farmTagOf (farmId: string): string {
  return `rs-${farmId.toLowerCase().replace(/[^a-z0-9-]/g, '').slice(0, 37)}`
}

/**
 * One client per configured provider that can launch; a note for each that cannot (what is
 * missing, in cloud.json terms). Nothing here sends a request. Each cloud's SDK is loaded only
 * when cloud.json names that cloud (they are large; an agent without cloud burst loads none).
 */
export async function cloudProviders (config: CloudConfig, o: CloudProvidersOptions): Promise<{ providers: Partial<Record<ProviderName, CloudProvider>>; notes: string[] }> {
  const providers: Partial<Record<ProviderName, CloudProvider>> = {}
  const notes: string[] = []
  const { aws, gcp, azure, local } = config.providers
  if (local !== undefined && o.local !== undefined) {
    const { LocalProvider } = await import('../coordinator/cloud/local.ts')
    const p = new LocalProvider(o.local)
    p.limits.maxInstances = local.maxInstances
    providers.local = p
  } else if (local !== undefined) notes.push('local: configured, but this agent was started without a local agent binary; local is not used')
  if (aws !== undefined) {
    if (aws.ami === undefined) notes.push('aws: no "ami" in cloud.json (the machine image to boot, e.g. a Debian or Ubuntu AMI of that region); aws is not used until one is set')
    else {
      const { AwsProvider } = await import('../coordinator/cloud/aws.ts')
      providers.aws = new AwsProvider({
        region: aws.region, imageId: aws.ami, farmTag: o.farmTag,
        ...(aws.subnet !== undefined ? { subnetId: aws.subnet } : {}),
        ...(aws.securityGroups !== undefined ? { securityGroupIds: aws.securityGroups } : {}),
        ...o.overrides?.aws
      })
    }
  }
  if (gcp !== undefined) {
    const { GcpProvider } = await import('../coordinator/cloud/gcp.ts')
    providers.gcp = new GcpProvider({
      project: gcp.project, zone: gcp.zone, image: gcp.image ?? DEFAULT_GCP_IMAGE, farmTag: o.farmTag,
      ...(gcp.network !== undefined ? { network: gcp.network } : {}),
      ...o.overrides?.gcp
    })
  }
  if (azure !== undefined) {
    const missing = [azure.subnetId === undefined ? '"subnetId" (the subnet the VMs join)' : '', azure.sshPublicKey === undefined ? '"sshPublicKey" (the admin login; password login is off)' : ''].filter((s) => s !== '')
    if (missing.length > 0) notes.push(`azure: cloud.json lacks ${missing.join(' and ')}; azure is not used until set`)
    else {
      const { AzureProvider } = await import('../coordinator/cloud/azure.ts')
      providers.azure = new AzureProvider({
        subscriptionId: azure.subscriptionId, resourceGroup: azure.resourceGroup, location: azure.location,
        subnetId: azure.subnetId!, sshPublicKey: azure.sshPublicKey!, farmTag: o.farmTag,
        ...o.overrides?.azure
      })
    }
  }
  return { providers, notes }
}
