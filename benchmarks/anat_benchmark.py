"""Benchmark: wall time and peak memory of the participant level (anatomical workflow) on one 1 mm T1w.

Usage: python benchmarks/anat_benchmark.py [--nprocs 2] [--preset paper] [--anat-registration syn]

Builds a one-participant BIDS dataset around colin27 (tests/data/colin27, 181x217x181 at 1 mm) in a
temporary folder, runs ``bidsad ... participant`` in a subprocess and samples the resident memory of
its whole process tree (nipype workers included) every 0.2 s. Prints the figures; the last line is a
one-line summary.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from measure import run_measured

ROOT = Path(__file__).resolve().parents[1]
COLIN = ROOT / "tests" / "data" / "colin27" / "ch2_colin27_T1w.nii.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--anat-registration", default="syn")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bidsad-bench-") as tmp:
        bids = Path(tmp) / "bids"
        (bids / "sub-colin27" / "anat").mkdir(parents=True)
        shutil.copyfile(COLIN, bids / "sub-colin27" / "anat" / "sub-colin27_T1w.nii.gz")
        (bids / "dataset_description.json").write_text(json.dumps({"Name": "colin27", "BIDSVersion": "1.10.0"}))
        (bids / "participants.tsv").write_text("participant_id\tdiagnosis\nsub-colin27\tCN\n")
        cmd = [sys.executable, "-m", "bidsad", str(bids), str(Path(tmp) / "out"), "participant", "--nprocs",
               str(args.nprocs), "--preset", args.preset, "--anat-registration", args.anat_registration,
               "-w", str(Path(tmp) / "work")]
        result = run_measured(cmd)
        wall, peak, largest, output = result["wall"], result["peak_mb"], result["largest_mb"], result["output"]
        if result["returncode"] != 0:
            print(output)
            sys.exit(f"bidsad failed with exit status {result['returncode']}")
        print(f"input: colin27 T1w 181x217x181 at 1 mm; preset {args.preset}; --anat-registration "
              f"{args.anat_registration}; --nprocs {args.nprocs}; CPUs on this machine: {os.cpu_count()}")
        print(f"wall time: {wall:.1f} s")
        print(f"peak resident memory of the process tree (sum, sampled every 0.2 s): {peak:.0f} MB")
        print(f"peak resident memory of the largest single process: {largest:.0f} MB")
        print(f"SUMMARY anat workflow, 1 mm T1w, --nprocs {args.nprocs}: {wall:.1f} s wall, "
              f"{peak / 1e3:.2f} GB peak RSS (tree), {largest / 1e3:.2f} GB largest process")


if __name__ == "__main__":
    main()
