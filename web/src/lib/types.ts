export interface LayerInfo {
  name: string; kind: string; n_neurons: number; rows: string;
  spatial: number[] | null; receptive_field: unknown;
}
export interface Manifest {
  name: string; model: string; data: string; n_inputs: number; class_names: string[];
  snapshots: string[]; modality: string; layers: LayerInfo[];
  /** inputs: layers with a stored input projection (absent from servers before it existed) */
  maps: { topomap: string[]; mapper: string[]; concepts: string[]; inputs?: string[] };
  has_thumbnails: boolean;
  /** `serve A --compare B`: atlas B of the comparison page; null: the page compares A's own layers. */
  compare?: string | null;
  /** Snapshot -> layers with stored exemplar patches. */
  patches: Record<string, string[]>;
  /** Snapshot -> layers with stored feature visualizations (`neurocarta visualize`); absent in
   *  an atlas made before them. */
  featvis?: Record<string, string[]>;
  /** Snapshot -> input ids (as strings) with stored attributions (`neurocarta attribute`). */
  attributions?: Record<string, (string | number)[]>;
  columns: string[];
  mode: string;
  /** The categorical palette (render/palette.py) and the class legend: every class up to 30,
   *  else the largest and an "other" line; null without labels. */
  palette: string[];
  class_legend: ClassLegend | null;
  /** Only in an offline export: which inputs it carries, and the paths it left out because the
   *  server answered them with an error (path -> the server's message). */
  export?: { sample: number | null; inputs: number[]; errors: Record<string, string> };
}
export interface ClassLegend {
  entries: { name: string; colour: string }[];
  other: { label: string; colour: string; names: string[]; count: number } | null;
}
/** A row of the input table (`/inputs?format=json`): the columns below, the outputs of the
 *  last snapshot, and the data's own columns (attributes, split, ...); `text` for text data. */
export interface InputRecord {
  input_id: number; label: number; label_name: string;
  // outputs, when the model gives class scores: `pred_name` names the class (the index as text
  // when unnamed); `correct` is null when the data's labels are not the model's classes
  pred?: number; pred_name?: string; correct?: boolean | null; confidence?: number;
  text?: string;
  [key: string]: unknown;
}
export interface TopomapPayload {
  layer: string; group_by: string; snapshots: string[]; groups: string[];
  x: number[]; y: number[]; silent: boolean[];
  values: Record<string, Record<string, number[]>>;
  metrics: Record<string, unknown>;
  group_names: string[] | null;
  grid_cells: number[] | null; grid_shape: [number, number] | null;
  counts: Record<string, number[]>;
  separation: Record<string, number> | null;
}
/** A map's values for one input (/topomap/{name}/input/{id}): z-scores per neuron. */
export interface TopomapInputPayload { layer: string; snapshot: string; input_id: number; values: number[] }
/** A map painted by an input-table column: per value, its profile over the neurons. */
export interface TopomapGroupsPayload {
  layer: string; snapshot: string; column: string; groups: string[]; counts: number[]; values: Record<string, number[]>;
}
/** A layer's input projection (/input-projection/{layer}): one entry per point, as columns; token
 *  layers add each point's token and the token table's text columns (word, category, ...). */
