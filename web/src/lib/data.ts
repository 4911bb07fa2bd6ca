// Every read of the atlas goes through this module. Served mode fetches the API relative to
// the page; the offline export defines `window.__NC_STATIC__`, a map from the same paths to
// their payloads (JSON values, or data: URLs for images), so switching is one branch here.
// The paths come from routes.json, the one file the server and the export read them from too.
import routes from '../../../src/neurocarta/viewer/routes.json';
import type {
  MapStatusPayload,
  Manifest, InputRecord, TopomapPayload, TopomapInputPayload, TopomapGroupsPayload, TopomapNodePayload,
  MapperPayload, MemberColumns, MemberRecord, FlowPayload, ConceptsPayload, Finding, NearestRecord,
  ExemplarsPayload, TokenValues, InputProjectionPayload, TopomapSelectionPayload, FeatvisPayload, FeatvisKind, AttributionsPayload,
  ComparisonPayload,
} from './types';

declare global {
  interface Window { __NC_STATIC__?: Record<string, unknown> }
}

export const isStatic = (): boolean => typeof window !== 'undefined' && !!window.__NC_STATIC__;

// ---- paths ----------------------------------------------------------------------------------

export type RouteName = Exclude<keyof typeof routes, '_comment'>;
type Value = string | number;

/** The path of route `name`: its template's `{params}` filled in URL-encoded, then the query in
 *  the order given (the offline export keys its payloads by exactly these strings). */
