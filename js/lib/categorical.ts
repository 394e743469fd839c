// Categorical colours for labels (Tableau 10 then its light partners, as in
// Vega's category20 ordering), readable on light and dark backgrounds.

export const CATEGORY20 = [
  "#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
  "#9ecae9", "#ffbf79", "#88d27a", "#ff9d98", "#a6dcd9", "#f5e08e", "#d6a5c9", "#fcd1d6", "#d8b5a5", "#79706e",
];

/** Colour of category `i` (cycles past 20). */
export function categoryColor(i: number): string {
  return CATEGORY20[((i % CATEGORY20.length) + CATEGORY20.length) % CATEGORY20.length];
}

/** Right / wrong colours for error colouring. */
export const RIGHT_COLOR = "#4c78a8";
export const WRONG_COLOR = "#e45756";
