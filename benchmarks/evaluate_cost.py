"""Cost of the group-level evaluation of one model: metrics, bootstrap CIs and permutation p-value.

Synthetic out-of-fold predictions of n participants (three balanced classes, seeded), evaluated with the
defaults (1000 bootstrap resamples, 1000 permutations). Prints seconds per step; last line a summary.
Run: python benchmarks/evaluate_cost.py [n ...]   (default: 30 300)
"""

from __future__ import annotations

import sys
import time

import numpy as np

from bidsad.learn.evaluate import (DEFAULT_BOOTSTRAP, DEFAULT_PERMUTATIONS, bootstrap_ci, classification_metrics,
                                   permutation_pvalue)


def main(sizes: list[int]) -> None:
    classification_metrics([0, 1, 2], np.eye(3))  # imports
    summary = []
    for n in sizes:
        rng = np.random.default_rng(0)
        y = np.arange(n) % 3
        proba = rng.dirichlet([1, 1, 1], n)
        start = time.perf_counter()
        bootstrap_ci(y, proba, n_resamples=DEFAULT_BOOTSTRAP, seed=0)
        boot = time.perf_counter() - start
        start = time.perf_counter()
        permutation_pvalue(y, proba, n_permutations=DEFAULT_PERMUTATIONS, seed=0)
        perm = time.perf_counter() - start
        print(f"n={n}: bootstrap ({DEFAULT_BOOTSTRAP}) {boot:.1f} s, permutation ({DEFAULT_PERMUTATIONS}) {perm:.1f} s")
        summary.append(f"n={n} {boot + perm:.1f} s")
    print("evaluation per model: " + ", ".join(summary))


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [30, 300])
