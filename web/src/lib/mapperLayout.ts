// Where the Mapper view draws things: the graph's node positions (ForceAtlas2), those positions
// fitted to the canvas, the node under the pointer, and the two-column flow (Sankey) between
// two layers' graphs. Pure functions of the payloads and the canvas size; the view draws.
import Graph from 'graphology';
import forceAtlas2 from 'graphology-layout-forceatlas2';
import type { MapperNode, MapperPayload, FlowPayload, FlowLink } from './types';

export interface Point { x: number; y: number }
export interface Disc extends Point { r: number }
export interface Size { w: number; h: number }

/** Node positions in layout units. Seeded start (x from the lens, the filter function; y from a
 *  hash of the id), so the layout is the same on every load; then ForceAtlas2. */
export function layoutGraph(p: MapperPayload): Map<number, Point> {
  const g = new Graph({ type: 'undirected' });
  const lens = p.nodes.map((n) => n.mean_lens ?? 0);
  const lo = Math.min(...lens), hi = Math.max(...lens);
  for (const n of p.nodes) {
    const x = hi > lo ? ((n.mean_lens - lo) / (hi - lo)) * 100 : 0;
    const y = (((n.id * 2654435761) >>> 0) % 1000) / 10;
    g.addNode(String(n.id), { x, y, size: Math.sqrt(n.size) });
  }
  for (const e of p.edges) {
    const a = String(e.source), b = String(e.target);
    if (g.hasNode(a) && g.hasNode(b) && !g.hasEdge(a, b)) g.addEdge(a, b, { weight: Math.max(e.shared ?? 1, 1) });
  }
  if (g.order > 1) {
    const settings = { ...forceAtlas2.inferSettings(g), gravity: 1.5, barnesHutOptimize: g.order > 500 };
    forceAtlas2.assign(g, { iterations: g.order > 2000 ? 100 : 300, settings });
  }
  const out = new Map<number, Point>();
  g.forEachNode((key, attr) => out.set(Number(key), { x: attr.x, y: attr.y }));
  return out;
}

/** The positions scaled and centred into a canvas of `size` (18 px margin), each node a disc
 *  whose area grows with its number of inputs; null when there is nothing to place. */
export function fitToScreen(nodes: MapperNode[], positions: Map<number, Point>, size: Size): Map<number, Disc> | null {
  const pts = [...positions.values()];
  if (!pts.length || size.w < 4) return null;
  const xs = pts.map((p) => p.x), ys = pts.map((p) => p.y);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const pad = 18;
  const s = Math.min((size.w - 2 * pad) / (x1 - x0 || 1), (size.h - 2 * pad) / (y1 - y0 || 1));
  const maxSize = Math.max(...nodes.map((n) => n.size), 1);
  const ox = (size.w - (x1 - x0) * s) / 2, oy = (size.h - (y1 - y0) * s) / 2;
  const screen = new Map<number, Disc>();
  for (const n of nodes) {
    const p = positions.get(n.id);
    if (p) screen.set(n.id, { x: ox + (p.x - x0) * s, y: oy + (p.y - y0) * s, r: 3 + 11 * Math.sqrt(n.size / maxSize) });
  }
  return screen;
}

/** The id of the node whose disc (plus 4 px of slack) holds the point nearest its centre, or -1. */
export function nodeAt(screen: Map<number, Disc>, x: number, y: number): number {
  let best = -1, bestD = Infinity;
  for (const [id, p] of screen) {
    const d = Math.hypot(p.x - x, p.y - y);
    if (d <= p.r + 4 && d < bestD) { best = id; bestD = d; }
  }
  return best;
}

export interface SankeyBar { y: number; h: number; used: number; dominant: string }
export interface SankeyBand { d: string; link: FlowLink; dominant: string }
export interface Sankey { left: Map<number, SankeyBar>; right: Map<number, SankeyBar>; bands: SankeyBand[]; xL: number; xR: number; colW: number }

/** A two-column Sankey of the inputs `flow` carries from `source`'s nodes (left) to `target`'s
 *  (right): bars sorted by dominant class (`classIndex` order), then by lens; band heights
 *  proportional to the shared inputs. */
export function sankeyLayout(flow: FlowPayload, source: MapperPayload, target: MapperPayload,
  classIndex: Map<string, number>, size: Size): Sankey {
  const pad = 8, colW = 14, gap = 2;
  const out = new Map<number, number>(), inn = new Map<number, number>();
  for (const l of flow.links) { out.set(l.source, (out.get(l.source) ?? 0) + l.value); inn.set(l.target, (inn.get(l.target) ?? 0) + l.value); }
  const column = (nodes: MapperNode[], used: Map<number, number>) => nodes.filter((n) => used.has(n.id))
    .sort((a, b) => (classIndex.get(a.dominant) ?? 0) - (classIndex.get(b.dominant) ?? 0) || a.mean_lens - b.mean_lens);
  const leftNodes = column(source.nodes, out), rightNodes = column(target.nodes, inn);
  const total = Math.max([...out.values()].reduce((a, b) => a + b, 0), 1);
  const avail = (n: number) => size.h - 2 * pad - gap * Math.max(n - 1, 0);
  const k = Math.min(avail(leftNodes.length), avail(rightNodes.length)) / total;
  const place = (list: MapperNode[], weight: Map<number, number>) => {
    const pos = new Map<number, SankeyBar>();
    let y = pad;
    for (const n of list) { const h = (weight.get(n.id) ?? 0) * k; pos.set(n.id, { y, h, used: 0, dominant: n.dominant }); y += h + gap; }
    return pos;
  };
  const left = place(leftNodes, out), right = place(rightNodes, inn);
  const xL = 120, xR = size.w - 120;
  const bands = [...flow.links].sort((a, b) => a.source - b.source || a.target - b.target).map((link) => {
    const a = left.get(link.source)!, b = right.get(link.target)!;
    const h = link.value * k;
    const y0 = a.y + a.used, y1 = b.y + b.used;
    a.used += h; b.used += h;
    const mx = (xL + colW + xR) / 2;
    const d = `M${xL + colW},${y0} C${mx},${y0} ${mx},${y1} ${xR},${y1} L${xR},${y1 + h} C${mx},${y1 + h} ${mx},${y0 + h} ${xL + colW},${y0 + h} Z`;
    return { d, link, dominant: a.dominant };
  });
  return { left, right, bands, xL, xR, colW };
}

export interface NodeSummary {
  size: number;
  /** The node's most common classes with their share of its members, largest first (at most 3). */
  top: { name: string; share: number }[];
  /** The lens (filter function) over the members: its mean per lens dimension. */
  lens: number[];
  /** Share of members the model classifies correctly; null when the inputs have no `correct`. */
  accuracy: number | null;
}

/** What a node's tooltip and the inspector say about it, in the spirit of KeplerMapper's node
 *  tooltips: size, top classes with shares, lens and accuracy. */
export function nodeSummary(n: MapperNode): NodeSummary {
  const entries = Object.entries(n.classes ?? {});
  const total = entries.reduce((a, [, v]) => a + v, 0) || 1;
  const top = entries.sort((a, b) => b[1] - a[1]).slice(0, 3).map(([name, v]) => ({ name, share: v / total }));
  const record = n as unknown as Record<string, unknown>;
  const lens = Object.keys(record).filter((k) => /^mean_lens\d*$/.test(k)).sort()
    .map((k) => record[k]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  const accuracy = typeof n.accuracy === 'number' && Number.isFinite(n.accuracy) ? n.accuracy : null;
  return { size: n.size, top, lens, accuracy };
}

export const percent = (share: number): string => `${Math.round(share * 100)}%`;
