"""The group level on real derivatives (e.g. oasis1-dev), as a user runs it, with its wall time.

Runs ``bidsad BIDS_DIR OUT group`` on a writable copy of the derivatives (``ROOT/<name>/out``: symlinked
participant folders, so the derivatives are never written) and prints, from the run's ``metrics.json``, every
model's and baseline's pooled balanced accuracy and macro ROC AUC with their 95% bootstrap CIs and the
permutation p-value, the wall time, the machine and its load. Extra arguments go to ``bidsad ... group``
unchanged (e.g. ``--classes CN AD --repeats 5 --recipe paper``).

``--shuffle-labels`` runs the same on a copy of the input dataset whose participants.tsv has its diagnoses
permuted among the task's participants (seeded): a null run that must come out at chance (permutation p >
0.05). The copy holds participants.tsv, its JSON and dataset_description.json, with the participant folders
symlinked; the input dataset is never written.

Run: python benchmarks/oasis_cv.py BIDS_DIR DERIVATIVES ROOT NAME [--shuffle-labels] -- [bidsad group arguments]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path


def linked_copy(source: Path, target: Path, skip=()) -> None:
    """``target`` with a symlink to every entry of ``source`` except ``skip`` (names)."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name not in skip and not (target / entry.name).exists():
            (target / entry.name).symlink_to(entry.resolve())


def shuffled_dataset(bids_dir: Path, target: Path, classes: list[str], seed: int) -> Path:
    """A copy of ``bids_dir`` whose participants.tsv diagnoses are permuted among ``classes``' participants."""
    import numpy as np
    import pandas as pd

    from bidsad.phenotype import CLASS_NAMES, read_participants_tsv

    linked_copy(bids_dir, target, skip={"participants.tsv"})
    table = pd.read_csv(bids_dir / "participants.tsv", sep="\t", dtype=str, keep_default_na=False)
    codes = read_participants_tsv(bids_dir)["label"]  # indexed by label without "sub-"
    named = {label: CLASS_NAMES[int(code)] for label, code in codes.items() if not pd.isna(code)}
    rows = [i for i, p in enumerate(table["participant_id"]) if named.get(p.removeprefix("sub-")) in classes]
    values = table.loc[rows, "diagnosis"].to_numpy()
    table.loc[rows, "diagnosis"] = np.random.default_rng(seed).permutation(values)
    table.to_csv(target / "participants.tsv", sep="\t", index=False)
    return target


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bids_dir", type=Path)
    parser.add_argument("derivatives", type=Path)
    parser.add_argument("root", type=Path, help="folder for the run's copies (created)")
    parser.add_argument("name", help="name of this run under ROOT")
    parser.add_argument("--shuffle-labels", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="seed of the label permutation")
    opts = parser.parse_args(argv)

    run_dir = opts.root / opts.name
    shutil.rmtree(run_dir, ignore_errors=True)
    out = run_dir / "out"
    linked_copy(opts.derivatives.resolve(), out, skip={"group", "logs"})
    bids_dir = opts.bids_dir.resolve()
    if opts.shuffle_labels:
        classes = extra[extra.index("--classes") + 1:] if "--classes" in extra else ["CN", "MCI", "AD"]
        classes = [c for c in classes[:3] if not c.startswith("-")]
        bids_dir = shuffled_dataset(bids_dir, run_dir / "bids", classes, opts.seed)
    command = [sys.executable, "-m", "bidsad", str(bids_dir), str(out), "group", "-w", str(run_dir / "work"),
               "--skip-bids-validation", *extra]
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    print("command:", " ".join(command), flush=True)
    start = time.perf_counter()
    with open(run_dir / "group.log", "w") as log:
        status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
    print(f"exit {status}; wall time {wall:.0f} s ({wall / 60:.1f} min); load average at end {os.getloadavg()[0]:.2f}")
    metrics = json.loads((out / "group" / "metrics.json").read_text())
    print(f"task {metrics['task']}; recipe {metrics['recipe']}; repeats {metrics['repeats']}")
    for kind in ("models", "baselines"):
        for name, result in metrics.get(kind, {}).items():
            if "pooled" not in result:
                continue
            pooled, ci = result["pooled"], result["ci"]
            text = [f"{pooled[m]:.3f} [{ci[m]['ci_low']:.3f}, {ci[m]['ci_high']:.3f}]"
                    for m in ("balanced_accuracy", "roc_auc_macro")]
            p = (result.get("permutation") or {}).get("p_value")
            print(f"{name:22s} balanced accuracy {text[0]}, AUC {text[1]}, permutation p "
                  + ("n/a" if p is None else f"{p:.3f}"))
    sys.exit(status)


if __name__ == "__main__":
    main()