export interface InputProjectionPayload {
  layer: string; snapshot: string; n_rows: number; sampled: boolean; params: Record<string, unknown>;
  x: number[]; y: number[]; input_id: number[]; row: number[];
  tokens: string[] | null; token_columns: Record<string, string[]>;
}
/** A lasso of the input projection against the rest, per neuron of a map (effect sizes). */
export interface TopomapSelectionPayload {
  layer: string; snapshot: string; projection_layer: string; n_inputs: number; n_rows: number; n_rest: number;
  values: number[]; significant: boolean[]; n_significant: number; statistic_p: number | null; test: string;
}
/** A map's values for a Mapper node's inputs. */
export interface TopomapNodePayload {
  layer: string; snapshot: string; mapper_layer: string; node: number; n_inputs: number; values: number[];
}
export interface MapperNode {
  id: number; node: number; size: number; dominant: string; purity: number;
  /** Only when the inputs have a `correct` column (labels the model's classes name). */
  accuracy?: number | null;
  mean_lens: number; classes: Record<string, number>;
}
export interface MapperPayload {
  nodes: MapperNode[];
  edges: { source: number; target: number; jaccard: number; shared: number }[];
  summary: Record<string, unknown>;
}
/** Mapper members as the server sends them (`members?format=json`): one column per field. */
export interface MemberColumns { node: number[]; row: number[]; input_id: number[] }
/** One membership: a row (input or token) of the layer in a node. */
export interface MemberRecord { node: number; row: number; input_id: number }
export type FlowLink = FlowPayload['links'][number];
export interface FlowPayload {
  source_layer: string; target_layer: string;
  sources: { id: number; size: number; dominant: string | null }[];
  targets: { id: number; size: number; dominant: string | null }[];
  links: { source: number; target: number; value: number }[];
}
export interface ConceptNeuron { id: number; layer: string; unit: number; cluster: number; silent: boolean; x: number; y: number }
export interface ConceptCluster { cluster: number; layer: string; size: number; members: number[]; describe: string }
export interface GraphNode { id: number; layer: string; cluster: number; importance: number; n_members: number; members: number[] }
export interface GraphEdge { source: number; target: number; weight: number; kind: string }
export interface ConceptsPayload {
  layers: string[]; neurons: ConceptNeuron[]; clusters: ConceptCluster[];
  coherence: Record<string, unknown>[];
  graphs: Record<string, { nodes: GraphNode[]; edges: GraphEdge[] }>;
}
/** One of a neuron's nearest neurons in the concept embedding; `neuron` is its row in `neurons`. */
export interface NearestRecord { neuron: number; layer: string; unit: number; cluster: number; similarity: number }
/** A finding of `neurocarta findings` (Python: neurocarta.findings), already in reading order. */
export interface Finding {
  kind: string; text: string; view: string; selection: Record<string, unknown>; score: number;
  evidence?: Record<string, unknown>;
  /** the statistics behind it: the test, p, q, ... ({} for a descriptive finding) */
  confidence?: Record<string, unknown>;
  /** one line on how to see it in the viewer */
  check?: string;
}
export interface TextExemplar {
  input_id: number; row: number; position: number; index: number; text: string | null;
  tokens: string[]; value: number; start?: number; end?: number;
}
export type ExemplarsPayload = { layer: string; snapshot: string; neuron: number } & (
  | { kind: 'text'; items: TextExemplar[] }
  | { kind: 'image'; patch: string | null });
export interface TokenValues {
  input_id: number; layer: string; tokens: string[]; positions: number[]; values: (number | null)[];
  max: number | null; n_units: number; neuron: number | null; cluster: number | null;
}
/** What colours a text input's tokens: a neuron, or a concept cluster's mean, of a token layer. */
export type TokenSource = { layer: string; neuron: number } | { layer: string; cluster: number };
/** What a feature visualization was optimised for: a neuron (its index), a concept group (its
 *  cluster id), a Mapper node (its id) or a class (its index); ids as strings. */
export type FeatvisKind = 'neuron' | 'concept' | 'mapper_node' | 'class';
/** One target's visualization(s) of a layer (`/featvis/{snapshot}/{layer}`): the objective its
 *  images reached (`activation`) against that of its best dataset exemplar. */
export interface FeatvisTarget {
  kind: FeatvisKind; target: string; images: number; activation: number;
  exemplar_activation: number | null; exemplar_input_id: string | null; objective: string;
}
export interface FeatvisPayload { size: number; targets: FeatvisTarget[] }
/** One stored attribution of an input: an overlay image (`kind: 'image'`) or signed per-token
 *  values normalised to [-1, 1] (`kind: 'tokens'`). */
export interface AttributionItem {
  index: number; method: string; target_kind: string; target: string; layer: string | null;
  kind: 'image' | 'tokens'; tokens?: { token: string; value: number }[]; total: number;
  /** the target's value at the input, and a class target's name */
  score?: number; target_name?: string;
}
export interface AttributionsPayload { input_id: string; items: AttributionItem[] }
/** One heatmap of the comparison page: CKA of rows x columns (null: a layer without variance). */
export interface ComparisonPanel { key: string; title: string; rows: string[]; columns: string[]; values: (number | null)[][] }
export interface ConceptEvent {
  kind: 'appeared' | 'vanished' | 'split' | 'merged';
  a?: { layer: string; cluster: number }[]; b?: { layer: string; cluster: number }[];
  cover?: number; best_jaccard?: number;
}
/** `/api/comparison`: layer similarity (CKA) and concept matching of A alone or A against B. */
export interface ComparisonPayload {
  names: { A: string; B?: string };
  similarity: { params: { n_inputs: number; batch_size: number; n_batches: number }; panels: ComparisonPanel[] };
  concepts: {
    sides: { a: string; b: string }; groups: { a: number; b: number }; matched: number; appeared: number;
    vanished: number; split: number; merged: number; events: ConceptEvent[];
    thresholds: { match: number; part: number; part_min: number; cover: number; new: number };
  } | null;
  concepts_note: string | null;
  /** What was warned while comparing, e.g. that the atlases come from different data. */
  warnings?: string[];
}

/** One map stage in the server's map-status answer (maps/_status.json, see store/status.py). */
export interface MapStageStatus {
  name: string; title: string; state: 'pending' | 'running' | 'done' | 'failed' | 'interrupted';
  done: number; total: number; unit: string; seconds: number | null; error: string | null;
}
export interface MapStatusPayload { stages: MapStageStatus[]; running: boolean }
