"""Class subsets (two-class tasks), duplicate scans, fair baselines and applying trained models to new participants."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from bidsad.synthetic import make_synthetic_derivatives
from tests.conftest import run_bidsad

QUICK = ["--preset", "small", "--models", "3dcnn-gap", "--epochs", "1", "--folds", "2", "--no-augmentation",
         "--no-validation"]


def _svg_texts(path):
    return re.findall(r"<!-- (.*?) -->", path.read_text())


def test_select_classes_excludes_other_classes_and_recodes_labels(tmp_path):
    from bidsad.bids import InputError
    from bidsad.learn.cohort import build_cohort, select_classes

    bids, out = make_synthetic_derivatives(tmp_path, 6, preset="small", seed=0, with_bold=False)
    cohort = build_cohort(out, bids, "small")  # CN, MCI, AD cycle: sub-001 CN, sub-002 MCI, sub-003 AD
    chosen, classes, notes = select_classes(cohort, ["AD", "CN"])
    assert classes == ("CN", "AD") and notes == []
    by_id = chosen.set_index("participant_id")
    assert not by_id.loc["sub-002", "included"] and "--classes CN AD" in by_id.loc["sub-002", "reason"]
    assert by_id.loc["sub-001", "label"] == 0 and by_id.loc["sub-003", "label"] == 1
    assert list(cohort["label"]) == [0, 1, 2, 0, 1, 2]  # the input table is left as it was
    every, classes, _ = select_classes(cohort, None)
    assert classes == ("CN", "MCI", "AD") and every["included"].all()
    with pytest.raises(InputError, match="two classes"):
        select_classes(cohort[cohort["label"] != 2].reset_index(drop=True), ["CN", "AD"])


@pytest.mark.slow  # kept out of the default suite (15 min budget on 2 cores); run with -m slow
@pytest.mark.integration
def test_two_class_task_end_to_end(tmp_path, quick_config):
    bids, out = make_synthetic_derivatives(tmp_path / "c", 12, preset="small", seed=0, with_bold=False)
    run_bidsad(bids, out, "group", *QUICK, "--classes", "CN", "AD", "--config-file", quick_config,
               "-w", tmp_path / "w", check_rc=0)
    group = out / "group"
    cohort = pd.read_csv(group / "cohort.tsv", sep="\t", keep_default_na=False).set_index("participant_id")
    mci = cohort[cohort["diagnosis"] == "MCI"]
    assert len(mci) == 4 and (mci["included"].astype(str) == "False").all()
    assert mci["reason"].str.contains("--classes CN AD").all()
    predictions = pd.read_csv(group / "model-3dcnn-gap" / "predictions.tsv", sep="\t")
    assert [c for c in predictions if c.startswith("probability_")] == ["probability_CN", "probability_AD"]
    assert len(predictions) == 8 and set(predictions["predicted_diagnosis"]) <= {"CN", "AD"}
    summary = json.loads((group / "metrics.json").read_text())
    assert summary["classes"] == ["CN", "AD"] and summary["task"] == "CN vs AD"
    pooled = summary["models"]["3dcnn-gap"]["pooled"]
    assert pooled["classes"] == ["CN", "AD"] and len(pooled["confusion_matrix"]) == 2
    assert "roc_auc_MCI" not in pooled
    metrics = pd.read_csv(group / "metrics.tsv", sep="\t")
    assert not metrics["metric"].str.contains("MCI").any()
    roc = _svg_texts(group / "figures" / "roc.svg")
    assert "AD vs CN" in roc and not any("MCI" in t for t in roc)
    confusion = _svg_texts(group / "figures" / "confusion.svg")
    assert "CN" in confusion and "AD" in confusion and "MCI" not in confusion
    baselines = summary["baselines"]
    assert {"gm-svm", "gm-logreg", "voxel-svm", "age-sex-logreg"} <= set(baselines)
    assert baselines["voxel-svm"]["pooled"]["classes"] == ["CN", "AD"] and baselines["voxel-svm"]["hyperparameters"]
    baseline = pd.read_csv(group / "baseline-age-sex-logreg" / "predictions.tsv", sep="\t")
    assert len(baseline) == 8 and "probability_MCI" not in baseline
    html = (group / "group.html").read_text()
    assert "voxel-svm" in html and "age-sex-logreg" in html and "C chosen per fold" in html
    assert "CN vs AD" in html and re.search(r'<td>AD</td>\s*<td class="num">', html)
    assert not re.search(r'<td>MCI</td>\s*<td class="num">', html)  # no MCI row in the per-class table


def test_classes_option(demo_dir, tmp_path, capsys):
    from bidsad.cli.parser import parse_args

    common = [str(demo_dir), str(tmp_path / "o"), "group", "-w", str(tmp_path / "w")]
    assert parse_args(common + ["--classes", "AD", "CN"]).learning.classes == ["AD", "CN"]
    assert parse_args(common).learning.classes == []
    with pytest.raises(SystemExit) as err:
        parse_args(common + ["--classes", "AD", "AD"])
    assert err.value.code == 2 and "two or more classes" in capsys.readouterr().err


def test_content_hash_ignores_name_compression_and_header_but_not_voxels(tmp_path):
    import nibabel as nb
    import numpy as np

    from bidsad.derivatives import image_content_hash

    data = np.random.default_rng(0).integers(0, 1000, (6, 7, 8)).astype(np.int16)
    nb.save(nb.Nifti1Image(data, np.eye(4)), tmp_path / "sub-01_T1w.nii.gz")
    nb.save(nb.Nifti1Image(data.astype(">i2"), np.diag([2.0, 2, 2, 1])), tmp_path / "sub-99_T1w.nii")
    changed = data.copy()
    changed[0, 0, 0] += 1
    nb.save(nb.Nifti1Image(changed, np.eye(4)), tmp_path / "sub-02_T1w.nii.gz")
    first = image_content_hash(tmp_path / "sub-01_T1w.nii.gz")
    assert first.startswith("sha256:") and first == image_content_hash(tmp_path / "sub-99_T1w.nii")
    assert image_content_hash(tmp_path / "sub-02_T1w.nii.gz") != first


def _renamed_copy(out, bids, old: str, new: str):
    """Copy participant ``old``'s derivatives as participant ``new`` (files renamed) and list it in participants.tsv."""
    import shutil

    for path in (out / f"sub-{old}").rglob("*"):
        if path.is_file():
            target = out / f"sub-{new}" / path.relative_to(out / f"sub-{old}").as_posix().replace(f"sub-{old}", f"sub-{new}")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    table = pd.read_csv(bids / "participants.tsv", sep="\t", dtype=str)
    row = table[table["participant_id"] == f"sub-{old}"].assign(participant_id=f"sub-{new}")
    pd.concat([table, row]).to_csv(bids / "participants.tsv", sep="\t", index=False)


