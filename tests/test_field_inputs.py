"""Field-grade inputs (issue 17): every unreadable input is named with its cause and what to do; a bad BOLD
run leaves its participant's MRI outputs; the other participants are untouched. Small synthetic datasets
(tests/bugcase_data.py); the input decisions are made by :func:`collect_participants`."""

from __future__ import annotations

import gzip
import json
import os
import shutil

import nibabel as nb
import numpy as np
import pytest

from bidsad.bids import collect_participants
from bidsad.image_checks import file_problem
from bidsad.validator import run_bids_validator

from . import bugcase_data as bd


def _parts(bids):
    return {p.label: p for p in collect_participants(bids)}


def _break(path, how):
    """Damage ``path`` the way field datasets are damaged."""
    raw = path.read_bytes()
    if how == "annex":
        path.unlink()
        os.symlink("../../.git/annex/objects/Pq/Zx/MD5E-s1234--5f3e.nii.gz/MD5E-s1234--5f3e.nii.gz", path)
    elif how == "broken-link":
        path.unlink()
        os.symlink("/nonexistent/storage/image.nii.gz", path)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "not-gzip":
        path.write_bytes(gzip.decompress(raw))
    elif how == "bit-flip":  # one flipped bit in the middle of the compressed data
        data = bytearray(raw)
        data[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(data))
    elif how == "corrupt-header":  # sizeof_hdr and the magic overwritten
        data = bytearray(gzip.decompress(raw))
        data[0:4] = b"\x00\x00\x00\x07"
        data[344:348] = b"zzz\x00"
        path.write_bytes(gzip.compress(bytes(data)))
    elif how == "short-data":  # a valid gzip stream whose image data stop early
        data = gzip.decompress(raw)
        path.write_bytes(gzip.compress(data[: len(data) // 3]))


CASES = {
    "annex": "content not present (a git-annex/DataLad link whose file has not been downloaded): run `datalad get {rel}`",
    "broken-link": "broken symbolic link (points to /nonexistent/storage/image.nii.gz",
    "empty": "empty file (0 bytes)",
    "truncated": "truncated (the gzip stream ends early",
    "not-gzip": "named .nii.gz but not gzip-compressed",
    "bit-flip": "corrupt compressed data (",
    "corrupt-header": "corrupt NIfTI header (",
    "short-data": "truncated (",
}


@pytest.mark.parametrize("how", sorted(CASES))
def test_unreadable_t1w_named_with_cause_others_untouched(tmp_path, how):
    bids = bd.make_dataset(tmp_path / "bids", subjects=("01", "02"), bold=False)
    t1w = bids / "sub-02/anat/sub-02_T1w.nii.gz"
    _break(t1w, how)
    parts = _parts(bids)
    rel = "sub-02/anat/sub-02_T1w.nii.gz"
    (error,) = parts["02"].errors
    print(error)
    assert error.startswith(f"{rel}: ") and CASES[how].format(rel=rel) in error and parts["02"].t1w is None
    assert parts["01"].t1w is not None and not parts["01"].errors and not parts["01"].warnings


@pytest.mark.parametrize("how", ["annex", "truncated", "bit-flip"])
def test_bad_bold_run_leaves_mri_only_with_a_warning(tmp_path, how):
    bids = bd.make_dataset(tmp_path / "bids", subjects=("01", "02"))
    _break(bids / "sub-02/func/sub-02_task-rest_bold.nii.gz", how)
    parts = _parts(bids)
    rel = "sub-02/func/sub-02_task-rest_bold.nii.gz"
    assert parts["02"].t1w is not None and not parts["02"].bold and not parts["02"].errors
    assert CASES[how].format(rel=rel) in parts["02"].warnings[0]
    assert parts["02"].warnings[0].endswith("This BOLD run is not used; sub-02 keeps its MRI outputs.")
    assert "MRI features only" in parts["02"].warnings[1]
    assert len(parts["01"].bold) == 1 and not parts["01"].warnings


def test_degenerate_affine_refused_and_missing_orientation_warned(tmp_path):
    bids = bd.make_dataset(tmp_path / "bids", subjects=("01", "02", "03"), bold=False)
    degenerate = bids / "sub-02/anat/sub-02_T1w.nii.gz"
    img = nb.load(degenerate)
    flat = img.affine.copy()
    flat[:3, 2] = 0  # the third voxel axis collapses
    header = img.header.copy()
    header.set_sform(flat, code=1)
    nb.save(nb.Nifti1Image(np.asarray(img.dataobj), None, header), degenerate)
    unknown = bids / "sub-03/anat/sub-03_T1w.nii.gz"
    img = nb.load(unknown)
    bare = nb.Nifti1Image(np.asarray(img.dataobj), None, img.header)
    bare.set_qform(None, code=0)
    bare.set_sform(None, code=0)
    nb.save(bare, unknown)
    assert int(nb.load(unknown).header["qform_code"]) == int(nb.load(unknown).header["sform_code"]) == 0
    parts = _parts(bids)
    assert parts["02"].t1w is None
    assert parts["02"].errors[0].startswith("sub-02/anat/sub-02_T1w.nii.gz: degenerate sform affine")
    assert parts["03"].t1w is not None and not parts["03"].errors
    assert parts["03"].warnings == [
        "sub-03/anat/sub-03_T1w.nii.gz: the header gives no orientation (qform_code and sform_code are 0); the voxel "
        "axes were assumed RAS with the header's voxel sizes. Check the orientation in the report; fix the header if "
        "it is wrong."]
    assert parts["01"].t1w is not None and not parts["01"].warnings


def test_outputs_get_one_affine_as_qform_and_sform(tmp_path):
    from bidsad.interfaces.bids import _consistent_header

    data, affine = bd.t1w_data()
    img = nb.Nifti1Image(data, affine)
    shifted = affine.copy()
    shifted[:3, 3] += 5
    img.set_sform(affine, code=2)
    img.set_qform(shifted, code=1)  # the two forms disagree by 5 mm
    nb.save(img, tmp_path / "in.nii.gz")
    _consistent_header(tmp_path / "in.nii.gz", write_to=tmp_path / "out.nii.gz")
    out = nb.load(tmp_path / "out.nii.gz")
    assert int(out.header["qform_code"]) == int(out.header["sform_code"]) == 2
    assert np.allclose(out.get_qform(), affine) and np.allclose(out.get_sform(), affine)
    assert np.array_equal(np.asarray(out.dataobj), data)
    assert _consistent_header(tmp_path / "out.nii.gz") is None


def test_derivatives_dataset_as_bids_dir_gets_our_message(tmp_path, capsys):
    from bidsad.cli.parser import parse_args

    deriv = tmp_path / "fmriprep"
    deriv.mkdir()
    (deriv / "dataset_description.json").write_text(json.dumps(
        {"Name": "fMRIPrep", "BIDSVersion": "1.4.0", "DatasetType": "derivative",
         "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.0"}]}))
    with pytest.raises(SystemExit) as exc:
        parse_args([str(deriv), str(tmp_path / "out"), "participant"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert f"bids_dir: {deriv} is a derivatives dataset" in err and "made by fMRIPrep 23.2.0" in err
    assert "--derivatives fmriprep=PATH" in err and "GeneratedBy" not in err


def test_input_validation_summarises_errors(tmp_path):
    from bidsad.bids import InputError
    from bidsad.validator import validate_input

    bids = bd.make_dataset(tmp_path / "bids", subjects=("01", "02"))
    validate_input(bids)  # a clean dataset passes
    sidecar = bids / "sub-02/func/sub-02_task-rest_bold.json"
    sidecar.write_text(json.dumps({"RepetitionTime": 2000, "TaskName": "rest"}))
    errors = run_bids_validator(bids)
    assert [e["code"] for e in errors] == ["REPETITION_TIME_MISMATCH"]
    with pytest.raises(InputError) as exc:
        validate_input(bids)
    text = str(exc.value)
    assert f"the BIDS validator found 1 error(s) in {bids}" in text
    assert "REPETITION_TIME_MISMATCH (1 file: sub-02/func/sub-02_task-rest_bold.nii.gz)" in text
    assert "--skip-bids-validation" in text
    validate_input(bids, labels=["01"])  # only the selected participants' errors count


def test_validator_summary_counts_files_once_and_names_a_runnable_validator(tmp_path):
    """A subject-level sidecar that is not JSON: the validator reports each of the 3 required keys missing for
    each of the 2 runs (6 issues, 2 files); a file reported twice under one code counts once."""
    import shlex

    from bidsad.bids import InputError
    from bidsad.validator import bids_validator_command, summarise_validator_errors, validate_input

    bids = bd.make_dataset(tmp_path / "bids", subjects=("01",))
    func = bids / "sub-01/func"
    for run in ("1", "2"):
        shutil.copy(func / "sub-01_task-rest_bold.nii.gz", func / f"sub-01_task-rest_run-{run}_bold.nii.gz")
    (func / "sub-01_task-rest_bold.nii.gz").unlink()
    (func / "sub-01_task-rest_bold.json").unlink()
    (bids / "sub-01/sub-01_task-rest_bold.json").write_text("{not json")
    with pytest.raises(InputError) as exc:
        validate_input(bids)
    text = str(exc.value)
    assert ("SIDECAR_KEY_REQUIRED (2 files: sub-01/func/sub-01_task-rest_run-1_bold.nii.gz, "
            "sub-01/func/sub-01_task-rest_run-2_bold.nii.gz; TaskName, RepetitionTime, VolumeTiming)") in text
    assert "JSON_INVALID (1 file: sub-01/sub-01_task-rest_bold.json) - Not a valid JSON file." in text
    command = bids_validator_command()
    assert command and os.access(command[0], os.X_OK)  # runnable as named
    assert f"{shlex.join(command)} {bids}" in text and f"deno run -A jsr:@bids/validator {bids}" in text
    twice = [{"code": "JSON_INVALID", "location": "/task-rest_bold.json", "message": "Not a valid JSON file."}] * 2
    assert summarise_validator_errors(twice, bids) == (
        "  JSON_INVALID (1 file: task-rest_bold.json) - Not a valid JSON file.")


def test_file_problem_accepts_good_files(tmp_path):
    bids = bd.make_dataset(tmp_path / "bids", subjects=("01",))
    for path in bids.rglob("*.nii.gz"):
        assert file_problem(path, bids) is None
    plain = bids / "sub-01/anat/sub-01_T1w.nii"
    plain.write_bytes(gzip.decompress((bids / "sub-01/anat/sub-01_T1w.nii.gz").read_bytes()))
    assert file_problem(plain, bids) is None
    hidden = bids / "sub-01/anat/sub-01_acq-x_T1w.nii"
    hidden.write_bytes((bids / "sub-01/anat/sub-01_T1w.nii.gz").read_bytes())
    assert file_problem(hidden, bids) == ("sub-01/anat/sub-01_acq-x_T1w.nii: named .nii but gzip-compressed. Rename it "
                                          "to .nii.gz (and its JSON sidecar stays as it is).")


DIAGNOSES = {  # as users write them -> code (None: excluded)
    "CN": 0, " cn ": 0, "HC": 0, "Control": 0, "controls": 0, "Healthy Control": 0, "healthy  controls": 0,
    "Cognitively Normal": 0, "MCI": 1, "EMCI": 1, "LMCI": 1, "aMCI": 1, "Mild Cognitive Impairment": 1,
    "AD": 2, "Dementia": 2, "Alzheimer's disease": 2, "Alzheimer\u2019s Disease": 2, "AD dementia": 2,
    "alzheimers_disease": 2, "SMC": None, "FTD": None,
}


def test_participants_tsv_vocabulary_and_numeric_levels(tmp_path):
    from bidsad.phenotype import read_participants_tsv

    bids = tmp_path / "bids"
    labels = [f"{i:02d}" for i in range(len(DIAGNOSES))]
    for label in labels:
        (bids / f"sub-{label}").mkdir(parents=True)
    rows = ["participant_id\tdiagnosis"] + [f"sub-{lab}\t{dx}" for lab, dx in zip(labels, DIAGNOSES)]
    (bids / "participants.tsv").write_text("\n".join(rows) + "\n")
    table = read_participants_tsv(bids)
    got = {dx: (None if table.loc[lab, "label"] is __import__("pandas").NA else int(table.loc[lab, "label"]))
           for lab, dx in zip(labels, DIAGNOSES)}
    assert got == DIAGNOSES
    assert table.loc[labels[-1], "reason"] == (
        "diagnosis 'FTD' is not one of CN, MCI, AD or their synonyms (README: Diagnosis vocabulary)")
    # numeric codes: explained by participants.json Levels, refused with the way to explain them otherwise
    (bids / "participants.tsv").write_text("participant_id\tdiagnosis\nsub-00\t0\nsub-01\t1\nsub-02\t2\nsub-03\t3\n")
    table = read_participants_tsv(bids)
    assert table["label"].isna().all() and "numeric code without a meaning" in table.loc["00", "reason"]
    assert '"Levels"' in table.loc["00", "reason"]
    (bids / "participants.json").write_text(json.dumps({"diagnosis": {"Description": "clinical diagnosis", "Levels": {
        "0": "Healthy control", "1": "Mild cognitive impairment", "2": "Alzheimer's disease", "3": "Other dementia"}}}))
    table = read_participants_tsv(bids)
    assert [table.loc[x, "label"] for x in ("00", "01", "02")] == [0, 1, 2]
    assert table.loc["03", "reason"].startswith("diagnosis '3 (Other dementia)' is not one of CN, MCI, AD")


def test_levels_that_describe_known_values_keep_them(tmp_path):
    """participants.json Levels that describe the values ({"CN": "cognitively normal ..."}, as in the demo)
    do not hide the value itself: CN stays CN (a Levels lookup first made every demo participant unusable)."""
    from bidsad.phenotype import read_participants_tsv

    bids = tmp_path / "bids"
    for label in ("01", "02", "03"):
        (bids / f"sub-{label}").mkdir(parents=True)
    (bids / "participants.tsv").write_text("participant_id\tdiagnosis\nsub-01\tCN\nsub-02\tMCI\nsub-03\tAD\n")
    (bids / "participants.json").write_text(json.dumps({"diagnosis": {"Levels": {
        "CN": "cognitively normal (placeholder)", "MCI": "mild cognitive impairment (placeholder)",
        "AD": "Alzheimer's disease (placeholder)"}}}))
    table = read_participants_tsv(bids)
    assert [int(table.loc[x, "label"]) for x in ("01", "02", "03")] == [0, 1, 2]
    assert (table["reason"] == "").all()
