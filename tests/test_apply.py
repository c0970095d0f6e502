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
