"""Benchmark: wall time, CPU time, peak memory and per-node times of the participant level with BOLD.

Usage: python benchmarks/participant_benchmark.py [--nprocs 2] [--cases mini,full] [--preset paper]

Cases, each a one-participant BIDS dataset in a temporary folder, run as ``bidsad ... participant
--nprocs N`` in a subprocess whose process tree's resident memory is sampled every 0.2 s:

* ``mini``: sub-03 of the bundled ``tests/data/bids-real-mini`` (T1w 95x148x149 at 2 mm; BOLD 64x64x34x60);
* ``full``: a full-size participant built from the same real data: the T1w resampled to 1 mm on a
  176x256x256 grid, and a 200-volume 64x64x34 BOLD at 3x3x3.5 mm made by repeating the real run's volumes
  and moving each by a known rigid motion (random walk, within 1 mm / 1 degree).

Prints the figures per case (wall, CPU time of the process tree, peak RSS, the ten slowest nipype
nodes from their result files); the last line is a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from measure import run_measured  # noqa: E402

MINI = ROOT / "tests" / "data" / "bids-real-mini"


def make_dataset(case: str, root: Path) -> Path:
    """Write the one-participant BIDS dataset of ``case`` under ``root`` and return its path."""
    import nibabel as nb
    import numpy as np

    bids = root / "bids"
    anat, func = bids / "sub-01" / "anat", bids / "sub-01" / "func"
    anat.mkdir(parents=True)
    func.mkdir(parents=True)
    (bids / "dataset_description.json").write_text(json.dumps({"Name": f"benchmark {case}", "BIDSVersion": "1.10.0"}))
    (bids / "participants.tsv").write_text("participant_id\tdiagnosis\nsub-01\tCN\n")
    (func / "sub-01_task-rest_bold.json").write_text(json.dumps({"RepetitionTime": 2.0, "TaskName": "rest"}))
    t1w_src = MINI / "sub-03" / "anat" / "sub-03_T1w.nii.gz"
    bold_src = MINI / "sub-03" / "func" / "sub-03_task-rest_bold.nii.gz"
    if case == "mini":
        shutil.copyfile(t1w_src, anat / "sub-01_T1w.nii.gz")
        shutil.copyfile(bold_src, func / "sub-01_task-rest_bold.nii.gz")
        return bids
    from nilearn.image import resample_img
    from scipy import ndimage

    from bidsad.interfaces.motion import fov_centre, rigid_matrix

    t1w = nb.as_closest_canonical(nb.load(t1w_src))
    centre = fov_centre(t1w)
    shape = np.array([176, 256, 256])
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = centre - (shape - 1) / 2
    big = resample_img(t1w, target_affine=affine, target_shape=tuple(shape), interpolation="continuous",
                       force_resample=True, copy_header=True)
    nb.save(nb.Nifti1Image(np.asarray(big.dataobj, np.float32), affine), anat / "sub-01_T1w.nii.gz")
    bold = nb.load(bold_src)
    data = np.asarray(bold.dataobj, np.float32)
    rng = np.random.default_rng(0)
    walk = np.clip(np.cumsum(rng.normal(0, 0.15, (200, 6)), axis=0), -1, 1)
    params = np.column_stack([walk[:, :3], np.deg2rad(walk[:, 3:])])
    c = fov_centre(bold)
    ijk = np.indices(data.shape[:3]).reshape(3, -1).astype(float)
    world = np.vstack([bold.affine[:3, :3] @ ijk + bold.affine[:3, 3:4], np.ones(ijk.shape[1])])
    out = np.empty((*data.shape[:3], 200), np.float32)
    for t in range(200):
        src = np.linalg.inv(bold.affine) @ np.linalg.inv(rigid_matrix(params[t], c)) @ world
        out[..., t] = ndimage.map_coordinates(data[..., t % data.shape[3]], src[:3], order=1).reshape(data.shape[:3])
    nb.save(nb.Nifti1Image(out, bold.affine, bold.header), func / "sub-01_task-rest_bold.nii.gz")
    return bids


def node_times(work: Path, top: int = 10) -> list[tuple[float, str]]:
    """(seconds, node name) of the ``top`` slowest nipype nodes, from their result files."""
    from nipype.utils.filemanip import loadpkl

    rows = []
    for path in work.rglob("result_*.pklz"):
        try:
            duration = loadpkl(path).runtime.duration
        except Exception:  # a node without runtime (e.g. cached identity) is skipped
            continue
        rows.append((float(duration), path.parent.name))
    return sorted(rows, reverse=True)[:top]


def run_case(case: str, args, tmp: Path) -> dict:
    bids = make_dataset(case, tmp / case)
    work = tmp / case / "work"
    cmd = [sys.executable, "-m", "bidsad", str(bids), str(tmp / case / "out"), "participant", "--nprocs",
           str(args.nprocs), "--preset", args.preset, "-w", str(work)]
    result = run_measured(cmd)
    wall, cpu, peak = result["wall"], result["cpu"], result["peak_mb"]
    if result["returncode"] != 0:
        print(result["output"])
        sys.exit(f"bidsad failed on case {case} with exit status {result['returncode']}")
    print(f"== case {case}: preset {args.preset}, --nprocs {args.nprocs}, CPUs on this machine {os.cpu_count()}")
    print(f"wall time {wall:.1f} s; CPU time (process tree) {cpu:.1f} s; peak RSS (tree, sampled) {peak:.0f} MB")
    for seconds, name in node_times(work):
        print(f"  {seconds:7.1f} s  {name}")
    return {"wall": wall, "cpu": cpu, "peak": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--cases", default="mini,full")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bidsad-bench-") as tmp:
        for case in args.cases.split(","):
            results[case] = run_case(case, args, Path(tmp))
    print("SUMMARY participant level --nprocs {}: {}".format(args.nprocs, "; ".join(
        f"{case} {r['wall']:.0f} s wall, {r['cpu']:.0f} s CPU, {r['peak'] / 1e3:.2f} GB peak RSS"
        for case, r in results.items())))


if __name__ == "__main__":
    main()
