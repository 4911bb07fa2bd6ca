// Every read of the atlas goes through this module. Served mode fetches `/api/...` relative to
// the page; the offline export defines `window.__NC_STATIC__`, a map from the same paths to
// their payloads (JSON values, or data: URLs for images), so switching is one branch here.
import type {
  Manifest, InputRecord, TopomapPayload, MapperPayload, MemberRecord, FlowRecord,
  ConceptsPayload, Finding, NearestRecord, FlowPayload, ExemplarsPayload, TokenValues,
} from './types';

declare global {
  interface Window { __NC_STATIC__?: Record<string, unknown> }
}

export const isStatic = (): boolean => typeof window !== 'undefined' && !!window.__NC_STATIC__;

/** The API root, relative so the app works under any mount point. */
function url(path: string): string {
  return path.startsWith('/') ? '.' + path : path;
}

function staticLookup(path: string): unknown {
  // The export keys paths with names unencoded; try the exact path, then without the query.
  const table = window.__NC_STATIC__!;
  let decoded = path;
  try { decoded = decodeURIComponent(path); } catch { /* keep as is */ }
  for (const key of [path, decoded, path.split('?')[0], decoded.split('?')[0]]) if (key in table) return table[key];
  return undefined;
}

export class NotAvailable extends Error {}

const cache = new Map<string, Promise<unknown>>();

/** GET a JSON payload once; later calls share the same promise. */
export function getJSON<T>(path: string): Promise<T> {
  let hit = cache.get(path);
  if (!hit) {
    hit = load(path);
    cache.set(path, hit);
    hit.catch(() => cache.delete(path));
  }
  return hit as Promise<T>;
}

