"""Benchmark: a cohort at the participant level, and its overhead against the bare library calls.

Usage: python benchmarks/cohort_benchmark.py [--participants 4] [--source oasis|demo] [--bold] [--nprocs 2]

* ``--source oasis``: the first N T1w of ``../shared/data/oasis1-dev`` (2 mm, skull-stripped; T1w only;
  never copied into the repository); ``--source demo``: the bundled ``tests/data/bids-real-mini`` T1w
  (2 mm), with their BOLD runs when ``--bold`` is given.
* Runs ``bidsad <bids> <out> participant --nprocs N --preset small`` in a subprocess (wall time, CPU time
  and peak RSS of its process tree: ``measure.py``), then ``--bare``: this script itself, in one process,
  calling the same library functions (``bidsad.interfaces``: antspyx, deepbet, nibabel, nilearn) on the same
  inputs one participant after the other, without nipype, sinks, sidecars or reports.

Prints seconds per participant, CPU seconds, peak RSS, the overhead ratio (bidsad CPU / bare CPU), the load
average, and the cores bidsad kept busy next to those the whole machine kept busy (on a shared machine the wall
time says more about the other processes than about bidsad's scheduling); the last line is a one-line summary.
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
sys.path.insert(0, str(ROOT))
from measure import run_measured  # noqa: E402

OASIS = ROOT.parent / "shared" / "data" / "oasis1-dev"
if not OASIS.is_dir():
    OASIS = Path("/work/shared/data/oasis1-dev")
DEMO = ROOT / "tests" / "data" / "bids-real-mini"


def make_cohort(source: str, n: int, bold: bool, root: Path) -> Path:
    """Write a BIDS dataset of ``n`` participants (T1w, and BOLD with ``bold``) under ``root``."""
    src = OASIS if source == "oasis" else DEMO
    subjects = sorted(p for p in src.glob("sub-*") if p.is_dir())[:n]
    bids = root / "bids"
    for sub in subjects:
        for t1w in sub.glob("anat/*_T1w.nii*"):
            (bids / sub.name / "anat").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(t1w, bids / sub.name / "anat" / t1w.name)
        for run in sub.glob("func/*_task-rest_bold.*") if bold else []:
            (bids / sub.name / "func").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run, bids / sub.name / "func" / run.name)
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "cohort benchmark", "BIDSVersion": "1.10.0"}))
    if (src / "task-rest_bold.json").is_file():
        shutil.copyfile(src / "task-rest_bold.json", bids / "task-rest_bold.json")
    # participants.tsv: the header and the rows of the participants taken (oasis1-dev's full table has an age
    # of 90, which the BIDS validator rejects: BIDS wants 89+ for de-identification)
    rows = (src / "participants.tsv").read_text().splitlines()
    names = {sub.name for sub in subjects}
    (bids / "participants.tsv").write_text("\n".join([rows[0], *(r for r in rows[1:] if r.split("\t")[0] in names)]) + "\n")
    return bids


def bare(bids: Path, work: Path) -> None:
    """The participant level's library calls, one participant after the other, in this process."""
    import nibabel as nb
    import numpy as np
    from nilearn.masking import compute_epi_mask

    from bidsad.bids import collect_participants
    from bidsad.derivatives import GRID_FOV_MM, PRESETS
    from bidsad.interfaces import brainmask, confounds, images, intensity, motion, registration, resample, segmentation, tensors

    shape = PRESETS["small"]["mri_shape"]
    bold_shape = tuple(PRESETS["small"]["bold_shape"])
    for part in collect_participants(bids, None, None, validate=False):
        out = work / part.label
        out.mkdir(parents=True)
        images.conform_image(part.t1w, out / "t1w.nii.gz", 3, "T1w", part.t1w.name)
        intensity.n4_correct(out / "t1w.nii.gz", out / "n4.nii.gz")
        brainmask.extract_brain(out / "n4.nii.gz", out / "mask.nii.gz")
        probseg = segmentation.segment_tissues(out / "n4.nii.gz", out / "mask.nii.gz", out)
        intensity.standardise_intensity(out / "n4.nii.gz", out / "mask.nii.gz", out / "std.nii.gz")
        fwd, _ = registration.register_to_template(out / "n4.nii.gz", out / "mask.nii.gz", out)
        ref = registration.template_file(out, "T1w", 2)
        for name, path, threshold in [("t1w", out / "std.nii.gz", None), ("mask", out / "mask.nii.gz", 0.5),
                                      *((f"p{i}", p, None) for i, p in enumerate(probseg))]:
            registration.apply_transforms(path, ref, [fwd], out / f"{name}_mni.nii.gz", threshold=threshold)
        tensors.make_mri_tensor(out / "std.nii.gz", out / "mask.nii.gz", fwd, out / "tensor.npy", shape=shape)
        for index, run in enumerate(part.bold):
            bold = out / f"bold{index}.nii.gz"
            images.conform_image(run.path, bold, 4, "BOLD", run.path.name, run.repetition_time)
            img = nb.load(bold)
            data = np.asarray(img.dataobj, dtype=np.float32)
            dummies = motion.nonsteady_volumes(data)
            nb.save(nb.Nifti1Image(motion.bold_reference(data, dummies), img.affine), out / "boldref.nii.gz")
            mask = compute_epi_mask(nb.load(out / "boldref.nii.gz"))
            nb.save(nb.Nifti1Image(np.asarray(mask.dataobj).astype(np.uint8), img.affine), out / "boldref_mask.nii.gz")
            matrices, params = motion.estimate_motion(bold, out / "boldref.nii.gz")
            np.save(out / "matrices.npy", matrices)
            coreg, _ = registration.coregister_bold(out / "boldref.nii.gz", out / "boldref_mask.nii.gz",
                                                    out / "n4.nii.gz", out / "mask.nii.gz", out)
            affine = tensors.grid_affine(tensors.TEMPLATE_CENTER_MM, GRID_FOV_MM, bold_shape)
            paths = resample.bold_to_standard(bold, out / "boldref.nii.gz", out / "boldref_mask.nii.gz",
                                              out / "matrices.npy", coreg, fwd, out, model_shape=bold_shape,
                                              model_affine=affine, dummy_scans=dummies,
                                              repetition_time=run.repetition_time)
            # as the Confounds interface: CSF and WM from the native maps onto the BOLD's standard grid
            grid_img = nb.load(paths["mask_std"])
            nb.save(nb.Nifti1Image(np.zeros(grid_img.shape, np.float32), grid_img.affine), out / "grid.nii.gz")
            tissues = [registration.apply_transforms(probseg[i], out / "grid.nii.gz", [fwd], out / f"t{i}_std.nii.gz")
                       for i in (0, 2)]
            confounds.compute_confounds(paths["bold_all"], paths["mask_std"], params, tissues, dummy_scans=dummies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=4)
    parser.add_argument("--source", choices=("oasis", "demo"), default="oasis")
    parser.add_argument("--bold", action="store_true", help="with the BOLD runs (demo source only)")
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--bare", metavar="BIDS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        with tempfile.TemporaryDirectory(prefix="bidsad-bare-") as tmp:
            bare(Path(args.bare), Path(tmp))
        return
    with tempfile.TemporaryDirectory(prefix="bidsad-cohort-") as tmp:
        bids = make_cohort(args.source, args.participants, args.bold, Path(tmp))
        n = len(list(bids.glob("sub-*")))
        load_before = os.getloadavg()
        run = run_measured([sys.executable, "-m", "bidsad", str(bids), str(Path(tmp) / "out"), "participant",
                            "--nprocs", str(args.nprocs), "--preset", "small", "-w", str(Path(tmp) / "work")])
        if run["returncode"] != 0:
            print(run["output"])
            sys.exit(f"bidsad failed with exit status {run['returncode']}")
        plain = run_measured([sys.executable, __file__, "--bare", str(bids)])
        if plain["returncode"] != 0:
            print(plain["output"])
            sys.exit("the bare script failed")
        load_after = os.getloadavg()
    kind = "T1w+BOLD" if args.bold else "T1w only"
    ratio = run["cpu"] / plain["cpu"]
    print(f"== cohort {args.source}, {n} participants, {kind}, --nprocs {args.nprocs}, preset small; "
          f"CPUs {os.cpu_count()}; load average before {load_before[0]:.1f}, after {load_after[0]:.1f}")
    print(f"bidsad: wall {run['wall']:.1f} s ({run['wall'] / n:.1f} s per participant), CPU {run['cpu']:.1f} s "
          f"({run['cpu'] / n:.1f} s per participant), peak RSS {run['peak_mb']:.0f} MB; it kept "
          f"{run['cpu'] / run['wall']:.2f} cores busy while the machine had {run['machine_cores']:.2f} of "
          f"{os.cpu_count()} busy (the difference: other processes)")
    print(f"bare script (one process, sequential): wall {plain['wall']:.1f} s, CPU {plain['cpu']:.1f} s "
          f"({plain['cpu'] / n:.1f} s per participant), peak RSS {plain['peak_mb']:.0f} MB")
    print(f"SUMMARY cohort {args.source} {kind} x{n}: {run['wall'] / n:.1f} s wall and {run['cpu'] / n:.1f} s CPU "
          f"per participant; overhead ratio (CPU) {ratio:.2f}; load {load_before[0]:.1f}-{load_after[0]:.1f}")


if __name__ == "__main__":
    main()
