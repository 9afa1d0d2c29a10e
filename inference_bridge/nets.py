"""Torch architectures of the shipped models, imported on demand (the bridge loads without torch).

Catalog entries name these classes in ``torch.architecture``; the local torch backend and the
Triton export import them when they build a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

__all__ = ["TabularNet"]


class TabularNet(nn.Module):
    """An MLP over raw tabular features that returns a prediction and an embedding.

    The feature standardisation is part of the network (buffers), so callers send raw
    measurements in the catalog's units and every backend (torch, TorchScript, ONNX) computes
    the same thing. The embedding is the tanh output of the last hidden layer; consults rank
    reference cases by cosine similarity of these embeddings.

    Args:
        in_features: Number of input features.
        hidden: Sizes of the hidden layers before the embedding layer.
        embedding_dim: Size of the embedding layer.
        task: ``classification`` returns a probability from a sigmoid; ``regression``
            returns the target in its original unit.
    """

    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    target_mean: torch.Tensor
    target_std: torch.Tensor

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        embedding_dim: int,
        task: Literal["classification", "regression"],
    ) -> None:
        super().__init__()
        if task not in ("classification", "regression"):
            raise ValueError(f"unknown task {task!r}")
        self.task = task
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers += [nn.Linear(width, embedding_dim), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(embedding_dim, 1)
        self.register_buffer("feature_mean", torch.zeros(in_features))
        self.register_buffer("feature_std", torch.ones(in_features))
        self.register_buffer("target_mean", torch.zeros(1))
        self.register_buffer("target_std", torch.ones(1))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict for a batch ``[n, in_features]``: ``([n, 1] prediction, [n, d] embedding)``."""
        standardised = (features - self.feature_mean) / self.feature_std
        embedding = self.body(standardised)
        raw = self.head(embedding)
        if self.task == "classification":
            return torch.sigmoid(raw), embedding
        return raw * self.target_std + self.target_mean, embedding

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """The pre-activation output on standardised targets (training only)."""
        standardised = (features - self.feature_mean) / self.feature_std
        out: torch.Tensor = self.head(self.body(standardised))
        return out
