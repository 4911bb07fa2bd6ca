"""demo-cnn: a small CNN trained on a built-in data set in a few minutes on a laptop CPU.

Four conv blocks and an MLP head, with readable layer names (``features.block1`` ...
``head.fc2``) and in-place ReLUs, so it also exercises hook safety. Training saves one
checkpoint per epoch: these are the snapshots the training maps show. Checkpoints are
cached outside the repository, keyed by data spec, epochs, seed and architecture version, so
a second demo run skips training.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import DataSource
from ..errors import SpecError
from .base import ModelBundle, ModelInputs
from .cache import cache_dir as default_cache_dir
from .preprocess import images_to_tensor

ARCH_VERSION = 1
#: the training recipe, part of the cache key: 2 trains in channels_last memory order (the
#: same model and schedule, ~40% less CPU per epoch, other float rounding) and records each
#: epoch's seconds
RECIPE_VERSION = 2
DEFAULT_LAYERS = ["features.block1", "features.block2", "features.block3", "features.block4", "head.relu", "head.fc2"]
MEAN, STD = (0.5,) * 3, (0.25,) * 3


def _block(c_in: int, c_out: int) -> nn.Sequential:
    # Pooling before the ReLU computes the same function as after it (the max of rectified
    # values is the rectified max) on a quarter of the values: training's ReLU backward and
    # the capture's forward cost less, and the block's output is unchanged.
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        bn=nn.BatchNorm2d(c_out),
        pool=nn.MaxPool2d(2),
        relu=nn.ReLU(inplace=True),
    ))


class DemoCNN(nn.Module):
    """3 -> 16 -> 32 -> 64 -> 128 channels, global average pool, 128-unit hidden layer."""

    def __init__(self, n_classes: int, in_channels: int = 3):
        super().__init__()
        self.features = nn.Sequential(OrderedDict(
            block1=_block(in_channels, 16), block2=_block(16, 32), block3=_block(32, 64), block4=_block(64, 128),
        ))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(OrderedDict(
            fc1=nn.Linear(128, 128), relu=nn.ReLU(inplace=True), dropout=nn.Dropout(0.2),
            fc2=nn.Linear(128, n_classes),
        ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


def input_size(source: DataSource) -> int:
    """64 px for shapes; digits' 8x8 images are upsampled to 32 px so four poolings fit."""
    return 32 if source.spec.startswith("digits") else 64


@dataclass
class DemoTraining:
    checkpoints: list[Path]
    test_accuracy: float
    history: list[dict] = field(default_factory=list)
    cached: bool = False
    folder: Path = Path(".")


def _check_source(source: DataSource) -> None:
    if not (source.spec.startswith("shapes") or source.spec.startswith("digits")) or source.modality != "image":
        raise SpecError(f"demo-cnn trains on the built-in image sets (shapes, digits), not {source.spec!r}; "
                        "use another model spec for your own data")
    if "split" not in source.table().columns:
        raise SpecError(f"demo-cnn needs a train/test split in {source.spec!r}")


