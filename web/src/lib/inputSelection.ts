// The input projection's selections, searches and colourings, as plain functions of its payload
// and the input table, so the view, the inspector and the Mapper view agree on which inputs a
// lasso holds. The lasso rule is the server's (methods/inputs_projection.py points_in_polygon):
// the even-odd rule on the coordinates the payload sends, so the lasso's map on the server is made
// of exactly the points lit here.
import { api } from './data';
import type { Selection } from './store.svelte';
import type { InputProjectionPayload, InputRecord, Finding } from './types';

/** Indices of the points inside `polygon` (x1,y1,x2,y2,... in the unit square). */
export function pointsInPolygon(x: number[], y: number[], polygon: number[]): number[] {
  const n = polygon.length / 2;
  const out: number[] = [];
  for (let k = 0; k < x.length; k++) {
    const px = x[k], py = y[k];
    let inside = false;
    for (let i = 0, j = n - 1; i < n; j = i++) {
      const xi = polygon[2 * i], yi = polygon[2 * i + 1], xj = polygon[2 * j], yj = polygon[2 * j + 1];
      if ((yi > py) !== (yj > py) && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) inside = !inside;
    }
    if (inside) out.push(k);
  }
  return out;
}

/** A lasso's vertices, at most `most` of them (evenly kept) and rounded to 4 decimals: short
 *  enough for a URL, and the same numbers on both sides once in the selection. */
export function simplifyPolygon(vertices: [number, number][], most = 120): number[] {
  const step = Math.max(1, vertices.length / most);
  const out: number[] = [];
  for (let i = 0; i < vertices.length; i += step) {
    const [x, y] = vertices[Math.floor(i)];
    out.push(Math.round(x * 1e4) / 1e4, Math.round(y * 1e4) / 1e4);
  }
  return out;
}

/** The distinct input ids of some points. */
export function inputsOf(p: InputProjectionPayload, points: number[]): number[] {
  return [...new Set(points.map((i) => p.input_id[i]))].sort((a, b) => a - b);
}

/** The input ids an input-projection lasso holds (an empty list for any other selection). */
export async function selectedInputIds(sel: Selection): Promise<number[]> {
  if (sel?.kind !== 'inputs') return [];
  const p = await api.inputProjection(sel.layer);
  return inputsOf(p, pointsInPolygon(p.x, p.y, sel.polygon));
}

/** The input ids a finding is about: its selection's `inputs` / `input_ids`. */
export function findingInputIds(f: Finding | undefined): number[] {
  const s = (f?.selection ?? {}) as Record<string, unknown>;
  const ids = Array.isArray(s.inputs) ? s.inputs : Array.isArray(s.input_ids) ? s.input_ids : [];
  return ids.map(Number).filter(Number.isInteger);
}

/** Text of a cell, for search and categories ('' for a missing value). */
export const cellText = (v: unknown): string => (v === null || v === undefined ? '' : String(v));

/** Columns not worth colouring or searching by: ids, free text, scores. */
const NOT_CATEGORIES = new Set(['input_id', 'text', 'path', 'source_index', 'line', 'confidence', 'label', 'pred']);

/** What the points can be coloured by: outputs and label first, then the input table's columns
 *  with 2 to 30 distinct values, then a token layer's token columns. */
export function colourOptions(p: InputProjectionPayload | null, rows: InputRecord[]): { value: string; label: string }[] {
  const out: { value: string; label: string }[] = [];
  const columns = new Set<string>();
  for (const r of rows.slice(0, 1)) for (const k of Object.keys(r)) columns.add(k);
  if (columns.has('label_name')) out.push({ value: 'label', label: 'label' });
  if (columns.has('pred_name')) out.push({ value: 'pred', label: 'prediction' });
  if (columns.has('correct')) out.push({ value: 'correct', label: 'correct' });
  for (const c of columns) {
    if (NOT_CATEGORIES.has(c) || c === 'label_name' || c === 'pred_name' || c === 'correct') continue;
    const seen = new Set<string>();
    for (const r of rows) { seen.add(cellText(r[c])); if (seen.size > 30) break; }
    if (seen.size >= 2 && seen.size <= 30) out.push({ value: c, label: c });
  }
  for (const c of Object.keys(p?.token_columns ?? {})) out.push({ value: `token:${c}`, label: `token ${c}` });
  return out;
}

/** Every point's category under `colour` ('' where unknown: the grey of "no value"). */
export function pointCategories(p: InputProjectionPayload, records: Map<number, InputRecord> | null,
  colour: string, findings: Finding[] | null): string[] {
  if (colour.startsWith('token:')) return p.token_columns[colour.slice(6)] ?? p.x.map(() => '');
  if (colour.startsWith('finding:')) {
    const ids = new Set(findingInputIds(findings?.[Number(colour.slice(8))]));
    return p.input_id.map((id) => (ids.has(id) ? 'in the finding' : ''));
  }
  const column = colour === 'label' ? 'label_name' : colour === 'pred' ? 'pred_name' : colour;
  return p.input_id.map((id) => cellText(records?.get(id)?.[column]));
}

/** The points a search matches: `column=value` (exact, case-insensitive; input columns, token
 *  columns, or `token`), else the points whose input fields (token layers: whose token or token
 *  columns) contain the text, case-insensitive. Null when the search is empty. */
export function searchPoints(p: InputProjectionPayload, records: Map<number, InputRecord> | null, query: string): number[] | null {
  const q = query.trim().toLowerCase();
  if (!q) return null;
  const eq = q.match(/^([^=]+?)\s*=\s*(.*)$/);
  const out: number[] = [];
  const tokenCols = Object.entries(p.token_columns);
  const matchesInput = new Map<number, boolean>();
  const inputMatches = (id: number): boolean => {
    let hit = matchesInput.get(id);
    if (hit !== undefined) return hit;
    const r = records?.get(id);
    if (!r) hit = false;
    else if (eq) {
      const key = Object.keys(r).find((k) => k.toLowerCase() === eq[1]);
      hit = key !== undefined && cellText(r[key]).toLowerCase() === eq[2];
    } else hit = Object.values(r).some((v) => cellText(v).toLowerCase().includes(q));
    matchesInput.set(id, hit);
    return hit;
  };
  for (let i = 0; i < p.x.length; i++) {
    let hit = false;
    if (eq) {
      const col = tokenCols.find(([c]) => c.toLowerCase() === eq[1] || `token:${c}` === eq[1]);
      if (col) hit = col[1][i].toLowerCase() === eq[2];
      else if (eq[1] === 'token' && p.tokens) hit = p.tokens[i].toLowerCase() === eq[2];
      else hit = inputMatches(p.input_id[i]);
    } else {
      // a token layer's points are tokens: the text finds tokens, not every token of a sentence
      hit = p.tokens !== null
        ? p.tokens[i].toLowerCase().includes(q) || tokenCols.some(([, v]) => v[i].toLowerCase().includes(q))
        : inputMatches(p.input_id[i]);
    }
    if (hit) out.push(i);
  }
  return out;
}
