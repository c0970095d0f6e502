"""Trained models applied to new participants, on real derivatives (e.g. oasis1-dev): honest and leak-proof?

1. Splits the participants of the task (``--classes``, default CN AD) that have MRI features into two halves,
   stratified by diagnosis (seeded), as two out_dirs of symlinked derivatives under ``ROOT``.
2. Trains on half A (``bidsad BIDS A group --classes ... TRAIN_ARGS``), applies the models to half B
   (``group --apply-models A/group``) and prints B's metrics beside A's cross-validated 95% CIs.
3. Refusals: half B plus one training participant (same ID), and half B plus a renamed, recompressed copy
   of a training participant's raw T1w (a new participant ID, run through the participant level): both must
   exit 2 naming both participants.

Prints the machine and its load, every command's wall time and exit status; the last line is a summary.
Run: python benchmarks/apply_halves.py BIDS_DIR DERIVATIVES ROOT [--classes CN AD] [--seed 1]
     [--train-args "--models 3dcnn --epochs 20 ..."]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path


def bidsad(*args) -> subprocess.CompletedProcess:
    """Run ``python -m bidsad ARGS``; print its wall time and exit status."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bidsad", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    print(f"$ bidsad {' '.join(map(str, args))}\n  exit {proc.returncode} after {time.perf_counter() - start:.0f} s "
          f"(load average {os.getloadavg()[0]:.1f})")
    return proc