async function load(path: string): Promise<unknown> {
  if (isStatic()) {
    const value = staticLookup(path);
    if (value === undefined) throw new NotAvailable(`${path} is not in this export`);
    return typeof value === 'string' ? JSON.parse(value) : value;
  }
  const response = await fetch(url(path));
  if (response.status === 404) throw new NotAvailable(`${path}: not found`);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

/** An image source for <img src>, or null when the export does not carry it. */
export function imageURL(path: string): string | null {
  if (isStatic()) {
    const value = staticLookup(path);
    return typeof value === 'string' ? value : null;
  }
  return url(path);
}

const enc = encodeURIComponent;

export const api = {
  manifest: () => getJSON<Manifest>('/api/manifest'),
  inputs: (offset = 0, limit = 1000) =>
    getJSON<InputRecord[]>(`/api/inputs?offset=${offset}&limit=${limit}&format=json`),
  thumbnail: (inputId: number) => imageURL(`/api/thumbnail/${inputId}.png`),
  patches: (snapshot: string, layer: string, neuron: number) =>
    imageURL(`/api/patches/${enc(snapshot)}/${enc(layer)}/${neuron}.png`),
  topomap: (name: string) => getJSON<TopomapPayload>(`/api/topomap/${enc(name)}`),
  topomapInput: (name: string, inputId: number, snapshot: string) =>
    getJSON<{ values: number[] }>(`/api/topomap/${enc(name)}/input/${inputId}?snapshot=${enc(snapshot)}`),
  groupings: () => getJSON<Record<string, string[]>>('/api/groupings'),
  topomapGroups: (name: string, column: string, snapshot: string) =>
    getJSON<{ groups: string[]; counts: number[]; values: Record<string, number[]> }>(
      `/api/topomap/${enc(name)}/groups/${enc(column)}?snapshot=${enc(snapshot)}`),
  topomapNode: (name: string, layer: string, node: number, snapshot: string) =>
    getJSON<{ values: number[]; n_inputs: number }>(
      `/api/topomap/${enc(name)}/mapper/${enc(layer)}/${node}?snapshot=${enc(snapshot)}`),
  mapper: (layer: string) => getJSON<MapperPayload>(`/api/mapper/${enc(layer)}`),
  members: (layer: string) => getJSON<MemberRecord[] | Record<string, number[]>>(
    `/api/mapper/${enc(layer)}/members?format=json`).then(toRecords),
  flow: (layer: string, next: string) =>
    getJSON<FlowPayload | FlowRecord[]>(`/api/mapper/${enc(layer)}/flow/${enc(next)}`).then(toLinks),
  concepts: (snapshot: string) => getJSON<ConceptsPayload>(`/api/concepts/${enc(snapshot)}`),
  nearest: (snapshot: string, neuron: number, k = 10) =>
    getJSON<NearestRecord[] | { neighbors?: NearestRecord[]; nearest?: NearestRecord[] }>(
      `/api/concepts/${enc(snapshot)}/nearest/${neuron}?k=${k}`),
  findings: () => getJSON<Finding[]>('/api/findings'),
  exemplars: (snapshot: string, layer: string, neuron: number, k = 9) =>
    getJSON<ExemplarsPayload>(`/api/exemplars/${enc(snapshot)}/${enc(layer)}/${neuron}?k=${k}`),
  /** One text input's per-token activation of a neuron, or of a concept cluster's mean. */
  tokens: (inputId: number, layer: string, snapshot: string, by: { neuron: number } | { cluster: number }) =>
    getJSON<TokenValues>(`/api/tokens/${inputId}?layer=${enc(layer)}&snapshot=${enc(snapshot)}&` +
      ('neuron' in by ? `neuron=${by.neuron}` : `cluster=${by.cluster}`)),
};

/** All input records, paged (the table is small next to activations: ~100 bytes per input). */
export async function allInputs(manifest: Manifest, pageSize = 5000): Promise<InputRecord[]> {
  const first = await api.inputs(0, pageSize);
  if (first.length < pageSize || isStatic()) return first;
  const pages: Promise<InputRecord[]>[] = [];
  for (let offset = pageSize; offset < manifest.n_inputs; offset += pageSize) pages.push(api.inputs(offset, pageSize));
  return first.concat(...(await Promise.all(pages)));
}

/** Members come as records or as columns ({node: [...], row: [...], input_id: [...]}). */
function toRecords(m: MemberRecord[] | Record<string, number[]>): MemberRecord[] {
  if (Array.isArray(m)) return m;
  const node = m.node ?? [], row = m.row ?? [], id = m.input_id ?? [];
  return node.map((n, i) => ({ node: n, row: row[i], input_id: id[i] }));
}

/** Flows come as {links: [{source, target, value}]} or as records with `shared`. */
function toLinks(f: FlowPayload | FlowRecord[]): FlowRecord[] {
  if (Array.isArray(f)) return f;
  return f.links.map((l) => ({ source: l.source, target: l.target, shared: l.value }));
}

/** The exemplar patches of a neuron, or null where the atlas stores none (no 404s in the console). */
export function patchURL(manifest: Manifest | null, snapshot: string, layer: string, unit: number): string | null {
  const stored = manifest?.patches;
  if (!stored) return null;
  let snap = snapshot;
  if (!stored[snap]?.includes(layer)) {
    snap = Object.keys(stored).reverse().find((s) => stored[s].includes(layer)) ?? '';
    if (!snap) return null;
  }
  return imageURL(`/api/patches/${enc(snap)}/${enc(layer)}/${unit}.png`);
}

/** Whether a layer has one activation row per token (text exemplars instead of patches). */
export function isTokenLayer(manifest: Manifest | null, layer: string): boolean {
  return manifest?.layers.find((l) => l.name === layer)?.rows === 'token';
}

/** Word pieces as text: '##' pieces join the previous one, others are spaced. */
export function detokenize(tokens: string[], leading = false): string {
  return tokens.map((t, i) => (t.startsWith('##') ? t.slice(2) : (i || leading ? ' ' : '') + t)).join('');
}
