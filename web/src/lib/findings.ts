// A finding's `selection` (written by the Python rules in neurocarta.findings) applied to the
// app state. Keys are read leniently so a new rule needs no front-end change.
import type { Finding } from './types';
import { api } from './data';
import { app, select, type ViewId } from './store.svelte';
import { atlas, selectCluster } from './atlas.svelte';

const VIEW_ALIASES: Record<string, ViewId> = {
  topomap: 'topomap', map: 'topomap', topographic: 'topomap',
  projection: 'projection', neurons: 'projection', embedding: 'projection',
  graph: 'graph', concepts: 'graph', concept: 'graph', 'concept-graph': 'graph',
  mapper: 'mapper', topology: 'mapper', flow: 'mapper',
  inspector: 'inspector', input: 'inspector', inputs: 'inspector',
  'input-projection': 'inputs', projection_inputs: 'inputs',
};

const num = (v: unknown): number | null => (typeof v === 'number' ? v : typeof v === 'string' && v !== '' && Number.isFinite(Number(v)) ? Number(v) : null);

export function applyFinding(f: Finding): void {
  const s = (f.selection ?? {}) as Record<string, unknown>;
  const m = atlas.manifest;
  const view = VIEW_ALIASES[String(f.view ?? '').toLowerCase()] ?? 'topomap';
  const layer = typeof s.layer === 'string' ? s.layer : undefined;
  if (typeof s.snapshot === 'string' && m?.snapshots.includes(s.snapshot)) app.snap = s.snapshot;
  const tm = typeof s.topomap === 'string' ? s.topomap : undefined;
  if (tm && m?.maps.topomap.includes(tm)) app.tm = tm;
  else if (layer && m) {
    const groupBy = typeof s.group_by === 'string' ? s.group_by : 'label';
    const name = m.maps.topomap.find((n) => n === `${layer}@${groupBy}`) ?? m.maps.topomap.find((n) => n.startsWith(`${layer}@`));
    if (name) app.tm = name;
    if (m.maps.mapper.includes(layer)) app.mapperLayer = layer;
  }
  const cls = typeof s.class === 'string' ? s.class : typeof s.class_name === 'string' ? s.class_name : undefined;
  if (cls && (atlas.concepts?.graphs[cls] !== undefined || m?.class_names.includes(cls))) app.cls = cls;
  // The group: the finding's own when the map groups that way, else the class's label group.
  const groupBy = app.tm.split('@').slice(1).join('@');
  if (s.group !== undefined && s.group !== null && s.group_by === groupBy) { app.group = String(s.group); app.groupMode = 'group'; }
  else if (cls && m && groupBy === 'label') { const i = m.class_names.indexOf(cls); if (i >= 0) { app.group = String(i); app.groupMode = 'group'; } }

  const cluster = num(s.cluster);
  const nodes = Array.isArray(s.nodes) ? s.nodes : null;
  const node = num(s.node) ?? (nodes?.length ? num(nodes[0]) : null);
  const unit = num(s.unit ?? s.neuron);
  const inputs = Array.isArray(s.inputs) ? s.inputs : Array.isArray(s.input_ids) ? s.input_ids : null;
  const input = num(s.input ?? s.input_id) ?? (inputs?.length && view !== 'topomap' ? num(inputs[0]) : null);
  if (cluster !== null) selectCluster(cluster);
  else if (node !== null && layer) { app.mapperLayer = layer; select({ kind: 'node', layer, node }); }
  else if (unit !== null && layer) select({ kind: 'neuron', layer, unit });
  else if (input !== null) select({ kind: 'input', id: input });
  // the input projection colours the finding's inputs (the findings list is loaded and cached)
  if (inputs?.length) api.findings().then((all) => { const i = all.indexOf(f); if (i >= 0) app.inColor = `finding:${i}`; }, () => {});
  app.view = view;
}

/** The group a kind belongs to, in reading order: what to act on, what the model gets wrong,
 * data hygiene, descriptions of the maps (the badge's colour; an unknown kind is a description). */
export function kindGroup(kind: string): 'problem' | 'errors' | 'hygiene' | 'description' {
  if (kind === 'shortcut' || kind === 'mislabels') return 'problem';
  if (kind === 'confusion' || kind === 'underperforming') return 'errors';
  if (kind === 'outlier' || kind === 'duplicate') return 'hygiene';
  return 'description';
}

/** 0.0031 -> "0.0031", 2.1e-9 -> "2e-9". */
function shortNumber(x: number): string {
  return x >= 1e-3 || x === 0 ? String(Number(x.toPrecision(2))) : x.toExponential(0).replace('e+', 'e');
}

/** A finding's confidence in short: "q = 2e-9" (the FDR q where there is one, else p; "" for
 * a descriptive finding). */
export function shortConfidence(f: Finding): string {
  const c = f.confidence ?? {};
  for (const key of ['q', 'p']) if (typeof c[key] === 'number') return `${key} = ${shortNumber(c[key] as number)}`;
  return '';
}

/** The input ids a finding is about (its selection's `inputs`), for the panel's chips. */
export function findingInputs(f: Finding): number[] {
  const s = (f.selection ?? {}) as Record<string, unknown>;
  const ids = Array.isArray(s.inputs) ? s.inputs : Array.isArray(s.input_ids) ? s.input_ids : [];
  return ids.map(num).filter((v): v is number => v !== null);
}
