"""B3: group-level peak RSS of one training epoch with 10, 20 and 40 participants (small preset).

For each cohort size, a fresh Python process (so that peaks do not carry over) builds the cohort table
from synthetic group-level inputs (``bidsad.synthetic.make_synthetic_derivatives``, preprocessing
bypassed), streams it with the group level's ``tf.data`` pipeline (memory-mapped tensors, on-the-fly
augmentation) and trains ``3dcnn-lstm`` for one epoch; it reports its own peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and the RSS before training.

Run: ``python benchmarks/group_memory.py [--sizes 10 20 40] [--model 3dcnn-lstm]``.
Target (issue 10): peak RSS with 40 participants <= 1.2 x that with 10.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def _rss_mb() -> float:
    """Current resident set size of this process (MB), from /proc."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(n: int, model_name: str, root: Path) -> None:
    """One measurement (run in a fresh process): print a JSON line with the figures."""
    import resource
    import time

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from bidsad.learn.cohort import build_cohort
    from bidsad.config import MODALITIES, Augmentation
    from bidsad.learn.data import make_dataset, tensor_shapes, voxel_sizes
    from bidsad.learn.layers import with_augmentation
    from bidsad.learn.models import build_model

    modalities = MODALITIES[model_name]
    rows = build_cohort(root / "derivatives", root / "bids", "small").head(n)
    keras.utils.set_random_seed(0)
    model = build_model(model_name, tensor_shapes(root / "derivatives", rows.iloc[0], modalities), 3)
    model = with_augmentation(model, dataclasses.asdict(Augmentation()),
                              voxel_sizes(root / "derivatives", rows.iloc[0], modalities), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before = _rss_mb()
    start = time.perf_counter()
    model.fit(make_dataset(root / "derivatives", rows, modalities, batch_size=2, shuffle=True, seed=0),
              epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
    print(json.dumps({"n": len(rows), "rss_before_mb": round(before, 1), "peak_rss_mb": round(peak, 1),
                      "epoch_s": round(seconds, 1)}))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 40])
    parser.add_argument("--model", default="3dcnn-lstm")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.child:
        child(opts.child, opts.model, opts.root)
        return
    from bidsad.synthetic import make_synthetic_derivatives

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        make_synthetic_derivatives(Path(tmp), max(opts.sizes), preset="small", seed=0)
        for n in opts.sizes:
            proc = subprocess.run([sys.executable, __file__, "--child", str(n), "--model", opts.model, "--root", tmp],
                                  capture_output=True, text=True, check=True)
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(result)
            print(f"{n:3d} participants: peak RSS {result['peak_rss_mb']:7.1f} MB (before training "
                  f"{result['rss_before_mb']:.1f} MB), epoch {result['epoch_s']:.1f} s")
    ratio = results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
    print(f"B3 {opts.model} small: peak RSS {results[-1]['n']}/{results[0]['n']} participants = {ratio:.3f}x "
          f"({results[0]['peak_rss_mb']:.0f} -> {results[-1]['peak_rss_mb']:.0f} MB; target <= 1.2x)")


if __name__ == "__main__":
    main()
