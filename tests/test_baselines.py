"""Baselines: regional grey matter and tangent-space connectivity, fitted on training participants only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bidsad.learn import baselines
from bidsad.synthetic import make_synthetic_derivatives


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from bidsad.learn.cohort import build_cohort

    bids, out = make_synthetic_derivatives(tmp_path_factory.mktemp("baselines"), 18, preset="small", seed=3)
    return out, build_cohort(out, bids, "small")


def _fitted_state(pipeline):
    """Every fitted array of the pipeline (tangent reference, imputer, scaler, classifier)."""
    state = []
    for _, step in pipeline.steps:
        inner = getattr(step, "measure_", step)
        for name in ("mean_", "whitening_", "statistics_", "scale_", "var_", "coef_", "intercept_"):
            if hasattr(inner, name):
                state.append(np.asarray(getattr(inner, name), float))
        for calibrated in getattr(step, "calibrated_classifiers_", []):
            state.append(np.asarray(calibrated.estimator.coef_, float))
    return state


@pytest.mark.parametrize("kind", ["gm", "connectivity"])
@pytest.mark.parametrize("classifier", baselines.CLASSIFIERS)
def test_test_participants_never_reach_the_fit(cohort, kind, classifier):
    out, table = cohort
    ids = list(table.participant_id)
    labels = dict(zip(ids, table.label.astype(int)))
    found = baselines.find_inputs(out, ids)
    assert found["atlas"] == {"gm": "synthetic", "connectivity": "synthetic"}
    features = baselines.read_gm(found["gm"]) if kind == "gm" else baselines.read_timeseries(found["connectivity"])
    train, test = ids[:12], ids[12:]
    fitted, proba = baselines.fit_predict_fold(kind, classifier, features, labels, train, test, seed=0)
    # perturb every test participant's data wildly: the fitted model must not change, its predictions must
    rng = np.random.default_rng(0)
    if kind == "gm":
        perturbed = features.copy()
        perturbed.loc[test] = rng.normal(100, 50, size=perturbed.loc[test].shape)
    else:
        perturbed = {k: (v if k in train else rng.normal(size=v.shape) * 10) for k, v in features.items()}
    refitted, proba2 = baselines.fit_predict_fold(kind, classifier, perturbed, labels, train, test, seed=0)
    before, after = _fitted_state(fitted), _fitted_state(refitted)
    assert len(before) >= 3 and all(np.array_equal(a, b) for a, b in zip(before, after))
    assert not np.allclose(proba, proba2)
    assert proba.shape == (6, 3) and np.allclose(proba.sum(axis=1), 1.0)


def test_gm_baseline_learns_a_strong_regional_effect(cohort):
    out, table = cohort
    ids = list(table.participant_id)
    labels = dict(zip(ids, table.label.astype(int)))
    features = baselines.read_gm(baselines.find_inputs(out, ids)["gm"])
    _, proba = baselines.fit_predict_fold("gm", "logreg", features, labels, ids[:12], ids[12:], seed=0)
    truth = np.array([labels[i] for i in ids[12:]])
    # CN vs AD differ by 40% of the "hippocampal" volume: at least these two classes are told apart
    extreme = truth != 1
    assert (proba.argmax(axis=1)[extreme] == truth[extreme]).mean() >= 0.75


def test_baselines_skipped_with_a_message_without_regional_tables(cohort, tmp_path):
    from bidsad.config import Config

    out, table = cohort
    splits = pd.DataFrame({"cohort": "mri", "repeat": 1, "fold": [1] * len(table), "participant_id": table.participant_id,
                           "copy": 0, "role": ["test" if i % 3 == 0 else "train" for i in range(len(table))]})
    empty = tmp_path / "derivatives"
    empty.mkdir()
    results, rows, notes = baselines.run_baselines(empty, table, splits, Config())
    assert not results and not rows
    assert len(notes) == 2 and all("skipped" in n and "desc-gm_morph.tsv" in n for n in notes)
