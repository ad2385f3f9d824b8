/**
 * Small shared pieces of the dashboard's views (Preact, written with `h` rather than JSX so
 * the whole repository typechecks with one tsconfig).
 *
 *   h(Bar, { value: 0.42, label: '42%', kind: 'progress' })
 */
import { h, type ComponentChild, type ComponentChildren } from 'preact'

/** A horizontal bar for a fraction 0…1 (job progress, CPU/GPU/memory use). */
export function Bar (p: { value: number | undefined; label: string; kind: 'progress' | 'load'; title?: string }): ComponentChild {
  const v = p.value === undefined || !Number.isFinite(p.value) ? 0 : Math.min(1, Math.max(0, p.value))
  const level = p.kind === 'load' ? (v >= 0.85 ? 'high' : v >= 0.6 ? 'mid' : 'low') : (v >= 1 ? 'full' : 'part')
  return h('div', {
    class: `bar bar-${p.kind} bar-${level}`,
    role: p.kind === 'progress' ? 'progressbar' : 'meter',
    'aria-valuemin': 0,
    'aria-valuemax': 100,
    'aria-valuenow': Math.round(v * 100),
    'aria-label': p.title ?? p.label,
    title: p.title ?? p.label
  },
  h('div', { class: 'bar-fill', style: { width: `${(v * 100).toFixed(1)}%` } }),
  h('span', { class: 'bar-text' }, p.label))
}

export function Card (p: { title: string; value: string; sub?: string; test: string }): ComponentChild {
  return h('div', { class: 'card', 'data-test': p.test },
    h('div', { class: 'card-title' }, p.title),
    h('div', { class: 'card-value' }, p.value),
    p.sub !== undefined ? h('div', { class: 'card-sub' }, p.sub) : null)
}

export function Section (p: { title: string; test: string; actions?: ComponentChildren; children?: ComponentChildren }): ComponentChild {
  return h('section', { class: 'panel', 'data-test': p.test },
    h('header', { class: 'panel-head' }, h('h2', null, p.title), p.actions ?? null),
    p.children)
}
