"""Figures of topographic maps: interpolated or grid maps, panels, difference maps, animations.

Every function returns (or writes) matplotlib output without pyplot, so nothing depends on
a display and a returned Figure shows inline in notebooks. Colour is diverging and
symmetric around 0 (``RdBu_r``): red is above the mean over groups, blue below; the scale is
one per layer by default (the largest |value| over the groups shown), or a number shared
by several figures.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from ..errors import UserError
from .images import grid_images, map_images

FORMATS = (".png", ".svg", ".pdf")
ANIMATIONS = (".gif", ".mp4")
CMAP = "RdBu_r"


def tile_board(tiles: np.ndarray, ncols: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Lay ``tiles`` (n x h x w) out on one NaN board, ``ncols`` per row, first tile top left
    (rows counted from the bottom, as images drawn with origin="lower"); returns the board
    and each tile's (x, y) origin on it. The gutters (a narrow one beside each tile, a wider
    one above it for its title) stay NaN, so nothing is drawn there."""
    n, h, w = tiles.shape
    side = max(h, w)
    pitch_x, pitch_y = w + max(1, round(0.06 * side)), h + max(1, round(0.2 * side))
    nrows = -(-n // ncols)
    board = np.full((nrows * pitch_y, ncols * pitch_x), np.nan)
    origins = []
    for pos in range(n):
        x0, y0 = (pos % ncols) * pitch_x, (nrows - 1 - pos // ncols) * pitch_y
        board[y0:y0 + h, x0:x0 + w] = tiles[pos]
        origins.append((x0, y0))
    return board, origins


def _mosaic_figure(tiles: np.ndarray, ncols: int, size: float, **imshow):
    """A Figure with every tile on one board in one Axes, a frame around each tile, and room
    on the right for a colour bar. One Axes and one image whatever the number of tiles: a
    figure of one Axes per tile costs tens of milliseconds per tile (axes, ticks, layout
    engine), which made many-group maps slow (issue 17). ``imshow``: the board's colour
    settings. Returns the Figure, the Axes, the board and the tiles' origins on it."""
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    board, origins = tile_board(tiles, ncols)
    h, w = tiles.shape[1:]
    unit = size / (board.shape[1] / ncols)  # inches per board pixel: one tile and its gutter is ``size`` wide
    left, right, bottom, top = 0.08, 1.15, 0.08, 0.4
    width, height = board.shape[1] * unit, board.shape[0] * unit
    fig = Figure(figsize=(left + width + right, bottom + height + top))
    fw, fh = fig.get_size_inches()
    ax = fig.add_axes((left / fw, bottom / fh, width / fw, height / fh))
    ax.imshow(board, origin="lower", **imshow)
    ax.set_axis_off()
    frames = [[(x0 - 0.5, y0 - 0.5), (x0 + w - 0.5, y0 - 0.5), (x0 + w - 0.5, y0 + h - 0.5), (x0 - 0.5, y0 + h - 0.5),
               (x0 - 0.5, y0 - 0.5)] for x0, y0 in origins]
    ax.add_collection(LineCollection(frames, colors="k", linewidths=0.8, clip_on=False))
    return fig, ax, board, origins


def _colorbar_rect(fig, ax) -> tuple[float, float, float, float]:
    """A colour bar's rectangle right of ``ax``: 0.15 inch wide, 80% of its height, centred."""
    fw, _ = fig.get_size_inches()
    x, y, w, h = ax.get_position().bounds
    return x + w + 0.25 / fw, y + 0.1 * h, 0.15 / fw, 0.8 * h


def dendrogram_order(values: np.ndarray) -> list[int]:
    """Order groups (columns) by an average-linkage dendrogram of their maps, so similar
    maps sit side by side."""
    from scipy.cluster.hierarchy import leaves_list, linkage

    if values.shape[1] < 3:
        return list(range(values.shape[1]))
    cols = values.T
    dist = "correlation" if np.all(cols.std(axis=1) > 0) else "euclidean"
    return [int(i) for i in leaves_list(linkage(cols, method="average", metric=dist))]


def draw_map(ax, layout: np.ndarray, values: np.ndarray, vmax: float, kind: str = "map", cells=None,
             grid_shape=None, interpolation: str = "cubic", extrapolate: str = "box", contours: int = 6,
             markers: bool = False, res: int = 64, highlight: np.ndarray | None = None,
             live: np.ndarray | None = None):
    """Draw one map on ``ax``; returns the image artist (for a colour bar). Interpolated maps
    use the ``live`` neurons only (silent ones sit outside the map)."""
    if kind == "grid":
        if cells is None:
            raise UserError("this topomap has no grid; compute it with grid=True (CLI: --grid)")
        img = grid_images(cells, grid_shape, values)[0]
        art = ax.imshow(img, origin="lower", cmap=CMAP, vmin=-vmax, vmax=vmax, interpolation="nearest")
        if highlight is not None and highlight.any():
            rows, cols = np.divmod(np.asarray(cells)[highlight], grid_shape[1])
            ax.scatter(cols, rows, s=6, c="k", marker="o", linewidths=0)
    else:
        if live is not None:
            layout, values = layout[live], values[live]
            highlight = highlight[live] if highlight is not None else None
        m = map_images(layout, values, res=res, interpolation=interpolation, extrapolate=extrapolate)
        img = m.images[0]
        art = ax.imshow(img, origin="lower", extent=m.extent, cmap=CMAP, vmin=-vmax, vmax=vmax,
                        interpolation="bilinear")
        if contours and np.isfinite(img).any() and np.nanmax(img) > np.nanmin(img):
            xs = np.linspace(m.extent[0], m.extent[1], img.shape[1])
            ys = np.linspace(m.extent[2], m.extent[3], img.shape[0])
            levels = np.linspace(-vmax, vmax, contours + 2)[1:-1]
            ax.contour(xs, ys, img, levels=levels, colors="k", linewidths=0.4, alpha=0.6)
        if markers:
            ax.scatter(layout[:, 0], layout[:, 1], s=2, c="k", alpha=0.5, linewidths=0)
        if highlight is not None and highlight.any():
            # each marked neuron as a dot in its own value's colour: one neuron that differs
            # among neighbours that do not is too small for the interpolated image to show
            ax.scatter(layout[highlight, 0], layout[highlight, 1], s=22, c=values[highlight], cmap=CMAP,
                       vmin=-vmax, vmax=vmax, edgecolors="k", linewidths=0.7, zorder=3)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal")
    return art


def plot_topomap(result, groups=None, snapshot: str | None = None, kind: str = "map", order: str = "dendrogram",
                 scale: "str | float" = "layer", interpolation: str = "cubic", extrapolate: str = "box",
                 contours: int = 6, markers: bool = False, ncols: int | None = None, size: float = 1.9,
                 res: int = 64, title: str | None = None):
    """One map per group of a :class:`~neurocarta.methods.topomap.result.TopoMapResult`.

    ``kind``: ``"map"`` (interpolated) or ``"grid"``; ``order``: ``"dendrogram"`` or
    ``"given"``; ``scale``: ``"layer"`` (max |value| of the maps shown) or a number.
    """
    values = result.frame(snapshot)
    idx = list(range(values.shape[1])) if groups is None else result.group_index(groups)
    if order == "dendrogram":
        idx = [idx[i] for i in dendrogram_order(values[:, idx])]
    elif order != "given":
        raise UserError(f"order must be 'dendrogram' or 'given', not {order!r}")
    vmax = _vmax(values[:, idx], scale)
    live = result.live
    if kind == "grid":
        if result.grid_cells is None:
            raise UserError("this topomap has no grid; compute it with grid=True (CLI: --grid)")
        tiles = grid_images(result.grid_cells, result.grid_shape, values[:, idx])
    else:  # one triangulation for every group
        images = map_images(result.layout[live], values[live][:, idx], res=res, interpolation=interpolation,
                            extrapolate=extrapolate)
        tiles = images.images
    counts = result.counts.get(snapshot or result.layout_snapshot, [None] * len(result.groups))
    titles = [f"{result.group_names[j]}" + (f" (n={counts[j]})" if counts[j] is not None else "") for j in idx]
    fig, ax, board, origins = _mosaic_figure(tiles, ncols or min(len(idx), 6), size, cmap=CMAP, vmin=-vmax,
                                             vmax=vmax, interpolation="nearest" if kind == "grid" else "bilinear")
    h, w = tiles.shape[1:]
    for (x0, y0), text in zip(origins, titles):
        ax.text(x0 + w / 2 - 0.5, y0 + h - 0.5 + 0.03 * max(h, w), text, ha="center", va="bottom", fontsize=8)
    if kind != "grid" and contours and np.isfinite(board).any() and np.nanmax(board) > np.nanmin(board):
        # one contour pass over the whole board: the NaN gutters keep the maps' lines apart
        ax.contour(board, levels=np.linspace(-vmax, vmax, contours + 2)[1:-1], colors="k", linewidths=0.4,
                   alpha=0.6)
    if kind != "grid" and markers:
        # layout coordinates to pixel coordinates of a tile (pixel centres span the extent)
        x_lo, x_hi, y_lo, y_hi = images.extent
        px = (result.layout[live, 0] - x_lo) / (x_hi - x_lo) * (w - 1)
        py = (result.layout[live, 1] - y_lo) / (y_hi - y_lo) * (h - 1)
        ox, oy = np.asarray(origins, dtype=np.float64).T
        ax.scatter((px[None, :] + ox[:, None]).ravel(), (py[None, :] + oy[:, None]).ravel(), s=2, c="k",
                   alpha=0.5, linewidths=0)
    cax = fig.add_axes(_colorbar_rect(fig, ax))
    fig.colorbar(ax.images[0], cax=cax, label="activation vs mean of groups")
    snap = snapshot or result.layout_snapshot
    fig.suptitle(title or f"{result.layer} by {result.group_by} - {snap} - {result.params.get('method')}",
                 fontsize=9)
    return fig


def plot_difference(result, difference, kind: str = "map", mark: str = "significant", scale: "str | float" = "layer",
                    interpolation: str = "linear", extrapolate: str = "box", contours: int = 6, size: float = 3.2,
                    res: int = 80, title: str | None = None):
    """The map of group A minus group B; with ``mark="significant"``, neurons whose difference
    passes the permutation (or Welch) test at the chosen FDR are drawn as ringed dots in their
    own colour.

    Interpolation is linear by default: a difference is often one neuron's alone, and a cubic
    surface through it and its unchanged neighbours overshoots into colours no neuron has.
    """
    from matplotlib.figure import Figure

    values = np.asarray(difference.values, dtype=np.float64)
    if values.shape[0] != result.n_neurons:
        raise UserError(f"the difference has {values.shape[0]} neurons, the map {result.n_neurons}")
    vmax = _vmax(values[:, None], scale)
    fig = Figure(figsize=(size + 0.9, size + 0.4), layout="constrained")
    ax = fig.subplots()
    highlight = difference.significant if mark == "significant" else None
    art = draw_map(ax, result.layout, values, vmax, kind, result.grid_cells, result.grid_shape, interpolation,
                   extrapolate, contours, False, res, highlight=highlight, live=result.live)
    fig.colorbar(art, ax=ax, shrink=0.8, label="mean A - mean B")
    a, b = "+".join(map(str, difference.a)), "+".join(map(str, difference.b))
    sig = int(difference.significant.sum())
    # selections typed on the command line can be long: wrap them rather than cut the title off
    groups = textwrap.fill(f"{a} (n={difference.n_a}) - {b} (n={difference.n_b})", width=48)
    ax.set_title(title or f"{result.layer}: {groups}\n{sig}/{values.size} neurons at FDR {difference.fdr:g} "
                 f"({difference.test}{'; ringed dots' if highlight is not None else ''})", fontsize=8)
    return fig


def _vmax(values: np.ndarray, scale) -> float:
    if scale == "layer":
        v = float(np.abs(values).max())
        return v if v > 0 else 1.0
    try:
        v = float(scale)
    except (TypeError, ValueError):
        raise UserError(f"scale must be 'layer' or a positive number, not {scale!r}") from None
    if v <= 0:
        raise UserError(f"scale must be positive, got {v}")
    return v


def save_figure(fig, path) -> Path:
    """Write a Figure as PNG, SVG or PDF (by the file suffix)."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise UserError(f"cannot write {path.name}: figures are {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def figure_pixels(fig, dpi: int = 90) -> np.ndarray:
    """The RGB pixels of a Figure (for animation frames)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(dpi)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def animate_topomap(result, path, groups=None, fps: float = 2.0, kind: str = "map", scale: "str | float" = "shared",
                    **kwargs) -> Path:
    """A GIF or MP4 with one frame per snapshot, all on the result's one layout and one
    colour scale (``"shared"``: the largest |value| over every frame)."""
    import imageio.v3 as iio

    path = Path(path)
    if path.suffix.lower() not in ANIMATIONS:
        raise UserError(f"cannot write {path.name}: animations are {', '.join(ANIMATIONS)}")
    if len(result.snapshots) < 2:
        raise UserError("an animation needs at least 2 snapshots; compute the topomap with snapshots='all' "
                        "(CLI: --snapshots)")
    idx = list(range(len(result.groups))) if groups is None else result.group_index(groups)
    if scale == "shared":
        scale = max(float(np.abs(result.frame(s)[:, idx]).max()) for s in result.snapshots) or 1.0
    # One group order for every frame: the layout snapshot's dendrogram.
    order = [idx[i] for i in dendrogram_order(result.frame()[:, idx])]
    frames = []
    for snap in result.snapshots:
        fig = plot_topomap(result, groups=[result.groups[i] for i in order], snapshot=snap, kind=kind, order="given",
                           scale=scale, **kwargs)
        frames.append(figure_pixels(fig))
    h = min(f.shape[0] for f in frames) // 2 * 2  # even sides for MP4 encoders
    w = min(f.shape[1] for f in frames) // 2 * 2
    frames = np.stack([f[:h, :w] for f in frames])
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        iio.imwrite(path, frames, duration=1000.0 / fps, loop=0)
    else:
        _write_mp4(path, frames, fps)
    return path


def _write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    """H.264 through the ffmpeg binary that the imageio-ffmpeg wheel ships."""
    import imageio

    with imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", macro_block_size=2) as w:
        for f in frames:
            w.append_data(f)
