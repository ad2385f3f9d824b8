/**
 * The submit dialog: a timeline file and an output file (paths on the agent's machine: the
 * API takes paths, not uploads), preset, priority, deadline, an optional cost cap and the spot
 * toggle (disabled until cloud scaling exists). The farm's estimate (time, cost range, servers,
 * completion time) comes from POST /v1/estimate as the fields change and must be shown before
 * Submit is enabled.
 *
 *   h(SubmitDialog, { open, onClose, onSubmitted: (job) => … })
 */
import { h, type ComponentChild } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import { api, ApiError } from './api.ts'
import { formatClock, formatDuration, formatUsd, PRESET_EXT, suggestOutput } from './model.ts'
import { EstimateReply, JobReply, type Estimate, type Job } from './schemas.ts'

const PRESETS = ['ffv1', 'h264', 'hevc', 'prores']
const PRIORITIES = ['low', 'normal', 'high', 'urgent']

interface Form { timeline: string; output: string; outputEdited: boolean; preset: string; priority: string; deadline: string; maxCost: string }

/** The request body for /v1/estimate and /v1/jobs; a string is the problem with the form. */
export function requestBody (f: Form, withOutput: boolean): Record<string, unknown> | string {
  const body: Record<string, unknown> = { timeline: f.timeline.trim(), preset: f.preset, priority: f.priority }
  if (withOutput) body.output = f.output.trim()
  if (f.deadline.trim() !== '') body.deadline = f.deadline.trim()
  if (f.maxCost.trim() !== '') {
    const n = Number(f.maxCost)
    if (!/^\d+(\.\d+)?$/.test(f.maxCost.trim()) || !Number.isFinite(n)) return 'Max cost must be a number of US dollars, like 2 or 0.50'
    body.maxCost = n
  }
  return body
}

export function SubmitDialog (p: { open: boolean; onClose: () => void; onSubmitted: (job: Job) => void }): ComponentChild {
  const ref = useRef<HTMLDialogElement>(null)
  const [f, setF] = useState<Form>({ timeline: '', output: '', outputEdited: false, preset: 'ffv1', priority: 'normal', deadline: '', maxCost: '' })
  const [est, setEst] = useState<{ state: 'idle' | 'loading' | 'ok' | 'error'; estimate?: Estimate; error?: string; key?: string }>({ state: 'idle' })
  const [submitting, setSubmitting] = useState(false)
  const [submitError, setSubmitError] = useState<string | undefined>(undefined)
  const seq = useRef(0)

  useEffect(() => {
    const d = ref.current
    if (d === null) return
    if (p.open && !d.open) d.showModal()
    if (!p.open && d.open) d.close()
  }, [p.open])

  // The estimate follows the fields that change it (debounced; a stale answer is dropped).
  const body = requestBody(f, false)
  const key = JSON.stringify(body)
  useEffect(() => {
    if (!p.open) return
    if (f.timeline.trim() === '') { setEst({ state: 'idle' }); return }
    if (typeof body === 'string') { setEst({ state: 'error', error: body, key }); return }
    const mine = ++seq.current
    setEst((e) => ({ ...e, state: 'loading', key }))
    const timer = setTimeout(() => {
      api.post('/v1/estimate', body, EstimateReply).then((r) => {
        if (mine === seq.current) setEst({ state: 'ok', estimate: r.estimate, key })
      }, (err: unknown) => {
        if (mine === seq.current) setEst({ state: 'error', error: describe(err), key })
      })
    }, 400)
    return () => { clearTimeout(timer) }
  }, [key, p.open])

  const set = (patch: Partial<Form>): void => {
    setF((old) => {
      const next = { ...old, ...patch }
      if (!next.outputEdited && next.timeline.trim() !== '') next.output = suggestOutput(next.timeline.trim(), PRESET_EXT[next.preset] ?? '.mkv')
      return next
    })
    setSubmitError(undefined)
  }

  const ready = est.state === 'ok' && est.key === key && f.output.trim() !== '' && !submitting
  const submit = (e: Event): void => {
    e.preventDefault()
    if (!ready) return
    const b = requestBody(f, true)
    if (typeof b === 'string') { setSubmitError(b); return }
    setSubmitting(true)
    api.post('/v1/jobs', b, JobReply).then((r) => {
      setSubmitting(false)
      p.onSubmitted(r.job)
    }, (err: unknown) => {
      setSubmitting(false)
      setSubmitError(describe(err))
    })
  }

  return h('dialog', { ref, class: 'submit-dialog', 'data-test': 'submit-dialog', onClose: p.onClose, onCancel: p.onClose },
    h('form', { method: 'dialog', onSubmit: submit },
      h('h2', null, 'Submit a timeline'),
      h('p', { class: 'muted small-text' }, 'Paths are on this agent\'s machine. The timeline is a farm.timeline/1 JSON or an OpenTimelineIO (.otio) file; its media paths are read from there.'),
      field('Timeline file', h('input', { name: 'timeline', required: true, placeholder: '/projects/promo/edit.otio', value: f.timeline, spellcheck: false, autocomplete: 'off', onInput: (e: Event) => { set({ timeline: (e.target as HTMLInputElement).value }) } })),
      field('Output file', h('input', { name: 'output', required: true, placeholder: `/projects/promo/promo${PRESET_EXT[f.preset] ?? ''}`, value: f.output, spellcheck: false, autocomplete: 'off', onInput: (e: Event) => { set({ output: (e.target as HTMLInputElement).value, outputEdited: true }) } })),
      h('div', { class: 'row' },
        field('Preset', h('select', { name: 'preset', value: f.preset, onChange: (e: Event) => { set({ preset: (e.target as HTMLSelectElement).value }) } }, ...PRESETS.map((x) => h('option', { value: x }, `${x} (${PRESET_EXT[x]})`)))),
        field('Priority', h('select', { name: 'priority', value: f.priority, onChange: (e: Event) => { set({ priority: (e.target as HTMLSelectElement).value }) } }, ...PRIORITIES.map((x) => h('option', { value: x }, x))))),
      h('div', { class: 'row' },
        field('Deadline (optional)', h('input', { name: 'deadline', placeholder: '30m, 2h or 2026-12-01T18:00:00Z', value: f.deadline, onInput: (e: Event) => { set({ deadline: (e.target as HTMLInputElement).value }) } })),
        field('Max cost, USD (optional)', h('input', { name: 'maxCost', inputmode: 'decimal', placeholder: 'no cap', value: f.maxCost, onInput: (e: Event) => { set({ maxCost: (e.target as HTMLInputElement).value }) } }))),
      h('label', { class: 'check disabled', title: 'cloud scaling not configured' },
        h('input', { type: 'checkbox', name: 'spot', disabled: true, 'data-test': 'spot-toggle' }), ' Use spot instances (cloud scaling not configured)'),
      h(EstimateView, { est }),
      submitError !== undefined ? h('p', { class: 'error-text', role: 'alert', 'data-test': 'submit-error' }, submitError) : null,
      h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', onClick: p.onClose }, 'Cancel'),
        h('button', { type: 'submit', class: 'primary', disabled: !ready, 'data-test': 'submit-job' }, submitting ? 'Submitting…' : 'Submit'))))
}

