"""A module of this repository as it was at another git revision (for before/after benchmarks)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_at(rev: str, path: str, name: str):
    """Import ``path`` (e.g. ``workflow_lib/metrics.py``) as it is at git revision ``rev``, as a
    stand-alone module called ``name`` (its imports resolve against the current checkout)."""
    src = subprocess.run(["git", "-C", ROOT, "show", f"{rev}:{path}"],
                         check=True, capture_output=True, text=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(src)
    try:
        spec = importlib.util.spec_from_file_location(name, f.name)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        os.unlink(f.name)
    return mod
