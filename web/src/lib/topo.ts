// Drawing a topographic map: neuron values interpolated over the layout plane (inverse-distance
// weighting on a coarse raster, masked far from any neuron), iso-lines from d3-contour, or one
// square per neuron in grid mode. Pure canvas 2D: a layer has at most a few thousand neurons.
import { contours } from 'd3-contour';
import { diverging, css } from './colors';

export interface TopoGeometry {
  /** Screen positions of the neurons, in CSS pixels of the canvas. */
  px: Float32Array;
  py: Float32Array;
  /** Grid cell of each neuron and the grid's shape, for grid mode. */
  cell: Int32Array;
  rows: number;
  cols: number;
}

export interface TopoStyle {
  grid: boolean;
  contours: boolean;
  scale: number; // |value| that maps to the end of the colour map
  highlight: Set<number>;
  hover: number;
  dark: boolean;
  resolution?: number;
}

const PAD = 14;

export function geometry(x: number[], y: number[], width: number, height: number,
  cellHint?: number[], gridShape?: [number, number]): TopoGeometry {
  const n = x.length;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    x0 = Math.min(x0, x[i]); x1 = Math.max(x1, x[i]); y0 = Math.min(y0, y[i]); y1 = Math.max(y1, y[i]);
  }
  const side = Math.min(width, height) - 2 * PAD;
  const span = Math.max(x1 - x0, y1 - y0) || 1;
  const ox = (width - side) / 2, oy = (height - side) / 2;
  const px = new Float32Array(n), py = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    px[i] = ox + ((x[i] - x0) / span) * side;
    py[i] = oy + (1 - (y[i] - y0) / span) * side; // y up, as in the figures
  }
  let cell: Int32Array, rows: number, cols: number;
  if (cellHint && gridShape && cellHint.length === n) {
    cell = Int32Array.from(cellHint); [rows, cols] = gridShape;
  } else {
    // Rank-based snapping: sort by y into rows, each row by x. Keeps neighbours near each other
    // and costs O(n log n); the stored grid layout (an assignment) is used when the API sends it.
    cols = Math.ceil(Math.sqrt(n)); rows = Math.ceil(n / cols);
    cell = new Int32Array(n);
    const byY = [...Array(n).keys()].sort((a, b) => y[b] - y[a]);
    for (let r = 0; r < rows; r++) {
      const row = byY.slice(r * cols, (r + 1) * cols).sort((a, b) => x[a] - x[b]);
      row.forEach((i, c) => { cell[i] = r * cols + c; });
    }
  }
  return { px, py, cell, rows, cols };
}

