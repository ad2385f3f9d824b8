#!/usr/bin/env node
// The renderswarm command. Sources are TypeScript, loaded through tsx (see docs/decisions.md).
import { register } from 'tsx/esm/api'
register()
await import('../ui/cli/main.ts')
