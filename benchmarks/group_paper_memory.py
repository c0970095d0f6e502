"""Issue 15: peak RSS of the group level at the paper preset, 8 vs 24 participants (does it grow with the cohort?).

Writes synthetic paper-size group-level inputs (``python -m bidsad.synthetic --derivatives paper``: MRI
128x128x176, fMRI 216 frames of 64x64x32, about 125 MB per participant) for the largest size once, then runs
``bidsad BIDS DERIV group --preset paper --models 3dlstm --epochs 1 --folds 2`` on the first N participants
(``--participant-label``) in a subprocess whose process tree's resident memory is sampled every 0.2 s.

Run: ``python benchmarks/group_paper_memory.py [--sizes 8 24] [--model 3dlstm] [--root DIR]``.
Target (issue 15): growth <= 10 MB per added participant and peak <= 6 GB.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from measure import run_measured  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 24])
    parser.add_argument("--model", default="3dlstm")
    parser.add_argument("--root", type=Path, help="reuse (or write) the synthetic inputs here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bidsad-paper-mem-") as tmp:
        root = args.root or Path(tmp) / "synthetic"
        if not (root / "derivatives").is_dir():
            subprocess.run([sys.executable, "-m", "bidsad.synthetic", str(root), "--participants", str(max(args.sizes)),
                            "--derivatives", "paper"], check=True)
        labels = sorted(p.name[4:] for p in (root / "derivatives").glob("sub-*") if p.is_dir())
        results = {}
        for n in args.sizes:
            # each size gets its own out_dir (the group level reuses finished folds in out_dir/group), made of
            # links to the synthetic participants' folders and copies of the other top-level files
            out = Path(tmp) / f"out-{n}"
            out.mkdir()
            for entry in (root / "derivatives").iterdir():
                if entry.name.startswith("sub-") and entry.name[4:] not in labels[:n] or entry.name == "group":
                    continue
                if entry.is_dir():
                    (out / entry.name).symlink_to(entry, target_is_directory=True)
                else:
                    (out / entry.name).write_bytes(entry.read_bytes())
            cmd = [sys.executable, "-m", "bidsad", str(root / "bids"), str(out), "group",
                   "--preset", "paper", "--models", args.model, "--epochs", "1", "--folds", "2",
                   "--participant-label", *labels[:n], "-w", str(Path(tmp) / f"work-{n}")]
            load = os.getloadavg()[0]
            run = run_measured(cmd)
            if run["returncode"] != 0:
                print(run["output"][-4000:])
                sys.exit(f"the group level failed with {n} participants (exit {run['returncode']})")
            results[n] = run
            print(f"{n} participants: peak RSS {run['peak_mb']:.0f} MB, wall {run['wall']:.0f} s, CPU {run['cpu']:.0f} s "
                  f"(load before {load:.1f})", flush=True)
    small, large = min(args.sizes), max(args.sizes)
    growth = (results[large]["peak_mb"] - results[small]["peak_mb"]) / (large - small)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load after {os.getloadavg()[0]:.1f}")
    print(f"SUMMARY paper preset {args.model}: peak {results[small]['peak_mb']:.0f} MB ({small}) vs "
          f"{results[large]['peak_mb']:.0f} MB ({large}): {growth:.1f} MB per added participant")


if __name__ == "__main__":
    main()