function field (label: string, input: ComponentChild): ComponentChild {
  return h('label', { class: 'field' }, h('span', null, label), input)
}

function EstimateView (p: { est: { state: string; estimate?: Estimate; error?: string } }): ComponentChild {
  const { est } = p
  if (est.state === 'idle') return h('div', { class: 'estimate muted', 'data-test': 'estimate' }, 'Enter a timeline to see the farm\'s estimate.')
  if (est.state === 'error') return h('div', { class: 'estimate error-text', role: 'alert', 'data-test': 'estimate', 'data-state': 'error' }, est.error ?? 'no estimate')
  if (est.state === 'loading' || est.estimate === undefined) return h('div', { class: 'estimate muted', 'data-test': 'estimate', 'data-state': 'loading' }, 'Estimating…')
  const e = est.estimate
  return h('dl', { class: 'estimate facts', 'data-test': 'estimate', 'data-state': 'ok' },
    h('dt', null, 'Time'), h('dd', { 'data-test': 'est-time' }, `${formatDuration(e.seconds.expected)} (${formatDuration(e.seconds.low)}–${formatDuration(e.seconds.high)})`),
    h('dt', null, 'Cost'), h('dd', { 'data-test': 'est-cost' }, `${formatUsd(e.cost.low)}–${formatUsd(e.cost.high)}`),
    h('dt', null, 'Servers'), h('dd', { 'data-test': 'est-servers' }, `${e.nodes} (${e.chunks} chunks)`),
    h('dt', null, 'Done at'), h('dd', { 'data-test': 'est-done' }, formatClock(e.completionAt, Date.now())))
}

function describe (err: unknown): string {
  if (err instanceof ApiError) return err.field !== undefined && !err.message.startsWith(err.field) ? `${err.field}: ${err.message}` : err.message
  return (err as Error).message
}
