/**
 * The dashboard: cluster status, controls, active jobs, nodes, one job's chunk timeline and the
 * submit dialog. Data: one snapshot (status, nodes, jobs) when the event stream opens (again),
 * then the agent's SSE events folded in (model.ts); no polling. Node load figures travel in
 * heartbeats, which have no event of their own, so farm events also trigger a re-read of
 * /v1/nodes, at most one every NODES_REFRESH_MS.
 *
 *   render(h(App, null), document.getElementById('app')!)
 */
import { h, type ComponentChild } from 'preact'
import { useCallback, useEffect, useReducer, useRef, useState } from 'preact/hooks'
import { api, ApiError, followEvents } from './api.ts'
import { JobDetail, JobsTable } from './jobs-view.ts'
import { applyEvent, clusterSummary, formatUsd, initialState, jobSpeed, nodeNames, nodeRows, type DashState } from './model.ts'
import { NodesTable } from './nodes-view.ts'
import { ControlReply, JobReply, JobsReply, NodesReply, StatusSchema, type FarmEvent, type Job, type Node } from './schemas.ts'
import { SubmitDialog } from './submit-dialog.ts'
import { Card, Section } from './ui.ts'

const NODES_REFRESH_MS = 3000

type Action = { type: 'snapshot'; state: DashState; pending: FarmEvent[]; pausedKnown: boolean } | { type: 'event'; ev: FarmEvent } | { type: 'submitted'; job: Job } | { type: 'nodes'; nodes: Node[] } | { type: 'paused'; peers: string[] }

function reduce (s: DashState | undefined, a: Action): DashState | undefined {
  switch (a.type) {
    // An agent whose status lacks the figures cannot say who is paused: keep what events said.
    case 'snapshot': return a.pending.reduce(applyEvent, { ...a.state, paused: a.pausedKnown ? a.state.paused : (s?.paused ?? a.state.paused), samples: s?.samples ?? a.state.samples })
    case 'event': return s === undefined ? s : applyEvent(s, a.ev)
    // The submit reply can be older than the job events that overtook it: it only adds a job not heard of yet.
    case 'submitted': return s === undefined || s.jobs.some((j) => j.jobId === a.job.jobId) ? s : applyEvent(s, { type: 'job', data: a.job })
    case 'nodes': return s === undefined ? s : { ...s, nodes: a.nodes }
    case 'paused': return s === undefined ? s : { ...s, paused: a.peers }
  }
}

type Link = 'connecting' | 'live' | 'reconnecting' | 'signed-out'

