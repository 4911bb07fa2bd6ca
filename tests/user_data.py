"""Data and a model as a user writes them, importable as ``py:user_data:NAME`` (tests/test_data_in.py)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SITES = ("north", "south")


class PatientScans(torch.utils.data.Dataset):
    """Items ``(x, y, {attributes})``: a class name as the label, a site and an age per input."""

    def __init__(self, n: int = 12) -> None:
        rng = np.random.default_rng(0)
        self.x = torch.from_numpy(rng.normal(size=(n, 4)).astype(np.float32))
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        attributes = {"site": SITES[i % 2], "age": 40 + i, "scanned": torch.tensor(i % 3 == 0)}
        if i == 1:
            attributes["note"] = "retake"  # a key only some items carry: missing elsewhere
        return self.x[i], ("healthy" if i % 3 else "ill"), attributes


def patient_scans() -> PatientScans:
    return PatientScans()


class Unlabelled(torch.utils.data.Dataset):
    """Items ``x`` only."""

    def __len__(self) -> int:
        return 5

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.full((4,), float(i))


def unlabelled() -> Unlabelled:
    return Unlabelled()


class Quadruples(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int):
        return torch.zeros(4), 0, 1, 2


def quadruples() -> Quadruples:
    return Quadruples()


def sign_net() -> nn.Module:
    """Two logits that follow the sign of the first feature only: class 1 when x[0] > 0."""
    net = nn.Sequential()
    net.add_module("fc", nn.Linear(4, 2))
    with torch.no_grad():
        net.fc.weight.zero_()
        net.fc.weight[0, 0], net.fc.weight[1, 0] = -1.0, 1.0
        net.fc.bias.zero_()
    return net
