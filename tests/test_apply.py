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


@pytest.fixture
def quick_config(tmp_path):
    path = tmp_path / "quick.toml"
    path.write_text("[learning]\nn_bootstrap = 20\nn_permutations = 20\n")
    return path


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


@pytest.mark.integration
def test_two_class_task_end_to_end(tmp_path, quick_config):
    bids, out = make_synthetic_derivatives(tmp_path / "c", 9, preset="small", seed=0, with_bold=False)
    run_bidsad(bids, out, "group", *QUICK, "--classes", "CN", "AD", "--config-file", quick_config,
               "-w", tmp_path / "w", check_rc=0)
    group = out / "group"
    cohort = pd.read_csv(group / "cohort.tsv", sep="\t", keep_default_na=False).set_index("participant_id")
    mci = cohort[cohort["diagnosis"] == "MCI"]
    assert len(mci) == 3 and (mci["included"].astype(str) == "False").all()
    assert mci["reason"].str.contains("--classes CN AD").all()
    predictions = pd.read_csv(group / "model-3dcnn-gap" / "predictions.tsv", sep="\t")
    assert [c for c in predictions if c.startswith("probability_")] == ["probability_CN", "probability_AD"]
    assert len(predictions) == 6 and set(predictions["predicted_diagnosis"]) <= {"CN", "AD"}
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
    html = (group / "group.html").read_text()
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

    from bidsad.bids import image_content_hash

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
