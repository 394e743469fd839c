// Token text for display. Tokens are data: they enter the DOM as text only.
//
// NOTE (attention-views engineer): this file was accidentally overwritten and
// has been restored from the built bundle (deepvis_widgets/static/logit_lens.js);
// showToken behaves exactly as the bundled copy. Anything else the original
// held was not in the bundle and is lost: please check against your copy.

/** Token text with invisible characters made visible: newline, tab, leading/trailing space, empty. */
export function showToken(token: string): string {
  return token.replace(/\n/g, "\u23ce").replace(/\t/g, "\u21e5").replace(/^ /, "\u2423").replace(/ $/, "\u2423") || "\u2205";
}
