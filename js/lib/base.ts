// The scaffolding every view shares: root element with theme, title and
// toolbar (image download), a progress line, and an error panel that
// replaces a blank output whenever rendering or Python-side work fails.
// Mirrors deepvis_widgets/widgets/_base.py (DeepVisWidget).

import { Disposer, h, setText } from "./dom";

/** The subset of anywidget's model API our views use (AFM). */
export interface AnyModel<T> {
  get<K extends keyof T & string>(key: K): T[K];
  set<K extends keyof T & string>(key: K, value: T[K]): void;
  save_changes(): void;
  on(event: string, cb: (...args: any[]) => void): void;
  off(event?: string | null, cb?: ((...args: any[]) => void) | null): void;
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
}

/** Traits of DeepVisWidget (deepvis_widgets/widgets/_base.py). */
export interface BaseTraits {
  title: string;
  error: string;
  theme: "auto" | "light" | "dark";
  _status: { message: string; fraction: number | null } | null;
}

export interface ViewContext<T extends BaseTraits> {
  model: AnyModel<T>;
  root: HTMLDivElement;
  body: HTMLDivElement;
  toolbar: HTMLDivElement;
  disposer: Disposer;
  /** Subscribes to a model event for the lifetime of the view. */
  on(event: string, cb: (...args: any[]) => void): void;
  /** Wraps a handler so an exception shows the error panel instead of vanishing. */
  guard<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void;
  /** Registers what the download button saves. */
  setExporter(kind: "png" | "svg", fn: () => HTMLCanvasElement | SVGSVGElement): void;
  showError(err: unknown): void;
  /**
   * Asks Python for data (a method decorated with anywidget.experimental.command).
   * Rejects when there is no kernel (exported HTML, save_html pages): views then
   * fall back to what was embedded at creation.
   */
  invoke<R = unknown>(name: string, msg?: unknown, buffers?: ArrayBuffer[]): Promise<[R, DataView[]]>;
  /** Marks the view as drawn (tests and benchmarks wait for data-dv-drawn). */
  markDrawn(): void;
  cssVar(name: string, fallback: string): string;
}

/** anywidget's `experimental` render argument (absent on save_html pages). */
interface Experimental {
  invoke?: (name: string, msg: unknown, options?: { buffers?: ArrayBuffer[]; signal?: AbortSignal }) => Promise<[any, DataView[]]>;
}

export type ViewBuilder<T extends BaseTraits> = (ctx: ViewContext<T>) => void;

function describe(err: unknown): { message: string; detail: string } {
  if (err instanceof Error) return { message: `${err.name}: ${err.message}`, detail: err.stack ?? "" };
  return { message: String(err), detail: "" };
}

function download(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function slug(text: string, fallback: string): string {
  const s = text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 60);
  return s || fallback;
}