export function App (): ComponentChild {
  const [state, dispatch] = useReducer(reduce, undefined)
  const [link, setLink] = useState<Link>('connecting')
  const [message, setMessage] = useState<{ kind: 'error' | 'info'; text: string } | undefined>(undefined)
  const [busy, setBusy] = useState(false)
  const [selected, setSelected] = useState<string | undefined>(undefined)
  const [submitOpen, setSubmitOpen] = useState(false)
  const [malformed, setMalformed] = useState(0)
  // Events that arrive while a snapshot is being read are folded in on top of it.
  const loading = useRef<FarmEvent[] | undefined>(undefined)
  const nodesRead = useRef({ lastMs: 0, timer: undefined as ReturnType<typeof setTimeout> | undefined })

  const fail = useCallback((err: unknown) => {
    if (err instanceof ApiError && err.status === 401) setLink('signed-out')
    setMessage({ kind: 'error', text: (err as Error).message })
  }, [])

  const readNodes = useCallback(() => {
    const r = nodesRead.current
    if (r.timer !== undefined) return
    const wait = Math.max(0, r.lastMs + NODES_REFRESH_MS - Date.now())
    r.timer = setTimeout(() => {
      r.timer = undefined
      r.lastMs = Date.now()
      api.get('/v1/nodes', NodesReply).then((n) => { dispatch({ type: 'nodes', nodes: n.nodes }) }, fail)
    }, wait)
  }, [fail])

  useEffect(() => {
    const snapshot = async (): Promise<void> => {
      loading.current = []
      try {
        const [status, nodes, jobs] = await Promise.all([api.get('/v1/status', StatusSchema), api.get('/v1/nodes', NodesReply), api.get('/v1/jobs', JobsReply)])
        nodesRead.current.lastMs = Date.now()
        dispatch({ type: 'snapshot', state: initialState({ status, nodes: nodes.nodes, jobs: jobs.jobs }), pending: loading.current, pausedKnown: status.metrics !== undefined })
      } catch (err) {
        fail(err)
      } finally {
        loading.current = undefined
      }
    }
    const stop = followEvents((ev) => {
      if (loading.current !== undefined) loading.current.push(ev)
      else dispatch({ type: 'event', ev })
      if (ev.type === 'member' || ev.type === 'progress' || ev.type === 'worker' || ev.type === 'job') readNodes()
    }, {
      onOpen: () => { setLink('live'); void snapshot() },
      onDown: (closed) => {
        setLink('reconnecting')
        // A refused stream is not retried by the browser: find out why (a restarted agent has a new token).
        if (closed) api.get('/v1/status', StatusSchema).then(() => { setMessage({ kind: 'error', text: 'The event stream closed; reload the page.' }) }, fail)
      },
      onMalformed: () => { setMalformed((n) => n + 1) }
    })
    return () => { stop(); clearTimeout(nodesRead.current.timer) }
  }, [])

  const act = (what: string, route: string, body: unknown): void => {
    setBusy(true)
    api.post(route, body, ControlReply).then((r) => {
      if (r.paused !== undefined) dispatch({ type: 'paused', peers: r.paused })
      setMessage({ kind: 'info', text: what })
    }, fail).finally(() => { setBusy(false) })
  }

  const s = state
  const sum = s !== undefined ? clusterSummary(s) : undefined
  const rows = s !== undefined ? nodeRows(s) : []
  const now = Date.now()
  const job = s !== undefined && selected !== undefined ? s.jobs.find((j) => j.jobId === selected) : undefined
  const allPaused = rows.filter((r) => r.activity !== 'editor').every((r) => r.paused) && rows.some((r) => r.activity !== 'editor')

  return h('div', { class: 'page' },
    h('header', { class: 'top' },
      h('div', { class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), 'renderswarm'),
      h('div', { class: 'where muted' }, s?.farm !== undefined ? `farm ${s.farm.slice(0, 12)}` : ''),
      h('div', { class: `link link-${link}`, 'data-test': 'link', 'data-state': link }, link === 'live' ? 'live' : link),
      h('nav', { class: 'controls' },
        h('button', { class: 'primary', 'data-test': 'open-submit', disabled: s === undefined, onClick: () => { setSubmitOpen(true) } }, 'Submit job…'),
        h('button', { 'data-test': 'scale-up', disabled: true, title: 'cloud scaling not configured' }, 'Scale up'),
        h('button', { 'data-test': 'pause-all', disabled: busy || s === undefined || allPaused, onClick: () => { act('Paused every node: running chunks finish, no new ones start.', '/v1/pause', { all: true }) } }, 'Pause all'),
        h('button', { 'data-test': 'resume-all', disabled: busy || s === undefined || s.paused.length === 0, onClick: () => { act('Resumed every node.', '/v1/resume', { all: true }) } }, 'Resume all'),
        h('button', {
          class: 'danger', 'data-test': 'emergency-stop', disabled: busy || s === undefined,
          onClick: () => { if (window.confirm('Emergency stop: stop every render on every node now and pause all nodes?')) act('Emergency stop: every render stopped, every node paused.', '/v1/stop', { emergency: true }) }
        }, 'Emergency stop'))),
    message !== undefined
      ? h('div', { class: `message message-${message.kind}`, role: message.kind === 'error' ? 'alert' : 'status', 'data-test': 'message' },
        message.text, h('button', { class: 'small', 'aria-label': 'dismiss', onClick: () => { setMessage(undefined) } }, '×'))
      : null,
    link === 'signed-out' ? h('p', { class: 'signed-out', 'data-test': 'signed-out' }, 'This page is not signed in to the agent. Run `renderswarm open` on this machine to open the dashboard with its access token.') : null,
    sum === undefined
      ? h('p', { class: 'empty' }, link === 'signed-out' ? '' : 'Connecting to the agent…')
      : h('div', { class: 'cards' },
        h(Card, { test: 'card-nodes', title: 'Nodes', value: `${sum.activeNodes} / ${sum.totalNodes}`, sub: `active / total · ${sum.renderingNodes} of ${sum.renderNodes} rendering` }),
        h(Card, { test: 'card-queue', title: 'Queue', value: `${sum.queuedChunks}`, sub: `chunks waiting · ${sum.activeJobs} active job(s), ${sum.waitingJobs} not started` }),
        h(Card, { test: 'card-fps', title: 'Current speed', value: `${sum.fps} fps`, sub: 'frames per second, all jobs' }),
        h(Card, { test: 'card-cost', title: 'Hourly cost', value: `${formatUsd(sum.costPerHourNow)}/h`, sub: `now · whole farm ${formatUsd(sum.costPerHourAll)}/h` })),
    job !== undefined && s !== undefined ? h(JobDetail, { job, names: nodeNames(s), nowMs: now, onClose: () => { setSelected(undefined) } }) : null,
    s !== undefined
      ? h(Section, { title: 'Jobs', test: 'jobs' },
        h(JobsTable, {
          jobs: s.jobs, speed: (j) => jobSpeed(s, j), nowMs: now, busy,
          onOpen: (id) => {
            setSelected(id)
            // The list's records are complete; this re-read only catches up after a missed event.
            api.get(`/v1/jobs/${encodeURIComponent(id)}`, JobReply).then((r) => { dispatch({ type: 'event', ev: { type: 'job', data: r.job } }) }, fail)
          },
          onCancel: (id) => { act('Cancelled the job.', `/v1/jobs/${encodeURIComponent(id)}/cancel`, {}) }
        }))
      : null,
    s !== undefined
      ? h(Section, { title: 'Nodes', test: 'nodes' },
        h(NodesTable, { rows, busy, onPause: (peerId, paused) => { act(paused ? 'Paused the node: its running chunk finishes, no new one starts.' : 'Resumed the node.', paused ? '/v1/pause' : '/v1/resume', { peerId }) } }))
      : null,
    h('footer', { class: 'muted small-text' }, `renderswarm dashboard · live from the agent's event stream${malformed > 0 ? ` · ${malformed} malformed event(s) ignored` : ''}`),
    h(SubmitDialog, {
      open: submitOpen,
      onClose: () => { setSubmitOpen(false) },
      onSubmitted: (j) => {
        setSubmitOpen(false)
        dispatch({ type: 'submitted', job: j })
        setSelected(j.jobId)
        setMessage({ kind: 'info', text: `Submitted ${j.name}: ${j.chunks.length} chunks.` })
      }
    }))
}
