"""Shared fixtures: the bundled real demo dataset and a session-wide end-to-end run on it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).parent / "data" / "bids-real-mini"


def run_bidsad(*args, check_rc=None, timeout=1200) -> subprocess.CompletedProcess:
    """Run ``python -m bidsad ARGS`` in a subprocess; assert the exit status when ``check_rc`` is given."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-m", "bidsad", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)
    if check_rc is not None:
        assert proc.returncode == check_rc, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def tree_checksums(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (relative path -> digest), plus the folder list."""
    sums = {}
    for path in sorted(Path(root).rglob("*")):
        rel = str(path.relative_to(root))
        sums[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "<dir>"
    return sums


@pytest.fixture
def quick_config(tmp_path):
    """A ``--config-file`` with 20 bootstrap resamples and 20 permutations (fast group-level evaluation)."""
    path = tmp_path / "quick.toml"
    path.write_text("[learning]\nn_bootstrap = 20\nn_permutations = 20\n")
    return path


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return DEMO


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """Participant then group level on the bundled demo data (small preset, 2 epochs)."""
    root = tmp_path_factory.mktemp("demo")
    out, work = root / "out", root / "work"
    before = tree_checksums(DEMO)
    participant = run_bidsad(DEMO, out, "participant", "--preset", "small", "-w", work, "--nprocs", "2", check_rc=0)
    group = run_bidsad(DEMO, out, "group", "--preset", "small", "--epochs", "2", "-w", work, check_rc=0)
    return {"out": out, "work": work, "before": before, "participant": participant, "group": group}
