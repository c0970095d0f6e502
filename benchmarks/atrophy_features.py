"""Benchmark: cost and accuracy of the atrophy features, and how well they separate diagnoses.

Usage: python benchmarks/atrophy_features.py OUT_DIR [--participants-tsv FILE] [--limit N] [--preset small]

``OUT_DIR`` is a bidsad participant-level output folder (any version: only the native tissue maps, brain
mask and transforms are read). For each participant the atrophy features are recomputed in a temporary
folder with the library functions the workflow uses (bidsad.interfaces.morphometry, tensors): the
modulated GM at 2 mm, the modulated GM tensor on the preset's grid, and the tissue / medial-temporal
volumes. Prints, per participant, wall and CPU time of each step and the native GM volume beside the
modulated maps' integrals; with ``--participants-tsv`` (``participant_id``, ``diagnosis``), CN versus AD
effect sizes (Cohen's d, AUC of the volume as a score, lower = AD) of GM, hippocampal and medial-temporal
GM as fractions of TIV. The last line is a one-line summary.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(function, *args, **kwargs):
    """``(result, wall s, CPU s of this process, all threads)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def participant_features(anat: Path, label: str, work: Path, shape) -> dict:
    """Recompute one participant's atrophy features; return volumes, integrals and step timings."""
    import numpy as np

    from bidsad.atlases import MTL_FILE, mtl_atlas
    from bidsad.interfaces import morphometry
    from bidsad.interfaces.registration import template_file
    from bidsad.interfaces.tensors import make_gm_tensor

    stem = anat / f"sub-{label}"
    probseg = [Path(f"{stem}_label-{t}_probseg.nii.gz") for t in ("CSF", "GM", "WM")]
    forward = Path(f"{stem}_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.h5")
    inverse = Path(f"{stem}_from-MNI152NLin2009aSym_to-T1w_mode-image_xfm.h5")
    row, times = {"participant_id": f"sub-{label}"}, {}
    stats, *times["modulated_2mm"] = timed(morphometry.modulate_gm, probseg[1], forward,
                                           template_file(work, "T1w", 2), work / "mod.nii.gz")
    meta, *times["tensor"] = timed(make_gm_tensor, probseg[1], forward, work / "tensor.npy", shape=shape)

    def volumes():
        tissues = morphometry.tissue_volumes(probseg, Path(f"{stem}_desc-brain_mask.nii.gz"))
        native = morphometry._native_labels(MTL_FILE, probseg[1], inverse, work / "mtl.nii.gz")
        return tissues, morphometry.regional_volumes(probseg[1], native, mtl_atlas()[1])

    (tissues, mtl), *times["volumes"] = timed(volumes)
    mtl_ml = dict(zip(mtl["name"], mtl["volume_ml"]))
    row.update(native_gm_ml=stats["native_ml"], modulated_2mm_ml=stats["modulated_ml"],
               tensor_ml=meta["ModulatedIntegral_ml"], tiv_ml=tissues["TIV"], gm_ml=tissues["GM"],
               hippocampus_ml=mtl_ml["hippocampus_left"] + mtl_ml["hippocampus_right"],
               mtl_ml=float(np.nansum(list(mtl_ml.values()))), jacobian_median=stats["jacobian_median"])
    for step, (wall, cpu) in times.items():
        row[f"{step}_wall_s"], row[f"{step}_cpu_s"] = wall, cpu
    return row


def effect_sizes(table, participants_tsv: Path):
    """CN vs AD: Cohen's d and AUC (lower volume = AD) of GM, hippocampal and MTL GM as fractions of TIV."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    diagnosis = pd.read_csv(participants_tsv, sep="\t").set_index("participant_id")["diagnosis"]
    table = table.join(diagnosis, on="participant_id")
    table = table[table["diagnosis"].isin(["CN", "AD"])]
    lines = []
    for column in ("gm_ml", "hippocampus_ml", "mtl_ml"):
        fraction = table[column] / table["tiv_ml"]
        cn, ad = fraction[table["diagnosis"] == "CN"], fraction[table["diagnosis"] == "AD"]
        pooled = np.sqrt(((len(cn) - 1) * cn.var() + (len(ad) - 1) * ad.var()) / (len(cn) + len(ad) - 2))
        auc = roc_auc_score(table["diagnosis"] == "AD", -fraction)
        lines.append(f"{column} / TIV: CN {cn.mean():.5f} (n={len(cn)}), AD {ad.mean():.5f} (n={len(ad)}), "
                     f"Cohen's d {(cn.mean() - ad.mean()) / pooled:.2f}, AUC {auc:.3f}")
    return lines


def main() -> None:
    import pandas as pd

    from bidsad.derivatives import PRESETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--participants-tsv", type=Path)
    parser.add_argument("--limit", type=int, default=0, help="at most this many participants (0: all)")
    parser.add_argument("--preset", default="small")
    args = parser.parse_args()
    anats = sorted(p for p in args.out_dir.glob("sub-*/anat")
                   if list(p.glob("*_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.h5")))
    anats = anats[: args.limit] if args.limit else anats
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {len(anats)} participant(s)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bidsad-atrophy-") as tmp:
        for anat in anats:
            label = anat.parent.name.removeprefix("sub-")
            work = Path(tmp) / label
            work.mkdir()
            row = participant_features(anat, label, work, PRESETS[args.preset]["mri_shape"])
            rows.append(row)
            print(f"sub-{label}: native GM {row['native_gm_ml']:.1f} ml, modulated 2 mm {row['modulated_2mm_ml']:.1f} ml, "
                  f"tensor {row['tensor_ml']:.1f} ml; TIV {row['tiv_ml']:.0f} ml, hippocampal GM {row['hippocampus_ml']:.2f} ml; "
                  + ", ".join(f"{s} {row[f'{s}_wall_s']:.1f} s ({row[f'{s}_cpu_s']:.1f} s CPU)"
                              for s in ("modulated_2mm", "tensor", "volumes")), flush=True)
    table = pd.DataFrame(rows)
    error = (table[["modulated_2mm_ml", "tensor_ml"]].div(table["native_gm_ml"], axis=0) - 1).abs().max()
    cost = table[[c for c in table if c.endswith("_cpu_s")]].sum(axis=1)
    print(f"load average now {os.getloadavg()[0]:.1f}")
    if args.participants_tsv:
        for line in effect_sizes(table, args.participants_tsv):
            print(line)
    print(f"SUMMARY atrophy features, {len(table)} participant(s): median {cost.median():.1f} s CPU per participant; "
          f"largest integral error {100 * error.max():.2f}% (2 mm map {100 * error['modulated_2mm_ml']:.2f}%, "
          f"{args.preset} tensor {100 * error['tensor_ml']:.2f}%)")


if __name__ == "__main__":
    main()
