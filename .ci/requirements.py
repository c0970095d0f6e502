"""Print bidsad's runtime requirements for one TensorFlow flavour of the container image, one a line.

Usage: ``python3 .ci/requirements.py cpu|cuda`` (from the repository root; standard library only).

``cpu`` prints the ``dependencies`` of ``pyproject.toml`` unchanged (``tensorflow-cpu`` on x86-64 Linux).
``cuda`` replaces both TensorFlow requirements by one unconditional ``tensorflow[and-cuda]`` with the same
version range, so that pip installs TensorFlow's CUDA wheels from PyPI; the image then installs bidsad's
own wheel with ``--no-deps``. The Dockerfile and tests/test_containers.py use it with the pins of
``.ci/constraints.txt`` and ``.ci/constraints-<flavour>.txt``.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
FLAVOURS = ("cpu", "cuda")
_TENSORFLOW = re.compile(r"tensorflow(-cpu)?(?![\w-])\s*(?P<spec>[^;]*)(;.*)?")


def requirements(flavour: str, pyproject: Path = PYPROJECT) -> list[str]:
    """Return the requirement strings (PEP 508) of ``flavour``; ValueError for an unknown flavour or
    when ``cuda`` finds no TensorFlow requirement to replace."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown TensorFlow flavour {flavour!r}: choose one of {', '.join(FLAVOURS)}")
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    if flavour == "cpu":
        return deps
    specs = {m["spec"].strip() for m in map(_TENSORFLOW.fullmatch, deps) if m}
    if len(specs) != 1:
        raise ValueError(f"{pyproject}: expected TensorFlow requirements with one version range, got {specs}")
    return [dep for dep in deps if not _TENSORFLOW.fullmatch(dep)] + [f"tensorflow[and-cuda]{specs.pop()}"]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print("\n".join(requirements(sys.argv[1])))
