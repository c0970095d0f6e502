"""Classical baselines beside the deep models: linear classifiers on regional grey matter and connectivity.

Inputs are exactly the participant level's regional tables (README, Outputs), and nothing else:

- regional grey matter: ``sub-<l>/[ses-<s>/]anat/sub-<l>[_ses-<s>]_atlas-<atlas>_desc-gm_morph.tsv``
  (columns ``index``, ``name``, ``volume_ml``; ml, native space);
- ROI time series: ``sub-<l>/[ses-<s>/]func/sub-<l>[_ses-<s>]_task-rest[_run-<r>]_space-MNI152NLin2009aSym_atlas-<atlas>_timeseries.tsv``
  (header = region names, one row per volume, ``n/a`` for a constant/empty region).

Each baseline is a scikit-learn pipeline fitted on the training participants of every fold of the same
participant-level splits as the deep models (inner validation participants count as training; no
early stopping is needed): ``gm-*`` = mean imputation + standardisation + classifier on the regional
volumes; ``connectivity-*`` = tangent-space connectivity (nilearn ``ConnectivityMeasure(kind="tangent")``,
Ledoit-Wolf covariances; Varoquaux et al. 2010) + standardisation + classifier. The tangent reference
(the group mean covariance), imputer and scaler are fitted inside each fold on training participants
only. Classifiers: ``svm`` (``LinearSVC`` with Platt-scaled probabilities) and ``logreg``
(L2 logistic regression, regularisation chosen by internal cross-validation).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from bidsad import messages
from bidsad.bids import CLASS_NAMES

LOGGER = logging.getLogger("bidsad")
#: Preferred ROI atlas for the time series when several exist (the participant level's default: nilearn's Power 2011).
DEFAULT_ROI_ATLAS = "power2011"
CLASSIFIERS = ("svm", "logreg")
GM_PATTERN = "sub-{label}*_atlas-*_desc-gm_morph.tsv"
TIMESERIES_PATTERN = "sub-{label}*_task-rest*_space-MNI152NLin2009aSym_atlas-*_timeseries.tsv"


def _atlas(path: Path) -> str:
    match = re.search(r"_atlas-([a-zA-Z0-9]+)_", path.name)
    return match.group(1) if match else ""


def find_inputs(out_dir: Path, participant_ids) -> dict:
    """Regional tables per participant: ``{"gm": {pid: path}, "connectivity": {pid: path}, "atlas": {...}}``.

    Per kind, one atlas is used for everyone: :data:`DEFAULT_ROI_ATLAS` for time series when present,
    else the atlas most participants have. A participant with several sessions/runs uses the first
    in sorted order (as the tensors do).
    """
    from collections import Counter

    out_dir = Path(out_dir)
    found = {"gm": {}, "connectivity": {}, "atlas": {}}
    for kind, folder, pattern in (("gm", "anat", GM_PATTERN), ("connectivity", "func", TIMESERIES_PATTERN)):
        candidates = {}
        for pid in participant_ids:
            label = pid.removeprefix("sub-")
            candidates[pid] = sorted(p for p in (out_dir / f"sub-{label}").rglob(pattern.format(label=label))
                                     if p.parent.name == folder)
        atlases = Counter(_atlas(p) for paths in candidates.values() for p in paths)
        if not atlases:
            continue
        atlas = DEFAULT_ROI_ATLAS if kind == "connectivity" and DEFAULT_ROI_ATLAS in atlases else atlases.most_common(1)[0][0]
        found["atlas"][kind] = atlas
        for pid, paths in candidates.items():
            chosen = [p for p in paths if _atlas(p) == atlas]
            if chosen:
                found[kind][pid] = chosen[0]
    return found


def read_gm(paths: dict):
    """Regional GM volumes: DataFrame (participants x regions, ml, float64; NaN where ``n/a``)."""
    import pandas as pd

    rows = {}
    for pid, path in paths.items():
        table = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
        rows[pid] = pd.to_numeric(table.set_index("name")["volume_ml"], errors="coerce")
    return pd.DataFrame(rows).T


def read_timeseries(paths: dict) -> dict:
    """ROI time series per participant: ``{pid: float64 array (volumes, regions)}`` on the region order of
    the first file; ``n/a`` (constant/empty regions) and regions a file lacks become 0 (constant)."""
    import numpy as np
    import pandas as pd

    out, regions = {}, None
    for pid, path in paths.items():
        table = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
        regions = list(table.columns) if regions is None else regions
        out[pid] = table.reindex(columns=regions).apply(pd.to_numeric, errors="coerce").fillna(0.0).to_numpy(np.float64)
    return out


def _tangent_transformer():
    """A scikit-learn transformer: list of (volumes, regions) arrays -> tangent-space vectors (nilearn)."""
    from nilearn.connectome import ConnectivityMeasure
    from sklearn.base import BaseEstimator, TransformerMixin

    class TangentConnectivity(TransformerMixin, BaseEstimator):
        """nilearn ``ConnectivityMeasure(kind="tangent", vectorize=True, discard_diagonal=True)``."""

        def fit(self, X, y=None):
            self.measure_ = ConnectivityMeasure(kind="tangent", vectorize=True, discard_diagonal=True)
            self.measure_.fit(list(X))
            return self

        def transform(self, X):
            return self.measure_.transform(list(X))

    return TangentConnectivity()


def make_pipeline(kind: str, classifier: str, seed: int, calibration_folds: int = 3):
    """Unfitted scikit-learn pipeline of baseline ``<kind>-<classifier>`` (see the module docstring).

    ``svm``: ``LinearSVC`` with sigmoid (Platt) probabilities fitted by ``CalibratedClassifierCV`` on
    ``calibration_folds`` internal folds of the training data; ``logreg``: ``LogisticRegressionCV`` (L2,
    inverse regularisation strength chosen among 10 values by ``calibration_folds``-fold cross-validation
    inside the training participants).
    """
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    if classifier == "svm":  # Platt scaling on internal folds of the training participants
        model = CalibratedClassifierCV(LinearSVC(random_state=seed), cv=calibration_folds, ensemble=False)
    else:
        model = LogisticRegressionCV(Cs=10, cv=calibration_folds, max_iter=5000)
    first = ("tangent", _tangent_transformer()) if kind == "connectivity" else ("impute", SimpleImputer())
    return Pipeline([first, ("scale", StandardScaler()), ("classifier", model)])


def fit_predict_fold(kind: str, classifier: str, features, labels: dict, train_ids, test_ids, seed: int,
                     n_classes: int = len(CLASS_NAMES)):
    """Fit one baseline on ``train_ids`` only and predict ``test_ids``.

    ``features``: DataFrame (participants x regions) for ``gm``, dict of time-series arrays for
    ``connectivity``. Returns ``(pipeline, proba)`` with ``proba`` (n_test, n_classes) float64 over the task's
    classes (labels 0 .. n_classes - 1; 0 for a class absent from training).
    """
    import numpy as np

    def take(ids):
        return features.loc[list(ids)].to_numpy(np.float64) if kind == "gm" else [features[i] for i in ids]

    y = np.array([labels[i] for i in train_ids], dtype=int)
    smallest = int(np.bincount(y)[np.bincount(y) > 0].min())
    if smallest < 2:
        raise ValueError("a training class has fewer than 2 participants (internal cross-validation needs 2)")
    pipeline = make_pipeline(kind, classifier, seed, min(3, smallest)).fit(take(train_ids), y)
    proba = np.zeros((len(test_ids), n_classes))
    proba[:, pipeline.classes_] = pipeline.predict_proba(take(test_ids))
    return pipeline, proba


def run_baselines(out_dir: Path, included, splits, config, classes=CLASS_NAMES):
    """Every baseline on the participant-level folds of ``splits``; writes ``group/baseline-<name>/predictions.tsv``.

    ``gm-*`` use the splits of the ``mri`` cohort (else the first cohort), ``connectivity-*`` those of
    ``mri+bold`` (else ``mri``), restricted to participants with the regional table; in the paper
    protocol only the original samples (``copy`` 0) are used, so baselines never leak. ``classes``: the
    task's class names (``included["label"]`` indexes them).

    Returns ``(results, metric_rows, notes)``: ``results`` as ``metrics.json["models"]``, long-format
    metric rows, and messages (e.g. :data:`bidsad.messages.BASELINES_SKIPPED` when inputs are absent).
    """
    import pandas as pd

    from bidsad.learn.evaluate import classification_metrics, metrics_rows
    from bidsad.learn.train import evaluate_pooled, fold_label, fold_tag

    out_dir = Path(out_dir)
    group_dir = out_dir / "group"
    learning, seed = config.learning, config.seeds.random_seed
    labels = dict(zip(included["participant_id"], included["label"].astype(int)))
    diagnoses = dict(zip(included["participant_id"], included["diagnosis"]))
    inputs = find_inputs(out_dir, list(included["participant_id"]))
    results, rows, notes = {}, [], []
    cohorts = list(dict.fromkeys(splits["cohort"]))
    for kind, preferred, what in (("gm", ["mri"], "regional grey matter"),
                                  ("connectivity", ["mri+bold", "mri"], "connectivity")):
        paths = inputs[kind]
        if not paths and kind == "connectivity" and (included["bold"] == "").all():
            LOGGER.info(messages.BASELINES_NO_BOLD)  # a T1w-only dataset: nothing to rerun for
            continue
        if not paths:
            notes.append(messages.BASELINES_SKIPPED.format(what=what, why="no participant has the regional table"))
            continue
        cohort = next((c for c in preferred if c in cohorts), cohorts[0])
        part = splits[(splits["cohort"] == cohort) & (splits["participant_id"].isin(paths))]
        if "copy" in part:
            part = part[part["copy"].astype(int) == 0]
        features = read_gm(paths) if kind == "gm" else read_timeseries(paths)
        for classifier in CLASSIFIERS:
            name = f"{kind}-{classifier}"
            predictions = []
            for (repeat, fold), members in part.groupby(["repeat", "fold"]):
                train_ids = sorted(members.loc[members["role"] != "test", "participant_id"])
                test_ids = sorted(members.loc[members["role"] == "test", "participant_id"])
                tag = fold_tag(int(repeat), int(fold), learning.repeats)
                if len({labels[i] for i in train_ids}) < 2 or not test_ids:
                    notes.append(messages.FOLD_SKIPPED.format(model=f"{name} (baseline)", fold=fold_label(tag).removeprefix("fold "),
                                                              why="fewer than two classes in training"))
                    continue
                try:
                    _, proba = fit_predict_fold(kind, classifier, features, labels, train_ids, test_ids, seed, len(classes))
                except Exception as err:  # one baseline fold must not lose the others
                    notes.append(messages.FOLD_SKIPPED.format(model=f"{name} (baseline)", fold=fold_label(tag).removeprefix("fold "),
                                                              why=err))
                    continue
                table = pd.DataFrame({"participant_id": test_ids, "repeat": int(repeat), "fold": int(fold),
                                      "diagnosis": [diagnoses[i] for i in test_ids],
                                      "label": [labels[i] for i in test_ids],
                                      "predicted_label": proba.argmax(axis=1)})
                table["predicted_diagnosis"] = [classes[c] for c in table["predicted_label"]]
                for code, cls in enumerate(classes):
                    table[f"probability_{cls}"] = proba[:, code].round(6)
                predictions.append(table)
                fold_metrics = classification_metrics(table["label"], proba, classes)
                rows += metrics_rows(name, tag.removeprefix("fold-"), fold_metrics)
                results.setdefault(name, {"folds": {}, "atlas": inputs["atlas"][kind], "cohort": cohort})
                results[name]["folds"][tag.removeprefix("fold-")] = fold_metrics
            if not predictions:
                continue
            _, evaluation, pooled_rows = evaluate_pooled(name, predictions, group_dir / f"baseline-{name}" / "predictions.tsv",
                                                         learning, seed)
            rows += pooled_rows
            results[name].update(evaluation)
    return results, rows, notes