/** Builds the anywidget module (`export default defineView(...)`) for one view. */
export function defineView<T extends BaseTraits>(name: string, build: ViewBuilder<T>) {
  return {
    render({ model, el, experimental }: { model: AnyModel<T>; el: HTMLElement; experimental?: Experimental }) {
      const disposer = new Disposer();
      const title = h("div", { class: "dv-title" });
      const toolbar = h("div", { class: "dv-toolbar" });
      const header = h("div", { class: "dv-header" }, title, toolbar);
      const statusText = h("span", { class: "dv-status-text" });
      const statusBar = h("div", { class: "dv-status-bar" });
      const status = h("div", { class: "dv-status", role: "status" }, statusText, h("div", { class: "dv-status-track" }, statusBar));
      const errorPanel = h("div", { class: "dv-error", role: "alert" });
      const body = h("div", { class: "dv-body" });
      const root = h("div", { class: `dv-root dv-view-${name}`, "data-dv-view": name }, header, status, errorPanel, body);
      el.append(root);

      let exporter: { kind: "png" | "svg"; fn: () => HTMLCanvasElement | SVGSVGElement } | null = null;
      const downloadButton = h("button", { class: "dv-button", type: "button", title: "Download what this view shows" }, "PNG");
      downloadButton.style.display = "none";
      toolbar.append(downloadButton);

      const showError = (err: unknown, source = "view") => {
        const { message, detail } = describe(err);
        errorPanel.replaceChildren(
          h("div", { class: "dv-error-title" }, source === "python" ? "Error in Python" : "This view could not be drawn"),
          h("div", { class: "dv-error-message" }, message),
        );
        if (detail) errorPanel.append(h("details", {}, h("summary", {}, "details"), h("pre", {}, detail)));
        errorPanel.style.display = "block";
        root.dataset.dvState = "error";
        root.dataset.dvErrorSource = source;
        console.error(`deepvis ${name}:`, err);
      };

      const ctx: ViewContext<T> = {
        model,
        root,
        body,
        toolbar,
        disposer,
        on(event, cb) {
          model.on(event, cb);
          disposer.add(() => model.off(event, cb));
        },
        guard(fn) {
          return (...args) => {
            try {
              fn(...args);
            } catch (err) {
              showError(err);
            }
          };
        },
        setExporter(kind, fn) {
          exporter = { kind, fn };
          downloadButton.textContent = kind.toUpperCase();
          downloadButton.style.display = "";
        },
        showError,
        invoke(name, msg = {}, buffers = []) {
          if (!experimental?.invoke) return Promise.reject(new Error("no kernel: this page shows the data saved with it"));
          // anywidget gives up after 3 s unless it gets a signal; model computations can take longer.
          return experimental.invoke(name, msg, { buffers, signal: AbortSignal.timeout(120_000) });
        },
        markDrawn() {
          root.dataset.dvDrawnAt = performance.now().toFixed(1);
          root.dataset.dvDrawn = "true";
        },
        cssVar(varName, fallback) {
          const v = getComputedStyle(root).getPropertyValue(varName).trim();
          return v || fallback;
        },
      };

      const syncTitle = () => {
        const t = model.get("title") ?? "";
        setText(title, t);
        title.style.display = t ? "" : "none";
      };
      const syncTheme = () => {
        root.dataset.dvTheme = model.get("theme") ?? "auto";
      };
      const syncError = () => {
        const e = model.get("error");
        if (e) showError(e, "python");
        else if (root.dataset.dvErrorSource === "python") {
          // Only a Python-side error clears itself; a drawing failure stays visible.
          errorPanel.style.display = "none";
          root.dataset.dvState = "ready";
          delete root.dataset.dvErrorSource;
        }
      };
      const syncStatus = () => {
        const s = model.get("_status");
        if (s && s.message) {
          const known = typeof s.fraction === "number";
          status.style.display = "block";
          setText(statusText, known ? `${s.message} (${Math.round(s.fraction! * 100)}%)` : s.message);
          statusBar.style.width = known ? `${Math.round(s.fraction! * 100)}%` : "100%";
          statusBar.classList.toggle("dv-indeterminate", !known);
        } else {
          status.style.display = "none";
        }
      };
      ctx.on("change:title", syncTitle);
      ctx.on("change:theme", syncTheme);
      ctx.on("change:error", syncError);
      ctx.on("change:_status", syncStatus);
      disposer.listen(downloadButton, "click", ctx.guard(() => {
        if (!exporter) return;
        const stem = slug(model.get("title") ?? "", name);
        const out = exporter.fn();
        if (exporter.kind === "svg") {
          const xml = new XMLSerializer().serializeToString(out as SVGSVGElement);
          download(new Blob([xml], { type: "image/svg+xml" }), `${stem}.svg`);
        } else {
          (out as HTMLCanvasElement).toBlob((blob) => blob && download(blob, `${stem}.png`), "image/png");
        }
      }));
      syncTitle();
      syncTheme();
      syncStatus();
      root.dataset.dvState = "rendering";
      try {
        build(ctx);
        if (root.dataset.dvState === "rendering") root.dataset.dvState = "ready";
      } catch (err) {
        showError(err);
      }
      syncError();
      return () => {
        disposer.dispose();
        root.remove();
      };
    },
  };
}
