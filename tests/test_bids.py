"""Input bookkeeping: metadata, participants.tsv, derivative names, participant collection."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bidsad.bids import collect_participants, repetition_time
from bidsad.derivatives.description import write_dataset_description
from bidsad.derivatives.naming import derivative_path
from bidsad.phenotype import read_participants_tsv


@pytest.mark.parametrize(("value", "tr"), [(2.0, 2.0), ("2.52", 2.52), (0.8, 0.8)])
def test_repetition_time_accepts_seconds(value, tr):
    assert repetition_time({"RepetitionTime": value}, Path("/b/sub-01/func/x_bold.nii.gz"), Path("/b")) == (tr, [])


@pytest.mark.parametrize(("meta", "words"), [({}, "missing"), ({"RepetitionTime": 2000}, "milliseconds"),
                                              ({"RepetitionTime": -1}, "not a positive"),
                                              ({"RepetitionTime": "fast"}, "not a positive")])
def test_repetition_time_errors_name_the_file(meta, words):
    with pytest.raises(ValueError, match=words) as exc:
        repetition_time(meta, Path("/b/sub-01/func/sub-01_task-rest_bold.nii.gz"), Path("/b"))
    assert "sub-01/func/sub-01_task-rest_bold.nii.gz" in str(exc.value)


def test_participants_tsv_diagnosis_mapping(tmp_path):
    (tmp_path / "participants.tsv").write_text(
        "participant_id\tdiagnosis\nsub-01\tCN\nsub-02\t mci \nsub-03\tAlzheimer's disease\n"
        "sub-04\tn/a\nsub-05\tPD\n06\tHC\n"
    )
    table = read_participants_tsv(tmp_path)
    assert [int(table.loc[k, "label"]) for k in ["01", "02", "03", "06"]] == [0, 1, 2, 0]
    assert table["label"].isna().to_dict() == {"01": False, "02": False, "03": False, "04": True, "05": True, "06": False}
    assert "no diagnosis" in table.loc["04", "reason"]
    assert "'PD'" in table.loc["05", "reason"]


@pytest.mark.parametrize(("text", "words"), [
    ("participant_id\tage\nsub-01\t30\n", "no 'diagnosis' column"),
    ("subject\tdiagnosis\nsub-01\tCN\n", "no 'participant_id' column"),
])
def test_participants_tsv_unusable(tmp_path, text, words):
    (tmp_path / "participants.tsv").write_text(text)
    with pytest.raises(ValueError, match=words):
        read_participants_tsv(tmp_path)


@pytest.mark.parametrize(("header", "found"), [("participant_id\tDiagnosis", "Diagnosis"),
                                               ("Participant_ID\tdiagnosis", "Participant_ID"),
                                               ("participant id\tdiagnosis", "participant id")])
def test_participants_tsv_column_in_other_case_is_named(tmp_path, header, found):
    """'Diagnosis' where 'diagnosis' is expected: the error names the column and the name it needs."""
    expected = "diagnosis" if "iagnosis" in found else "participant_id"
    (tmp_path / "participants.tsv").write_text(f"{header}\nsub-01\tCN\n")
    with pytest.raises(ValueError, match=f"no '{expected}' column .* Column names are case-sensitive: rename "
                                         f"'{found}' to '{expected}'\\."):
        read_participants_tsv(tmp_path)


def test_missing_label_suggests_the_label_that_matches_ignoring_case(tmp_path):
    """BIDS labels are case-sensitive: '--participant-label SUB-01' is label 'SUB-01' (only an exact 'sub-' is
    removed), absent; the error suggests sub-01. The group level's selection suggests the same."""
    from bidsad.bids import InputError, label_suggestions
    from bidsad.learn.cohort import select_participants
    from tests import bugcase_data as bd

    assert label_suggestions(["SUB-01", "Ab1", "09"], ["01", "ab1"]) == " Did you mean sub-01, sub-ab1?"
    assert label_suggestions(["09"], ["01"]) == ""
    bids = bd.make_dataset(tmp_path / "bids", subjects=("01", "02"), bold=False)
    with pytest.raises(InputError, match=r"not found in .*: sub-SUB-01\..* Did you mean sub-01\?$"):
        collect_participants(bids, labels=["SUB-01"])
    import pandas as pd

    cohort = pd.DataFrame({"participant_id": ["sub-01", "sub-02"], "included": [True, True], "reason": ["", ""]})
    with pytest.raises(InputError, match=r"for sub-SUB-02\. .* Did you mean sub-02\?$"):
        select_participants(cohort, ["SUB-02"])


