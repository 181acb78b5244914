"""The theorems in proofs/ ship inside the wheel as fisherlab._theorems, so that
`fl.proofs.all()` works from an installed (non-editable) package too."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_every_theorem_module(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 and "No module named" in proc.stderr:
        pytest.skip(f"build backend unavailable: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("fisherlab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"fisherlab/_theorems/{p.name}" for p in (ROOT / "proofs").glob("*.py")}
    assert expected and expected <= names, sorted(expected - names)
    packages = {n.rsplit("/", 1)[0] for n in names if n.endswith("__init__.py")}
    on_disk = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "fisherlab").rglob("__init__.py")}
    assert on_disk <= packages, f"subpackages missing from pyproject's package list: {on_disk - packages}"
