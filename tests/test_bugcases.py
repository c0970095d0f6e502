"""Field bug cases BR-01 ... BR-26: inputs that break BIDS-Apps in real labs (issue 8).

Each case is tested at the one place that handles its kind: the parser, :func:`collect_participants`
(which participants and runs are usable, and why), :func:`sidecar_metadata` (BIDS inheritance),
:func:`read_participants_tsv`, :func:`conform_image` (scaling, dimensions, orientation, finiteness) and
the group-level splits. End-to-end runs are in tests/test_bugcases_e2e.py.
"""

from __future__ import annotations

import logging
import os

import nibabel as nb
import numpy as np
import pytest

from bidsad.bids import InputError, collect_participants, sidecar_metadata
from bidsad.interfaces.images import conform_image
from bidsad.phenotype import read_participants_tsv

from . import bugcase_data as bd


def _parts(bids, **kwargs):
    return {p.label: p for p in collect_participants(bids, **kwargs)}


# --- BR-01: --participant-label with the 'sub-' prefix ---------------------------------------------------
def test_br01_sub_prefix_removed_once_and_deduplicated(tmp_path):
    from bidsad.cli.parser import NOTES, parse_args

    bids = bd.make_dataset(tmp_path / "bids", subjects=("01", "02", "03"), bold=False)
    config = parse_args([str(bids), str(tmp_path / "out"), "participant", "--participant-label", "01", "sub-01",
                         "sub-02", "-w", str(tmp_path / "w")])
    assert config.execution.participant_label == ["01", "02"]  # one prefix removed, then de-duplicated
    assert (logging.INFO, "participant label 'sub-01' interpreted as '01'.") in NOTES
    parts = _parts(bids, labels=config.execution.participant_label)
    assert sorted(parts) == ["01", "02"] and parts["01"].t1w.name == "sub-01_T1w.nii.gz"
    config = parse_args([str(bids), str(tmp_path / "out"), "participant", "--participant-label", "sub-sub-01"])
    assert config.execution.participant_label == ["sub-01"]  # never a character strip: no such participant
    # same file lists with 'sub-01' and '01': tests/test_end_to_end.py::test_participant_label_with_and_without_prefix


# --- BR-03: requested label does not exist ---------------------------------------------------------------
def test_br03_missing_labels_listed_with_bids_dir_and_case_hint(tmp_path):
    bids = bd.make_dataset(tmp_path / "bids", subjects=("01", "02", "Ab1"), bold=False)
    with pytest.raises(InputError) as exc:
        collect_participants(bids, labels=["01", "08", "9"])
    text = str(exc.value)
    assert "not found in" in text and str(bids) in text and "sub-08, sub-9" in text
    assert "sub-01," not in text.split("Participants found")[0]
    with pytest.raises(InputError, match=r"sub-ab1\..*Did you mean sub-Ab1\?"):
        collect_participants(bids, labels=["ab1"])


def test_br03_cli_exits_2_before_processing(tmp_path):
    from .conftest import run_bidsad

    bids = bd.make_dataset(tmp_path / "bids", subjects=("01",), bold=False)
    proc = run_bidsad(bids, tmp_path / "out", "participant", "--participant-label", "01", "08",
                      "-w", tmp_path / "w", check_rc=2)
    assert "sub-08" in proc.stderr and str(bids) in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "out").rglob("sub-*"))


# --- BR-05: hidden/AppleDouble files, sidecars that are not UTF-8 JSON -------------------------------------
APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00" + b"Mac OS X        " + b"\x00\x02" + bytes(11) + b"\xb0"


