/**
 * The dashboard's entry (Vite builds it into dist/dashboard/, which every agent serves at
 * http://127.0.0.1:PORT/). It trades the fragment token for the session cookie, then draws.
 *
 *   renderswarm open      # prints and opens http://127.0.0.1:PORT/#token=…
 */
import { h, render } from 'preact'
import { startSession } from './api.ts'
import { App } from './app.ts'

const root = document.getElementById('app')!
startSession(location.hash).then(() => {
  render(h(App, null), root)
}, (err: Error) => {
  // A wrong or old token (the agent makes a new one each start): say what to do.
  root.textContent = ''
  const p = document.createElement('p')
  p.className = 'signed-out'
  p.dataset.test = 'signed-out'
  p.textContent = `${err.message}`
  root.append(p)
})
