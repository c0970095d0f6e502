"""End to end on the bundled real data: participant then group level (small preset)."""

from __future__ import annotations

import gzip
import json
import shutil

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from bidsad.derivatives import PRESETS
from bidsad.templates import template_image

from .conftest import DEMO, run_bidsad, tree_checksums

pytestmark = pytest.mark.integration
LABELS = ["01", "02", "03", "04", "05", "06"]
WITH_BOLD = ["01", "02", "03"]


def test_bids_dir_untouched(demo_run):
    assert tree_checksums(DEMO) == demo_run["before"]


def test_derivatives_layout(demo_run):
    out = demo_run["out"]
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "bidsad"
    for label in LABELS:
        assert (out / f"sub-{label}.html").is_file()
        assert (out / f"sub-{label}/features/sub-{label}_res-small_desc-model_T1w.npy").is_file()
        bold = out / f"sub-{label}/features/sub-{label}_task-rest_res-small_desc-model_bold.npy"
        assert bold.is_file() == (label in WITH_BOLD)
    assert list(out.glob("logs/config-participant-*.toml")) and list(out.glob("logs/config-group-*.toml"))


def test_tensors_match_their_sidecars(demo_run):
    tensors = sorted(demo_run["out"].glob("sub-*/features/*.npy"))
    assert len(tensors) == 15  # 6 T1w, 6 modulated GM, 3 BOLD
    preset = PRESETS["small"]
    for path in tensors:
        meta = json.loads(path.with_suffix(".json").read_text())
        array = np.load(path, mmap_mode="r")
        assert list(array.shape) == meta["shape"] and array.dtype == np.float32 and meta["dtype"] == "float32"
        assert np.isfinite(array).all() and np.abs(array).max() > 0
        assert meta["preset"] == "small" and meta["Sources"][0].startswith("bids:raw:sub-")
        if meta["Modality"] == "bold":
            assert array.shape == (preset["frames"], *preset["bold_shape"])
            assert meta["RepetitionTime"] in (2.52, 2.0) and len(meta["frame_mask"]) == preset["frames"]
        else:
            assert array.shape == tuple(preset["mri_shape"])


def test_sub01_frames(demo_run):
    """sub-01 has 20 volumes: the small preset keeps 16 and says so in its report."""
    meta = json.loads((demo_run["out"] / "sub-01/features/sub-01_task-rest_res-small_desc-model_bold.json").read_text())
    assert meta["n_volumes"] == 20 and all(meta["frame_mask"])
    assert "the first 16 are used" in (demo_run["out"] / "sub-01.html").read_text()