def test_br05_dot_files_ignored_and_bad_sidecars_named(tmp_path):
    bids = bd.make_dataset(tmp_path / "bids", subjects=("01", "02", "03"))
    rng = np.random.default_rng(0)
    (bids / ".DS_Store").write_bytes(rng.bytes(6148))
    for path in list((bids / "sub-01").rglob("*.*")):
        (path.parent / f"._{path.name}").write_bytes(APPLEDOUBLE + rng.bytes(4096 - len(APPLEDOUBLE)))
    (bids / "__MACOSX/sub-01/anat").mkdir(parents=True)
    (bids / "__MACOSX/sub-01/anat/._sub-01_T1w.nii.gz").write_bytes(APPLEDOUBLE)
    sidecar = bids / "sub-01/func/sub-01_task-rest_bold.json"
    sidecar.write_bytes(b"\xef\xbb\xbf" + sidecar.read_bytes())  # UTF-8 with BOM: accepted
    (bids / "sub-02/func/sub-02_task-rest_bold.json").write_bytes(
        b'{"RepetitionTime": 2.0, "TaskName": "rest", "InstitutionName": "H\xf4pital"}')  # Latin-1
    (bids / "sub-03/func/sub-03_task-rest_bold.json").write_text(
        "{\u201cRepetitionTime\u201d: 2.0, \u201cTaskName\u201d: \u201crest\u201d}", encoding="utf-8")
    parts = _parts(bids)
    assert sorted(parts) == ["01", "02", "03"]
    one = parts["01"]
    assert not one.errors and one.t1w.name == "sub-01_T1w.nii.gz"
    assert [run.path.name for run in one.bold] == ["sub-01_task-rest_bold.nii.gz"] and one.bold[0].repetition_time == 2.0
    assert not one.warnings
    (error,) = parts["02"].errors
    assert error.startswith("sub-02/func/sub-02_task-rest_bold.json: the JSON sidecar is not valid UTF-8 (byte 65)")
    (error,) = parts["03"].errors
    assert error.startswith("sub-03/func/sub-03_task-rest_bold.json: not valid JSON (")
    assert "line 1, column 2" in error and "quotes" in error
    for part in parts.values():  # the anatomical pipeline still runs; BOLD of 02 and 03 is dropped
        assert part.t1w is not None
    assert not parts["02"].bold and not parts["03"].bold


def test_br05_root_sidecar_that_is_not_json_is_a_dataset_error(tmp_path):
    bids = bd.make_dataset(tmp_path / "bids", subjects=("01",), bold=False)
    (bids / "task-rest_bold.json").write_text('{"RepetitionTime": 2.0,}')
    with pytest.raises(InputError, match=r"^task-rest_bold.json: not valid JSON \(.* line 1, column 24\)"):
        collect_participants(bids)


# --- BR-06: derivatives and earlier outputs nested in bids_dir; out/work placement -------------------------
def test_br06_raw_queries_skip_nested_outputs(tmp_path):
    bids = bd.make_dataset(tmp_path / "bids", subjects=("01",))
    zeros = nb.Nifti1Image(np.zeros((8, 8, 8), np.int16), np.eye(4))
    for folder in ("derivatives/other", "old_run", "sourcedata", "sub-01/anat/nested"):
        (bids / folder / "sub-01/anat").mkdir(parents=True)
        bd.write_json(bids / folder / "dataset_description.json", {"Name": "o", "BIDSVersion": "1.8.0",
                                                                    "DatasetType": "derivative"})
        nb.save(zeros, bids / folder / "sub-01/anat/sub-01_T1w.nii.gz")
    for validate in (True, False):
        (part,) = collect_participants(bids, validate=validate)
        assert part.t1w == bids / "sub-01/anat/sub-01_T1w.nii.gz" and not part.warnings and not part.errors


@pytest.mark.parametrize(("out", "work", "words"), [
    ("bids", "w", "out_dir: .* is the same as bids_dir or inside it"),
    ("bids/code/bidsad", "w", "out_dir: .* is the same as bids_dir or inside it"),
    ("out", "bids/work", "-w/--work-dir: .* is inside bids_dir"),
])
def test_br06_out_and_work_dir_inside_bids_refused(tmp_path, capsys, out, work, words):
    from bidsad.cli.parser import parse_args

    bids = bd.make_dataset(tmp_path / "bids", subjects=("01",), bold=False)
    with pytest.raises(SystemExit) as exc:
        parse_args([str(bids), str(tmp_path / out), "participant", "-w", str(tmp_path / work)])
    assert exc.value.code == 2
    import re

    err = capsys.readouterr().err
    assert re.search(words, err) and str(tmp_path / (work if "work-dir" in words else out)) in err
    assert sorted(p.name for p in bids.iterdir()) == ["dataset_description.json", "participants.tsv", "sub-01"]


