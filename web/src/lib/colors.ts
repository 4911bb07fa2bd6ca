// Colour maps: a diverging map for signed activity (ColorBrewer RdBu, reversed so red = above
// the mean), the server's categorical palette for classes and clusters, and viridis for [0, 1] values.

import { atlas } from './atlas.svelte';
import type { ClassLegend } from './types';

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

// Categorical colours come from the server, in the manifest (render/palette.py: colorcet's glasbey
// palette and the class legend), so the viewer and the static figures colour alike.
/** "other" and "no group": the grey no palette colour comes near. */
export const OTHER = '#9a9a9a';

/** Colour of category number `i` (cycling past the palette's end); grey for i < 0. */
export function categorical(i: number): string {
  const p = atlas.manifest?.palette ?? [];
  return i < 0 || !p.length ? OTHER : p[i % p.length];
}

let legendColours: { from: ClassLegend | null; map: Map<string, string> } = { from: null, map: new Map() };
/** Colour of a class by name, as the class legend gives it: its own, or grey when it is folded
 *  into "other" (or unknown). */
export function classColour(name: string): string {
  const legend = atlas.manifest?.class_legend ?? null;
  if (legend !== legendColours.from) legendColours = { from: legend, map: new Map(legend?.entries.map((e) => [e.name, e.colour]) ?? []) };
  return legendColours.map.get(name) ?? OTHER;
}

/** A signed value as a highlight behind text: red above 0, blue below, more opaque the larger
 *  |v| / scale (capped); transparent where there is no value. */
export function signedColour(v: number | null, scale: number): string {
  if (v === null || !Number.isFinite(v) || !(scale > 0)) return 'transparent';
  const a = Math.min(1, Math.abs(v) / scale) * 0.85;
  return v >= 0 ? `rgba(214, 96, 77, ${a.toFixed(3)})` : `rgba(67, 147, 195, ${a.toFixed(3)})`;
}

export const css = (c: RGB, alpha = 1): string =>
  `rgba(${Math.round(c[0])},${Math.round(c[1])},${Math.round(c[2])},${alpha})`;

export function hexToRgb(hex: string): RGB {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}
