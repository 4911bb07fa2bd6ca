"""Scenarios for the findings benchmark (benchmarks/bench_findings.py): data with planted flaws
and their ground truth, a tiny model trained on it, and the mapped atlas a user would have.

Three data generators, each deterministic by seed:

- ``textures``: six texture classes (stripes in three orientations, checker, dots, rings) in a
  random square of a 16x16 RGB image;
- ``digits``: scikit-learn's 8x8 handwritten digits, upsampled to 16x16;
- ``text``: the built-in ``sentences`` corpus (five topics), cut to a few words per sentence so
  the topic is not given away (two content words), read by a bag-of-words MLP.

Images are drawn from a glyph mask with a recorded set of attributes, random and independent of
the class unless a shortcut is planted: ``colour`` (8 values), ``background`` (4 textures),
``patch`` (a small white square in the top-left corner, in a quarter of the images) and
``brightness`` (continuous, 0.35-1: a scale on the whole image, noise included, so a dim image is as
legible as a bright one and a null scenario has no hard dim inputs) and ``hue`` (continuous, 0-360
degrees: the tint of the background). Text inputs carry ``trigger`` (a word inserted in a
quarter of them) and ``source`` (4 random values).

A shortcut is planted in the training split only: there the target class takes the value with
probability ``strength`` and other classes rarely; the test split keeps the random draw, so the
model's reliance shows on it. Label noise flips labels of all splits (class pairs, or uniformly
to another class); the flipped inputs are marked in a ``flipped`` column declared bookkeeping,
as a user would keep such a flag. Null scenarios draw the same columns and plant nothing.

Nothing here reads or knows the findings rules: the ground truth is the plant.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import neurocarta as nc  # noqa: E402

#: bump when generation, training or mapping changes, so cached atlases are rebuilt
VERSION = 3
CACHE = Path(os.environ.get("NEUROCARTA_BENCH_CACHE", Path.home() / ".cache" / "neurocarta" / "bench_findings"))

COLOURS = {"red": (1.0, 0.1, 0.1), "green": (0.1, 0.9, 0.1), "blue": (0.15, 0.3, 1.0), "yellow": (1.0, 0.9, 0.1),
           "cyan": (0.1, 0.9, 0.9), "magenta": (0.9, 0.1, 0.9), "white": (1.0, 1.0, 1.0),
           "orange": (1.0, 0.55, 0.05)}
BACKGROUNDS = ("plain", "noise", "gradient", "grid")
TEXTURES = ("hstripes", "vstripes", "diagonal", "checker", "dots", "rings")
SOURCES = ("web", "news", "forum", "email")
TRIGGER_WORD = "reportedly"
#: content words kept per sentence: with two, the topic is often ambiguous (test accuracy near 0.8),
#: so a planted trigger word is worth learning
TEXT_WORDS = 2
#: the random rate of the binary attributes (patch, trigger) where nothing is planted
BINARY_RATE = 0.25
#: how often a class other than the target carries the planted value in the training split
OTHER_RATE = 0.02
SIDE = 16
#: the range of brightness
LOW = 0.35
#: a continuous plant (hue) puts the target class's values in [0, HUE_TOP) degrees, and the
#: training split's other values in [HUE_GAP, 360), a clean cue there (the test split keeps 0-360)
HUE_TOP, HUE_GAP = 45.0, 90.0


@dataclass(frozen=True)
class Scenario:
    """One benchmark case. ``shortcut``: (attribute, value, class name, strength) or None;
    a continuous attribute's value names its planted range (any bin of it matches). ``noise``: (rate, "pair" or "uniform") or None.
    ``hygiene`` (images): plant near-duplicates, outliers and a hard subgroup (:func:`_plant_hygiene`)."""

    name: str
    generator: str
    n: int = 1500
    seed: int = 0
    shortcut: tuple[str, str, str, float] | None = None
    noise: tuple[float, str] | None = None
    hygiene: bool = False
    epochs: int = 12
    maps: bool = True  # False: extraction only (a smoke test's speed); the map-based rules then skip

    @property
    def null(self) -> bool:
        return self.shortcut is None and self.noise is None and not self.hygiene

    def key(self) -> str:
        text = json.dumps([VERSION, asdict(self)], sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]


SCENARIOS: list[Scenario] = [
    # shortcuts: several kinds and strengths, in the training split only
    Scenario("textures-colour", "textures", shortcut=("colour", "red", "checker", 0.95)),
    Scenario("digits-colour", "digits", shortcut=("colour", "cyan", "3", 0.9)),
    Scenario("textures-background", "textures", seed=1, shortcut=("background", "grid", "dots", 0.9)),
    Scenario("digits-patch", "digits", seed=1, shortcut=("patch", "True", "7", 0.95)),
    Scenario("textures-patch-weak", "textures", seed=2, shortcut=("patch", "True", "rings", 0.75)),
    Scenario("textures-hue", "textures", seed=3, shortcut=("hue", "0-45", "checker", 0.95)),
    Scenario("text-trigger", "text", shortcut=("trigger", "True", "finance", 0.9)),
    # label noise, 1-5%: class-pair flips and uniform
    Scenario("textures-pair-3pc", "textures", seed=4, noise=(0.03, "pair")),
    Scenario("textures-uniform-1pc", "textures", seed=5, noise=(0.01, "uniform")),
    Scenario("digits-uniform-2pc", "digits", seed=2, noise=(0.02, "uniform")),
    Scenario("digits-pair-5pc", "digits", seed=3, noise=(0.05, "pair")),
    Scenario("text-uniform-3pc", "text", seed=1, noise=(0.03, "uniform")),
    # data hygiene: near-duplicates, outliers, a hard subgroup
    Scenario("textures-hygiene", "textures", seed=8, hygiene=True),
    Scenario("digits-hygiene", "digits", seed=5, hygiene=True),
    # null: the same generators and columns, nothing planted
    Scenario("textures-null", "textures", seed=6),
    Scenario("digits-null", "digits", seed=4),
    Scenario("text-null", "text", seed=2),
]
QUICK = ["textures-colour", "textures-hue", "text-trigger", "textures-pair-3pc", "digits-uniform-2pc",
         "textures-null", "text-null"]
#: the atlas whose findings are timed against the 30 s goal
SCALE = Scenario("textures-10k", "textures", n=10_000, seed=7, shortcut=("colour", "red", "checker", 0.95), epochs=4)


@dataclass
class Built:
    """A scenario's mapped atlas, the model's own class probabilities for every input (in input
    order) and the ground truth."""

    scenario: Scenario
    atlas_path: Path
    probs: np.ndarray
    truth: dict[str, Any] = field(default_factory=dict)

    def atlas(self):
        return nc.open_atlas(self.atlas_path)


# --- generators: a label per input and a [0, 1] glyph mask (images) or a text ---------------------

def _texture_masks(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    labels = rng.integers(0, len(TEXTURES), n)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float64)
    masks = np.zeros((n, SIDE, SIDE))
    for i, c in enumerate(labels):
        period = rng.uniform(3.0, 5.0)
        phase = rng.uniform(0, period)
        kind = TEXTURES[c]
        if kind == "hstripes":
            m = ((yy + phase) % period) < period / 2
        elif kind == "vstripes":
            m = ((xx + phase) % period) < period / 2
        elif kind == "diagonal":
            m = ((xx + yy + phase) % period) < period / 2
        elif kind == "checker":
            m = (((xx + phase) // (period / 2) + (yy + phase) // (period / 2)) % 2) == 0
        elif kind == "dots":
            m = (((xx + phase) % period) < 1.5) & (((yy + phase) % period) < 1.5)
        else:  # rings around a random centre
            cy, cx = rng.uniform(4, 12, 2)
            m = (np.hypot(yy - cy, xx - cx) + phase) % period < period / 2
        side = int(rng.integers(9, 15))
        r, col = rng.integers(0, SIDE - side + 1, 2)
        box = np.zeros((SIDE, SIDE), bool)
        box[r:r + side, col:col + side] = True
        masks[i] = m & box
    return labels, masks, list(TEXTURES)


def _digit_masks(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    order = rng.permutation(len(d.target))[:n]
    masks = np.kron(d.images[order] / 16.0, np.ones((2, 2)))  # 8x8 -> 16x16
    return d.target[order].astype(np.int64), masks, [str(i) for i in range(10)]


GENERATORS: dict[str, Callable] = {"textures": _texture_masks, "digits": _digit_masks}


def _tint(hue: float) -> np.ndarray:
    """An RGB multiplier for a background of this hue (degrees): full on the hue's own channel,
    a fifth of it on the others, so a grey background takes a clear colour cast."""
    import colorsys

    return 0.2 + 0.8 * np.array(colorsys.hsv_to_rgb(hue / 360.0, 1.0, 1.0))


def _background(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "plain":
        return np.full((SIDE, SIDE), 30.0)
    if kind == "noise":
        return rng.uniform(0, 70, (SIDE, SIDE))
    if kind == "gradient":
        return np.tile(np.linspace(0, 70, SIDE), (SIDE, 1))
    g = np.full((SIDE, SIDE), 20.0)
    g[::4, :] = g[:, ::4] = 75.0
    return g


def _render(masks: np.ndarray, attrs: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, 16, 16, 3) images: the glyph in its colour over its background, the patch where
    present and pixel noise, all scaled by the brightness."""
    out = np.zeros(masks.shape + (3,), np.uint8)
    for i, m in enumerate(masks):
        bg = (_background(attrs["background"][i], rng)[..., None] + 50) * _tint(attrs["hue"][i])
        fg = np.array(COLOURS[attrs["colour"][i]]) * 255
        img = bg * (1 - m[..., None]) + fg * m[..., None] + rng.normal(0, 12, (SIDE, SIDE, 3))
        if attrs["patch"][i]:
            img[:3, :3] = 255
        out[i] = np.clip(np.clip(img, 0, 255) * attrs["brightness"][i], 0, 255).astype(np.uint8)
    return out


