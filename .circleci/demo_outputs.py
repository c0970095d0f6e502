"""The file list of a demo run, which CI compares with ``.circleci/demo_outputs.txt``.

Usage (from the repository root):

    python .circleci/demo_outputs.py list OUT_DIR   # print OUT_DIR's files, normalised, one a line
    python .circleci/demo_outputs.py regenerate     # run the demo here, rewrite .circleci/demo_outputs.txt

``regenerate`` runs ``python -m bidsad`` with the interpreter that runs this script (use the one of
the project's virtual environment: ``.venv/bin/python .circleci/demo_outputs.py regenerate``) on
``tests/data/bids-real-mini``: the participant level, then the group level, with :data:`DEMO_OPTIONS`
(the options CircleCI's demo job uses too), in a temporary folder.

Normalised list: every file under OUT_DIR (folders are implied), as a POSIX path relative to OUT_DIR,
sorted. Names that differ from run to run are replaced by a placeholder: the run identifier
(``YYYYMMDD-HHMMSS_<8 hex>``) in ``logs/config-<level>-<run>.toml`` becomes ``<run>``. Only the
standard library is used, so CI can list a container's outputs without installing bidsad.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIST_FILE = ROOT / ".circleci" / "demo_outputs.txt"
DEMO = ROOT / "tests" / "data" / "bids-real-mini"
#: Options of the demo run at each level (CircleCI's demo job passes the same ones).
DEMO_OPTIONS = {
    "participant": ["--preset", "small", "--nprocs", "2"],
    "group": ["--preset", "small", "--epochs", "2"],
}
RUN_ID = re.compile(r"\d{8}-\d{6}_[0-9a-f]{8}")


def list_outputs(out_dir: Path) -> list[str]:
    """Return the normalised file list of ``out_dir`` (see the module docstring)."""
    out_dir = Path(out_dir)
    names = {RUN_ID.sub("<run>", path.relative_to(out_dir).as_posix())
             for path in out_dir.rglob("*") if path.is_file()}
    return sorted(names)


def regenerate() -> Path:
    """Run the demo in a temporary folder and rewrite :data:`LIST_FILE`; return its path.

    Raises
    ------
    subprocess.CalledProcessError
        A level exited with a non-zero status (its output is shown).
    """
    with tempfile.TemporaryDirectory(prefix="bidsad-demo-") as tmp:
        out, work = Path(tmp) / "out", Path(tmp) / "work"
        for level, options in DEMO_OPTIONS.items():
            subprocess.run([sys.executable, "-m", "bidsad", str(DEMO), str(out), level, "-w", str(work), *options],
                           check=True, cwd=ROOT)
        LIST_FILE.write_text("".join(f"{name}\n" for name in list_outputs(out)))
    return LIST_FILE


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "list":
        sys.stdout.write("".join(f"{name}\n" for name in list_outputs(Path(argv[1]))))
        return 0
    if argv == ["regenerate"]:
        print(f"wrote {regenerate()}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