export function draw(ctx: CanvasRenderingContext2D, g: TopoGeometry, values: ArrayLike<number>,
  silent: boolean[], style: TopoStyle): void {
  const { width, height } = ctx.canvas.getBoundingClientRect();
  ctx.clearRect(0, 0, width, height);
  const n = g.px.length;
  const scale = style.scale || 1;
  const live: number[] = [];
  for (let i = 0; i < n; i++) if (!silent[i] && Number.isFinite(values[i])) live.push(i);
  const side = Math.min(width, height) - 2 * PAD;
  const ox = (width - side) / 2, oy = (height - side) / 2;

  if (style.grid) {
    const cw = side / g.cols, ch = side / g.rows;
    for (let i = 0; i < n; i++) {
      const r = Math.floor(g.cell[i] / g.cols), c = g.cell[i] % g.cols;
      ctx.fillStyle = silent[i] ? (style.dark ? '#333' : '#ddd') : css(diverging(values[i] / scale));
      ctx.fillRect(ox + c * cw + 0.5, oy + r * ch + 0.5, cw - 1, ch - 1);
      if (style.highlight.has(i) || style.hover === i) {
        ctx.lineWidth = 2.5; ctx.strokeStyle = style.dark ? '#fff' : '#111';
        ctx.strokeRect(ox + c * cw + 1.5, oy + r * ch + 1.5, cw - 3, ch - 3);
      }
    }
    return;
  }

  // Inverse-distance weighting (power 2) on an R x R raster over the layout square.
  const R = style.resolution ?? 96;
  const cellPx = side / R;
  const field = new Float64Array(R * R);
  const mask = new Uint8Array(R * R);
  // Mask radius: a few typical neighbour spacings, so the map does not bleed into empty space.
  const radius = 2.2 * side / Math.sqrt(Math.max(live.length, 1));
  const lx = live.map((i) => g.px[i]), ly = live.map((i) => g.py[i]), lv = live.map((i) => values[i]);
  for (let r = 0; r < R; r++) {
    const cy = oy + (r + 0.5) * cellPx;
    for (let c = 0; c < R; c++) {
      const cx = ox + (c + 0.5) * cellPx;
      let num = 0, den = 0, nearest = Infinity;
      for (let k = 0; k < lx.length; k++) {
        const dx = lx[k] - cx, dy = ly[k] - cy;
        const d2 = dx * dx + dy * dy + 1e-6;
        if (d2 < nearest) nearest = d2;
        const w = 1 / (d2); // 1/d^2
        num += w * lv[k]; den += w;
      }
      const idx = r * R + c;
      if (nearest <= radius * radius && den > 0) { field[idx] = num / den; mask[idx] = 1; }
    }
  }
  const image = ctx.createImageData(R, R);
  for (let i = 0; i < R * R; i++) {
    if (!mask[i]) continue;
    const [cr, cg, cb] = diverging(field[i] / scale);
    image.data[4 * i] = cr; image.data[4 * i + 1] = cg; image.data[4 * i + 2] = cb; image.data[4 * i + 3] = 255;
  }
  // Upscale the raster smoothly through an offscreen canvas.
  const off = document.createElement('canvas');
  off.width = R; off.height = R;
  off.getContext('2d')!.putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(off, ox, oy, side, side);

  if (style.contours) {
    // d3-contour outlines the cells at or above a threshold, so negative levels are traced on
    // the negated field (otherwise the raster's own border becomes a contour).
    const levels = [0.25, 0.5, 0.75].map((t) => t * scale);
    const generator = contours().size([R, R]).thresholds(levels);
    ctx.lineWidth = 0.8;
    for (const sign of [1, -1]) {
      const masked = Array.from(field, (v, i) => (mask[i] ? sign * v : 0));
      ctx.strokeStyle = sign > 0 ? 'rgba(80,0,0,0.45)' : 'rgba(0,20,80,0.45)';
      for (const ring of generator(masked)) {
        ctx.beginPath();
        for (const polygon of ring.coordinates) for (const line of polygon) {
          line.forEach(([x, y], j) => {
            const sx = ox + x * cellPx, sy = oy + y * cellPx;
            if (j === 0) ctx.moveTo(sx, sy); else ctx.lineTo(sx, sy);
          });
        }
        ctx.stroke();
      }
    }
  }

  // Neurons: small dots; silent ones as grey crosses; highlighted ones ringed.
  for (let i = 0; i < n; i++) {
    const x = g.px[i], y = g.py[i];
    if (silent[i]) {
      ctx.strokeStyle = style.dark ? '#666' : '#aaa'; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(x - 2, y - 2); ctx.lineTo(x + 2, y + 2); ctx.moveTo(x + 2, y - 2); ctx.lineTo(x - 2, y + 2); ctx.stroke();
      continue;
    }
    ctx.fillStyle = 'rgba(0,0,0,0.35)';
    ctx.beginPath(); ctx.arc(x, y, 1.4, 0, 2 * Math.PI); ctx.fill();
  }
  for (const i of style.highlight) {
    if (i < 0 || i >= n) continue;
    ctx.lineWidth = 2.2; ctx.strokeStyle = style.dark ? '#ffe14d' : '#111';
    ctx.beginPath(); ctx.arc(g.px[i], g.py[i], 5.5, 0, 2 * Math.PI); ctx.stroke();
    ctx.lineWidth = 1; ctx.strokeStyle = style.dark ? '#000' : '#fff';
    ctx.beginPath(); ctx.arc(g.px[i], g.py[i], 7.5, 0, 2 * Math.PI); ctx.stroke();
  }
  if (style.hover >= 0 && style.hover < n) {
    ctx.lineWidth = 2; ctx.strokeStyle = '#ff9800';
    ctx.beginPath(); ctx.arc(g.px[style.hover], g.py[style.hover], 8, 0, 2 * Math.PI); ctx.stroke();
  }
}

/** The neuron under a point (CSS pixels), or -1. */
export function pick(g: TopoGeometry, x: number, y: number, gridMode: boolean, width: number, height: number): number {
  if (gridMode) {
    const side = Math.min(width, height) - 2 * PAD;
    const ox = (width - side) / 2, oy = (height - side) / 2;
    const c = Math.floor(((x - ox) / side) * g.cols), r = Math.floor(((y - oy) / side) * g.rows);
    if (c < 0 || r < 0 || c >= g.cols || r >= g.rows) return -1;
    const target = r * g.cols + c;
    return g.cell.indexOf(target);
  }
  let best = -1, bestD = 14 * 14;
  for (let i = 0; i < g.px.length; i++) {
    const d = (g.px[i] - x) ** 2 + (g.py[i] - y) ** 2;
    if (d < bestD) { bestD = d; best = i; }
  }
  return best;
}

/** Symmetric colour scale: the 98th percentile of |value|, so one outlier does not wash out the map. */
export function robustScale(arrays: ArrayLike<number>[]): number {
  const all: number[] = [];
  for (const a of arrays) for (let i = 0; i < a.length; i++) if (Number.isFinite(a[i]) && a[i] !== 0) all.push(Math.abs(a[i]));
  if (!all.length) return 1;
  all.sort((a, b) => a - b);
  return all[Math.min(all.length - 1, Math.floor(0.98 * all.length))] || 1;
}

/** Set up a canvas for its CSS size at the device pixel ratio; returns its 2D context. */
export function fitCanvas(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const rect = canvas.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(rect.width * dpr)), h = Math.max(1, Math.round(rect.height * dpr));
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext('2d')!;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return ctx;
}