export function route(name: RouteName, params: Record<string, Value> = {}, query: Record<string, Value> = {}): string {
  const path = routes[name].replace(/\{(\w+)\}/g, (_, key: string) => {
    // A missing parameter is a programming error: fail here, not with a path no endpoint answers.
    if (!(key in params)) throw new Error(`route ${name} needs the parameter ${key}`);
    return encodeURIComponent(String(params[key]));
  });
  const q = Object.entries(query).map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`).join('&');
  return q ? `${path}?${q}` : path;
}

/** The API root, relative so the app works under any mount point. */
function url(path: string): string {
  return path.startsWith('/') ? '.' + path : path;
}

/** The keys the export may hold `path` under: it writes names unencoded; try the exact path,
 *  then without the query. */
function staticKeys(path: string): string[] {
  let decoded = path;
  try { decoded = decodeURIComponent(path); } catch { /* a malformed escape: the raw path is the key */ }
  return [path, decoded, path.split('?')[0], decoded.split('?')[0]];
}

function staticLookup(path: string): unknown {
  const table = window.__NC_STATIC__!;
  const key = staticKeys(path).find((k) => k in table);
  return key === undefined ? undefined : table[key];
}

/** Why the export left `path` out, when the server answered it with an error at export time
 *  (the export's manifest lists those), so the offline viewer shows the same error state. */
function staticError(path: string): string | undefined {
  const errors = (window.__NC_STATIC__![routes.manifest] as Manifest | undefined)?.export?.errors ?? {};
  const key = staticKeys(path).find((k) => k in errors);
  return key === undefined ? undefined : errors[key];
}

// ---- errors ---------------------------------------------------------------------------------

/** A failed read: `message` is the server's one-line reason (the `error` field of its JSON
 *  error body), else the HTTP status. */
export class ApiError extends Error {
  constructor(readonly path: string, readonly status: number, message: string) {
    super(message);
  }
}

/** A 404, or a path the offline export does not carry: the thing does not exist here. */
export class NotAvailable extends ApiError {}

/** The message to show for anything a read may reject with. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function failure(path: string, response: Response): Promise<ApiError> {
  let reason = `HTTP ${response.status}`;
  try {
    const body = await response.json();
    if (body && typeof body.error === 'string' && body.error) reason = body.error;
  } catch { /* no JSON body (a proxy's error page): the status is all there is to say */ }
  return response.status === 404 ? new NotAvailable(path, 404, reason) : new ApiError(path, response.status, reason);
}

// ---- reads ----------------------------------------------------------------------------------

const cache = new Map<string, Promise<unknown>>();

/** Drop every cached read: the server stored new maps (see mapStatus.svelte.ts). */
export function forgetReads(): void {
  cache.clear();
}

/** Where the map stages stand: read fresh each time (never from the cache above). */
async function loadMapStatus(): Promise<MapStatusPayload> {
  const path = route('map_status');
  const response = await fetch(url(path), { cache: 'no-store' });
  if (!response.ok) throw await failure(path, response);
  return response.json();
}

/** GET a JSON payload once; later calls share the same promise (a failure is retried). */
export function getJSON<T>(path: string): Promise<T> {
  let hit = cache.get(path);
  if (!hit) {
    hit = load(path);
    cache.set(path, hit);
    // Forget a failure so the next call asks again; the caller still gets the rejection.
    hit.catch(() => cache.delete(path));
  }
  return hit as Promise<T>;
}

async function load(path: string): Promise<unknown> {
  if (isStatic()) {
    const value = staticLookup(path);
    if (value === undefined) {
      const failed = staticError(path);
      throw failed !== undefined ? new ApiError(path, 500, failed) : new NotAvailable(path, 404, 'not in this offline export');
    }
    return typeof value === 'string' ? JSON.parse(value) : value;
  }
  const response = await fetch(url(path));
  if (!response.ok) throw await failure(path, response);
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

/** Members arrive as columns; the views filter records. */
function memberRecords(m: MemberColumns): MemberRecord[] {
  return m.node.map((node, i) => ({ node, row: m.row[i], input_id: m.input_id[i] }));
}

export const api = {
  manifest: () => getJSON<Manifest>(route('manifest')),
  mapStatus: loadMapStatus,
  inputs: (offset = 0, limit = 1000) =>
    getJSON<InputRecord[]>(route('inputs', {}, { offset, limit, format: 'json' })),
  thumbnail: (inputId: number) => imageURL(route('thumbnail', { input_id: inputId })),
  topomap: (name: string) => getJSON<TopomapPayload>(route('topomap', { name })),
  topomapInput: (name: string, inputId: number, snapshot: string) =>
    getJSON<TopomapInputPayload>(route('topomap_input', { name, input_id: inputId }, { snapshot })),
  groupings: () => getJSON<Record<string, string[]>>(route('groupings')),
  topomapGroups: (name: string, column: string, snapshot: string) =>
    getJSON<TopomapGroupsPayload>(route('topomap_groups', { name, column }, { snapshot })),
  topomapNode: (name: string, layer: string, node: number, snapshot: string) =>
    getJSON<TopomapNodePayload>(route('topomap_mapper_node', { name, layer, node }, { snapshot })),
  mapper: (layer: string) => getJSON<MapperPayload>(route('mapper', { layer })),
  members: (layer: string) =>
    getJSON<MemberColumns>(route('mapper_members', { layer }, { format: 'json' })).then(memberRecords),
  flow: (layer: string, next: string) => getJSON<FlowPayload>(route('mapper_flow', { layer, next_layer: next })),
  concepts: (snapshot: string) => getJSON<ConceptsPayload>(route('concepts', { snapshot })),
  nearest: (snapshot: string, neuron: number, k = 10) =>
    getJSON<NearestRecord[]>(route('concepts_nearest', { snapshot, neuron }, { k })),
  findings: () => getJSON<Finding[]>(route('findings')),
  /** The comparison page: CKA heatmaps and concept matching (`serve A [--compare B]`). */
  comparison: () => getJSON<ComparisonPayload>(route('comparison')),
  inputProjection: (layer: string) => getJSON<InputProjectionPayload>(route('input_projection', { layer })),
  /** A lasso of `layer`'s input projection (vertices x1,y1,...) against the rest, on map `name`. */
  topomapSelection: (name: string, layer: string, polygon: number[], snapshot: string) =>
    getJSON<TopomapSelectionPayload>(route('topomap_selection', { name, layer }, { polygon: polygon.join(','), snapshot })),
  exemplars: (snapshot: string, layer: string, neuron: number, k = 9) =>
    getJSON<ExemplarsPayload>(route('exemplars', { snapshot, layer, neuron }, { k })),
  /** One text input's per-token activation of a neuron, or of a concept cluster's mean. */
  tokens: (inputId: number, layer: string, snapshot: string, by: { neuron: number } | { cluster: number }) =>
    getJSON<TokenValues>(route('tokens', { input_id: inputId }, { layer, snapshot, ...by })),
  /** A layer's feature visualizations at a snapshot: every target's objective values. */
  featvis: (snapshot: string, layer: string) => getJSON<FeatvisPayload>(route('featvis', { snapshot, layer })),
  /** An input's stored attributions (`neurocarta attribute`). */
  attributions: (snapshot: string, inputId: number) =>
    getJSON<AttributionsPayload>(route('attributions', { snapshot, input_id: inputId })),
};

/** All input records, paged (the table is small next to activations: ~100 bytes per input). */
export async function allInputs(manifest: Manifest, pageSize = 5000): Promise<InputRecord[]> {
  const first = await api.inputs(0, pageSize);
  if (first.length < pageSize || isStatic()) return first;
  const pages: Promise<InputRecord[]>[] = [];
  for (let offset = pageSize; offset < manifest.n_inputs; offset += pageSize) pages.push(api.inputs(offset, pageSize));
  return first.concat(...(await Promise.all(pages)));
}

/** The snapshot under which a manifest table (snapshot -> names it stores something for) holds
 *  `name`: `snapshot` itself, else the latest that does; '' where none does. The views ask only
 *  for what the manifest lists, so an atlas without it costs no request and no 404. */
function storedSnapshot(table: Record<string, (string | number)[]> | undefined, snapshot: string, name: string): string {
  if (!table) return '';
  const holds = (s: string) => (table[s] ?? []).some((n) => String(n) === name);
  if (holds(snapshot)) return snapshot;
  return Object.keys(table).reverse().find(holds) ?? '';
}

/** The exemplar patches of a neuron, or null where the atlas stores none (no 404s in the console). */
export function patchURL(manifest: Manifest | null, snapshot: string, layer: string, unit: number): string | null {
  const snap = storedSnapshot(manifest?.patches, snapshot, layer);
  return snap ? imageURL(route('patches', { snapshot: snap, layer, neuron: unit })) : null;
}

/** The snapshot whose feature visualizations of `layer` to show ('' where none are stored). */
export const featvisSnapshot = (manifest: Manifest | null, snapshot: string, layer: string): string =>
  storedSnapshot(manifest?.featvis, snapshot, layer);

/** The `i`-th image of a feature-visualization target, or null where the export lacks it. */
export function featvisImageURL(snapshot: string, layer: string, kind: FeatvisKind, target: string, i = 0): string | null {
  const path = route('featvis_image', { snapshot, layer, kind, target }, i ? { i } : {});
  // A static lookup falls back to the path without its query: a later image must not turn
  // into the first one where the export carries only that.
  if (i && isStatic() && !staticKeys(path).slice(0, 2).some((k) => k in window.__NC_STATIC__!)) return null;
  return imageURL(path);
}

/** The snapshot whose attributions of input `inputId` to show ('' where none are stored). */
export const attributionSnapshot = (manifest: Manifest | null, snapshot: string, inputId: number): string =>
  storedSnapshot(manifest?.attributions, snapshot, String(inputId));

/** An image attribution's overlay (RGBA, the thumbnail's size), or null where the export lacks it. */
export const attributionImageURL = (snapshot: string, inputId: number, index: number): string | null =>
  imageURL(route('attribution_image', { snapshot, input_id: inputId, index }));

/** Whether a layer has one activation row per token (text exemplars instead of patches). */
export function isTokenLayer(manifest: Manifest | null, layer: string): boolean {
  return manifest?.layers.find((l) => l.name === layer)?.rows === 'token';
}

/** Word pieces as text: '##' pieces join the previous one, others are spaced. */
export function detokenize(tokens: string[], leading = false): string {
  return tokens.map((t, i) => (t.startsWith('##') ? t.slice(2) : (i || leading ? ' ' : '') + t)).join('');
}