def test_training_refuses_one_scan_under_two_participant_ids(tmp_path, quick_config):
    bids, out = make_synthetic_derivatives(tmp_path / "c", 6, preset="small", seed=0, with_bold=False)
    _renamed_copy(out, bids, "002", "902")
    proc = run_bidsad(bids, out, "group", *QUICK, "--config-file", quick_config, "-w", tmp_path / "w", check_rc=2)
    assert "sub-002" in proc.stderr and "sub-902" in proc.stderr and "same T1w scan" in proc.stderr
    assert not (out / "group" / "metrics.json").exists()
    (log,) = (out / "logs").glob("group-*.log")  # the run's log lines up to the error, for reading afterwards
    assert "INFO: group level: training on " in log.read_text(encoding="utf-8")


def _copy_participant(src_out, src_bids, old: str, dst_out, dst_bids, new: str):
    """Copy participant ``old`` of a synthetic dataset into another one as ``new`` (files renamed, participants.tsv row)."""
    import shutil

    for path in (src_out / f"sub-{old}").rglob("*"):
        if path.is_file():
            rel = path.relative_to(src_out / f"sub-{old}").as_posix().replace(f"sub-{old}", f"sub-{new}")
            (dst_out / f"sub-{new}" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dst_out / f"sub-{new}" / rel)
    source = pd.read_csv(src_bids / "participants.tsv", sep="\t", dtype=str)
    row = source[source["participant_id"] == f"sub-{old}"].assign(participant_id=f"sub-{new}")
    table = pd.read_csv(dst_bids / "participants.tsv", sep="\t", dtype=str) if (dst_bids / "participants.tsv").is_file() else None
    pd.concat([t for t in (table, row) if t is not None]).to_csv(dst_bids / "participants.tsv", sep="\t", index=False)


