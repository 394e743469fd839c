// HeadView. Mirrors deepvis_widgets/widgets/attention.py (HeadView); the
// drawing lives in js/lib/head_lines.ts (shared with the model view) and the
// layers come through js/lib/attention.ts (embedded, or fetched from the kernel).

import { defineView, type ViewContext } from "./lib/base";
import type { AttentionTraits } from "./lib/attention";
import { HeadLines } from "./lib/head_lines";

export type HeadViewTraits = AttentionTraits;

function build(ctx: ViewContext<HeadViewTraits>): void {
  const t0 = performance.now();
  const view = new HeadLines(ctx);
  ctx.body.append(view.el);
  let first = true;
  view.onDrawn = () => {
    if (!first) return;
    first = false;
    ctx.root.dataset.dvRenderMs = (performance.now() - t0).toFixed(1);
    ctx.markDrawn();
  };
  view.update();
}

export default defineView<HeadViewTraits>("head_view", build);
