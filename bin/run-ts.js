#!/usr/bin/env node
// Runs a TypeScript script of this repo (bench scripts): node bin/run-ts.js bench/x.ts [args]
import { register } from 'tsx/esm/api'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
register()
const script = process.argv[2]
if (script === undefined) { console.error('usage: run-ts.js SCRIPT.ts [args]'); process.exit(2) }
process.argv.splice(2, 1)
await import(pathToFileURL(path.resolve(script)).href)