def test_group_outputs_and_no_leakage(demo_run):
    group = demo_run["out"] / "group"
    cohort = pd.read_csv(group / "cohort.tsv", sep="\t")
    assert cohort["included"].all() and len(cohort) == 6
    splits = pd.read_csv(group / "splits.tsv", sep="\t")
    assert sorted(set(splits.cohort)) == ["mri", "mri+bold"]
    for (cohort_name, fold), rows in splits.groupby(["cohort", "fold"]):
        train = set(rows.loc[rows.role == "train", "participant_id"])
        test = set(rows.loc[rows.role == "test", "participant_id"])
        assert test and not train & test
        model = {"mri": "3dcnn", "mri+bold": "3dcnn-lstm"}[cohort_name]
        predicted = set(pd.read_csv(group / f"model-{model}/fold-{fold}/predictions.tsv", sep="\t")["participant_id"])
        assert predicted == test
    tested = splits[splits.role == "test"]
    assert sorted(tested[tested.cohort == "mri"].participant_id) == [f"sub-{x}" for x in LABELS]
    assert sorted(tested[tested.cohort == "mri+bold"].participant_id) == [f"sub-{x}" for x in WITH_BOLD]
    lstm = pd.read_csv(group / "model-3dcnn-lstm/predictions.tsv", sep="\t")
    assert sorted(lstm.participant_id) == [f"sub-{x}" for x in WITH_BOLD]
    probs = lstm[["probability_CN", "probability_MCI", "probability_AD"]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    metrics = pd.read_csv(group / "metrics.tsv", sep="\t")
    pooled = metrics[(metrics.fold == "pooled") & (metrics.metric == "balanced_accuracy")]
    assert sorted(pooled.model) == ["3dcnn", "3dcnn-lstm"]
    assert pooled.value.astype(float).between(0, 1).all()
    for model in ("3dcnn", "3dcnn-lstm"):
        cells = metrics[(metrics.model == model) & (metrics.fold == "pooled") & metrics.metric.str.startswith("confusion_")]
        n = int(metrics[(metrics.model == model) & (metrics.fold == "pooled") & (metrics.metric == "n")].value.iloc[0])
        assert len(cells) == 9 and cells.value.astype(int).sum() == n
        history = pd.read_csv(group / f"model-{model}/fold-1/history.tsv", sep="\t")
        assert list(history.epoch) == [1, 2] and np.isfinite(history.loss).all()
        assert (group / f"model-{model}/fold-1/model.keras").stat().st_size > 0
    summary = json.loads((group / "metrics.json").read_text())
    assert summary["random_seed"] == 0 and summary["versions"]["bidsad"]
    html = (group / "group.html").read_text()
    assert "PLACEHOLDER" in html and all(f"sub-{x}" in html for x in LABELS)


def _file_list(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "logs" not in p.parts)


@pytest.mark.slow  # over a minute on 2 cores: kept out of the default suite (15 min budget); run with -m slow
def test_participant_label_with_and_without_prefix(tmp_path):
    for name, label in (("a", "sub-01"), ("b", "01")):  # one work dir: the second run reuses the first's nodes
        run_bidsad(DEMO, tmp_path / name, "participant", "--participant-label", label, "--preset", "small",
                   "--anat-registration", "affine", "-w", tmp_path / "work", check_rc=0)
    files = _file_list(tmp_path / "a")
    assert files == _file_list(tmp_path / "b")
    xfm = json.loads((tmp_path / "a/sub-01/anat/sub-01_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.json").read_text())
    assert "affine" in xfm["Method"] and "SyN" not in xfm["Method"]
    assert "sub-01/features/sub-01_task-rest_res-small_desc-model_bold.npy" in files
    assert not any(f.startswith("sub-02") for f in files)


def test_broken_participant_fails_alone(tmp_path):
    bids = tmp_path / "bids"
    # T1w-only participants (no BOLD) keep this test short; sub-05 is the broken one
    shutil.copytree(DEMO, bids, ignore=shutil.ignore_patterns("sub-01", "sub-02", "sub-03"))
    bids.chmod(0o755)
    for path in bids.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    broken = bids / "sub-05/anat/sub-05_T1w.nii.gz"
    raw = gzip.decompress(broken.read_bytes())
    broken.write_bytes(gzip.compress(raw[: len(raw) // 3]))  # header intact, data truncated
    out = tmp_path / "out"
    proc = run_bidsad(bids, out, "participant", "--preset", "small", "--anat-registration", "affine",
                      "-w", tmp_path / "work", check_rc=1)
    assert "sub-05: failed: sub-05/anat/sub-05_T1w.nii.gz: truncated (" in proc.stderr
    assert "Traceback" not in proc.stderr
    for label in ("04", "06"):
        assert (out / f"sub-{label}/features/sub-{label}_res-small_desc-model_T1w.npy").is_file()
    assert not (out / "sub-05/features").exists()
    report = (out / "sub-05.html").read_text()
    assert "failed" in report and "sub-05_T1w.nii.gz" in report
    # the run summary, the log file and the last line of stderr list the failure with its file
    (summary,) = (out / "logs").glob("summary-participant-*.json")
    summary = json.loads(summary.read_text())
    assert [summary[f"sub-{x}"]["status"] for x in ("04", "05", "06")] == ["ok", "failed", "ok"]
    assert summary["sub-05"]["errors"][0].startswith("sub-05/anat/sub-05_T1w.nii.gz: truncated (")
    (log,) = (out / "logs").glob("participant-*.log")
    assert "sub-05: failed: sub-05/anat/sub-05_T1w.nii.gz: truncated (" in log.read_text()
    assert f"1 of 3 participants failed: sub-05. See their reports (sub-<label>.html) and {log}" in proc.stderr.splitlines()[-1]


@pytest.mark.slow  # over a minute on 2 cores: kept out of the default suite (15 min budget); run with -m slow
def test_group_with_excluded_participants_and_rerun_cleans_stale(demo_run, tmp_path):
    """A participant without a usable diagnosis is excluded with its reason; the report is still written."""
    bids = tmp_path / "bids"
    shutil.copytree(DEMO, bids)
    bids.chmod(0o755)
    tsv = bids / "participants.tsv"
    tsv.chmod(0o644)
    lines = tsv.read_text().splitlines()
    lines = [line.replace("\tAD\t", "\tSMC\t") if line.startswith("sub-06") else line
             for line in lines if not line.startswith("sub-05")]
    tsv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    shutil.copytree(demo_run["out"], out, ignore=shutil.ignore_patterns("group", "logs"))
    (out / "group/model-2dcnn").mkdir(parents=True)  # left by an earlier run
    proc = run_bidsad(bids, out, "group", "--preset", "small", "--epochs", "1", "--models", "3dcnn", check_rc=0)
    assert "group/ of an earlier run (models: 2dcnn) is kept as " in proc.stderr  # never destroyed (issue 17)
    assert not (out / "group/model-2dcnn").exists() and len(list(out.glob("group-*/model-2dcnn"))) == 1
    cohort = pd.read_csv(out / "group/cohort.tsv", sep="\t", keep_default_na=False).set_index("participant_id")
    assert cohort.loc["sub-05", "reason"] == "not listed in participants.tsv"
    assert "'SMC'" in cohort.loc["sub-06", "reason"]
    assert cohort["included"].tolist() == [True, True, True, True, False, False]
    html = (out / "group/group.html").read_text()
    assert "not listed in participants.tsv" in html and "Cohort (4 of 6 participants used)" in html
    # 4 participants (CN, MCI, AD, CN): the MCI and AD classes have one member -> unstratified folds, said early
    assert "unstratified" in proc.stderr and proc.stderr.index("unstratified") < proc.stderr.index("model 3dcnn, fold 1")
    assert not (out / "group/model-3dcnn-lstm").exists()


@pytest.mark.slow  # over a minute on 2 cores: kept out of the default suite (15 min budget); run with -m slow
def test_rerun_drops_tensors_of_inputs_that_became_unusable(demo_run, tmp_path):
    bids = tmp_path / "bids"
    shutil.copytree(DEMO, bids, ignore=shutil.ignore_patterns("sub-0[2-6]"))
    out, work = tmp_path / "out", tmp_path / "work"
    run_bidsad(bids, out, "participant", "--preset", "small", "--anat-registration", "affine", "-w", work, check_rc=0)
    bold = out / "sub-01/features/sub-01_task-rest_res-small_desc-model_bold.npy"
    assert bold.is_file()
    sidecar = bids / "sub-01/func/sub-01_task-rest_bold.json"
    sidecar.chmod(0o644)
    meta = json.loads(sidecar.read_text())
    meta["RepetitionTime"] = 2520  # milliseconds: refused, never guessed (a missing TR falls back to the header)
    sidecar.write_text(json.dumps(meta))
    refused = run_bidsad(bids, out, "participant", "--preset", "small", "-w", work, check_rc=2)  # the validator
    assert "REPETITION_TIME_MISMATCH (1 file: sub-01/func/sub-01_task-rest_bold.nii.gz)" in refused.stderr
    proc = run_bidsad(bids, out, "participant", "--preset", "small", "--anat-registration", "affine", "-w", work,
                      "--skip-bids-validation", check_rc=1)
    assert "sub-01/func/sub-01_task-rest_bold.nii.gz: RepetitionTime 2520 looks like milliseconds" in proc.stderr
    assert not bold.exists() and (out / "sub-01/features/sub-01_res-small_desc-model_T1w.npy").is_file()


SKULL_STRIPPED = ["04", "05", "06"]
MNI = "space-MNI152NLin2009aSym_res-2"


def test_anat_derivatives_and_reportlets(demo_run):
    out = demo_run["out"]
    for label in LABELS:
        anat = out / f"sub-{label}/anat"
        names = [f"sub-{label}_desc-preproc_T1w.nii.gz", f"sub-{label}_desc-brain_mask.nii.gz",
                 f"sub-{label}_{MNI}_desc-preproc_T1w.nii.gz", f"sub-{label}_{MNI}_desc-brain_mask.nii.gz",
                 f"sub-{label}_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.h5",
                 f"sub-{label}_from-MNI152NLin2009aSym_to-T1w_mode-image_xfm.h5"]
        names += [f"sub-{label}_{space}label-{t}_probseg.nii.gz" for t in ("CSF", "GM", "WM") for space in ("", f"{MNI}_")]
        for name in names:
            assert (anat / name).is_file(), name
            meta = json.loads((anat / name.replace(".nii.gz", ".json").replace(".h5", ".json")).read_text())
            assert meta["Sources"] == [f"bids:raw:sub-{label}/anat/sub-{label}_T1w.nii.gz"]
        mask_meta = json.loads((anat / f"sub-{label}_desc-brain_mask.json").read_text())
        assert mask_meta["SkullStripped"] == (label in SKULL_STRIPPED)
        mni = nb.load(anat / f"sub-{label}_{MNI}_desc-preproc_T1w.nii.gz")
        assert mni.shape == (99, 117, 95) and np.allclose(mni.affine, template_image("T1w", 2).affine)
        gm = nb.load(anat / f"sub-{label}_label-GM_probseg.nii.gz").get_fdata()
        assert 0 <= gm.min() and gm.max() <= 1 and gm.mean() > 0.01
        html = (out / f"sub-{label}.html").read_text()
        for figure in (f"sub-{label}_desc-brain_mask.svg", f"sub-{label}_space-MNI152NLin2009aSym_T1w.svg",
                       f"sub-{label}_dseg.svg"):
            assert (out / f"sub-{label}/figures/{figure}").stat().st_size > 10_000
            assert f"<code>sub-{label}/figures/{figure}</code>" in html  # embedded as a data URI above it


def test_normalised_brain_masks_match_the_template(demo_run):
    """Every T1w of the demo data (whole head and skull-stripped): Dice with the template's mask >= 0.93."""
    template = template_image("mask", 2).get_fdata() > 0
    for label in LABELS:
        mask = nb.load(demo_run["out"] / f"sub-{label}/anat/sub-{label}_{MNI}_desc-brain_mask.nii.gz").get_fdata() > 0
        dice = 2 * (mask & template).sum() / (mask.sum() + template.sum())
        print(f"sub-{label}: normalised brain mask vs MNI152NLin2009aSym mask, Dice {dice:.4f}")
        assert dice >= 0.93, label


def test_mri_tensor_is_on_the_mni_model_grid(demo_run):
    meta = json.loads((demo_run["out"] / "sub-04/features/sub-04_res-small_desc-model_T1w.json").read_text())
    assert meta["Space"] == "MNI152NLin2009aSym" and meta["field_of_view_mm"] == [197.0, 233.0, 189.0]
    assert "resize_mri_volume" in meta["Interpolation"] and "brain mask" in meta["Normalisation"]
    tensor = np.load(demo_run["out"] / "sub-04/features/sub-04_res-small_desc-model_T1w.npy")
    inside = tensor != 0
    assert abs(tensor[inside].mean()) < 1e-3 and tensor[inside].std() == pytest.approx(1.0, abs=1e-3)
    assert 0.15 < inside.mean() < 0.35  # the brain fills about a quarter of the template box


@pytest.mark.slow  # kept out of the default suite (15 min budget on 2 cores); run with -m slow
def test_group_with_another_preset_names_the_one_found_and_saves_no_config(demo_run):
    out = demo_run["out"]
    logs = sorted((out / "logs").glob("config-*.toml"))
    proc = run_bidsad(DEMO, out, "group", "--preset", "paper", "-w", demo_run["work"], check_rc=2)
    assert "no model features for preset 'paper'" in proc.stderr and "pass --preset small" in proc.stderr
    assert sorted((out / "logs").glob("config-*.toml")) == logs
