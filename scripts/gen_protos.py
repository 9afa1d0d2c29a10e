"""Generate Python code from proto/his/v1 into his_sdk/_generated (python scripts/gen_protos.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT_ROOT = ROOT / "his_sdk" / "_generated"
PACKAGE = "his_sdk._generated"


def generate(out_root: Path = OUT_ROOT) -> None:
    """Run protoc on every .proto file and post-process its output into ``out_root``."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *protos,
        ]
        subprocess.run(cmd, check=True, cwd=PROTO_ROOT)
        if out_root.exists():
            shutil.rmtree(out_root)
        shutil.copytree(tmp, out_root)
    _fix_imports(out_root)
    _write_inits(out_root)


def _fix_imports(out_root: Path) -> None:
    pattern = re.compile(r"^from his\.v1 import", re.MULTILINE)
    for path in out_root.rglob("*.py*"):
        text = path.read_text()
        fixed = pattern.sub(f"from {PACKAGE}.his.v1 import", text)
        if fixed != text:
            path.write_text(fixed)


def _write_inits(out_root: Path) -> None:
    for folder in [out_root, *sorted(p for p in out_root.rglob("*") if p.is_dir())]:
        modules = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")
        lines = [
            '"""Generated protobuf and gRPC code; regenerate with scripts/gen_protos.py."""',
            "",
        ]
        if modules:
            lines += [f"from . import {m}" for m in modules]
            lines += ["", "__all__ = ["] + [f'    "{m}",' for m in modules] + ["]"]
        (folder / "__init__.py").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_ROOT)
