// Runtime of pages written by deepvis_widgets/_html.py (save_html): a
// minimal widget manager that rebuilds each model from the embedded state
// (base64 buffers become DataViews, as in ipywidgets) and renders anywidget
// ES modules with no kernel and no network.

type Listener = (...args: any[]) => void;

interface EmbeddedModel {
  model_name: string;
  model_module: string;
  state: Record<string, any>;
  buffers?: { path: (string | number)[]; data: string; encoding: "base64" | "hex" }[];
}

interface ManagerState {
  state: Record<string, EmbeddedModel>;
}

function decodeBase64(data: string): DataView {
  // Native decoding where the browser has it (Chromium 140+, Firefox 133+): ~10x faster on large arrays.
  const native = (Uint8Array as unknown as { fromBase64?: (s: string) => Uint8Array }).fromBase64;
  if (native) {
    const bytes = native(data);
    return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  const bin = atob(data);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new DataView(bytes.buffer);
}

function decodeHex(data: string): DataView {
  const bytes = new Uint8Array(data.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(data.slice(2 * i, 2 * i + 2), 16);
  return new DataView(bytes.buffer);
}

/** Puts binary buffers back at their paths in the state (ipywidgets' put_buffers). */
export function putBuffers(state: Record<string, any>, buffers: EmbeddedModel["buffers"] = []): void {
  for (const { path, data, encoding } of buffers) {
    let obj: any = state;
    for (let i = 0; i < path.length - 1; i++) obj = obj[path[i]];
    obj[path[path.length - 1]] = encoding === "hex" ? decodeHex(data) : decodeBase64(data);
  }
}

class StandaloneModel {
  private listeners = new Map<string, Set<Listener>>();
  constructor(
    readonly id: string,
    private state: Record<string, any>,
    readonly widget_manager: { get_model(id: string): Promise<StandaloneModel> },
  ) {}
  get(key: string): any {
    return this.state[key];
  }
  set(key: string, value: any): void {
    const old = this.state[key];
    this.state[key] = value;
    if (old !== value) {
      this.emit(`change:${key}`, this, value);
      this.emit("change", this);
    }
  }
  save_changes(): void {
    // No kernel: the new values live in this page only.
  }
  send(content: unknown): void {
    console.info("deepvis: no kernel on this page; message not sent", content);
  }
  on(event: string, cb: Listener): void {
    for (const name of event.split(/\s+/)) {
      if (!this.listeners.has(name)) this.listeners.set(name, new Set());
      this.listeners.get(name)!.add(cb);
    }
  }
  off(event?: string | null, cb?: Listener | null): void {
    if (!event) {
      this.listeners.clear();
      return;
    }
    for (const name of event.split(/\s+/)) {
      if (cb) this.listeners.get(name)?.delete(cb);
      else this.listeners.delete(name);
    }
  }
  private emit(event: string, ...args: any[]): void {
    for (const cb of [...(this.listeners.get(event) ?? [])]) cb(...args);
  }
}

async function importModule(source: string): Promise<any> {
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  try {
    return await import(/* @vite-ignore */ url);
  } finally {
    URL.revokeObjectURL(url);
  }
}

function showFailure(el: HTMLElement, err: unknown): void {
  const panel = document.createElement("div");
  panel.className = "dv-error";
  panel.style.cssText = "display:block;border:1px solid #d32f2f;padding:8px;color:#d32f2f;font:13px sans-serif";
  panel.textContent = `This view could not be loaded: ${err instanceof Error ? err.message : String(err)}`;
  el.append(panel);
  el.dataset.dvState = "error";
  console.error(err);
}

async function main(): Promise<void> {
  const script = document.getElementById("dv-widget-state");
  if (!script) throw new Error("no #dv-widget-state on this page");
  const manager: ManagerState = JSON.parse(script.textContent || "{}");
  const models = new Map<string, StandaloneModel>();
  const widgetManager = {
    async get_model(id: string) {
      const m = models.get(id);
      if (!m) throw new Error(`unknown model ${id}`);
      return m;
    },
  };
  for (const [id, entry] of Object.entries(manager.state)) {
    const state = entry.state;
    putBuffers(state, entry.buffers);
    models.set(id, new StandaloneModel(id, state, widgetManager));
  }
  const styled = new Set<string>();
  const initialized = new Map<string, Promise<any>>();
  for (const el of document.querySelectorAll<HTMLElement>("[data-dv-model]")) {
    const model = models.get(el.dataset.dvModel!);
    try {
      if (!model) throw new Error(`no state for model ${el.dataset.dvModel}`);
      const css: string = model.get("_css") ?? "";
      if (css && !styled.has(css)) {
        const style = document.createElement("style");
        style.textContent = css;
        document.head.append(style);
        styled.add(css);
      }
      let ready = initialized.get(model.id);
      if (!ready) {
        ready = importModule(model.get("_esm")).then(async (mod) => {
          const widget = mod.default ?? mod;
          const def = typeof widget === "function" ? await widget() : widget;
          await def.initialize?.({ model });
          return def;
        });
        initialized.set(model.id, ready);
      }
      const def = await ready;
      await def.render?.({ model, el });
    } catch (err) {
      showFailure(el, err);
    }
  }
  document.documentElement.dataset.dvLoaded = "true";
}

main().catch((err) => showFailure(document.body, err));