# --- BR-10: 4-D T1w, 5-D BOLD -------------------------------------------------------------------------
def test_br10_t1w_and_bold_dimensions(tmp_path):
    bids = bd.make_dataset(tmp_path / "bids", subjects=("01", "02", "03"), n_vols=12)
    t1w, affine = bd.t1w_data()
    bd.save(t1w[..., None].astype(np.float64), affine, bids / "sub-01/anat/sub-01_T1w.nii.gz")
    noisy = t1w + np.random.default_rng(1).normal(0, 5, t1w.shape)
    bd.save(np.stack([t1w, noisy], -1), affine, bids / "sub-02/anat/sub-02_T1w.nii.gz")
    path3 = bids / "sub-03/func/sub-03_task-rest_bold.nii.gz"
    series = nb.load(path3).get_fdata(dtype=np.float32)
    five = nb.Nifti1Image(series[:, :, :, None, :], nb.load(path3).affine)
    five.header.set_xyzt_units("mm", "sec")
    nb.save(five, path3)
    assert nb.load(path3).header["dim"][:6].tolist() == [5, 20, 24, 20, 1, 12]
    parts = _parts(bids)
    assert parts["01"].t1w is not None and not parts["01"].errors
    assert parts["02"].t1w is None
    assert "a T1w image must be a single 3-D volume; this one holds 2 volumes" in parts["02"].errors[0]
    assert parts["02"].errors[0].startswith("sub-02/anat/sub-02_T1w.nii.gz")
    (run,) = parts["03"].bold
    assert run.n_volumes == 12 and run.repetition_time == 2.0 and not parts["03"].errors
    assert not conform_image(bids / "sub-01/anat/sub-01_T1w.nii.gz", tmp_path / "t1.nii.gz", 3, "T1w", "t1")
    out = nb.load(tmp_path / "t1.nii.gz")
    assert out.shape == t1w.shape and out.get_data_dtype() == np.float32
    assert np.allclose(out.get_fdata(), t1w, atol=1e-3)  # stored as float64: values kept
    conform_image(path3, tmp_path / "b.nii.gz", 4, "BOLD", "b", repetition_time=run.repetition_time)
    bold = nb.load(tmp_path / "b.nii.gz")
    assert bold.shape == (20, 24, 20, 12) and bold.header.get_zooms()[3] == pytest.approx(2.0)
    assert bold.header.get_xyzt_units() == ("mm", "sec")
    assert np.allclose(bold.get_fdata(), series)


def test_br10_bold_with_echoes_refused_with_shape(tmp_path):
    bids = bd.make_dataset(tmp_path / "bids", subjects=("01",), n_vols=12)
    path = bids / "sub-01/func/sub-01_task-rest_bold.nii.gz"
    series = nb.load(path).get_fdata(dtype=np.float32)
    nb.save(nb.Nifti1Image(np.stack([series, series], 3), nb.load(path).affine), path)
    (part,) = collect_participants(bids)
    assert part.errors == ["sub-01/func/sub-01_task-rest_bold.nii.gz: a BOLD image must be 4-D, this one has "
                           "shape (20, 24, 20, 2, 12)."]
    assert not part.bold and part.t1w is not None