def _key(source: DataSource, epochs: int, seed: int) -> str:
    text = json.dumps([source.spec, epochs, seed, ARCH_VERSION, RECIPE_VERSION])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_demo_cnn(source: DataSource, epochs: int = 4, seed: int = 0, batch_size: int = 64,
                   cache_dir: Path | None = None, progress: bool = True) -> DemoTraining:
    """Train demo-cnn on the train split of ``source``, or return the cached run.

    One checkpoint per epoch (``epoch1.pt`` ...) and ``training.json`` with the test accuracy
    and seconds per epoch go to ``cache_dir / demo-cnn-<key>``; every file is written
    atomically, and ``training.json`` last, so a killed run is never mistaken for a finished
    one. ``progress``: a bar per epoch, and a line when each ends (its seconds and accuracy).

    Training runs in channels_last memory order: on CPU, oneDNN's convolutions and batch
    norms run there with ~40% less CPU per epoch (docs/benchmarks.md, "The demo").
    """
    _check_source(source)
    if hasattr(source, "with_split"):
        # Train on the whole built-in set whatever split the user extracts (and share its cache).
        source = source.with_split(None)
    folder = Path(cache_dir or default_cache_dir()) / f"demo-cnn-{_key(source, epochs, seed)}"
    ckpts = [folder / f"epoch{e}.pt" for e in range(1, epochs + 1)]
    record = folder / "training.json"
    if record.exists() and all(p.exists() for p in ckpts):
        info = json.loads(record.read_text())
        return DemoTraining(ckpts, float(info["test_accuracy"]), info["history"], cached=True, folder=folder)
    folder.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    table = source.table()
    train_idx = np.nonzero(table["split"].to_numpy() == "train")[0]
    test_idx = np.nonzero(table["split"].to_numpy() == "test")[0]
    labels = torch.from_numpy(np.array(table["label"], dtype=np.int64))
    size = input_size(source)
    t0 = time.time()
    # Render and preprocess once: 10k x 3 x 64 x 64 float32 is 490 MB, well inside a laptop.
    x = torch.cat([images_to_tensor(source.get(range(s, min(s + 512, len(table)))), size, MEAN, STD)
                   for s in range(0, len(table), 512)])
    x = x.contiguous(memory_format=torch.channels_last)
    torch.manual_seed(seed)
    model = DemoCNN(len(source.class_names or [])).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=epochs * -(-len(train_idx) // batch_size))
    gen = torch.Generator().manual_seed(seed)
    history = []
    prepared = time.time() - t0  # rendering the images, before the first epoch
    for epoch in range(1, epochs + 1):
        t_epoch = time.time()
        model.train()
        order = torch.from_numpy(train_idx)[torch.randperm(len(train_idx), generator=gen)]
        losses = []
        bar = tqdm(range(0, len(order), batch_size), desc=f"train demo-cnn epoch {epoch}/{epochs}",
                   disable=not progress, leave=False, unit="batch")
        for s in bar:
            idx = order[s:s + batch_size]
            loss = F.cross_entropy(model(x[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        acc = evaluate(model, x[test_idx], labels[test_idx])
        _save_atomic(model.state_dict(), ckpts[epoch - 1])
        spent = time.time() - t_epoch
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "test_accuracy": acc,
                        "epoch_seconds": round(spent, 2), "seconds": round(time.time() - t0, 1)})
        if progress:
            tqdm.write(f"neurocarta: demo-cnn epoch {epoch}/{epochs} in {spent:.1f} s: train loss "
                       f"{history[-1]['train_loss']:.3f}, test accuracy {acc:.3f}", file=sys.stderr)
    info = {"data": source.spec, "epochs": epochs, "seed": seed, "arch_version": ARCH_VERSION,
            "recipe_version": RECIPE_VERSION, "test_accuracy": history[-1]["test_accuracy"], "history": history,
            "data_seconds": round(prepared, 1), "seconds": round(time.time() - t0, 1)}
    tmp = record.with_name(".training.json.tmp")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, record)
    return DemoTraining(ckpts, info["test_accuracy"], history, cached=False, folder=folder)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[s:s + 512]).argmax(1) for s in range(0, len(x), 512)])
    return float((pred == y).float().mean()) if len(y) else float("nan")


def _bundle(model: DemoCNN, source: DataSource, info: dict) -> ModelBundle:
    size = input_size(source)
    return ModelBundle(
        module=model.eval(), spec="demo-cnn", modality="image",
        preprocess=lambda items: ModelInputs(images_to_tensor(items, size, MEAN, STD)),
        class_names=source.class_names, default_layers=list(DEFAULT_LAYERS), info=info,
    )


def untrained_bundle(source: DataSource) -> ModelBundle:
    """demo-cnn with random weights, for looking at its layers without training it."""
    return _bundle(DemoCNN(len(source.class_names or []) or 8), source, {"trained": False})


def load_demo_cnn(source: DataSource, epochs: int = 4, seed: int = 0, cache_dir: Path | None = None,
                  progress: bool = True) -> ModelBundle:
    """demo-cnn for ``source``: trained (or loaded from the cache) with its final weights."""
    training = train_demo_cnn(source, epochs=epochs, seed=seed, cache_dir=cache_dir, progress=progress)
    model = DemoCNN(len(source.class_names or []))
    model.load_state_dict(torch.load(training.checkpoints[-1], map_location="cpu", weights_only=True))
    return _bundle(model, source, {
        "test_accuracy": training.test_accuracy, "trained_on": source.spec, "training": str(training.folder),
        "checkpoints": [str(p) for p in training.checkpoints], "cached": training.cached,
        # how long each epoch took to train (and test), when it was trained: "epoch seconds" in the manifest
        "epoch_seconds": [h.get("epoch_seconds") for h in training.history]})
