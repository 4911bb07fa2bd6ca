// The one shared state of the app: what is selected and how each view is set. Every view reads
// it and writes it; it round-trips through the URL hash, so any state is a deep link.

export type ViewId = 'topomap' | 'projection' | 'graph' | 'mapper' | 'inspector' | 'inputs';
export const VIEWS: ViewId[] = ['topomap', 'projection', 'graph', 'mapper', 'inspector', 'inputs'];

export type Selection =
  | { kind: 'neuron'; layer: string; unit: number }
  | { kind: 'cluster'; cluster: number }
  | { kind: 'node'; layer: string; node: number }
  | { kind: 'input'; id: number }
  | { kind: 'neurons'; ids: number[] } // concept-neuron indices, from a lasso
  // a lasso on the input projection of `layer`: its vertices x1,y1,x2,y2,... in the projection's
  // unit square (the inputs inside are derived from them: lib/inputSelection.ts)
  | { kind: 'inputs'; layer: string; polygon: number[] }
  | null;

/** Where the topographic map takes its values from. */
export type GroupMode = 'group' | 'input' | 'node' | 'column' | 'selection'; // column: app.group is 'column=value'; selection: the input lasso against the rest

export interface AppState {
  view: ViewId;
  sel: Selection;
  // topographic map
  tm: string; // topomap name, "layer@group_by"
  group: string;
  groupMode: GroupMode;
  snap: string;
  grid: boolean;
  contours: boolean;
  // last input / Mapper node picked, the sources of the 'input' and 'node' groups
  input: number | null;
  node: { layer: string; node: number } | null;
  // neuron projection and concept graph
  projColor: 'cluster' | 'layer' | 'importance';
  projLayer: string; // '' = all layers
  cls: string;
  minWeight: number; // concept-graph filter, as a share of the largest edge (0..1)
  // activation topology
  mapperLayer: string;
  mapperColor: 'pie' | 'purity' | 'accuracy' | 'lens';
  flow: boolean;
  // input projection: its layer, what colours the points ('label', 'pred', 'correct', a column,
  // 'token:<column>' on a text layer, 'finding:<index>'), and the search text
  inLayer: string;
  inColor: string;
  inSearch: string;
}

export const app: AppState = $state({
  view: 'topomap', sel: null,
  tm: '', group: '', groupMode: 'group', snap: '', grid: false, contours: true,
  input: null, node: null,
  projColor: 'cluster', projLayer: '', cls: '', minWeight: 0.1,
  mapperLayer: '', mapperColor: 'pie', flow: false,
  inLayer: '', inColor: 'label', inSearch: '',
});

export function select(sel: Selection): void {
  app.sel = sel;
  if (sel?.kind === 'input') { app.input = sel.id; app.groupMode = 'input'; }
  if (sel?.kind === 'node') { app.node = { layer: sel.layer, node: sel.node }; app.groupMode = 'node'; }
  if (sel?.kind === 'inputs') app.groupMode = 'selection';
}

// ---- URL hash <-> state -------------------------------------------------------------------

function selToString(sel: Selection): string {
  if (!sel) return '';
  switch (sel.kind) {
    case 'neuron': return `neuron:${sel.layer}:${sel.unit}`;
    case 'cluster': return `cluster:${sel.cluster}`;
    case 'node': return `node:${sel.layer}:${sel.node}`;
    case 'input': return `input:${sel.id}`;
    case 'neurons': return `neurons:${sel.ids.join('.')}`;
    case 'inputs': return `inputs:${sel.layer}:${sel.polygon.join(',')}`;
  }
}

function selFromString(text: string | null): Selection {
  if (!text) return null;
  const [kind, ...rest] = text.split(':');
  const last = Number(rest[rest.length - 1]);
  const layer = rest.slice(0, -1).join(':');
  if (kind === 'neuron' && Number.isFinite(last)) return { kind, layer, unit: last };
  if (kind === 'node' && Number.isFinite(last)) return { kind, layer, node: last };
  if (kind === 'cluster' && Number.isFinite(last)) return { kind, cluster: last };
  if (kind === 'input' && Number.isFinite(last)) return { kind, id: last };
  if (kind === 'neurons') return { kind, ids: (rest[0] ?? '').split('.').filter(Boolean).map(Number) };
  if (kind === 'inputs') {
    const polygon = (rest[rest.length - 1] ?? '').split(',').map(Number);
    if (polygon.length >= 6 && polygon.length % 2 === 0 && polygon.every(Number.isFinite)) return { kind, layer, polygon };
  }
  return null;
}

const KEYS: (keyof AppState)[] = ['view', 'tm', 'group', 'groupMode', 'snap', 'grid', 'contours', 'input',
  'projColor', 'projLayer', 'cls', 'minWeight', 'mapperLayer', 'mapperColor', 'flow', 'inLayer', 'inColor', 'inSearch'];

export function toHash(s: AppState): string {
  const p = new URLSearchParams();
  for (const key of KEYS) {
    const v = s[key];
    if (v === null || v === '' || v === undefined) continue;
    p.set(key, String(v));
  }
  if (s.sel) p.set('sel', selToString(s.sel));
  if (s.node) p.set('node', `${s.node.layer}:${s.node.node}`);
  return p.toString();
}

export function fromHash(hash: string): Partial<AppState> {
  const p = new URLSearchParams(hash.replace(/^#/, ''));
  const out: Partial<AppState> = {};
  const str = (k: keyof AppState) => { const v = p.get(k); if (v !== null) (out as Record<string, unknown>)[k] = v; };
  const bool = (k: keyof AppState) => { const v = p.get(k); if (v !== null) (out as Record<string, unknown>)[k] = v === 'true'; };
  const num = (k: keyof AppState) => { const v = p.get(k); if (v !== null && v !== '' && Number.isFinite(Number(v))) (out as Record<string, unknown>)[k] = Number(v); };
  for (const k of ['view', 'tm', 'group', 'groupMode', 'snap', 'projColor', 'projLayer', 'cls', 'mapperLayer', 'mapperColor',
    'inLayer', 'inColor', 'inSearch'] as const) str(k);
  for (const k of ['grid', 'contours', 'flow'] as const) bool(k);
  for (const k of ['input', 'minWeight'] as const) num(k);
  if (out.view && !VIEWS.includes(out.view)) delete out.view;
  const sel = selFromString(p.get('sel'));
  if (sel) out.sel = sel;
  const node = p.get('node');
  if (node) {
    const i = node.lastIndexOf(':');
    out.node = { layer: node.slice(0, i), node: Number(node.slice(i + 1)) };
  }
  return out;
}