# --- BR-12: oblique and non-RAS voxel orders -------------------------------------------------------------
def test_br12_orientation_and_obliquity(tmp_path):
    """The same world object stored RAS, LPS, PIR and 20 degrees oblique: conformed to RAS+ by permutation
    and flips only (no interpolation, obliquity kept); sampled on one grid they agree."""
    from nilearn.image import resample_img

    pir = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    storages = {"ras": ((64, 76, 64), (3, 3, 3), np.eye(3)), "lps": ((64, 76, 64), (3, 3, 3), np.diag([-1, -1, 1])),
                "pir": ((76, 64, 64), (3, 3, 3), pir), "obl": ((64, 76, 64), (3, 3, 3.6), bd.rotation_x(20))}
    conformed = {}
    for name, (shape, zooms, rotation) in storages.items():
        data, affine = bd.t1w_data(shape, zooms, rotation, seed=0)
        data = bd.T1[bd.labels_at(bd.world(shape, affine))]  # noise-free: exact comparisons
        bd.save(data, affine, tmp_path / f"{name}.nii.gz")
        assert nb.aff2axcodes(affine) == {"ras": ("R", "A", "S"), "lps": ("L", "P", "S"), "pir": ("P", "I", "R"),
                                          "obl": ("R", "A", "S")}[name]
        conform_image(tmp_path / f"{name}.nii.gz", tmp_path / f"{name}_ras.nii.gz", 3, "T1w", name)
        conformed[name] = nb.load(tmp_path / f"{name}_ras.nii.gz")
        assert nb.aff2axcodes(conformed[name].affine) == ("R", "A", "S")
    ras = conformed["ras"]
    for name in ("lps", "pir"):  # exact: a permutation of the stored voxels on the same world grid
        assert conformed[name].shape == ras.shape and np.allclose(conformed[name].affine, ras.affine, atol=1e-4)
        assert np.array_equal(conformed[name].get_fdata(), ras.get_fdata())
    obl = conformed["obl"]
    assert np.allclose(obl.affine[:3, :3], bd.rotation_x(20) @ np.diag([3, 3, 3.6]), atol=1e-4)  # kept, not resampled
    assert np.array_equal(np.sort(obl.get_fdata(), axis=None), np.sort(nb.load(tmp_path / "obl.nii.gz").get_fdata(), axis=None))
    sampled = resample_img(obl, target_affine=ras.affine, target_shape=ras.shape, interpolation="continuous",
                           force_resample=True, copy_header=True).get_fdata()
    brain = bd.labels_at(bd.world(ras.shape, ras.affine)) >= 3
    r = np.corrcoef(sampled[brain], ras.get_fdata()[brain])[0, 1]
    print(f"oblique vs RAS storage, correlation inside the brain: {r:.3f}")
    assert r > 0.95


# --- BR-13: RepetitionTime missing, inherited, in ms, disagreeing with the header -----------------------
def _drop_tr(bids, sub):
    path = bids / f"sub-{sub}/func/sub-{sub}_task-rest_bold.json"
    bd.write_json(path, {"TaskName": "rest"})


def test_br13_repetition_time_sources(tmp_path):
    bids = bd.make_dataset(tmp_path / "bids", subjects=("01", "02", "03", "04", "05"), n_vols=12)
    _drop_tr(bids, "01")
    bd.write_json(bids / "sub-01/sub-01_task-rest_bold.json", {"RepetitionTime": 2.0})  # subject-level file
    for sub, tr, unit in (("02", 2000.0, "msec"), ("03", 0.0, "sec"), ("05", 1500.0, "sec")):
        path = bids / f"sub-{sub}/func/sub-{sub}_task-rest_bold.nii.gz"
        img = nb.load(path)
        bd.save(img.get_fdata(dtype=np.float32), img.affine, path, tr=tr, tr_unit=unit)
    _drop_tr(bids, "02")
    _drop_tr(bids, "03")
    bd.write_json(bids / "sub-04/func/sub-04_task-rest_bold.json", {"RepetitionTime": 2000.00061035156})
    bd.write_json(bids / "sub-05/func/sub-05_task-rest_bold.json", {"RepetitionTime": 1.5})
    parts = _parts(bids)
    assert parts["01"].bold[0].repetition_time == 2.0 and not parts["01"].warnings
    metadata, used = sidecar_metadata(parts["01"].bold[0].path, bids)
    assert metadata == {"RepetitionTime": 2.0, "TaskName": "rest"}
    assert [str(p.relative_to(bids)) for p in used] == ["sub-01/sub-01_task-rest_bold.json",
                                                       "sub-01/func/sub-01_task-rest_bold.json"]
    assert parts["02"].bold[0].repetition_time == pytest.approx(2.0)
    assert "no RepetitionTime in the JSON sidecars; using the NIfTI header's time step, 2 s" in parts["02"].warnings[0]
    assert not parts["03"].bold and "sub-03/func/sub-03_task-rest_bold.nii.gz: RepetitionTime is missing" in parts["03"].errors[0]
    assert not parts["04"].bold and "looks like milliseconds" in parts["04"].errors[0]
    assert parts["04"].errors[0].startswith("sub-04/func/sub-04_task-rest_bold.nii.gz: RepetitionTime 2000.00061035156")
    assert parts["05"].bold[0].repetition_time == 1.5
    assert "RepetitionTime 1.5 s in the JSON sidecar differs from the NIfTI header's time step (1500 s)" in parts["05"].warnings[0]
    # derivatives carry the sidecar's TR with time units 'sec', whatever the header said
    for sub, tr in (("02", 2.0), ("05", 1.5)):
        run = parts[sub].bold[0]
        conform_image(run.path, tmp_path / f"{sub}.nii.gz", 4, "BOLD", sub, repetition_time=run.repetition_time)
        header = nb.load(tmp_path / f"{sub}.nii.gz").header
        assert header.get_zooms()[3] == pytest.approx(tr) and header.get_xyzt_units()[1] == "sec"