def test_derivative_path_keeps_entities(tmp_path):
    src = Path("/bids/sub-01/ses-a/func/sub-01_ses-a_task-rest_run-2_bold.nii.gz")
    path = derivative_path(tmp_path, src, datatype="features", suffix="bold", extension=".npy", res="small", desc="model")
    assert path == tmp_path / "sub-01/ses-a/features/sub-01_ses-a_task-rest_run-2_res-small_desc-model_bold.npy"


def test_collect_demo(demo_dir):
    parts = {p.label: p for p in collect_participants(demo_dir)}
    assert sorted(parts) == ["01", "02", "03", "04", "05", "06"]
    assert [len(parts[k].bold) for k in sorted(parts)] == [1, 1, 1, 0, 0, 0]
    assert parts["01"].bold[0].repetition_time == 2.52 and parts["02"].bold[0].n_volumes == 78
    assert any("MRI features only" in w for w in parts["04"].warnings)
    assert not any(p.errors for p in parts.values())


def test_collect_reports_broken_t1w_and_unknown_label(demo_dir, tmp_path):
    bids = tmp_path / "bids"
    shutil.copytree(demo_dir, bids, ignore=shutil.ignore_patterns("sub-0[3-6]"))
    t1w = bids / "sub-02/anat/sub-02_T1w.nii.gz"
    t1w.chmod(0o644)
    t1w.write_bytes(b"not a nifti")
    parts = {p.label: p for p in collect_participants(bids)}
    assert parts["02"].t1w is None and "sub-02/anat/sub-02_T1w.nii.gz" in parts["02"].errors[0]
    assert parts["01"].t1w is not None and not parts["01"].errors
    with pytest.raises(ValueError, match="sub-09"):
        collect_participants(bids, labels=["09"])
    with pytest.raises(ValueError, match="--bids-filter-file.*t1w"):
        collect_participants(bids, bids_filters={"t1w": {"foo": "bar"}})
    filtered = collect_participants(bids, labels=["01"], bids_filters={"t1w": {"session": "1"}})
    assert "matches the --bids-filter-file query" in filtered[0].errors[0]


def test_dataset_description(tmp_path):
    import json

    from bidsad import __version__

    path = write_dataset_description(tmp_path / "out", tmp_path / "bids")
    desc = json.loads(path.read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Version"] == __version__
    assert desc["DatasetLinks"] == {"raw": str((tmp_path / "bids").resolve())}
    assert write_dataset_description(tmp_path / "out", tmp_path / "bids") == path


def test_derivative_path_transform_and_label_entities(tmp_path):
    src = tmp_path / "sub-01/ses-1/anat/sub-01_ses-1_run-2_T1w.nii.gz"
    xfm = derivative_path(tmp_path / "out", src, datatype="anat", suffix="xfm", extension=".h5",
                          **{"from": "T1w", "to": "MNI152NLin2009aSym", "mode": "image"})
    assert xfm == tmp_path / "out/sub-01/ses-1/anat/sub-01_ses-1_run-2_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.h5"
    gm = derivative_path(tmp_path / "out", src, datatype="anat", suffix="probseg", extension=".nii.gz",
                         space="MNI152NLin2009aSym", res="2", label="GM")
    assert gm.name == "sub-01_ses-1_run-2_space-MNI152NLin2009aSym_res-2_label-GM_probseg.nii.gz"


def test_several_t1w_deterministic_choice(demo_dir, tmp_path):
    bids = tmp_path / "bids"
    (bids / "sub-01/anat").mkdir(parents=True)
    shutil.copyfile(demo_dir / "dataset_description.json", bids / "dataset_description.json")
    for run in ("2", "1"):
        shutil.copyfile(demo_dir / "sub-04/anat/sub-04_T1w.nii.gz", bids / f"sub-01/anat/sub-01_run-{run}_T1w.nii.gz")
    (part,) = collect_participants(bids)
    assert part.t1w.name == "sub-01_run-1_T1w.nii.gz"
    assert "sub-01: 2 T1w images found; using sub-01/anat/sub-01_run-1_T1w.nii.gz" in part.warnings[0]
