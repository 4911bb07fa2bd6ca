"""Small deterministic models for the tests, importable as ``py:tiny_models:NAME``."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from neurocarta.data import DataSource
from neurocarta.models import ModelBundle, ModelInputs
from neurocarta.models.preprocess import images_to_tensor


def cnn() -> nn.Module:
    """conv -> in-place ReLU -> pool -> fc: hooking ``conv`` must see pre-ReLU values."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(3, 6, 3, padding=1),
        relu=nn.ReLU(inplace=True),
        pool=nn.AdaptiveAvgPool2d(2),
        flat=nn.Flatten(),
        fc=nn.Linear(24, 8),
        act=nn.ReLU(inplace=True),
        head=nn.Linear(8, 4),
    ))


def cnn_bundle() -> ModelBundle:
    return ModelBundle(module=cnn(), spec="py:tiny_models:cnn_bundle", modality="image",
                       preprocess=lambda items: ModelInputs(images_to_tensor(items, None, (0.5,) * 3, (0.25,) * 3)))


class TupleOut(nn.Module):
    """A block that returns a tuple, like many transformer layers do."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor):
        y = self.lin(x)
        return y, y.sum(dim=1)


class TupleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.block = TupleOut()
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.block(x)
        return self.head(y)


def tuple_net() -> nn.Module:
    return TupleNet()


class NanIfNegative(nn.Module):
    """A linear layer whose output is NaN for inputs whose first feature is negative."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(x)
        return torch.where(x[:, :1] < 0, torch.full_like(y, float("nan")), y)


class NanNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = NanIfNegative()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def nan_net() -> nn.Module:
    torch.manual_seed(0)
    return NanNet()


class SlowNet(nn.Module):
    """A dense net that sleeps per batch, so a test can kill extraction mid-run."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(4, 16)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import time

        time.sleep(0.05)
        return self.fc2(self.act(self.fc1(x)))


def slow_net() -> nn.Module:
    return SlowNet()


class ReusedAct(nn.Module):
    """One activation module applied after each of three layers of different widths, as
    EfficientNet's ``_swish`` is: ``act`` runs 3 times per forward pass, (8,) then (6,) then (5,)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 6)
        self.fc3 = nn.Linear(6, 5)
        self.act = nn.Tanh()
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))))


def reused_act() -> nn.Module:
    return ReusedAct()


def array_data(n: int = 500, seed: int = 0, path: str = "data.npz") -> str:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.normal(size=(n, 4)).astype(np.float32), y=rng.integers(0, 3, n))
    return path


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(fc1=nn.Linear(4, 16), act=nn.ReLU(), fc2=nn.Linear(16, 3)))


class PairDataset(torch.utils.data.Dataset):
    """A map-style torch Dataset of (tensor, label) pairs, for ``py:`` data specs."""

    classes = ["neg", "pos"]

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(50, 4, generator=g)
        self.targets = (self.x[:, 0] > 0).long().tolist()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.targets[i]


def pair_dataset() -> PairDataset:
    return PairDataset()


# ---------------------------------------------------------------- planted topomap structure
N_BLOCK = 6  # neurons per class block of PlantedNet


class PlantedNet(nn.Module):
    """24 neurons in 4 blocks of 6; block g fires for class g of ``planted_data``.

    ``fc`` copies its input, so the planted structure reaches the atlas unchanged; ``one`` is
    a single-neuron layer; ``head`` sums each block into its class logit.
    """

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        torch.manual_seed(0)  # `one` keeps its random init: the same in every process
        self.fc = nn.Linear(24, 24)
        self.act = nn.ReLU()
        self.one = nn.Linear(24, 1)
        self.head = nn.Linear(24, 4)
        with torch.no_grad():
            self.fc.weight.copy_(torch.eye(24) * gain)
            self.fc.bias.zero_()
            self.head.weight.copy_(torch.kron(torch.eye(4), torch.ones(1, N_BLOCK)))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc(x))
        self.one(h)
        return self.head(h)


def planted_net() -> nn.Module:
    return PlantedNet()


def planted_data(path, n: int = 400, seed: int = 0) -> str:
    """Class g (of 4) raises input block g (6 features) by 2 over N(0, 0.3) noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0.0, 0.3, size=(n, 24)).astype(np.float32)
    for g in range(4):
        x[y == g, g * N_BLOCK:(g + 1) * N_BLOCK] += 2.0
    np.savez(path, x=x, y=y)
    return str(path)


def planted_atlas(folder, layers: list[str], n: int = 600):
    """An atlas of PlantedNet's ``layers`` over ``n`` planted inputs, written under ``folder``."""
    import neurocarta as nc

    return nc.extract("py:tiny_models:planted_net", f"npz:{planted_data(folder / 'data.npz', n=n)}",
                      folder / "atlas", layers=layers, progress=False)


def planted_snapshots(folder) -> str:
    """Two snapshots of PlantedNet: the structure at 10% and at full strength."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(PlantedNet(gain=0.1).state_dict(), folder / "step1.pt")
    torch.save(PlantedNet(gain=1.0).state_dict(), folder / "step2.pt")
    return str(folder / "step*.pt")


class StopsAt(DataSource):
    """The inputs of a data source, except that fetching input ``stop_at`` or a later one
    raises KeyboardInterrupt: a Ctrl-C in the middle of a run, at a known input. It has the
    inner source's spec, so a rerun with the plain source resumes the atlas."""

    def __init__(self, inner: DataSource, stop_at: int):
        self.inner, self.stop_at = inner, stop_at
        self.spec, self.modality, self.class_names = inner.spec, inner.modality, inner.class_names
        self.span_attributes, self.span_fill = inner.span_attributes, inner.span_fill

    def table(self):
        return self.inner.table()

    def get(self, indices):
        if len(indices) and max(indices) >= self.stop_at:
            raise KeyboardInterrupt
        return self.inner.get(indices)

    def spans(self, indices):
        return self.inner.spans(indices)