def test_br13_repetition_time_only_at_the_root(tmp_path):
    bids = bd.make_dataset(tmp_path / "bids", subjects=("01", "02"), n_vols=12)
    for sub in ("01", "02"):
        _drop_tr(bids, sub)
    bd.write_json(bids / "task-rest_bold.json", {"RepetitionTime": 2.0, "TaskName": "rest"})
    bd.write_json(bids / "task-other_bold.json", {"RepetitionTime": 9.0})  # another task: does not apply
    parts = _parts(bids)
    assert [parts[s].bold[0].repetition_time for s in ("01", "02")] == [2.0, 2.0]
    assert not any(p.warnings or p.errors for p in parts.values())


# --- BR-14: too few volumes, single-volume or 3-D 'BOLD' ------------------------------------------------
def test_br14_short_bold_runs_skipped_with_their_count(tmp_path):
    bids = bd.make_dataset(tmp_path / "bids", subjects=("01", "02"), bold=False)
    for sub, run, n_vols in (("01", 1, 4), ("01", 2, 12), ("02", 1, 1), ("02", 2, 1)):
        series, affine = bd.bold_data(n_vols=n_vols)
        name = bids / f"sub-{sub}/func/sub-{sub}_task-rest_run-{run}_bold"
        three_d = (sub, run) == ("02", 1)
        bd.save(series[..., 0] if three_d else series, affine, f"{name}.nii.gz", tr=None if three_d else 2.0)
        bd.write_json(f"{name}.json", {"RepetitionTime": 2.0, "TaskName": "rest"})
    assert nb.load(bids / "sub-02/func/sub-02_task-rest_run-1_bold.nii.gz").ndim == 3
    parts = _parts(bids, min_volumes=10)
    assert [run.path.name for run in parts["01"].bold] == ["sub-01_task-rest_run-2_bold.nii.gz"]
    assert parts["01"].warnings == ["sub-01/func/sub-01_task-rest_run-1_bold.nii.gz: skipping this BOLD run: "
                                    "4 volume(s) < minimum 10. Acquire or select a longer run."]
    two = parts["02"]
    assert two.t1w is not None and not two.bold and not two.errors
    assert [w.split(":")[0] for w in two.warnings] == ["sub-02/func/sub-02_task-rest_run-1_bold.nii.gz",
                                                       "sub-02/func/sub-02_task-rest_run-2_bold.nii.gz", "sub-02"]
    assert "1 volume(s) < minimum 10" in two.warnings[0] and "no usable task-rest BOLD run" in two.warnings[2]


