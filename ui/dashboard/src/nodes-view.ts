/**
 * The nodes table: name, location (LAN/cloud), GPU, benchmark fps, state, CPU/GPU/memory bars,
 * the chunk each node renders now, and a pause/resume button per rendering node.
 *
 *   h(NodesTable, { rows: nodeRows(state), onPause: (peerId, paused) => … })
 */
import { h, type ComponentChild } from 'preact'
import { formatPct, type NodeRow } from './model.ts'
import { Bar } from './ui.ts'

export function NodesTable (p: { rows: NodeRow[]; busy: boolean; onPause: (peerId: string, paused: boolean) => void }): ComponentChild {
  if (p.rows.length === 0) return h('p', { class: 'empty' }, 'No members known yet.')
  return h('table', { class: 'nodes' },
    h('thead', null, h('tr', null,
      ...['Node', 'Location', 'GPU', 'Benchmark', 'State', 'CPU', 'GPU use', 'Memory', 'Current chunk', ''].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', null, ...p.rows.map((r) => h(NodeRowView, { row: r, busy: p.busy, onPause: p.onPause, key: r.peerId }))))
}

function NodeRowView (p: { row: NodeRow; busy: boolean; onPause: (peerId: string, paused: boolean) => void }): ComponentChild {
  const r = p.row
  const bench = [r.benchFps.ffv1 !== undefined ? `ffv1 ${r.benchFps.ffv1}` : undefined, r.benchFps.h264 !== undefined ? `h264 ${r.benchFps.h264}` : undefined].filter((x) => x !== undefined)
  const c = r.chunk
  const chunkText = c === undefined ? '—' : `${c.jobName} · frames ${c.frameRange[0]}–${c.frameRange[1] - 1}`
  const chunkFrac = c === undefined ? 0 : c.framesDone / Math.max(1, c.frameRange[1] - c.frameRange[0])
  const renders = r.activity !== 'editor'
  return h('tr', { 'data-test': 'node-row', 'data-node': r.name, 'data-activity': r.activity },
    h('th', { scope: 'row' }, r.name, r.self ? h('span', { class: 'tag', title: 'the agent serving this page' }, 'this agent') : null),
    h('td', null, r.location),
    h('td', { class: 'gpu', title: r.gpu }, r.gpu),
    h('td', { class: 'num' }, bench.length > 0 ? `${bench.join(' · ')} fps` : (renders ? 'measuring…' : '—')),
    h('td', null, h('span', { class: `state state-${r.activity.replace(' ', '-')}`, 'data-test': 'node-state' }, r.activity)),
    h('td', null, h(Bar, { kind: 'load', value: r.cpuPct === undefined ? undefined : r.cpuPct / 100, label: formatPct(r.cpuPct), title: `CPU ${formatPct(r.cpuPct)}` })),
    h('td', null, r.gpuPct === undefined ? h('span', { class: 'muted' }, 'n/a') : h(Bar, { kind: 'load', value: r.gpuPct / 100, label: formatPct(r.gpuPct), title: `GPU ${formatPct(r.gpuPct)}` })),
    h('td', null, h(Bar, { kind: 'load', value: r.memPct === undefined ? undefined : r.memPct / 100, label: formatPct(r.memPct), title: `memory ${formatPct(r.memPct)}` })),
    h('td', { class: 'chunk', 'data-test': 'node-chunk', 'data-chunk': c?.chunkId },
      c === undefined ? '—' : h('div', null, h('div', { class: 'chunk-text', title: chunkText }, chunkText), h(Bar, { kind: 'progress', value: chunkFrac, label: `${Math.round(chunkFrac * 100)}%` }))),
    h('td', null, renders
      ? h('button', { class: 'small', disabled: p.busy, 'data-test': r.paused ? 'node-resume' : 'node-pause', onClick: () => { p.onPause(r.peerId, !r.paused) } }, r.paused ? 'Resume' : 'Pause')
      : null))
}