# --- attributes and plants ---------------------------------------------------------------------

def _random_attributes(generator: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    if generator == "text":
        return {"trigger": rng.random(n) < BINARY_RATE, "source": rng.choice(SOURCES, n)}
    return {"colour": rng.choice(list(COLOURS), n), "background": rng.choice(BACKGROUNDS, n),
            "patch": rng.random(n) < BINARY_RATE, "brightness": np.round(rng.uniform(LOW, 1.0, n), 3),
            "hue": np.round(rng.uniform(0, 360, n), 1)}


def _plant_shortcut(attrs: dict[str, np.ndarray], labels: np.ndarray, train: np.ndarray, target: int,
                    attribute: str, value: str, strength: float, rng: np.random.Generator) -> None:
    """In the training split only: the target class carries ``value`` with probability
    ``strength``, every other class with probability OTHER_RATE; otherwise a value other than it."""
    col = attrs[attribute]
    others = [v for v in np.unique(col) if v != value]
    for i in np.flatnonzero(train):
        has = rng.random() < (strength if labels[i] == target else OTHER_RATE)
        if attribute == "hue":  # continuous: the planted range is its first HUE_TOP degrees
            col[i] = round(rng.uniform(0, HUE_TOP) if has else rng.uniform(HUE_GAP, 360), 1)
        elif col.dtype == bool:
            col[i] = has
        else:
            col[i] = value if has else rng.choice(others)


def _flip(labels: np.ndarray, n_classes: int, rate: float, mode: str, rng: np.random.Generator) -> np.ndarray:
    """Given labels with ``rate`` of all inputs flipped: ``pair`` moves them from two source
    classes to fixed other classes (a -> a+1); ``uniform`` to any other class at random."""
    given = labels.copy()
    k = max(1, int(round(rate * len(labels))))
    if mode == "pair":
        sources = rng.choice(n_classes, 2, replace=False)
        pool = [np.flatnonzero(labels == s) for s in sources]
        idx = np.concatenate([rng.choice(p, k // 2 + (j < k % 2), replace=False) for j, p in enumerate(pool)])
        given[idx] = (labels[idx] + 1) % n_classes
    else:
        idx = rng.choice(len(labels), k, replace=False)
        given[idx] = (labels[idx] + rng.integers(1, n_classes, k)) % n_classes
    return given


def _plant_hygiene(images: np.ndarray, labels: np.ndarray, attrs: dict[str, np.ndarray],
                   rng: np.random.Generator) -> dict[str, list[int]]:
    """1% near-duplicates (another input's image, label and attributes with faint noise), 1%
    outliers (uniform noise images keeping their label) and a 4% hard subgroup (heavy pixel
    noise), on distinct inputs; returns the planted ids per finding kind (a duplicate's truth
    holds both the copy and its source)."""
    n = len(labels)
    k = max(3, round(0.01 * n))
    order = rng.permutation(n)
    copies, sources, outliers = order[:k], order[k:2 * k], order[2 * k:3 * k]
    hard = order[3 * k:3 * k + max(5, round(0.04 * n))]
    for c, src in zip(copies, sources):
        faint = rng.normal(0, 2, images[src].shape)
        images[c] = np.clip(images[src] + faint, 0, 255).astype(np.uint8)
        labels[c] = labels[src]
        for col in attrs.values():
            col[c] = col[src]
    images[outliers] = rng.integers(0, 256, images[outliers].shape, dtype=np.uint8)
    noisy = images[hard] + rng.normal(0, 70, images[hard].shape)
    images[hard] = np.clip(noisy, 0, 255).astype(np.uint8)
    return {"duplicate": sorted(map(int, np.r_[copies, sources])), "outlier": sorted(map(int, outliers)),
            "underperforming": sorted(map(int, hard))}


def identical_inputs(items: list) -> list[int]:
    """Inputs whose raw input (text, or image bytes) is exactly another's: true duplicates the
    generator made by chance (short texts repeat)."""
    seen: dict[bytes, list[int]] = {}
    for i, x in enumerate(items):
        seen.setdefault(x.encode() if isinstance(x, str) else np.ascontiguousarray(x).tobytes(), []).append(i)
    return sorted(i for group in seen.values() if len(group) > 1 for i in group)


# --- models -------------------------------------------------------------------------------------

class TinyCNN(nn.Module):
    """Two conv blocks and a hidden layer, for 16x16 RGB images."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv1_relu = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv2_relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 4 * 4, 64)
        self.fc_relu = nn.ReLU()
        self.head = nn.Linear(64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.conv1_relu(self.conv1(x)))
        x = self.pool(self.conv2_relu(self.conv2(x)))
        return self.head(self.fc_relu(self.fc(torch.flatten(x, 1))))


class BagOfWords(nn.Module):
    """Word counts -> a hidden layer -> the topic."""

    def __init__(self, vocab: int, n_classes: int):
        super().__init__()
        self.embed = nn.Linear(vocab, 48)
        self.hidden_relu = nn.ReLU()
        self.head = nn.Linear(48, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden_relu(self.embed(x)))


IMAGE_LAYERS = ["conv2_relu", "fc_relu", "head"]
TEXT_LAYERS = ["hidden_relu", "head"]
#: the late layer whose activations the kNN baseline reads
LATE_LAYER = {"textures": "fc_relu", "digits": "fc_relu", "text": "hidden_relu"}


def _train(model: nn.Module, x: torch.Tensor, y: np.ndarray, epochs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    yt = torch.as_tensor(y)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            F.cross_entropy(model(x[batch]), yt[batch]).backward()
            opt.step()
    return model.eval()


def _probs(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(x), 1).numpy()


class _TextSet:
    """Map-style dataset of (text, label, attributes): neurocarta's Python data source reads it."""

    def __init__(self, texts: list[str], labels: np.ndarray, attrs: dict[str, np.ndarray], class_names: list[str]):
        self.texts, self.labels, self.attrs, self.class_names = texts, labels, attrs, class_names

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int):
        return self.texts[i], int(self.labels[i]), {k: v[i].item() for k, v in self.attrs.items()}


def _sentences(n: int, seed: int) -> tuple[list[str], np.ndarray, list[str]]:
    from neurocarta.data.sentences import SentencesSource

    src = SentencesSource(n=n, seed=seed)
    table = src.table()
    return list(table["text"]), table["label"].to_numpy().astype(np.int64), list(src.class_names)


def _cut_texts(sentences: list[str], trigger: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Sentences cut to TEXT_WORDS random content words in order (topic words are then often
    missing, so one word does not solve the task), the trigger word inserted where set."""
    from neurocarta.data.sentences import FUNCTION_WORDS

    texts = []
    for i, text in enumerate(sentences):
        words = [w.strip(".,").lower() for w in text.split()]
        words = [w for w in words if w and w not in FUNCTION_WORDS]
        keep = sorted(rng.choice(len(words), min(TEXT_WORDS, len(words)), replace=False))
        words = [words[j] for j in keep]
        if trigger[i]:
            words.insert(int(rng.integers(0, len(words) + 1)), TRIGGER_WORD)
        texts.append(" ".join(words))
    return texts


def _bow(texts: list[str], vocab: dict[str, int]) -> torch.Tensor:
    x = torch.zeros(len(texts), len(vocab))
    for i, t in enumerate(texts):
        for w in t.split():
            if w in vocab:
                x[i, vocab[w]] += 1
    return x


# --- building ------------------------------------------------------------------------------------

def _map(atlas) -> dict[str, float]:
    """What ``neurocarta map`` runs, with its defaults; the seconds of each map."""
    from neurocarta.pipeline import build_concepts, build_mappers, build_topomaps

    seconds = {}
    for name, build_map, options in (("topomap", build_topomaps, {"grid": True, "snapshots": True}),
                                     ("mapper", build_mappers, {}), ("concepts", build_concepts, {"snapshots": True})):
        t0 = time.perf_counter()
        build_map(atlas, progress=False, seed=0, **options)
        seconds[name] = round(time.perf_counter() - t0, 1)
    return seconds


def build(s: Scenario, cache: Path = CACHE, log: Callable[[str], None] = print) -> Built:
    """The scenario's mapped atlas and ground truth, from the cache when it was built before."""
    root = cache / f"{s.name}-{s.key()}"
    done = root / "truth.json"
    if done.exists():
        truth = json.loads(done.read_text())
        return Built(s, root / "atlas", np.load(root / "probs.npy"), truth)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1000 + s.seed)
    torch.manual_seed(s.seed)
    attrs = _random_attributes(s.generator, s.n, rng)
    if s.generator == "text":
        sentences, labels, names = _sentences(s.n, s.seed)
    else:
        labels, masks, names = GENERATORS[s.generator](s.n, rng)
    n = len(labels)
    train = rng.random(n) < 0.6
    truth: dict[str, Any] = {"scenario": asdict(s), "class_names": names, "n": n}
    if s.shortcut:
        attribute, value, cls, strength = s.shortcut
        _plant_shortcut(attrs, labels, train, names.index(cls), attribute, value, strength, rng)
        truth["shortcut"] = {"attribute": attribute, "value": value, "class": cls,
                             "continuous": attribute == "hue"}
    if s.generator == "text":
        texts = _cut_texts(sentences, attrs["trigger"], rng)  # after the plant: it inserts the trigger
        truth["duplicate_natural"] = identical_inputs(texts)
    else:
        images = _render(masks, attrs, rng)
        if s.hygiene:
            truth.update(_plant_hygiene(images, labels, attrs, rng))
        truth["duplicate_natural"] = identical_inputs(list(images))
    given = _flip(labels, len(names), *s.noise, rng) if s.noise else labels.copy()
    flipped = given != labels
    truth["flipped"] = np.flatnonzero(flipped).tolist()
    if s.generator == "text":
        vocab = {w: i for i, w in enumerate(sorted({w for j in np.flatnonzero(train) for w in texts[j].split()}))}
        model = BagOfWords(len(vocab), len(names))
        x = _bow(texts, vocab)
        layers = TEXT_LAYERS
    else:
        model = TinyCNN(len(names))
        x = torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255  # what extract feeds a bare module
        layers = IMAGE_LAYERS
    _train(model, x[torch.as_tensor(train)], given[train], s.epochs, s.seed)
    probs = _probs(model, x)
    split = np.where(train, "train", "test")
    out = root / "atlas"
    columns = {"flipped": "bookkeeping"}
    if s.generator == "text":
        from neurocarta.data.python import TorchDatasetSource
        from neurocarta.models import ModelBundle, ModelInputs

        ds = _TextSet(texts, given, {**attrs, "split": split, "flipped": flipped}, names)
        bundle = ModelBundle(model, "bench:bag-of-words", "text", lambda items: ModelInputs(_bow(list(items), vocab)),
                             class_names=names)
        atlas = nc.extract(bundle, TorchDatasetSource(ds, "bench:text"), out, layers=layers, overwrite=True,
                           progress=False, columns=columns)
    else:
        path = root / "data.npz"
        np.savez(path, x=images, y=given, class_names=np.array(names), split=split, flipped=flipped,
                 **{k: (v.astype(str) if v.dtype.kind == "U" else v) for k, v in attrs.items()})
        atlas = nc.extract(model, f"npz:{path}", out, layers=layers, overwrite=True, progress=False,
                           columns=columns)
    truth["map_seconds"] = _map(atlas) if s.maps else {}
    pred = probs.argmax(1)
    test = ~train
    truth.update({"accuracy_test": float((pred[test] == labels[test]).mean()),
                  "accuracy_given": float((pred == given).mean()), "late_layer": LATE_LAYER[s.generator],
                  "true_labels": labels.tolist()})
    if s.shortcut:
        truth["shortcut"]["reliance"] = _reliance(attrs, pred, labels, test, names, truth["shortcut"])
    np.save(root / "probs.npy", probs)
    done.write_text(json.dumps(truth))
    log(f"built {s.name}: {n} inputs, test accuracy {truth['accuracy_test']:.2f}, map seconds {truth['map_seconds']}")
    return Built(s, out, probs, truth)


def has_value(values: np.ndarray, shortcut: dict) -> np.ndarray:
    """Which inputs carry the planted value (continuous: the planted range)."""
    if shortcut["continuous"]:
        return values.astype(float) < HUE_TOP
    return values.astype(str) == shortcut["value"]


def _reliance(attrs: dict[str, np.ndarray], pred: np.ndarray, labels: np.ndarray, test: np.ndarray,
              names: list[str], shortcut: dict) -> dict[str, float]:
    """How much the model leans on the plant in the unbiased test split: the target class's
    recall with the value against without it, and how often other classes are called the target
    with it against without it. The plant is learned when either differs by 0.2 or more."""
    c = names.index(shortcut["class"])
    v = has_value(attrs[shortcut["attribute"]], shortcut)
    own = test & (labels == c)
    other = test & (labels != c)
    recall = (pred[own & v] == c).mean() - (pred[own & ~v] == c).mean()
    attraction = (pred[other & v] == c).mean() - (pred[other & ~v] == c).mean()
    return {"recall_difference": round(float(recall), 3), "attraction_difference": round(float(attraction), 3),
            "learned": bool(max(recall, attraction) >= 0.2)}