# --- BR-16: several T1w per participant -------------------------------------------------------------------
def test_br16_several_t1w_documented_deterministic_choice(tmp_path):
    bids = bd.make_dataset(tmp_path / "bids", subjects=("01",), bold=False)
    (bids / "sub-01/anat/sub-01_T1w.nii.gz").unlink()
    data, affine = bd.t1w_data()
    names = ["ses-M12/anat/sub-01_ses-M12_acq-spgr_T1w", "ses-M12/anat/sub-01_ses-M12_acq-mprage_T1w",
             "ses-M00/anat/sub-01_ses-M00_run-10_T1w", "ses-M00/anat/sub-01_ses-M00_run-2_T1w"]
    for name in names:
        bd.save(data.astype(np.int16), affine, bids / "sub-01" / f"{name}.nii.gz")
    (part,) = collect_participants(bids)
    assert part.t1w.name == "sub-01_ses-M00_run-2_T1w.nii.gz"  # earliest session, lowest run (2 < 10)
    (warning,) = part.warnings[:1]
    assert "4 T1w images found; using sub-01/ses-M00/anat/sub-01_ses-M00_run-2_T1w.nii.gz" in warning
    assert warning.index("run-10") < warning.index("acq-mprage") < warning.index("acq-spgr")
    # within a session: no acq entity before any acq, then alphabetical
    (bids / "sub-01/ses-M00").rename(tmp_path / "M00")
    bd.save(data.astype(np.int16), affine, bids / "sub-01/ses-M12/anat/sub-01_ses-M12_T1w.nii.gz")
    (part,) = collect_participants(bids)
    assert part.t1w.name == "sub-01_ses-M12_T1w.nii.gz"
    # Sources of every anatomical derivative name the file used: tests/test_end_to_end.py::test_anat_derivatives_and_reportlets


# --- BR-18: scaled integers ---------------------------------------------------------------------------------
def test_br18_scaled_integers_never_wrap(tmp_path):
    data, affine = bd.t1w_data()
    raw = np.round(data / data.max() * 32000).astype(np.int16)
    img = nb.Nifti1Image(raw, affine)
    img.header.set_slope_inter(4.0, 0.0)
    nb.save(img, tmp_path / "scaled.nii.gz")
    assert nb.load(tmp_path / "scaled.nii.gz").get_fdata().max() == 128000
    conform_image(tmp_path / "scaled.nii.gz", tmp_path / "out.nii.gz", 3, "T1w", "scaled")
    out = nb.load(tmp_path / "out.nii.gz")
    values = out.get_fdata()
    assert out.get_data_dtype() == np.float32 and values.max() == 128000 and values.min() >= 0
    assert np.corrcoef(values.ravel(), raw.ravel())[0, 1] > 0.9999
    # scl_slope = 0 written in the header bytes means 'no scaling' (NIfTI rule)
    nb.save(nb.Nifti1Image(raw, affine), tmp_path / "zero.nii")
    blob = bytearray((tmp_path / "zero.nii").read_bytes())
    blob[112:116] = np.float32(0).tobytes()
    (tmp_path / "zero.nii").write_bytes(bytes(blob))
    conform_image(tmp_path / "zero.nii", tmp_path / "zero_out.nii.gz", 3, "T1w", "zero")
    assert np.array_equal(nb.load(tmp_path / "zero_out.nii.gz").get_fdata(), raw)
    # a BOLD stored as int16 with slope 0.25, intercept 100
    series, affine = bd.bold_data(n_vols=10)
    bold = nb.Nifti1Image(np.round((series - 100) / 0.25).astype(np.int16), affine)
    bold.header.set_slope_inter(0.25, 100)
    nb.save(bold, tmp_path / "bold.nii.gz")
    conform_image(tmp_path / "bold.nii.gz", tmp_path / "bold_out.nii.gz", 4, "BOLD", "bold", repetition_time=2.0)
    assert np.allclose(nb.load(tmp_path / "bold_out.nii.gz").get_fdata(), series, atol=0.13)