def linked_copy(derivatives: Path, labels, out: Path) -> Path:
    """``out`` with dataset_description.json and the participants' folders as symlinked files (real folders)."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(derivatives / "dataset_description.json", out / "dataset_description.json")
    for label in labels:
        if not (out / label).exists():
            shutil.copytree(derivatives / label, out / label, symlinks=False, copy_function=os.symlink)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bids_dir", type=Path)
    parser.add_argument("derivatives", type=Path)
    parser.add_argument("root", type=Path)
    parser.add_argument("--classes", nargs="+", default=["CN", "AD"])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--copy-of", default="sub-0001", help="training participant whose raw T1w is copied (kept in half A)")
    parser.add_argument("--train-args", default="--models 3dcnn --epochs 20 --learning-rate 1e-4 --class-weight balanced")
    opts = parser.parse_args(argv)

    import nibabel as nb
    import pandas as pd
    from sklearn.model_selection import StratifiedKFold

    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.1f}")
    bids_dir, derivatives, root = opts.bids_dir.resolve(), opts.derivatives.resolve(), opts.root.resolve()
    table = pd.read_csv(bids_dir / "participants.tsv", sep="\t", dtype=str)
    table = table[table["diagnosis"].isin(opts.classes)]
    table = table[[any((derivatives / p).glob(f"features/*_res-{opts.preset}_desc-model_T1w.npy")) for p in table["participant_id"]]]
    train_index, test_index = next(StratifiedKFold(2, shuffle=True, random_state=opts.seed).split(table, table["diagnosis"]))
    half_a, half_b = table.iloc[train_index], table.iloc[test_index]
    if opts.copy_of in set(half_b["participant_id"]):  # keep the copied participant in training: swap it with a peer
        moved = half_b[half_b["participant_id"] == opts.copy_of]
        peer = half_a[half_a["diagnosis"] == moved["diagnosis"].iloc[0]].iloc[:1]
        half_a = pd.concat([half_a.drop(peer.index), moved])
        half_b = pd.concat([half_b.drop(moved.index), peer])
    print(f"half A: {len(half_a)} ({half_a['diagnosis'].value_counts().to_dict()}), "
          f"half B: {len(half_b)} ({half_b['diagnosis'].value_counts().to_dict()})")
    out_a = linked_copy(derivatives, half_a["participant_id"], root / "A" / "out")
    out_b = linked_copy(derivatives, half_b["participant_id"], root / "B" / "out")
    common = ["--preset", opts.preset, "--classes", *opts.classes]
    proc = bidsad(bids_dir, out_a, "group", *common, *shlex.split(opts.train_args), "-w", root / "A" / "work")
    if proc.returncode != 0:
        print(proc.stderr[-3000:])
        return
    proc = bidsad(bids_dir, out_b, "group", "--apply-models", out_a / "group", "-w", root / "B" / "work")
    print(proc.stderr[-2000:])
    card = json.loads((out_b / "group" / "model_card.json").read_text())
    summary = []
    for name, evaluation in card["application"]["evaluation"].items():
        for metric, reference in card["models"][name]["cross_validated"].items():
            value, ci = evaluation["metrics"].get(metric), evaluation["ci"].get(metric, {})
            inside = evaluation["within_cross_validated_ci"][metric]
            print(f"{name} {metric}: half B {value:.3f} [{ci.get('ci_low', float('nan')):.3f}, {ci.get('ci_high', float('nan')):.3f}] "
                  f"(n={evaluation['n']}); half A cross-validated {reference['value']:.3f} "
                  f"[{reference['ci_low']:.3f}, {reference['ci_high']:.3f}]; inside: {inside}")
            if metric in ("balanced_accuracy", "roc_auc_macro"):
                summary.append(f"{name} {metric} B {value:.2f} vs A-CV [{reference['ci_low']:.2f}, {reference['ci_high']:.2f}] "
                               f"{'inside' if inside else 'OUTSIDE'}")

    # refusal 1: a training participant (same ID) in the new dataset
    trained = [p for p in half_a["participant_id"] if p != opts.copy_of][0]
    out_id = linked_copy(derivatives, [*half_b["participant_id"], trained], root / "B_with_training_id" / "out")
    proc = bidsad(bids_dir, out_id, "group", "--apply-models", out_a / "group", "-w", root / "B_with_training_id" / "work")
    print(proc.stderr[-1500:])
    summary.append(f"training ID refused: {proc.returncode == 2 and trained in proc.stderr}")

    # refusal 2: a renamed, recompressed copy of a training participant's raw T1w, through the participant level
    source = opts.copy_of
    new = "sub-9001"
    copy_bids = root / "renamed" / "bids"
    (copy_bids / new / "anat").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bids_dir / "dataset_description.json", copy_bids / "dataset_description.json")
    (copy_bids / "participants.tsv").write_text(f"participant_id\tdiagnosis\n{new}\tn/a\n")
    raw = sorted((bids_dir / source / "anat").glob(f"{source}*_T1w.nii*"))[0]
    image = nb.load(str(raw))
    if not (copy_bids / new / "anat" / f"{new}_T1w.nii").is_file():
        nb.save(nb.Nifti1Image(image.dataobj.get_unscaled() if hasattr(image.dataobj, "get_unscaled") else image.get_fdata(),
                               image.affine, image.header), str(copy_bids / new / "anat" / f"{new}_T1w.nii"))  # uncompressed
    copy_out = root / "renamed" / "out"
    for _ in range(40):  # a participant run of the copy already under way (same ROOT): wait for it (up to 20 min)
        if not copy_out.is_dir() or any((copy_out / new).glob(f"features/*_res-{opts.preset}_desc-model_T1w.npy")):
            break
        time.sleep(30)
    if not any((copy_out / new).glob(f"features/*_res-{opts.preset}_desc-model_T1w.npy")):
        proc = bidsad(copy_bids, copy_out, "participant", "--preset", opts.preset, "--participant-label", new,
                      "--nprocs", "1", "-w", root / "renamed" / "work")
        if proc.returncode != 0:
            print(proc.stderr[-3000:])
    out_copy = linked_copy(derivatives, half_b["participant_id"], root / "B_with_renamed_copy" / "out")
    linked_copy(copy_out, [new], out_copy)
    proc = bidsad(bids_dir, out_copy, "group", "--apply-models", out_a / "group", "-w", root / "B_with_renamed_copy" / "work")
    print(proc.stderr[-1500:])
    summary.append(f"renamed copy refused: {proc.returncode == 2 and new in proc.stderr and source in proc.stderr}")
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    print("apply halves: " + "; ".join(summary))


if __name__ == "__main__":
    main()
