"""The committed generated code must equal a fresh generation from proto/."""

import filecmp
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_current(tmp_path):
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_protos"] = module
    spec.loader.exec_module(module)
    module.generate(tmp_path / "out")
    committed = ROOT / "his_sdk" / "_generated"
    fresh = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.py*"))
    existing = sorted(
        p.relative_to(committed) for p in committed.rglob("*.py*") if "__pycache__" not in p.parts
    )
    assert fresh == existing, "run: python scripts/gen_protos.py"
    for rel in fresh:
        assert filecmp.cmp(tmp_path / "out" / rel, committed / rel, shallow=False), (
            f"{rel} is stale; run: python scripts/gen_protos.py"
        )
