// The WebGL scatterplot both projections draw with (neurons in Projection.svelte, inputs in
// InputProjection.svelte): the same canvas set-up, theme and hover handling in one place.
import createScatterplot from 'regl-scatterplot';
import { theme } from './theme.svelte';

export type Plot = ReturnType<typeof createScatterplot>;

/** Above this many points regl-scatterplot's performance mode (square points, no alpha
 *  blending) keeps a pan smooth in a software WebGL renderer. */
export const PERFORMANCE_MODE_POINTS = 50_000;

/** How a projection draws its points. */
export interface PointLook { pointSize: number; pointOutlineWidth: number; opacityInactiveMax: number }

/** A scatterplot of `n` points on `canvas`, sized to `box`, in the viewer's theme; `hover` is
 *  told the index of the point under the pointer, or null when it leaves. The caller subscribes
 *  to selection and lasso events itself. */
export function makeScatterplot(canvas: HTMLCanvasElement, box: HTMLElement, n: number, look: PointLook,
                                hover: (i: number | null) => void): Plot {
  const r = box.getBoundingClientRect();
  const plot = createScatterplot({
    canvas, width: Math.max(10, r.width), height: Math.max(10, r.height), performanceMode: n > PERFORMANCE_MODE_POINTS,
    pointSizeSelected: 2, backgroundColor: theme.dark ? '#1b2029' : '#ffffff', lassoColor: [0.16, 0.38, 1, 1],
    ...look,
  });
  plot.subscribe('pointOver', (i: number) => hover(i));
  plot.subscribe('pointOut', () => hover(null));
  return plot;
}

/** Keeps `plot` the size of `box` as the panel is resized; disconnect the observer before the
 *  plot is destroyed. */
export function followSize(plot: Plot, box: HTMLElement): ResizeObserver {
  const ro = new ResizeObserver(() => {
    const b = box.getBoundingClientRect();
    if (b.width > 4 && b.height > 4) plot.set({ width: b.width, height: b.height });
  });
  ro.observe(box);
  return ro;
}
