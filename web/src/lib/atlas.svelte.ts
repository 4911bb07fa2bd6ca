// Atlas-wide data that several views share, loaded once: the manifest, the concept atlas of
// the latest concepts snapshot and the input table. Views load their own per-layer payloads.
import { api, allInputs, errorMessage } from './data';
import type { Manifest, ConceptsPayload, InputRecord } from './types';
import { app, type Selection } from './store.svelte';

export const atlas: {
  manifest: Manifest | null;
  concepts: ConceptsPayload | null;
  inputs: Map<number, InputRecord> | null;
  /** Why each shared read failed ('' while fine): the views that need it say so. */
  error: string;
  conceptsError: string;
  inputsError: string;
} = $state({ manifest: null, concepts: null, inputs: null, error: '', conceptsError: '', inputsError: '' });

export const layerOf = (topomapName: string): string => topomapName.split('@')[0];
export const groupByOf = (topomapName: string): string => topomapName.split('@').slice(1).join('@');

export function conceptSnapshot(): string {
  const list = atlas.manifest?.maps.concepts ?? [];
  return list[list.length - 1] ?? '';
}

let conceptsRequested = false;
export function ensureConcepts(): void {
  const snap = conceptSnapshot();
  if (conceptsRequested || !snap) return;
  conceptsRequested = true;
  api.concepts(snap).then((c) => { atlas.concepts = c; }, (e) => { atlas.conceptsError = errorMessage(e); });
}

let inputsRequested = false;
export function ensureInputs(): void {
  if (inputsRequested || !atlas.manifest) return;
  inputsRequested = true;
  allInputs(atlas.manifest)
    .then((rows) => { atlas.inputs = new Map(rows.map((r) => [r.input_id, r])); },
      (e) => { atlas.inputsError = errorMessage(e); });
}

/** Concept-neuron indices (rows of concepts.neurons) the selection stands for. */
export function selectedConceptNeurons(sel: Selection): number[] {
  const c = atlas.concepts;
  if (!c || !sel) return [];
  if (sel.kind === 'cluster') return c.clusters.find((k) => k.cluster === sel.cluster)?.members ?? [];
  if (sel.kind === 'neurons') return sel.ids;
  if (sel.kind === 'neuron') {
    const i = c.neurons.findIndex((n) => n.layer === sel.layer && n.unit === sel.unit);
    return i >= 0 ? [i] : [];
  }
  return [];
}

/** Units of `layer` the selection highlights (a neuron, a concept cluster's members, a lasso). */
export function highlightedUnits(sel: Selection, layer: string): Set<number> {
  const out = new Set<number>();
  if (!sel) return out;
  if (sel.kind === 'neuron') { if (sel.layer === layer) out.add(sel.unit); return out; }
  const neurons = atlas.concepts?.neurons;
  if (!neurons) return out;
  for (const i of selectedConceptNeurons(sel)) if (neurons[i]?.layer === layer) out.add(neurons[i].unit);
  return out;
}

export function className(label: number | string): string {
  const names = atlas.manifest?.class_names ?? [];
  const i = typeof label === 'number' ? label : Number(label);
  return Number.isInteger(i) && names[i] !== undefined ? names[i] : String(label);
}

/** An input's thumbnail, or null when the atlas stores none (or has no such input). */
export function thumbnailURL(id: number): string | null {
  const m = atlas.manifest;
  return m?.has_thumbnails && id >= 0 && id < m.n_inputs ? api.thumbnail(id) : null;
}

/** The input's record, once the table is loaded. */
export const inputRecord = (id: number | null): InputRecord | undefined =>
  id === null ? undefined : atlas.inputs?.get(id);

export function defaultState(m: Manifest): void {
  if (!app.tm || !m.maps.topomap.includes(app.tm)) {
    const last = m.maps.topomap.filter((n) => n.endsWith('@label'));
    app.tm = (last[last.length - 1] ?? m.maps.topomap[m.maps.topomap.length - 1]) ?? '';
  }
  if (!app.snap || !m.snapshots.includes(app.snap)) app.snap = m.snapshots[m.snapshots.length - 1] ?? '';
  if (!app.mapperLayer || !m.maps.mapper.includes(app.mapperLayer)) {
    const mp = m.maps.mapper;
    app.mapperLayer = mp.includes(layerOf(app.tm)) ? layerOf(app.tm) : (mp[mp.length - 1] ?? '');
  }
  if (!app.cls) app.cls = m.class_names[0] ?? '';
}

/** Select a concept cluster and put its layer on the topographic map, so its neurons light up. */
export function selectCluster(cluster: number): void {
  app.sel = { kind: 'cluster', cluster };
  const layer = atlas.concepts?.clusters.find((k) => k.cluster === cluster)?.layer;
  const m = atlas.manifest;
  if (!layer || !m || layerOf(app.tm) === layer) return;
  const suffix = groupByOf(app.tm);
  const name = m.maps.topomap.find((n) => n === `${layer}@${suffix}`) ?? m.maps.topomap.find((n) => layerOf(n) === layer);
  if (name) app.tm = name;
}