@pytest.mark.integration
def test_model_card_and_applying_models_to_new_participants(tmp_path, quick_config):
    import shutil

    bids_a, out_a = make_synthetic_derivatives(tmp_path / "a", 12, preset="small", seed=0, with_bold=False)
    run_bidsad(bids_a, out_a, "group", *QUICK, "--classes", "CN", "AD", "--config-file", quick_config,
               "-w", tmp_path / "wa", check_rc=0)
    card = json.loads((out_a / "group" / "model_card.json").read_text())
    assert card["task"] == {"classes": ["CN", "AD"], "name": "CN vs AD"} and card["preset"] == "small"
    training = card["training_cohort"]
    assert training["n"] == 8 and training["counts"] == {"CN": 4, "AD": 4}
    assert {p["participant_id"] for p in training["participants"]} == {f"sub-{i:03d}" for i in (1, 3, 4, 6, 7, 9, 10, 12)}
    assert all(p["SourceContentHash"].startswith("sha256:") for p in training["participants"])
    assert card["tensor_parameters"]["mri"]["shape"] == [48, 56, 48] and card["tensor_parameters"]["mri"]["ParametersHash"]
    assert card["recipe"]["epochs"] == 1 and card["recipe"]["classes"] == ["CN", "AD"]
    model = card["models"]["3dcnn-gap"]
    assert len(model["fold_models"]) == 2 and all((out_a / "group" / p).is_file() for p in model["fold_models"])
    cv = model["cross_validated"]["balanced_accuracy"]
    assert cv["value"] is not None and cv["ci_low"] <= cv["value"] <= cv["ci_high"]
    assert card["software_versions"]["bidsad"] and "voxel-svm" in card["baselines"]
    assert "group/model_card.json" in (out_a / "group" / "group.html").read_text()

    # a new dataset (other people, other IDs)
    made_b, out_new = make_synthetic_derivatives(tmp_path / "b", 6, preset="small", seed=5, with_bold=False)
    bids_b, out_b = tmp_path / "bids_b", tmp_path / "out_b"
    for path, target in ((made_b, bids_b), (out_new, out_b)):
        target.mkdir()
        shutil.copyfile(path / "dataset_description.json", target / "dataset_description.json")
    for i in range(1, 7):
        _copy_participant(out_new, made_b, f"{i:03d}", out_b, bids_b, f"{100 + i}")
    apply_args = ["--apply-models", out_a / "group", "--config-file", quick_config, "-w", tmp_path / "wb"]
    run_bidsad(bids_b, out_b, "group", *apply_args, check_rc=0)
    predictions = pd.read_csv(out_b / "group" / "predictions.tsv", sep="\t")
    assert sorted(predictions["participant_id"]) == [f"sub-{100 + i}" for i in range(1, 7)]
    assert [c for c in predictions if c.startswith("probability_")] == ["probability_CN", "probability_AD"]
    assert ((predictions["probability_CN"] + predictions["probability_AD"]) - 1).abs().max() < 1e-5
    sidecar = json.loads((out_b / "group" / "predictions.json").read_text())
    assert "probability_AD" in sidecar and sidecar["ModelCard"].endswith("model_card.json")
    applied = json.loads((out_b / "group" / "model_card.json").read_text())
    assert applied["training_cohort"] == training and applied["application"]["n_participants"] == 6
    evaluation = applied["application"]["evaluation"]["3dcnn-gap"]
    assert evaluation["n"] == 4 and set(evaluation["within_cross_validated_ci"]) == set(model["cross_validated"])
    html = (out_b / "group" / "group.html").read_text()
    assert "sub-106" in html and "CN vs AD" in html and "training cohort" in html

    # a training participant's scan under a new ID, and a training participant's ID: refused, naming both
    _copy_participant(out_a, bids_a, "001", out_b, bids_b, "201")
    proc = run_bidsad(bids_b, out_b, "group", *apply_args, check_rc=2)
    assert "sub-201" in proc.stderr and "sub-001" in proc.stderr and "same T1w scan" in proc.stderr
    shutil.rmtree(out_b / "sub-201")
    _copy_participant(out_a, bids_a, "003", out_b, bids_b, "003")
    proc = run_bidsad(bids_b, out_b, "group", *apply_args, check_rc=2)
    assert "sub-003 is a training participant" in proc.stderr
    assert (out_b / "group" / "predictions.tsv").is_file()  # a refused run leaves the earlier outputs alone
    shutil.rmtree(out_b / "sub-003")

    # tensors made with other parameters than the training tensors (e.g. another normalisation): refused, named
    for sidecar_path in out_b.glob("sub-*/features/*_T1w.json"):
        meta = json.loads(sidecar_path.read_text())
        sidecar_path.write_text(json.dumps({**meta, "Normalisation": "another bidsad's normalisation"}))
    proc = run_bidsad(bids_b, out_b, "group", *apply_args, check_rc=2)
    assert "sub-101" in proc.stderr and "Normalisation" in proc.stderr and "training features" in proc.stderr
