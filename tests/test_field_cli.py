"""fMRIPrep/MRIQC habits on bidsad's command line (issue 17): aliases, --mem units, --participant-label at
the group level, earlier group results kept."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from bidsad.cli.argtypes import machine_memory_gb
from bidsad.cli.parser import NOTES, parse_args

from . import bugcase_data as bd


@pytest.fixture
def bids(tmp_path):
    return bd.make_dataset(tmp_path / "bids", subjects=("01",), bold=False)


def _parse(bids, *extra):
    return parse_args([str(bids), str(bids.parent / "out"), "participant", "-w", str(bids.parent / "w"), *extra])


def test_fmriprep_aliases(bids):
    assert _parse(bids, "--nthreads", "3").nipype.nprocs == 3
    assert _parse(bids, "--n_cpus", "2").nipype.nprocs == 2
    assert _parse(bids, "--omp_nthreads", "1").nipype.omp_nthreads == 1
    assert _parse(bids, "--skip_bids_validation").execution.skip_bids_validation is True
    assert _parse(bids, "--participant_label", "sub-01").execution.participant_label == ["01"]


@pytest.mark.parametrize(("args", "gb"), [(["--mem", "16GB"], 16), (["--mem", "16000MB"], 16), (["--mem", "16g"], 16),
                                          (["--mem-mb", "16000"], 16), (["--mem_mb", "8GB"], 8), (["--mem", "2"], 2)])
def test_mem_units(bids, args, gb):
    assert _parse(bids, *args).nipype.mem_gb == pytest.approx(gb)
    bare = [note for level, note in NOTES if "memory limit" in note]
    if args[1].isdigit():
        unit = "MB" if args[0] == "--mem-mb" else "GB"
        assert bare == [f"memory limit '{args[1]}' read as {gb:g} GB (a bare number is {unit} for this option; "
                        "write 16GB or 16000MB to be explicit)."] and NOTES[0][0] == logging.INFO
    else:
        assert bare == []


def test_absurd_mem_refused_with_its_unit(bids, capsys):
    machine = machine_memory_gb()
    assert machine > 0
    value = str(int(machine * 64 * 1.5) + 1)  # fMRIPrep's habit: a bare number meant as MB
    with pytest.raises(SystemExit) as exc:
        _parse(bids, "--mem", value)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"'{value}' means" in err and "GB, more than 64x this machine's memory" in err
    assert "write the unit, e.g. 16GB or 16000MB" in err


def _cohort():
    return pd.DataFrame({"participant_id": ["sub-01", "sub-02", "sub-03", "sub-04"], "included": [True, True, False, True],
                         "reason": ["", "", "no diagnosis in participants.tsv", ""]})


def test_participant_label_at_the_group_level():
    from bidsad.bids import InputError
    from bidsad.learn.cohort import select_participants

    cohort = select_participants(_cohort(), ["01", "03", "04"])
    assert cohort["included"].tolist() == [True, False, False, True]
    assert cohort["reason"].tolist() == ["", "not selected by --participant-label", "no diagnosis in participants.tsv", ""]
    with pytest.raises(InputError, match=r"participants.tsv for sub-09\. Participants available: sub-01, sub-02, "
                                         r"sub-03, sub-04\. Check the labels"):
        select_participants(_cohort(), ["01", "09"])


def test_earlier_group_results_kept_unless_overwrite(tmp_path, caplog):
    from bidsad.learn.cohort import keep_earlier_group

    group = tmp_path / "out" / "group"
    (group / "model-3dcnn-lstm/fold-1").mkdir(parents=True)
    (group / "metrics.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="bidsad"):
        kept = keep_earlier_group(group)
    assert kept.name.startswith("group-") and (kept / "model-3dcnn-lstm/fold-1").is_dir() and not group.exists()
    assert f"group/ of an earlier run (models: 3dcnn-lstm) is kept as {kept}" in caplog.text
    (group / "model-3dcnn").mkdir(parents=True)
    (group / "metrics.json").write_text("{}")
    second = keep_earlier_group(group)
    assert second != kept and second.is_dir() and kept.is_dir()  # a second earlier run never overwrites the first
    (group / "model-2dcnn").mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="bidsad"):
        assert keep_earlier_group(group, overwrite=True) is None and group.is_dir()  # left to be replaced
    assert "group/ of an earlier run (models: 2dcnn) is replaced by this run's results (--overwrite)" in caplog.text


def _group_cohort(bold):
    ids = [f"sub-{i:02d}" for i in range(1, 13)]
    return pd.DataFrame({
        "participant_id": ids + ["sub-13", "sub-14", "sub-15"], "diagnosis": ["CN", "AD", "MCI"] * 5,
        "label": pd.array([0, 2, 1] * 4 + [pd.NA] * 3, dtype="Int64"),
        "mri": [f"{p}/features/t1.npy" for p in ids] + [""] * 3,
        "bold": [f"{p}/features/bold.npy" if bold(i) else "" for i, p in enumerate(ids)] + [""] * 3,
        "included": [True] * 12 + [False] * 3,
        "reason": [""] * 12 + ["no diagnosis in participants.tsv"] * 2 + ["not listed in participants.tsv"],
        "note": [""] * 15})


def test_counts_per_class_and_reason_and_mri_only(tmp_path):
    import json

    from bidsad.learn.cohort import cohort_counts, write_cohort

    cohort = _group_cohort(lambda i: i % 4 != 3)
    write_cohort(tmp_path, cohort)
    counts = json.loads((tmp_path / "cohort.json").read_text())["Counts"]
    assert counts == cohort_counts(pd.read_csv(tmp_path / "cohort.tsv", sep="\t", keep_default_na=False))
    assert counts["used"] == {"CN": 4, "MCI": 4, "AD": 4}
    assert counts["excluded"] == {"no diagnosis in participants.tsv": 2, "not listed in participants.tsv": 1}
    assert counts["mri_only"] == ["sub-04", "sub-08", "sub-12"]


def test_t1w_only_cohort_gets_no_fusion_warning():
    from bidsad.learn.splits import plan_splits

    cohort = _group_cohort(lambda i: False)
    included = cohort[cohort["included"]]
    splits, warnings = plan_splits(included, [("mri",), ("mri", "bold")], folds=3, seed=0)
    assert set(splits["cohort"]) == {"mri"} and warnings == []
    mixed = _group_cohort(lambda i: i < 1)  # one with BOLD: the fusion cohort cannot be split, and that is said
    splits, warnings = plan_splits(mixed[mixed["included"]], [("mri",), ("mri", "bold")], folds=3, seed=0)
    assert set(splits["cohort"]) == {"mri"} and len(warnings) == 1 and warnings[0].startswith("mri+bold: ")
