/**
 * Jobs: the list (name, status, progress bar, ETA, cost so far) and one job's view with its
 * chunk timeline (which node rendered which frame range, when; retries marked).
 *
 *   h(JobsTable, { jobs, nowMs, onOpen: (jobId) => …, onCancel })
 *   h(JobDetail, { job, names, nowMs, onClose })
 */
import { h, type ComponentChild } from 'preact'
import { chunkTimeline, formatClock, formatDuration, formatUsd, jobEtaSeconds, jobFraction, TERMINAL_JOB } from './model.ts'
import type { Job } from './schemas.ts'
import { Bar } from './ui.ts'

export function JobsTable (p: { jobs: Job[]; speed: (job: Job) => number; nowMs: number; busy: boolean; onOpen: (jobId: string) => void; onCancel: (jobId: string) => void }): ComponentChild {
  if (p.jobs.length === 0) return h('p', { class: 'empty', 'data-test': 'no-jobs' }, 'No jobs yet. Submit a timeline to render it on the farm.')
  // Unfinished first (newest first within each group, as the API lists them).
  const ordered = [...p.jobs.filter((j) => !TERMINAL_JOB.has(j.status)), ...p.jobs.filter((j) => TERMINAL_JOB.has(j.status)).slice(0, 20)]
  return h('table', { class: 'jobs' },
    h('thead', null, h('tr', null, ...['Job', 'Status', 'Progress', 'ETA', 'Cost so far', ''].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', null, ...ordered.map((j) => {
      const frac = jobFraction(j)
      const fps = p.speed(j)
      const eta = jobEtaSeconds(j, p.nowMs, fps)
      const est = j.estimate
      return h('tr', { key: j.jobId, 'data-test': 'job-row', 'data-job': j.jobId, 'data-status': j.status },
        h('th', { scope: 'row' }, h('button', { class: 'link', onClick: () => { p.onOpen(j.jobId) }, title: 'show the chunk timeline' }, j.name),
          h('div', { class: 'muted small-text' }, `${j.preset} · ${j.priority} · ${j.frames} frames`)),
        h('td', null, h('span', { class: `status status-${j.status}` }, j.status), j.error !== undefined ? h('div', { class: 'error-text' }, j.error) : null, j.note !== undefined ? h('div', { class: 'muted small-text' }, j.note) : null),
        h('td', { class: 'progress-cell' }, h(Bar, { kind: 'progress', value: frac, label: `${Math.floor(frac * 100)}%`, title: `${j.framesDone} of ${j.frames} frames` }),
          h('div', { class: 'muted small-text' }, `${j.framesDone}/${j.frames} frames${fps > 0 ? ` · ${fps} fps` : ''}`)),
        h('td', { class: 'num' }, TERMINAL_JOB.has(j.status) ? (j.completedAt !== undefined ? `${j.status} ${formatClock(j.completedAt, p.nowMs)}` : '—') : formatDuration(eta)),
        h('td', { class: 'num', title: est !== undefined ? `estimate ${formatUsd(est.cost.low)}–${formatUsd(est.cost.high)}` : undefined }, formatUsd(j.actualCost),
          est !== undefined ? h('div', { class: 'muted small-text' }, `est. ${formatUsd(est.cost.expected)}`) : null),
        h('td', { class: 'actions' },
          h('button', { class: 'small', onClick: () => { p.onOpen(j.jobId) } }, 'Chunks'),
          TERMINAL_JOB.has(j.status) ? null : h('button', { class: 'small', disabled: p.busy, onClick: () => { p.onCancel(j.jobId) } }, 'Cancel')))
    })))
}

export function JobDetail (p: { job: Job; names: ReadonlyMap<string, string>; nowMs: number; onClose: () => void }): ComponentChild {
  const j = p.job
  const t = chunkTimeline(j, p.names, p.nowMs)
  const spanS = (t.endMs - t.startMs) / 1000
  const ticks = [0, 0.25, 0.5, 0.75, 1]
  return h('section', { class: 'panel job-detail', 'data-test': 'job-detail', 'data-job': j.jobId },
    h('header', { class: 'panel-head' },
      h('h2', null, `Job: ${j.name}`),
      h('button', { class: 'small', onClick: p.onClose, 'aria-label': 'close the job view' }, 'Close')),
    h('dl', { class: 'facts' },
      ...fact('Status', j.status), ...fact('Preset', j.preset), ...fact('Priority', j.priority),
      ...fact('Frames', `${j.framesDone} / ${j.frames}`), ...fact('Chunks', `${j.chunks.length}${t.retried > 0 ? ` (${t.retried} retried)` : ''}`),
      ...fact('Cost', `${formatUsd(j.actualCost)}${j.estimate !== undefined ? ` (estimate ${formatUsd(j.estimate.cost.low)}–${formatUsd(j.estimate.cost.high)})` : ''}`),
      ...(j.output !== undefined ? fact('Output', j.output) : []),
      ...(j.deadline !== undefined ? fact('Deadline', formatClock(j.deadline, p.nowMs)) : [])),
    h('h3', null, 'Chunk timeline'),
    t.lanes.length === 0
      ? h('p', { class: 'empty' }, 'No chunk has started yet.')
      : h('div', { class: 'timeline', 'data-test': 'timeline' },
        h('div', { class: 'axis' }, ...ticks.map((f) => h('span', { class: 'tick', style: { left: `${f * 100}%` } }, `${(f * spanS).toFixed(spanS < 10 ? 1 : 0)} s`))),
        ...t.lanes.map((lane) => h('div', { class: 'lane', 'data-test': 'lane', 'data-node': lane.name },
          h('div', { class: 'lane-name', title: lane.node }, lane.name),
          h('div', { class: 'lane-track' }, ...lane.bars.map((b) => {
            const title = `frames ${b.frameRange[0]}–${b.frameRange[1] - 1} on ${lane.name}: ${b.status}, ${b.seconds} s${b.attempts > 1 ? `, attempt ${b.attempts}` : ''}${b.errors.map((e) => `\n· ${e}`).join('')}`
            return h('div', {
              class: `chunk-bar chunk-${b.status}${b.attempts > 1 ? ' retried' : ''}${b.running ? ' running' : ''}`,
              'data-test': 'chunk-bar', 'data-chunk': b.chunkId, 'data-attempts': b.attempts,
              title,
              style: { left: `${(b.from * 100).toFixed(2)}%`, width: `${Math.max(0.6, (b.to - b.from) * 100).toFixed(2)}%` }
            }, h('span', null, `${b.frameRange[0]}–${b.frameRange[1] - 1}${b.attempts > 1 ? ` ↻${b.attempts - 1}` : ''}`))
          }))))),
    t.notStarted.length > 0 ? h('p', { class: 'muted' }, `${t.notStarted.length} chunk(s) waiting: frames ${t.notStarted.map((c) => `${c.frameRange[0]}–${c.frameRange[1] - 1}`).join(', ')}`) : null,
    h('p', { class: 'legend muted' }, h('span', { class: 'swatch chunk-done' }), ' done ', h('span', { class: 'swatch chunk-leased' }), ' rendering ', h('span', { class: 'swatch retried' }), ' retried (↻ = retries)'))
}

function fact (k: string, v: string): ComponentChild[] {
  return [h('dt', null, k), h('dd', null, v)]
}
