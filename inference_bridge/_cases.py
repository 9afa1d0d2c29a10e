"""Reference case libraries: confirmed cases as specialist embeddings, searched by cosine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["CaseLibrary", "Neighbour"]


@dataclass(frozen=True, slots=True)
class Neighbour:
    """One reference case similar to the query.

    Attributes:
        case_id: The case's identifier in the library (no patient identifier).
        similarity: Cosine similarity of the embeddings, in [-1, 1].
        label: The confirmed label (``malignant``, ``progression 151``).
        value: The label as a number (1/0 for classes, the measured value for regression).
        index: The case's row in the library.
    """

    case_id: str
    similarity: float
    label: str
    value: float
    index: int


class CaseLibrary:
    """Confirmed reference cases of one specialist, embedded by that specialist.

    Embeddings are L2-normalised once at load, so a query costs one matrix-vector product;
    the top ``k`` are ordered by similarity, ties by library row, so results are
    deterministic.

    Args:
        case_ids: One identifier per case.
        embeddings: ``[n, d]`` embeddings in case order.
        labels: The confirmed label of each case.
        values: Each label as a number.

    Raises:
        ValueError: The arrays disagree in length, or a case has an all-zero embedding.
    """

    def __init__(
        self,
        case_ids: Sequence[str],
        embeddings: NDArray[np.floating],
        labels: Sequence[str],
        values: NDArray[np.floating],
    ) -> None:
        matrix = np.asarray(embeddings, dtype=np.float32)
        if matrix.ndim != 2:
            raise ValueError("embeddings must be a [cases, dimensions] matrix")
        n = matrix.shape[0]
        if not (len(case_ids) == len(labels) == len(values) == n):
            raise ValueError("case ids, embeddings, labels and values must have one row per case")
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError("a reference case has an all-zero embedding")
        self._unit = matrix / norms
        self._case_ids = tuple(case_ids)
        self._labels = tuple(labels)
        self._values = np.asarray(values, dtype=np.float64)

    @classmethod
    def build(
        cls,
        *,
        case_ids: Sequence[str],
        embeddings: NDArray[np.floating],
        labels: Sequence[str],
        values: NDArray[np.floating],
    ) -> CaseLibrary:
        """A library from arrays (the training script's constructor)."""
        return cls(case_ids, embeddings, labels, values)

    @classmethod
    def load(cls, path: Path) -> CaseLibrary:
        """Load a library written by :meth:`save` (a NumPy ``.npz`` without pickles)."""
        with np.load(path, allow_pickle=False) as data:
            return cls(
                [str(x) for x in data["case_ids"]],
                data["embeddings"],
                [str(x) for x in data["labels"]],
                data["values"],
            )

    def save(self, path: Path) -> None:
        """Write the library as a compressed ``.npz``."""
        np.savez_compressed(
            path,
            case_ids=np.asarray(self._case_ids),
            embeddings=self._unit.astype(np.float32),
            labels=np.asarray(self._labels),
            values=self._values,
        )

    def __len__(self) -> int:
        return len(self._case_ids)

    @property
    def dimensions(self) -> int:
        """Embedding size."""
        return int(self._unit.shape[1])

    @property
    def unit_embeddings(self) -> NDArray[np.float32]:
        """The normalised embeddings, one row per case (read-only view)."""
        view: NDArray[np.float32] = self._unit.view()
        view.flags.writeable = False
        return view

    def case(self, index: int) -> tuple[str, str, float]:
        """Case id, label and value of one library row."""
        return self._case_ids[index], self._labels[index], float(self._values[index])

    def nearest(self, query: NDArray[np.floating], k: int) -> list[Neighbour]:
        """The ``k`` cases most similar to ``query`` by cosine similarity.

        Raises:
            ValueError: ``query`` has the wrong size or is all zeros, or ``k`` < 1.
        """
        if k < 1:
            raise ValueError("k must be at least 1")
        vector = np.asarray(query, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.dimensions:
            raise ValueError(
                f"query has {vector.shape[0]} dimensions, the library {self.dimensions}"
            )
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            raise ValueError("the query embedding is all zeros")
        similarities = self._unit @ (vector / norm)
        k = min(k, len(self))
        # Sort by similarity descending, then by row, so equal similarities keep library order.
        order = np.lexsort((np.arange(len(self)), -similarities))[:k]
        return [
            Neighbour(
                case_id=self._case_ids[i],
                similarity=float(similarities[i]),
                label=self._labels[i],
                value=float(self._values[i]),
                index=int(i),
            )
            for i in order
        ]
