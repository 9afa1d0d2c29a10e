"""Train the shipped specialists and generalist on scikit-learn's clinical data sets.

Run ``python -m inference_bridge.training.train`` from the repository root. It needs
``scikit-learn``, ``torch`` and, for the ONNX copies, ``onnx`` and ``onnxscript``. Seeds are
fixed, so a rerun with the same library versions writes the same weights. For each model it
writes, under ``inference_bridge/models/<name>/<version>/``:

* ``weights.pt``: the state dict of :class:`inference_bridge.nets.TabularNet`;
* ``model.onnx``: the same network for ONNX Runtime (AMD, Ascend and CPU exports);
* ``cases.npz``: the reference case library, built from the training split only;
* ``metrics.json``: held-out metrics, quoted by the model card in ``catalog.yaml``.

Data sets: the Breast Cancer Wisconsin (Diagnostic) data (Street, Wolberg and Mangasarian,
1993; 569 fine-needle aspirates, 30 nuclear features, confirmed benign or malignant) and the
diabetes data of Efron et al. (2004; 442 patients, 10 baseline variables, disease
progression after one year), both as shipped inside scikit-learn.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.datasets import (  # type: ignore[import-untyped]
    load_breast_cancer,
    load_diabetes,
)
from sklearn.metrics import (  # type: ignore[import-untyped]
    accuracy_score,
    brier_score_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

from inference_bridge._cases import CaseLibrary
from inference_bridge.nets import TabularNet

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
SPLIT_SEED = 7
TORCH_SEED = 20240607
TEST_FRACTION = 0.2
GENERALIST_NEIGHBOURS = 5

Array = NDArray[np.float64]


def _fit(
    net: TabularNet,
    x: Array,
    y: Array,
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
) -> None:
    features = torch.tensor(x, dtype=torch.float32)
    mean = features.mean(dim=0)
    std = features.std(dim=0).clamp_min(1e-6)
    net.feature_mean.copy_(mean)
    net.feature_std.copy_(std)
    target = torch.tensor(y, dtype=torch.float32).reshape(-1, 1)
    if net.task == "regression":
        net.target_mean.copy_(target.mean().reshape(1))
        net.target_std.copy_(target.std().reshape(1))
        target = (target - net.target_mean) / net.target_std
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = torch.nn.MSELoss()
    else:
        loss_fn = torch.nn.BCEWithLogitsLoss()
    optimiser = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    net.train()
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = loss_fn(net.logits(features), target)
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
    net.eval()


def _predict(net: TabularNet, x: Array) -> tuple[Array, NDArray[np.float32]]:
    with torch.inference_mode():
        prediction, embedding = net(torch.tensor(x, dtype=torch.float32))
    return prediction.numpy().reshape(-1).astype(np.float64), embedding.numpy()


def _classification_metrics(y: Array, p: Array) -> dict[str, float]:
    predicted = (p >= 0.5).astype(int)
    positives = y == 1
    return {
        "accuracy": round(float(accuracy_score(y, predicted)), 4),
        "auroc": round(float(roc_auc_score(y, p)), 4),
        "sensitivity": round(float((predicted[positives] == 1).mean()), 4),
        "specificity": round(float((predicted[~positives] == 0).mean()), 4),
        "brier": round(float(brier_score_loss(y, p)), 4),
    }


def _regression_metrics(y: Array, p: Array) -> dict[str, float]:
    return {
        "r2": round(float(r2_score(y, p)), 4),
        "mae": round(float(mean_absolute_error(y, p)), 4),
        "rmse": round(float(root_mean_squared_error(y, p)), 4),
    }


def _save(
    net: TabularNet,
    folder: Path,
    *,
    in_features: int,
    metrics: dict[str, object],
    cases: CaseLibrary | None,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), folder / "weights.pt")
    example = torch.zeros((2, in_features), dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        net,
        (example,),
        input_names=["features__0"],
        output_names=["prediction__0", "embedding__1"],
        dynamic_shapes={"features": {0: batch}},
        dynamo=True,
        external_data=False,
    )
    if program is None:
        raise RuntimeError("the ONNX exporter returned no program")
    program.save(str(folder / "model.onnx"), external_data=False)
    if cases is not None:
        cases.save(folder / "cases.npz")
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def _split(
    x: Array, y: Array, stratify: bool
) -> tuple[Array, Array, Array, Array, NDArray[np.int64], NDArray[np.int64]]:
    index = np.arange(len(y))
    train_idx, test_idx = train_test_split(
        index,
        test_size=TEST_FRACTION,
        random_state=SPLIT_SEED,
        stratify=y if stratify else None,
    )
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx], train_idx, test_idx


def train_breast(out: Path) -> tuple[TabularNet, CaseLibrary, dict[str, Array]]:
    """Train the breast FNA malignancy specialist; return it, its case library and splits."""
    data = load_breast_cancer()
    x = np.asarray(data.data, dtype=np.float64)
    # scikit-learn codes malignant as 0; the model predicts P(malignant).
    y = (np.asarray(data.target) == 0).astype(np.float64)
    x_train, y_train, x_test, y_test, train_idx, _ = _split(x, y, stratify=True)
    torch.manual_seed(TORCH_SEED)
    net = TabularNet(x.shape[1], hidden=[32], embedding_dim=16, task="classification")
    # Weight decay keeps the tanh embedding out of saturation, so similar cases stay
    # distinguishable for retrieval.
    _fit(net, x_train, y_train, epochs=200, lr=3e-3, weight_decay=1e-2)
    p_test, _ = _predict(net, x_test)
    _, train_embeddings = _predict(net, x_train)
    labels = np.where(y_train == 1, "malignant", "benign")
    cases = CaseLibrary.build(
        case_ids=[f"wdbc-{int(i):03d}" for i in train_idx],
        embeddings=train_embeddings,
        labels=[str(label) for label in labels],
        values=y_train,
    )
    metrics: dict[str, object] = {
        "held_out": _classification_metrics(y_test, p_test),
        "n_train": len(y_train),
        "n_test": len(y_test),
        "split_seed": SPLIT_SEED,
        "torch_seed": TORCH_SEED,
    }
    _save(net, out / "breast-fna-malignancy" / "1", in_features=30, metrics=metrics, cases=cases)
    splits = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return net, cases, splits


def train_diabetes(out: Path) -> None:
    """Train the diabetes one-year progression specialist."""
    data = load_diabetes(scaled=False)
    x = np.asarray(data.data, dtype=np.float64)
    y = np.asarray(data.target, dtype=np.float64)
    x_train, y_train, x_test, y_test, train_idx, _ = _split(x, y, stratify=False)
    torch.manual_seed(TORCH_SEED)
    # Small and strongly regularised: 353 training rows overfit a wider network.
    net = TabularNet(x.shape[1], hidden=[16], embedding_dim=8, task="regression")
    _fit(net, x_train, y_train, epochs=200, lr=1e-3, weight_decay=5e-2)
    p_test, _ = _predict(net, x_test)
    _, train_embeddings = _predict(net, x_train)
    cases = CaseLibrary.build(
        case_ids=[f"efron-{int(i):03d}" for i in train_idx],
        embeddings=train_embeddings,
        labels=[f"progression {value:.0f}" for value in y_train],
        values=y_train,
    )
    metrics: dict[str, object] = {
        "held_out": _regression_metrics(y_test, p_test),
        "n_train": len(y_train),
        "n_test": len(y_test),
        "split_seed": SPLIT_SEED,
        "torch_seed": TORCH_SEED,
    }
    _save(net, out / "diabetes-progression" / "1", in_features=10, metrics=metrics, cases=cases)


def generalist_features(
    probability: float, neighbour_values: list[float], similarities: list[float]
) -> list[float]:
    """The generalist's input: specialist probability, neighbour vote and mean similarity."""
    return [
        probability,
        float(np.mean(neighbour_values)) if neighbour_values else 0.5,
        float(np.mean(similarities)) if similarities else 0.0,
    ]


