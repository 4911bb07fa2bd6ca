// Colour maps: a diverging map for signed activity (ColorBrewer RdBu, reversed so red = above
// the mean), a categorical palette for classes and clusters, and viridis for [0, 1] values.

type RGB = [number, number, number];

const RDBU: RGB[] = [
  [5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240], [247, 247, 247],
  [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43], [103, 0, 31],
];
const VIRIDIS: RGB[] = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142], [31, 158, 137],
  [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37],
];

function ramp(stops: RGB[], t: number): RGB {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0.5)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const a = stops[i], b = stops[i + 1];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

/** v in [-1, 1] -> RGB, white at 0. */
export const diverging = (v: number): RGB => ramp(RDBU, (v + 1) / 2);
export const viridis = (t: number): RGB => ramp(VIRIDIS, t);

const PALETTE = [
  '#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7',
  '#9c755f', '#bab0ac', '#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#8c564b', '#e377c2',
  '#17becf', '#bcbd22', '#7f7f7f', '#aec7e8',
];
export const categorical = (i: number): string => (i < 0 ? '#9a9a9a' : PALETTE[i % PALETTE.length]);

export const css = (c: RGB, alpha = 1): string =>
  `rgba(${Math.round(c[0])},${Math.round(c[1])},${Math.round(c[2])},${alpha})`;

export function hexToRgb(hex: string): RGB {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}
