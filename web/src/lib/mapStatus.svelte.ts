// Where the map stages stand while the viewer is already open (`neurocarta demo` serves as soon
// as the atlas is written, then builds the maps): the server's map-status endpoint, polled while
// a stage is pending or running. Each time a stage stores another layer's map, the cached reads
// are dropped and the manifest read again, so the new map appears in its view; the panels show
// the stage's progress ("Mapper graphs: building 2 of 5 layers…").
import { api, forgetReads, isStatic } from './data';
import { atlas, defaultState } from './atlas.svelte';
import type { MapStageStatus } from './types';

export const mapStatus: {
  stages: MapStageStatus[];
  /** a stage is pending or running */
  running: boolean;
  /** the first answer came (or there is nothing to ask: the offline export) */
  known: boolean;
} = $state({ stages: [], running: false, known: false });

const POLL_MS = 1000;
let timer: ReturnType<typeof setTimeout> | undefined;
let seen = '';

/** What has been stored so far: changes when a stage stores a layer or ends. */
const progressOf = (stages: MapStageStatus[]): string => stages.map((s) => `${s.name}:${s.state}:${s.done}`).join('|');

async function poll(): Promise<void> {
  timer = undefined;
  try {
    const status = await api.mapStatus();
    const progress = progressOf(status.stages);
    const changed = seen !== '' && progress !== seen;
    seen = progress;
    mapStatus.stages = status.stages;
    mapStatus.running = status.running;
    mapStatus.known = true;
    if (changed) await reloadMaps();
    if (status.running) timer = setTimeout(poll, POLL_MS);
  } catch {
    // an older server without the endpoint, or it went away: nothing is being built
    mapStatus.running = false;
    mapStatus.known = true;
  }
}

/** Forget every cached read and take the new manifest: the maps stored since appear. */
async function reloadMaps(): Promise<void> {
  forgetReads();
  const m = await api.manifest();
  atlas.manifest = m;
  defaultState(m); // a view that had no map to show picks the first one now there
}

/** Start watching the map stages (once; the offline export has none to watch). */
export function watchMapStatus(): void {
  if (isStatic()) { mapStatus.known = true; return; }
  if (timer === undefined && !mapStatus.known) void poll();
}

/** The note for one stage ('' when it is done or the atlas has no status): "building 2 of 5 layers…". */
export function stageNote(name: string): string {
  const s = mapStatus.stages.find((st) => st.name === name);
  if (!s) return '';
  const title = s.title.charAt(0).toUpperCase() + s.title.slice(1);
  if (s.state === 'pending') return `${title}: waiting for the stages before it…`;
  if (s.state === 'running') {
    return s.total ? `${title}: building ${Math.min(s.done + 1, s.total)} of ${s.total} ${s.unit}…` : `${title}: building…`;
  }
  if (s.state === 'failed') return `${title}: failed (${s.error ?? 'see the terminal'})`;
  if (s.state === 'interrupted') return `${title}: interrupted before it finished; run neurocarta map again`;
  return '';
}
