"""Participant-level scheduling: ``--nprocs`` split into participants x processes, whole participants first."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

from bidsad.cli.parser import parse_args
from bidsad.participant import participant_slots

from .conftest import DEMO, run_bidsad


def _config(tmp_path, *extra):
    return parse_args([str(DEMO), str(tmp_path / "out"), "participant", "-w", str(tmp_path / "work"), *extra])


@pytest.mark.parametrize(("extra", "n", "expected"), [
    (("--nprocs", "2"), 3, (2, 1)),        # a cohort: one participant per process
    (("--nprocs", "2"), 1, (1, 2)),        # one participant gets every process
    (("--nprocs", "8"), 3, (3, 2)),        # the processes left over go to the running participants
    (("--nprocs", "8", "--omp-nthreads", "4"), 10, (2, 4)),
    (("--nprocs", "8", "--mem", "6G"), 10, (2, 4)),  # memory bounds the participants at once
    (("--nprocs", "1"), 5, (1, 1)),
])
def test_participant_slots(tmp_path, extra, n, expected):
    assert participant_slots(_config(tmp_path, *extra), n) == expected


def _small_t1w_dataset(root: Path, labels: list[str]) -> Path:
    """A T1w-only BIDS dataset of the demo's T1w images at 6 mm (fast), one per label."""
    from nilearn.image import resample_img

    bids = root / "bids"
    for index, label in enumerate(labels):
        src = nb.load(sorted(DEMO.glob("sub-*/anat/*_T1w.nii.gz"))[index])
        small = resample_img(src, target_affine=np.diag([6.0, 6.0, 6.0]), interpolation="continuous",
                             force_resample=True, copy_header=True)
        anat = bids / f"sub-{label}" / "anat"
        anat.mkdir(parents=True)
        nb.save(nb.Nifti1Image(np.asarray(small.dataobj, np.float32), small.affine), anat / f"sub-{label}_T1w.nii.gz")
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "cohort", "BIDSVersion": "1.10.0"}))
    return bids


@pytest.mark.slow  # three participants' graphs: about a minute on an idle 2-core machine
@pytest.mark.integration
def test_cohort_finishes_participants_not_layers(tmp_path):
    """With --nprocs 2 and three participants, the first participant's report and outputs exist before the
    last participant's first node starts (its earliest file in the work directory)."""
    labels = ["a", "b", "c"]
    bids = _small_t1w_dataset(tmp_path, labels)
    out, work = tmp_path / "out", tmp_path / "work"
    run_bidsad(bids, out, "participant", "--nprocs", "2", "--preset", "small", "--anat-registration", "affine",
               "-w", work, check_rc=0)
    started = {}
    for label in labels:
        files = [p for p in work.glob(f"*/single_subject_{label}_wf/**/*") if p.is_file()]
        started[label] = min(p.stat().st_mtime for p in files)
    finished = {label: (out / f"sub-{label}.html").stat().st_mtime for label in labels}
    last = max(started, key=started.get)
    first = min(finished, key=finished.get)
    assert first != last
    assert (out / f"sub-{first}" / "anat" / f"sub-{first}_desc-preproc_T1w.nii.gz").is_file()
    assert finished[first] <= started[last], (finished, started)
