"""A deterministic synthetic image set with planted, known attributes.

Every image shows one coloured, textured shape on a background. Because every factor of
variation (shape, colour, texture, background, size, position, rotation) is drawn by us
and recorded in the table, a map of what a network learned can be checked against the
truth: the shape is the label, everything else is a nuisance attribute, and optional
planted flaws, in the training split only, are known input by input: a bias ties one class
to one background, a relabelling gives one class another's label, and uniform label noise
gives a share of the inputs a random other label.

Determinism is the central promise:

- all per-image parameters are drawn once, vectorised, from ``default_rng(seed)``;
- the pixels of source image ``i`` depend only on those parameters and on
  ``default_rng([seed, i])``, so any subset, in any order, in any process, renders to the
  same bytes. Extraction relies on this to resume at an offset and to shard work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from neurocarta.data.base import DataSource
from neurocarta.errors import SpecError

SHAPES: list[str] = ["circle", "square", "triangle", "diamond", "star", "cross", "hexagon", "ring"]
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 255),
    "yellow": (240, 220, 40),
    "magenta": (230, 50, 220),
    "cyan": (40, 220, 230),
    "orange": (255, 140, 20),
    "white": (245, 245, 245),
}
TEXTURES: list[str] = ["solid", "stripes", "dots", "checker"]
BACKGROUNDS: list[str] = ["plain", "noise", "gradient"]

_DEFAULTS: dict[str, Any] = {
    "n": 10000,
    "seed": 0,
    "size": 64,
    "bias": None,
    "bias_class": "circle",
    "bias_background": "noise",
    "test_fraction": 0.2,
    "split": None,
    "relabel": None,
    "relabel_fraction": 0.9,
    "noise": 0.0,
}

# Texture patterns alternate the foreground colour with this darker shade. It stays well
# above the (dark) backgrounds so the silhouette, and so the class, remains visible.
_SHADE = 0.55
# Images are rendered in chunks to bound the memory of the (B, S, S) float grids.
_CHUNK = 256


@dataclass(frozen=True)
class _Params:
    """Per-image parameters over the *whole* (unrestricted) source, in source order."""

    label: np.ndarray  # int64 class index (after any relabelling)
    true_label: np.ndarray  # int64 class index of the drawn shape
    relabelled: np.ndarray  # bool
    colour: np.ndarray  # int index into COLOURS
    texture: np.ndarray  # int index into TEXTURES
    background: np.ndarray  # int index into BACKGROUNDS
    size: np.ndarray  # float radius in px
    x: np.ndarray  # float centre column in px
    y: np.ndarray  # float centre row in px
    rotation: np.ndarray  # float degrees
    bg_level: np.ndarray  # float base grey level of the background
    bg_angle: np.ndarray  # float radians, direction of the gradient background
    is_test: np.ndarray  # bool


class ShapesSource(DataSource):
    """Synthetic shapes: 8 classes, planted colour/texture/background/geometry attributes.

    Parameters
    ----------
    n : number of images in the full set (before ``split`` restriction).
    seed : drives every random choice; same seed, same bytes.
    size : image side in pixels.
    bias : when set (e.g. ``0.9``), training images of ``bias_class`` get
        ``bias_background`` with this probability; the test split stays balanced. Used to
        plant a shortcut that a map should reveal.
    bias_class, bias_background : which class and background the bias ties together.
    relabel : ``"circle->square"`` gives ``relabel_fraction`` (default 0.9) of the training
        images of the first class the second class's label, as in the original paper's error
        use case. The test split keeps true labels; ``shape`` always holds the truth and
        ``relabelled`` marks the changed images.
    noise : uniform label noise, e.g. ``0.02``: that share of the training images (rounded;
        among those ``relabel`` left alone) gets a label drawn uniformly from the other
        classes. Marked in ``relabelled`` like a relabelling; the test split keeps true labels.
    test_fraction : the last ``round(n * test_fraction)`` images form the test split.
    split : ``"train"`` or ``"test"`` restricts the source to that split. ``input_id`` is
        then ``0..len-1`` of the restricted source and ``source_index`` keeps the index in
        the full set (which also fixes the pixels, so both views render identically).
    """

    modality = "image"
    class_names = list(SHAPES)

    def __init__(
        self,
        n: int = 10000,
        seed: int = 0,
        size: int = 64,
        bias: float | None = None,
        bias_class: str = "circle",
        bias_background: str = "noise",
        test_fraction: float = 0.2,
        split: str | None = None,
        relabel: str | None = None,
        relabel_fraction: float = 0.9,
        noise: float = 0.0,
    ) -> None:
        if int(n) != n or n < 1:
            raise SpecError(f"shapes: n must be a positive integer, got {n!r}")
        if int(seed) != seed or seed < 0:
            raise SpecError(f"shapes: seed must be a non-negative integer, got {seed!r}")
        if int(size) != size or size < 16:
            raise SpecError(f"shapes: size must be an integer of at least 16 px, got {size!r}")
        if bias is not None and not 0.0 <= float(bias) <= 1.0:
            raise SpecError(f"shapes: bias must be between 0 and 1, got {bias!r}")
        if bias_class not in SHAPES:
            raise SpecError(f"shapes: bias_class must be one of {', '.join(SHAPES)}; got {bias_class!r}")
        if bias_background not in BACKGROUNDS:
            raise SpecError(
                f"shapes: bias_background must be one of {', '.join(BACKGROUNDS)}; got {bias_background!r}"
            )
        if relabel is not None:
            src, arrow, dst = str(relabel).partition("->")
            if not arrow or src.strip() not in SHAPES or dst.strip() not in SHAPES or src.strip() == dst.strip():
                raise SpecError(f"shapes: relabel must be 'CLASS->OTHER' with two of {', '.join(SHAPES)}; "
                                f"got {relabel!r}")
            relabel = f"{src.strip()}->{dst.strip()}"
        if not 0.0 <= float(relabel_fraction) <= 1.0:
            raise SpecError(f"shapes: relabel_fraction must be between 0 and 1, got {relabel_fraction!r}")
        noise = _share("noise", 0.0 if noise is None else noise)
        if not 0.0 <= noise < 1.0:
            raise SpecError(f"shapes: noise is the share of training labels to flip, in [0, 1), got {noise!r}")
        if not 0.0 <= float(test_fraction) < 1.0:
            raise SpecError(f"shapes: test_fraction must be in [0, 1), got {test_fraction!r}")
        if split not in (None, "train", "test"):
            raise SpecError(f"shapes: split must be 'train' or 'test', got {split!r}")
        self.n = int(n)
        self.seed = int(seed)
        self.size = int(size)
        self.bias = None if bias is None else float(bias)
        self.bias_class = bias_class
        self.bias_background = bias_background
        self.test_fraction = float(test_fraction)
        self.split = split
        self.relabel = relabel
        self.relabel_fraction = float(relabel_fraction)
        self.noise = noise
        self.spec = self._make_spec()
        self._params: _Params | None = None
        self._table: pd.DataFrame | None = None
        self._rows: np.ndarray | None = None  # source index of each input_id

    # ------------------------------------------------------------------ spec handling
    def _make_spec(self) -> str:
        """``shapes:n=..,seed=..`` plus every parameter that differs from its default."""
        parts = [f"n={self.n}", f"seed={self.seed}"]
        values = {
            "size": self.size,
            "bias": self.bias,
            "bias_class": self.bias_class,
            "bias_background": self.bias_background,
            "test_fraction": self.test_fraction,
            "split": self.split,
            "relabel": self.relabel,
            "relabel_fraction": self.relabel_fraction if self.relabel else _DEFAULTS["relabel_fraction"],
            "noise": self.noise,
        }
        for key, value in values.items():
            if value != _DEFAULTS[key]:
                parts.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
        return "shapes:" + ",".join(parts)

    @classmethod
    def from_spec(cls, spec: str) -> "ShapesSource":
        """Parse ``"shapes"`` or ``"shapes:n=2000,seed=1,bias=0.9"`` (the form of ``.spec``)."""
        name, _, rest = spec.partition(":")
        if name.strip() != "shapes":
            raise SpecError(f"not a shapes spec: {spec!r}")
        kwargs: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or key not in _DEFAULTS:
                raise SpecError(
                    f"bad shapes option {item!r} in {spec!r}; options are {', '.join(_DEFAULTS)} (key=value)"
                )
            try:
                if key in ("n", "seed", "size"):
                    kwargs[key] = int(value)
                elif key in ("bias", "test_fraction", "relabel_fraction", "noise"):
                    kwargs[key] = None if value.lower() == "none" else float(value)
                else:
                    kwargs[key] = None if value.lower() == "none" else value
            except ValueError:
                raise SpecError(f"shapes option {key} needs a number, got {value!r} in {spec!r}") from None
        return cls(**kwargs)

    def with_split(self, split: str | None) -> "ShapesSource":
        """The same image set restricted to ``split`` (``None``: the full set)."""
        return ShapesSource(self.n, self.seed, self.size, self.bias, self.bias_class,
                            self.bias_background, self.test_fraction, split, self.relabel, self.relabel_fraction,
                            self.noise)

    # ------------------------------------------------------------------ parameters
    def _draw(self) -> _Params:
        """Draw every per-image parameter at once, in a fixed order.

        The bias only changes backgrounds, and it reuses the same uniform draws, so a biased
        and an unbiased set with one seed share shapes, colours and geometry.
        """
        rng = np.random.default_rng(self.seed)
        n, s = self.n, float(self.size)
        label = rng.permutation(np.arange(n) % len(SHAPES)).astype(np.int64)  # balanced classes
        colour = rng.integers(0, len(COLOURS), n)
        texture = rng.integers(0, len(TEXTURES), n)
        background = rng.integers(0, len(BACKGROUNDS), n)
        bias_u = rng.random(n)
        radius = rng.uniform(0.16, 0.30, n) * s
        margin = radius + 1.0
        x = margin + rng.random(n) * (s - 2 * margin)
        y = margin + rng.random(n) * (s - 2 * margin)
        rotation = rng.uniform(0.0, 360.0, n)
        bg_level = rng.uniform(20.0, 60.0, n)
        bg_angle = rng.uniform(0.0, 2 * np.pi, n)
        other_bg = rng.integers(0, len(BACKGROUNDS) - 1, n)

        n_test = int(round(n * self.test_fraction))
        is_test = np.zeros(n, dtype=bool)
        if n_test:
            is_test[n - n_test:] = True

        if self.bias is not None:
            target = BACKGROUNDS.index(self.bias_background)
            biased = (~is_test) & (label == SHAPES.index(self.bias_class))
            # With probability ``bias`` the target background, otherwise one of the others.
            others = np.where(other_bg >= target, other_bg + 1, other_bg)
            background = np.where(biased, np.where(bias_u < self.bias, target, others), background)

        relabelled = np.zeros(n, dtype=bool)
        true_label = label
        if self.relabel is not None:
            src, dst = (SHAPES.index(c) for c in self.relabel.split("->"))
            # A separate stream, so relabelling leaves every other drawn parameter unchanged.
            u = np.random.default_rng([self.seed, 7919]).random(n)
            relabelled = (~is_test) & (label == src) & (u < self.relabel_fraction)
            label = np.where(relabelled, dst, label)
        if self.noise:
            flipped, label = self._flip_uniformly(label, ~is_test, relabelled)
            relabelled = relabelled | flipped

        return _Params(label, true_label, relabelled, colour, texture, background.astype(np.int64), radius, x, y,
                       rotation, bg_level, bg_angle, is_test)

    def _flip_uniformly(self, label: np.ndarray, train: np.ndarray,
                        relabelled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Uniform label noise: ``round(noise * training images)`` training images that
        ``relabel`` left alone, chosen at random, each get one of the other classes, uniformly.

        An exact count rather than a coin per image, so ``noise=0.02`` plants 2% whatever the
        seed. A stream of its own, so the noise leaves every other drawn parameter unchanged.
        Returns (flipped mask, new labels).
        """
        rng = np.random.default_rng([self.seed, 104729])
        candidates = np.flatnonzero(train & ~relabelled)
        chosen = rng.permutation(candidates)[:int(round(self.noise * train.sum()))]
        flipped = np.zeros(len(label), dtype=bool)
        flipped[chosen] = True
        # an offset of 1..K-1 classes: uniform over the other classes, never the true one
        offset = rng.integers(1, len(SHAPES), len(label))
        return flipped, np.where(flipped, (label + offset) % len(SHAPES), label)

    def _ensure(self) -> tuple[_Params, pd.DataFrame, np.ndarray]:
        if self._params is None or self._table is None or self._rows is None:
            p = self._draw()
            colour_names = list(COLOURS)
            full = pd.DataFrame({
                "input_id": np.arange(self.n, dtype=np.int64),
                "label": p.label,
                "label_name": np.asarray(SHAPES, dtype=object)[p.label],
                "shape": np.asarray(SHAPES, dtype=object)[p.true_label],
                "colour": np.asarray(colour_names, dtype=object)[p.colour],
                "texture": np.asarray(TEXTURES, dtype=object)[p.texture],
                "background": np.asarray(BACKGROUNDS, dtype=object)[p.background],
                "size": p.size,
                "x": p.x,
                "y": p.y,
                "rotation": p.rotation,
                "relabelled": p.relabelled,
                "split": np.where(p.is_test, "test", "train").astype(object),
                "source_index": np.arange(self.n, dtype=np.int64),
            })
            if self.split is not None:
                full = full[full["split"] == self.split].reset_index(drop=True)
                full["input_id"] = np.arange(len(full), dtype=np.int64)
            self._params, self._table = p, full
            self._rows = full["source_index"].to_numpy(dtype=np.int64)
        return self._params, self._table, self._rows

    # ------------------------------------------------------------------ DataSource API
    def table(self) -> pd.DataFrame:
        """One row per image; a copy, so callers may add columns freely."""
        return self._ensure()[1].copy()

    def __len__(self) -> int:
        return len(self._ensure()[2])

    def get(self, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """Render images ``indices`` (``input_id`` of this source) as ``uint8 (size, size, 3)``."""
        params, _, rows = self._ensure()
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(rows)):
            raise IndexError(f"{self.spec}: indices must be in 0..{len(rows) - 1}")
        src = rows[idx]
        out: list[np.ndarray] = []
        for start in range(0, len(src), _CHUNK):
            batch = self._render(params, src[start:start + _CHUNK])
            out.extend(batch[j] for j in range(len(batch)))
        return out

    def shape_masks(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """``bool (n, size, size)``: the pixels of each image's shape (the rest is background),
        e.g. to check that an attribution falls on the shape."""
        params, _, rows = self._ensure()
        src = rows[np.asarray(indices, dtype=np.int64).reshape(-1)]
        return self._shape_pixels(params, src, *self._grid())[0]

    # ------------------------------------------------------------------ rendering
    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        grid = np.arange(self.size, dtype=np.float32) + 0.5
        return grid[None, :, None], grid[None, None, :]

    def _shape_pixels(self, p: _Params, src: np.ndarray, gy: np.ndarray,
                      gx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(inside, u, v)``: each image's shape mask and its shape-local pixel coordinates."""
        b, s = len(src), self.size
        # Shape-local coordinates: centred on the shape, rotated by its rotation.
        rot = np.deg2rad(p.rotation[src]).astype(np.float32)[:, None, None]
        cos, sin = np.cos(rot), np.sin(rot)
        dx = gx - p.x[src].astype(np.float32)[:, None, None]
        dy = gy - p.y[src].astype(np.float32)[:, None, None]
        u = dx * cos + dy * sin
        v = -dx * sin + dy * cos
        radius = p.size[src].astype(np.float32)[:, None, None]

        inside = np.zeros((b, s, s), dtype=bool)
        labels = p.true_label[src]  # pixels follow the drawn shape, never a relabel
        for c, name in enumerate(SHAPES):
            sel = np.flatnonzero(labels == c)
            if sel.size:
                inside[sel] = _shape_mask(name, u[sel], v[sel], radius[sel])
        return inside, u, v

    def _render(self, p: _Params, src: np.ndarray) -> np.ndarray:
        """Render source images ``src`` into one ``uint8 (B, S, S, 3)`` array."""
        b, s = len(src), self.size
        if b == 0:
            return np.zeros((0, s, s, 3), dtype=np.uint8)
        gy, gx = self._grid()
        inside, u, v = self._shape_pixels(p, src, gy, gx)

        # Foreground: the colour, alternated with a darker shade by the texture.
        period = max(4.0, s / 10.0)
        half = period / 2.0
        dark = np.zeros((b, s, s), dtype=bool)
        tex = p.texture[src]
        for t, name in enumerate(TEXTURES):
            sel = np.flatnonzero(tex == t)
            if not sel.size or name == "solid":
                continue
            uu, vv = u[sel], v[sel]
            if name == "stripes":
                dark[sel] = (np.floor(uu / half) % 2) == 1
            elif name == "checker":
                dark[sel] = ((np.floor(uu / half) + np.floor(vv / half)) % 2) == 1
            elif name == "dots":
                du = np.mod(uu, period) - half
                dv = np.mod(vv, period) - half
                dark[sel] = du * du + dv * dv <= (0.32 * period) ** 2
        palette = np.asarray(list(COLOURS.values()), dtype=np.float32)
        fg = palette[p.colour[src]][:, None, None, :]
        fg = np.where(dark[..., None], fg * _SHADE, fg)

        img = self._backgrounds(p, src, gx, gy)
        img = np.where(inside[..., None], fg, img)
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)

    def _backgrounds(self, p: _Params, src: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
        """Dark grey backgrounds (plain, per-image noise, or a linear gradient), float (B,S,S,3)."""
        b, s = len(src), self.size
        level = p.bg_level[src].astype(np.float32)[:, None, None]
        img = np.broadcast_to(level, (b, s, s)).astype(np.float32)
        kinds = p.background[src]

        grad = np.flatnonzero(kinds == BACKGROUNDS.index("gradient"))
        if grad.size:
            ang = p.bg_angle[src][grad].astype(np.float32)[:, None, None]
            # Projection onto the gradient direction, scaled to 0..1 across the image.
            proj = ((gx - s / 2) * np.cos(ang) + (gy - s / 2) * np.sin(ang)) / (s * np.sqrt(2)) + 0.5
            img[grad] = 8.0 + proj * (level[grad] + 40.0)
        img = np.repeat(img[..., None], 3, axis=3)

        for j in np.flatnonzero(kinds == BACKGROUNDS.index("noise")):
            i = int(src[j])
            # Seeded by (seed, source index) so the noise never depends on batch or order.
            noise = np.random.default_rng([self.seed, i]).normal(0.0, 25.0, (s, s, 3))
            img[j] += noise.astype(np.float32)
        return img


def _share(option: str, value: Any) -> float:
    """A numeric option as a float; spec strings reach the constructor as typed ("lots")."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SpecError(f"shapes: {option} must be a number, got {value!r}") from None


def _polygon_boundary(theta: np.ndarray, radii: Sequence[float]) -> np.ndarray:
    """Radius of a star-shaped polygon along direction ``theta`` (relative to circumradius 1).

    Vertex ``k`` sits at angle ``2*pi*k/m`` with radius ``radii[k]``. Along a ray at angle
    theta the boundary is the edge between the two neighbouring vertices P0, P1; the ray
    meets that edge at ``t = cross(P0, P1) / cross(d, P1 - P0)``.
    """
    m = len(radii)
    step = 2 * np.pi / m
    rad = np.asarray(list(radii) + [radii[0]], dtype=np.float32)
    ang = np.arange(m + 1, dtype=np.float32) * step
    px, py = rad * np.cos(ang), rad * np.sin(ang)
    k = np.minimum((theta // step).astype(np.int64), m - 1)
    x0, y0, x1, y1 = px[k], py[k], px[k + 1], py[k + 1]
    ex, ey = x1 - x0, y1 - y0
    num = x0 * y1 - y0 * x1
    den = np.cos(theta) * ey - np.sin(theta) * ex
    return num / den


def _shape_mask(name: str, u: np.ndarray, v: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Inside test for one shape class in shape-local coordinates; all fit within ``radius``."""
    r = np.hypot(u, v)
    if name == "circle":
        return r <= radius
    if name == "ring":
        return (r <= radius) & (r >= 0.55 * radius)
    if name == "cross":
        w = 0.3 * radius
        au, av = np.abs(u), np.abs(v)
        return ((au <= radius) & (av <= w)) | ((av <= radius) & (au <= w))
    radii = {
        "square": [1.0] * 4,
        "triangle": [1.0] * 3,
        "diamond": [1.0, 0.55, 1.0, 0.55],  # elongated, so not just a rotated square
        "star": [1.0, 0.42] * 5,
        "hexagon": [1.0] * 6,
    }[name]
    theta = np.mod(np.arctan2(v, u), 2 * np.pi)
    return r <= radius * _polygon_boundary(theta, radii)
