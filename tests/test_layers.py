"""The house plan (docs/architecture.md): imports point down only, modules stay small, orchestrators stay readable.

The layers are import-linter contracts in pyproject.toml (``[tool.importlinter]``); grimp reads every import,
those inside functions (the lazy heavy ones) included.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bidsad"
MAX_MODULE_LINES = 400
MAX_ORCHESTRATOR_FUNCTION_LINES = 80
ORCHESTRATORS = ("participant.py", "group")


def test_import_layers_hold():
    """import-linter: cli -> participant | group -> reports -> workflows | learn -> interfaces -> bottom.

    Run in a subprocess: import-linter configures logging with ``disable_existing_loggers`` (bidsad's logger
    went silent for every later test of the session)."""
    pytest.importorskip("importlinter", reason="import-linter is a test dependency (pip install '.[test]')")
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def _orchestrator_files():
    for name in ORCHESTRATORS:
        path = PACKAGE / name
        yield from (sorted(path.rglob("*.py")) if path.is_dir() else [path])


def test_orchestrator_functions_under_80_lines():
    files = list(_orchestrator_files())
    assert files, "the orchestrators moved: update ORCHESTRATORS"
    long = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_ORCHESTRATOR_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.name}"] = length
    assert long == {}