def _context_features(net: TabularNet, cases: CaseLibrary, x: Array, *, leave_out: bool) -> Array:
    probabilities, embeddings = _predict(net, x)
    rows = []
    for i, (p, e) in enumerate(zip(probabilities, embeddings, strict=True)):
        k = GENERALIST_NEIGHBOURS + (1 if leave_out else 0)
        found = cases.nearest(e, k)
        if leave_out:
            # The training row is in the library; drop it so the generalist learns from
            # neighbours as it will see them for a new patient.
            found = [n for n in found if n.index != i][:GENERALIST_NEIGHBOURS]
        rows.append(
            generalist_features(float(p), [n.value for n in found], [n.similarity for n in found])
        )
    return np.asarray(rows, dtype=np.float64)


def train_generalist(
    out: Path, specialist: TabularNet, cases: CaseLibrary, splits: dict[str, Array]
) -> None:
    """Train the breast FNA generalist on the specialist's output and its neighbours."""
    x_train = _context_features(specialist, cases, splits["x_train"], leave_out=True)
    x_test = _context_features(specialist, cases, splits["x_test"], leave_out=False)
    torch.manual_seed(TORCH_SEED)
    net = TabularNet(3, hidden=[8], embedding_dim=4, task="classification")
    _fit(net, x_train, splits["y_train"], epochs=300, lr=1e-2, weight_decay=1e-4)
    p_test, _ = _predict(net, x_test)
    metrics: dict[str, object] = {
        "held_out": _classification_metrics(splits["y_test"], p_test),
        "n_train": len(splits["y_train"]),
        "n_test": len(splits["y_test"]),
        "neighbours": GENERALIST_NEIGHBOURS,
        "split_seed": SPLIT_SEED,
        "torch_seed": TORCH_SEED,
    }
    _save(net, out / "breast-fna-generalist" / "1", in_features=3, metrics=metrics, cases=None)


def main(argv: list[str] | None = None) -> None:
    """Train every shipped model into ``--out`` (the package's models folder by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODELS_DIR)
    args = parser.parse_args(argv)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    specialist, cases, splits = train_breast(args.out)
    train_diabetes(args.out)
    train_generalist(args.out, specialist, cases, splits)
    for metrics in sorted(args.out.glob("*/*/metrics.json")):
        print(metrics.relative_to(args.out), json.loads(metrics.read_text())["held_out"])


if __name__ == "__main__":
    main()