# --- BR-19: NaN / Inf voxels -------------------------------------------------------------------------------
def test_br19_non_finite_voxels(tmp_path):
    data, affine = bd.t1w_data()
    labels = bd.labels_at(bd.world(data.shape, affine))
    data[labels == 0] = np.nan
    brain = np.flatnonzero(labels.ravel() >= 4)
    pick = np.random.default_rng(0).choice(brain, 13, replace=False)
    data.ravel()[pick[:10]] = np.nan
    data.ravel()[pick[10:]] = np.inf
    bd.save(data, affine, tmp_path / "t1.nii.gz")
    n_bad = int((~np.isfinite(data)).sum())
    (warning,) = conform_image(tmp_path / "t1.nii.gz", tmp_path / "t1_out.nii.gz", 3, "T1w", "sub-01/anat/t1.nii.gz")
    assert warning == f"sub-01/anat/t1.nii.gz: {n_bad} non-finite voxel values (NaN/Inf) were set to 0."
    out = nb.load(tmp_path / "t1_out.nii.gz").get_fdata()
    assert np.isfinite(out).all() and (out[labels == 0] == 0).all()
    series, affine = bd.bold_data(n_vols=12)
    series[10, 12, 14, :] = np.nan
    series[..., 5] = np.nan
    bd.save(series, affine, tmp_path / "bold.nii.gz", tr=2.0)
    (warning,) = conform_image(tmp_path / "bold.nii.gz", tmp_path / "bold_out.nii.gz", 4, "BOLD", "b", repetition_time=2.0)
    assert f"b: {series[..., 5].size + 11} non-finite voxel values" in warning
    assert np.isfinite(nb.load(tmp_path / "bold_out.nii.gz").get_fdata()).all()
    bd.save(np.full_like(series, np.nan), affine, tmp_path / "nan.nii.gz", tr=2.0)
    with pytest.raises(ValueError, match=r"^sub-03/func/nan.nii.gz: every voxel is non-finite \(NaN or Inf\)"):
        conform_image(tmp_path / "nan.nii.gz", tmp_path / "x.nii.gz", 4, "BOLD", "sub-03/func/nan.nii.gz")


# --- BR-21: messy participants.tsv ---------------------------------------------------------------------------
def test_br21_messy_participants_tsv(tmp_path, caplog):
    subjects = [f"{i:02d}" for i in range(1, 13)]
    bids = tmp_path / "bids"
    for sub in subjects:
        (bids / f"sub-{sub}").mkdir(parents=True)
    rows = ["participant_id\tparticipant_id\tage\tsex\tdiagnosis\tsite", "01\tX1\t72\tF\tCN\tA",
            "sub-02\tX2\tn/a\tM\tAD\tA", "sub-3\tX3\t80+\tF\tMCI\tB", "sub-04\tX4\t70\tM\tCN\tB",
            "sub-04\tX4\t70\tM\tAD\tB", "sub-05\tX5\t\tF\t AD \tC", "sub-99\tX9\t66\tM\tCN\tC"]
    rows += [f"sub-{s}\tX\t70\tF\t{'CN' if i % 2 else 'AD'}\tD" for i, s in enumerate(subjects[6:])]
    rows.insert(3, "sub-02\tX2\tn/a\tM\tAD\tA")  # an identical repeat: merged
    (bids / "participants.tsv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")
    with caplog.at_level(logging.WARNING, logger="bidsad"):
        table = read_participants_tsv(bids)
    warnings = table.attrs["warnings"]
    assert [w for w in warnings if "match no sub-* folder" in w][0].split("(s) ")[1].startswith("sub-3, sub-99 match")
    assert any("sub-06 have data but no row" in w for w in warnings)
    assert any("sub-04 have several rows with different diagnoses" in w for w in warnings)
    assert any("column(s) participant_id appear more than once" in w for w in warnings)
    assert sorted(r.getMessage() for r in caplog.records) == sorted(warnings)
    used = table.loc[table["label"].notna() & table.index.isin(subjects), "label"].astype(int).to_dict()
    assert used == {"01": 0, "02": 2, "05": 2, "07": 2, "08": 0, "09": 2, "10": 0, "11": 2, "12": 0}
    assert table.loc["04", "reason"] == "several rows with different diagnoses in participants.tsv"


def test_br21_one_row_per_session(tmp_path):
    bids = tmp_path / "bids"
    (bids / "sub-01").mkdir(parents=True)
    (bids / "participants.tsv").write_text("participant_id\tsession_id\tdiagnosis\nsub-01\tses-M24\tAD\n"
                                           "sub-01\tses-M00\tCN\nsub-01\tses-M12\tMCI\n")
    table = read_participants_tsv(bids)
    assert table.loc["01", "diagnosis"] == "CN" and int(table.loc["01", "label"]) == 0
    assert any("one row per session" in w for w in table.attrs["warnings"])


