"""Baselines of the group level on real derivatives (e.g. oasis1-dev), without training any deep model.

Runs exactly what the group level runs for its baselines (cohort, --classes, duplicate-scan check, the
participant-level splits of the ``mri`` cohort, :func:`bidsad.learn.baselines.run_baselines`) and prints each
baseline's pooled balanced accuracy and macro ROC AUC with their 95% bootstrap CIs, the C chosen per fold,
the machine and its load; the last line is a summary. Writes ``OUT_DIR/group/baseline-*/predictions.tsv``:
give it a writable copy of the derivatives (e.g. symlinked participant folders).

Run: python benchmarks/baselines_oasis.py BIDS_DIR OUT_DIR [--classes CN AD] [--folds 5] [--repeats 5]
     [--preset small] [--seed 42] [--n-bootstrap 1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections import Counter
from pathlib import Path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bids_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--classes", nargs="+", default=["CN", "AD"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    opts = parser.parse_args(argv)

    from bidsad.config import Config
    from bidsad.learn.baselines import run_baselines
    from bidsad.learn.cohort import build_cohort, check_duplicate_scans, select_classes
    from bidsad.learn.splits import plan_splits

    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; "
          f"load average at start {os.getloadavg()[0]:.1f}")
    start = time.perf_counter()
    config = Config()
    config.execution.bids_dir, config.execution.out_dir = str(opts.bids_dir), str(opts.out_dir)
    config.learning.folds, config.learning.repeats = opts.folds, opts.repeats
    config.learning.n_bootstrap, config.learning.n_permutations = opts.n_bootstrap, 1000
    config.seeds.random_seed = opts.seed
    cohort = build_cohort(opts.out_dir, opts.bids_dir, opts.preset)
    cohort, classes, notes = select_classes(cohort, opts.classes)
    notes += check_duplicate_scans(cohort)
    included = cohort[cohort["included"]].reset_index(drop=True)
    counts = Counter(classes[c] for c in included["label"].astype(int))
    print(f"task {' vs '.join(classes)}: {len(included)} participants ({dict(counts)}); "
          f"{opts.folds}-fold x {opts.repeats} repeats, seed {opts.seed}")
    splits, warnings = plan_splits(included, [("mri",)], opts.folds, opts.seed, opts.repeats, classes=classes)
    results, _, more = run_baselines(opts.out_dir, included, splits, config, classes)
    for note in notes + warnings + more:
        print("note:", note)
    summary = []
    for name, result in results.items():
        pooled, ci = result["pooled"], result["ci"]
        chosen = Counter(h["C"] for h in result["hyperparameters"].values())
        text = {m: f"{pooled[m]:.3f} [{ci[m]['ci_low']:.3f}, {ci[m]['ci_high']:.3f}]" for m in ("balanced_accuracy", "roc_auc_macro")}
        print(f"{name:22s} balanced accuracy {text['balanced_accuracy']}, AUC {text['roc_auc_macro']}, "
              f"permutation p {result['permutation']['p_value']:.3f}; C chosen: "
              + ", ".join(f"{c:g} x{n}" for c, n in sorted(chosen.items())))
        summary.append(f"{name} {pooled['balanced_accuracy']:.2f}/{pooled['roc_auc_macro']:.2f}")
    print(f"wall time {time.perf_counter() - start:.0f} s; load average at end {os.getloadavg()[0]:.1f}")
    print("baselines (balanced accuracy / AUC): " + "; ".join(summary))


if __name__ == "__main__":
    main()
