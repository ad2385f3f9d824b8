/**
 * The tray app's Electron main process (spec M31): a thin executor of ui/tray/model.ts. It
 * reads the local agent's API (`<state-dir>/api.json`), draws the icon, tooltip and menu the
 * model computes, sends each menu action's request, and opens the dashboard (served by the
 * agent) in a window with the token in the URL fragment.
 *
 *   npm run tray [-- --state-dir DIR]      # ui/tray/launch.mjs bundles this file and starts Electron
 *
 * Refreshes on every event of the agent's /v1/events stream (debounced) and every 5 s besides,
 * so a stopped or restarted agent (new port, new token) is noticed; one request at a time.
 */
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { app, BrowserWindow, dialog, Menu, nativeImage, Tray, type MenuItemConstructorOptions } from 'electron'
import { LocalClient } from '../sdk/client.ts'
import { actionRequest, dashboardUrl, trayView, type JobView, type MenuItem, type NodeView, type StatusView, type TrayAction, type TrayInput, type TrayView } from './model.ts'

const POLL_MS = 5000
const EVENT_DEBOUNCE_MS = 300

/** The agent's state dir: --state-dir, RENDERSWARM_STATE_DIR, else the default of agent/daemon.ts defaultStateDir() (same rules; not imported, to keep libp2p out of the tray). */
function stateDir (): string {
  const i = process.argv.indexOf('--state-dir')
  if (i >= 0 && process.argv[i + 1] !== undefined) return path.resolve(process.argv[i + 1]!)
  if (process.env.RENDERSWARM_STATE_DIR !== undefined) return path.resolve(process.env.RENDERSWARM_STATE_DIR)
  const base = process.env.XDG_STATE_HOME ?? (process.platform === 'darwin' ? path.join(os.homedir(), 'Library', 'Application Support') : process.platform === 'win32' ? (process.env.APPDATA ?? os.homedir()) : path.join(os.homedir(), '.local', 'state'))
  return path.join(base, 'renderswarm')
}

/** Bundled as dist/tray/main.mjs (also inside the packaged app), so the icons are two folders up. */
const ICONS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'ui', 'tray', 'icons')

class TrayApp {
  private tray: Tray | undefined
  private window: BrowserWindow | undefined
  private client: LocalClient | undefined
  private view: TrayView | undefined
  private events: AbortController | undefined
  private refreshing = false
  private again = false
  private debounce: NodeJS.Timeout | undefined

  constructor (private readonly dir: string) {}

  start (): void {
    this.tray = new Tray(this.icon('tray-offline'))
    this.tray.setToolTip('renderswarm — starting')
    void this.refresh()
    setInterval(() => { void this.refresh() }, POLL_MS)
  }

  private icon (name: TrayView['icon']): Electron.NativeImage {
    // Electron picks name@2x.png beside name.png on HiDPI screens.
    const img = nativeImage.createFromPath(path.join(ICONS, `${name}.png`))
    if (process.platform === 'darwin') img.setTemplateImage(false)
    return img
  }

  /** Reads status, nodes and jobs (one refresh at a time; a request during one runs once after it). */
  async refresh (): Promise<void> {
    if (this.refreshing) { this.again = true; return }
    this.refreshing = true
    try {
      const input = await this.read()
      this.view = trayView(input, Date.now(), this.view?.refusedTotal)
      this.draw(this.view)
    } finally {
      this.refreshing = false
      if (this.again) { this.again = false; void this.refresh() }
    }
  }

  private async read (): Promise<TrayInput> {
    try {
      // api.json changes when the agent restarts: read it again after any failure.
      this.client ??= await LocalClient.forStateDir(this.dir)
      const [status, nodes, jobs] = await Promise.all([
        this.client.get<StatusView>('/v1/status'),
        this.client.get<{ nodes: NodeView[] }>('/v1/nodes'),
        this.client.get<{ jobs: JobView[] }>('/v1/jobs').catch(() => ({ jobs: [] as JobView[] })) // 503 while the agent probes ffmpeg
      ])
      this.listen(this.client)
      return { ok: true, status, nodes: nodes.nodes, jobs: jobs.jobs }
    } catch (err) {
      this.client = undefined
      this.events?.abort()
      this.events = undefined
      return { ok: false, error: (err as Error).message.slice(0, 200) }
    }
  }

  /** Follows /v1/events; any event schedules a refresh. */
  private listen (client: LocalClient): void {
    if (this.events !== undefined) return
    const abort = new AbortController()
    this.events = abort
    void client.events(() => {
      clearTimeout(this.debounce)
      this.debounce = setTimeout(() => { void this.refresh() }, EVENT_DEBOUNCE_MS)
    }, abort.signal).catch(() => {}).finally(() => { if (this.events === abort) this.events = undefined })
  }

  private draw (view: TrayView): void {
    if (this.tray === undefined) return
    this.tray.setImage(this.icon(view.icon))
    this.tray.setToolTip(view.tooltip)
    this.tray.setContextMenu(Menu.buildFromTemplate(view.menu.map((m) => this.template(m))))
  }

  private template (m: MenuItem): MenuItemConstructorOptions {
    switch (m.kind) {
      case 'separator': return { type: 'separator' }
      case 'label': return { label: m.label, enabled: false }
      case 'submenu': return { label: m.label, submenu: m.items.map((i) => this.template(i)) }
      case 'checkbox': return { type: 'checkbox', label: m.label, checked: m.checked, enabled: m.enabled, click: () => { void this.act(m.action) } }
      case 'action': return { label: m.label, enabled: m.enabled, click: () => { void this.act(m.action) } }
    }
  }

  private async act (action: TrayAction): Promise<void> {
    if (action.type === 'quit') { app.quit(); return }
    if (action.type === 'open-dashboard') { await this.openDashboard(); return }
    const req = actionRequest(action)
    if (req === null || this.client === undefined) return
    try {
      await this.client.post(req.path, req.body)
    } catch (err) {
      dialog.showErrorBox('renderswarm', (err as Error).message)
    }
    await this.refresh()
  }

  private async openDashboard (): Promise<void> {
    if (this.client === undefined) return
    const { token } = JSON.parse(await (await import('node:fs/promises')).readFile(path.join(this.dir, 'api.json'), 'utf8')) as { token: string }
    const origin = new URL(this.client.url).origin
    if (this.window === undefined || this.window.isDestroyed()) {
      this.window = new BrowserWindow({
        width: 1200, height: 800, title: 'renderswarm', icon: path.join(ICONS, 'app.png'),
        webPreferences: { contextIsolation: true, nodeIntegration: false, sandbox: true }
      })
      // The window shows the local dashboard only: other pages are refused, new windows too.
      this.window.webContents.on('will-navigate', (e, url) => { if (new URL(url).origin !== origin) e.preventDefault() })
      this.window.webContents.setWindowOpenHandler(() => ({ action: 'deny' }))
    }
    await this.window.loadURL(dashboardUrl(this.client.url, token))
    this.window.show()
    this.window.focus()
  }
}

if (!app.requestSingleInstanceLock()) {
  app.quit()
} else {
  // A tray app lives without windows: closing the dashboard does not quit it.
  app.on('window-all-closed', () => {})
  void app.whenReady().then(() => {
    if (process.platform === 'darwin') app.dock?.hide()
    new TrayApp(stateDir()).start()
  })
}