# --- BR-23: tiny classes, single class -------------------------------------------------------------------------
def test_br23_small_classes_reduce_folds_and_single_class_is_refused():
    from bidsad.learn.splits import make_splits

    ids = [f"sub-{i:02d}" for i in range(12)]
    splits, warnings = make_splits(ids, [0] * 7 + [2] * 2 + [1] * 3, folds=5, seed=0)  # A: CN 7, AD 2, MCI 3
    assert warnings == ["--folds 5: the smallest class has 2 participant(s); using 2 folds."]
    assert splits.fold.max() == 2
    for _, rows in splits[splits.role == "test"].groupby("fold"):  # stratified: every class in every test fold
        labels = [([0] * 7 + [2] * 2 + [1] * 3)[ids.index(p)] for p in rows.participant_id]
        assert sorted(set(labels)) == [0, 1, 2]
    ids = [f"sub-{i:02d}" for i in range(17)]
    splits, warnings = make_splits(ids, [0] * 10 + [1] * 6 + [2], folds=5, seed=0)  # B: AD has 1 member
    assert "smallest class has 1 participant" in warnings[0] and sorted(splits.fold.unique()) == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="every usable participant has diagnosis CN; classification needs at least two classes"):
        make_splits([f"sub-{i}" for i in range(6)], [0] * 6, folds=5, seed=0)  # C


# --- BR-25: large images and memory ------------------------------------------------------------------------------
def test_br25_conform_holds_no_float64_copy_of_a_4d_series(tmp_path):
    """An int16 series with scaling is conformed with float32 arrays only: peak traced memory stays below
    two float32 copies (a float64 copy alone would be two; nibabel's own scaling peaked at four)."""
    import tracemalloc

    shape = (48, 48, 32, 60)
    raw = np.random.default_rng(0).integers(0, 2000, shape, dtype=np.int16)
    img = nb.Nifti1Image(raw, np.diag([4.0, 4.0, 4.0, 1.0]))
    img.header.set_slope_inter(0.5, 10)
    nb.save(img, tmp_path / "big.nii")
    del raw, img
    float32_bytes = np.prod(shape) * 4
    tracemalloc.start()
    conform_image(tmp_path / "big.nii", tmp_path / "out.nii", 4, "BOLD", "big", repetition_time=2.0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"conform peak traced memory {peak / 2**20:.1f} MiB for a {float32_bytes / 2**20:.1f} MiB float32 series")
    assert peak < 2 * float32_bytes


def test_br25_run_over_the_memory_budget_is_refused_by_name(tmp_path):
    bids = bd.make_dataset(tmp_path / "bids", subjects=("01",), n_vols=12)
    (part,) = collect_participants(bids, mem_gb=8.0)
    (run,) = part.bold
    assert run.mem_gb == pytest.approx(20 * 24 * 20 * 12 * 9 / 1e9, abs=1e-3)
    (part,) = collect_participants(bids, mem_gb=run.mem_gb / 2)
    assert not part.bold and part.t1w is not None
    assert part.errors[0].startswith("sub-01/func/sub-01_task-rest_bold.nii.gz: reading this BOLD run needs about")
    assert "memory, more than --mem" in part.errors[0]


# --- BR-26: reused work directory ----------------------------------------------------------------------------
def test_br26_work_dir_of_another_version_warns(tmp_path, caplog):
    from bidsad import __version__
    from bidsad.participant import _check_work_stamp

    _check_work_stamp(tmp_path)
    with caplog.at_level(logging.WARNING, logger="bidsad"):
        _check_work_stamp(tmp_path)
    assert not caplog.records
    bd.write_json(tmp_path / "bidsad_stamp.json", {"bidsad_version": "0.0.1"})
    with caplog.at_level(logging.WARNING, logger="bidsad"):
        _check_work_stamp(tmp_path)
    (record,) = caplog.records
    assert "-w/--work-dir" in record.getMessage() and "bidsad 0.0.1" in record.getMessage()
    assert f"this is bidsad {__version__}" in record.getMessage()
    assert os.path.getsize(tmp_path / "bidsad_stamp.json") > 0
