"""Classical baselines beside the deep models, on the same participant-level folds.

Inputs are exactly the participant level's outputs (docs/outputs.md; named by :mod:`bidsad.derivatives`) and
participants.tsv, and nothing else:

- ``gm-*``: regional grey matter,
  ``sub-<l>/[ses-<s>/]anat/sub-<l>[_ses-<s>]_atlas-<atlas>_desc-gm_morph.tsv`` (columns ``index``, ``name``,
  ``volume_ml``; ml, native space);
- ``connectivity-*``: ROI time series,
  ``sub-<l>/[ses-<s>/]func/..._task-rest[_run-<r>]_space-MNI152NLin2009aSym_atlas-<atlas>_timeseries.tsv``
  (header = region names, one row per volume, ``n/a`` for a constant/empty region);
- ``voxel-svm``: the Jacobian-modulated grey-matter map at 4 mm in MNI space (:data:`bidsad.derivatives.VOXEL_GM`; the reference
  linear SVM of Samper-Gonzalez et al. 2018, NeuroImage 183:504-521, on the voxels of a grey-matter mask of
  the fold's training participants, centred, without per-voxel standardisation:
  :class:`bidsad.learn.baseline_steps.GreyMatterVoxels`);
- ``volumes-logreg``: global tissue (GM, WM, CSF) and medial-temporal grey-matter volumes as fractions of the
  total intracranial volume (:data:`bidsad.derivatives.VOLUMES_MORPH`, column ``fraction_of_tiv``): how much
  global atrophy alone predicts;
- ``age-sex-logreg``: ``age`` and ``sex`` of participants.tsv, to show how much demography alone predicts.

Each baseline is a scikit-learn pipeline fitted on the training participants of every fold of the same
participant-level splits as the deep models (inner validation participants count as training):
feature step (mean imputation; tangent-space connectivity with nilearn ``ConnectivityMeasure(kind="tangent")``,
Ledoit-Wolf covariances, Varoquaux et al. 2010), standardisation (voxels: the GM mask step instead) and a
class-balanced linear classifier (``class_weight="balanced"``: weights ``n / (k * n_class)`` from the rows
being fitted, i.e. the fold's training participants). The classifier's ``C`` is chosen by
``GridSearchCV`` (:data:`C_GRID`, score :func:`macro_ovr_auc`) on stratified inner folds of the training
participants only, refitting the whole pipeline per inner fold (nested cross-validation); a fold whose
smallest training class has fewer than :data:`MIN_TUNING_CLASS` participants uses :data:`DEFAULT_C` instead.
Classifiers: ``svm`` (``LinearSVC`` with Platt-scaled probabilities from ``CalibratedClassifierCV``) and
``logreg`` (L2 logistic regression).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from bidsad import messages
from bidsad.derivatives import GM_MORPH, ROI_TIMESERIES, VOLUMES_MORPH, VOXEL_GM
from bidsad.learn.baseline_steps import GreyMatterVoxels, TangentConnectivity
from bidsad.phenotype import CLASS_NAMES

LOGGER = logging.getLogger("bidsad")
#: Preferred ROI atlas for the time series when several exist (the participant level's default: nilearn's Power 2011).
DEFAULT_ROI_ATLAS = "power2011"
CLASSIFIERS = ("svm", "logreg")
#: Every baseline: name -> (input kind, classifier).
BASELINES = {"gm-svm": ("gm", "svm"), "gm-logreg": ("gm", "logreg"),
             "connectivity-svm": ("connectivity", "svm"), "connectivity-logreg": ("connectivity", "logreg"),
             "voxel-svm": ("voxel", "svm"), "volumes-logreg": ("volumes", "logreg"),
             "age-sex-logreg": ("demography", "logreg")}
#: Input kinds: (participant-level file of :mod:`bidsad.derivatives`, what for messages, preferred cohorts of the
#: splits). Time series are those of the ``task-rest`` runs.
KINDS = {"gm": (GM_MORPH, "regional grey matter", ["mri"]),
         "connectivity": (ROI_TIMESERIES, "connectivity", ["mri+bold", "mri"]),
         "voxel": (VOXEL_GM, "the voxel-wise grey-matter map", ["mri"]),
         "volumes": (VOLUMES_MORPH, "tissue and medial-temporal volumes (fractions of TIV)", ["mri"]),
         "demography": (None, "age and sex", ["mri"])}
#: Candidate inverse regularisation strengths per classifier (log-spaced; voxel features need small C).
C_GRID = {"svm": tuple(10.0 ** e for e in range(-6, 2)), "logreg": tuple(10.0 ** e for e in range(-5, 3))}
#: C when a training class is too small for inner folds.
DEFAULT_C = 1.0
#: Smallest training class that allows tuning (two inner folds, each training split with two per class).
MIN_TUNING_CLASS = 4


def _atlas(path: Path) -> str:
    match = re.search(r"_atlas-([a-zA-Z0-9]+)_", path.name)
    return match.group(1) if match else ""


def find_inputs(out_dir: Path, participant_ids) -> dict:
    """Participant-level inputs per participant: ``{"gm": {pid: path}, "connectivity": {pid: path},
    "voxel": {pid: path}, "volumes": {pid: path}, "atlas": {...}}``.

    Per kind, one atlas is used for everyone: :data:`DEFAULT_ROI_ATLAS` for time series when present,
    else the atlas most participants have. A participant with several sessions/runs uses the first
    in sorted order (as the tensors do).
    """
    from collections import Counter

    out_dir = Path(out_dir)
    found = {"gm": {}, "connectivity": {}, "voxel": {}, "volumes": {}, "atlas": {}}
    for kind in ("gm", "connectivity", "voxel", "volumes"):
        output = KINDS[kind][0]
        source = "task-rest" if kind == "connectivity" else ""
        candidates = {pid: output.find(out_dir / f"sub-{pid.removeprefix('sub-')}", source) for pid in participant_ids}
        if kind in ("voxel", "volumes"):  # no atlas
            found[kind] = {pid: paths[0] for pid, paths in candidates.items() if paths}
            continue
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


def _read_named_column(paths: dict, column: str, drop=()):
    """One numeric ``column`` of per-participant TSV tables indexed by their ``name`` column, without the rows
    named in ``drop``: DataFrame (participants x names, float64; NaN where ``n/a``, unparsable or absent)."""
    import pandas as pd

    rows = {}
    for pid, path in paths.items():
        table = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
        rows[pid] = pd.to_numeric(table.set_index("name")[column], errors="coerce").drop(list(drop), errors="ignore")
    return pd.DataFrame(rows).T


def read_gm(paths: dict):
    """Regional GM volumes: DataFrame (participants x regions, ml, float64; NaN where ``n/a``)."""
    return _read_named_column(paths, "volume_ml")


def read_volumes(paths: dict):
    """Tissue and medial-temporal volumes as fractions of the total intracranial volume: DataFrame (participants
    x names of the table other than ``TIV``, e.g. ``GM``, ``WM``, ``CSF``, ``hippocampus_left``; float64, unitless;
    NaN where ``n/a`` or absent)."""
    return _read_named_column(paths, "fraction_of_tiv", drop=("TIV",))


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


def read_voxels(paths: dict):
    """Voxel-wise maps: DataFrame (participants x voxels, float32, C-order ravel of the 3-D grid).

    Participants whose map has another shape than the most common one are left out (a note names them).
    Returns ``(table, notes)``. Memory: participants x voxels x 4 bytes (64 x 133,542 voxels at 4 mm: 34 MB).
    """
    from collections import Counter

    import nibabel as nb
    import numpy as np
    import pandas as pd

    images = {pid: nb.load(str(path)) for pid, path in paths.items()}
    shape = Counter(img.shape for img in images.values()).most_common(1)[0][0]
    odd = sorted(pid for pid, img in images.items() if img.shape != shape)
    rows = {pid: np.asarray(img.get_fdata(dtype=np.float32)).ravel() for pid, img in images.items() if img.shape == shape}
    notes = [messages.BASELINE_INPUT_SHAPE.format(ids=", ".join(odd), shape=shape)] if odd else []
    return pd.DataFrame.from_dict(rows, orient="index"), notes


def read_demography(bids_dir: Path, participant_ids):
    """``age`` (years) and ``sex`` (1 male, 0 female, NaN otherwise) from participants.tsv.

    Returns a DataFrame (participants x available columns of ``age``/``sex``, float64; NaN where unknown),
    empty when participants.tsv has neither column or does not exist.
    """
    import numpy as np
    import pandas as pd

    path = Path(bids_dir) / "participants.tsv"
    if not path.is_file():
        return pd.DataFrame(index=list(participant_ids))
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    table.columns = [c.strip().lower() for c in table.columns]
    table["participant_id"] = ["sub-" + str(x).strip().removeprefix("sub-") for x in table["participant_id"]]
    table = table.drop_duplicates("participant_id").set_index("participant_id")
    out = pd.DataFrame(index=list(participant_ids))
    if "age" in table:
        out["age"] = pd.to_numeric(table["age"], errors="coerce").reindex(out.index)
    if "sex" in table:
        codes = {"m": 1.0, "male": 1.0, "f": 0.0, "female": 0.0}
        out["sex"] = table["sex"].str.strip().str.lower().map(codes).reindex(out.index).astype(float)
    return out.loc[:, out.notna().any()].astype(np.float64)


def make_pipeline(kind: str, classifier: str, seed: int, calibration_folds: int | None = 3, C: float = DEFAULT_C,
                  memory=None):
    """Unfitted scikit-learn pipeline ``features -> scale -> classifier`` of baseline ``<kind>-<classifier>``
    (see the module docstring), with inverse regularisation strength ``C``.

    ``svm``: class-balanced ``LinearSVC`` with sigmoid (Platt) probabilities fitted by ``CalibratedClassifierCV``
    on ``calibration_folds`` internal folds of the rows it is fitted on (``None``: the bare ``LinearSVC``, as
    used for tuning ``C``); the calibrated pipeline must be fitted with :func:`fit_balanced`, whose balanced
    sample weights reach both the SVM and its sigmoid, so that the probabilities, like the SVM, do not favour the
    larger class (Platt scaling fitted without them learns the class prior: with 49 CN / 15 AD every test
    participant came out CN at a probability threshold of 0.5, a balanced accuracy of 0.51 at an AUC of 0.71);
    ``logreg``: class-balanced L2 ``LogisticRegression``. ``memory``: scikit-learn's
    transformer cache (a folder), so that the candidates of a grid share one tangent-space fit per inner fold.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if classifier == "svm":
        model = LinearSVC(C=C, class_weight="balanced", random_state=seed, max_iter=10000)
        if calibration_folds:  # Platt scaling on internal folds; class balance from fit's sample weights (fit_balanced)
            model = CalibratedClassifierCV(LinearSVC(C=C, random_state=seed, max_iter=10000), cv=calibration_folds,
                                           ensemble=False)
    else:
        model = LogisticRegression(C=C, class_weight="balanced", max_iter=5000)
    if kind == "voxel":  # GM mask, centred, one common scale (no per-voxel standardisation)
        return Pipeline([("voxels", GreyMatterVoxels()), ("classifier", model)], memory=memory)
    first = ("tangent", TangentConnectivity()) if kind == "connectivity" else ("impute", SimpleImputer())
    return Pipeline([first, ("scale", StandardScaler()), ("classifier", model)], memory=memory)


def fit_balanced(pipeline, X, y):
    """Fit ``pipeline`` (:func:`make_pipeline`) with class-balanced sample weights ``n / (k * n_class)`` of ``y``
    (scikit-learn's ``compute_sample_weight("balanced")``) given to its classifier step; returns it fitted."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.utils.class_weight import compute_sample_weight

    if not isinstance(pipeline.named_steps["classifier"], CalibratedClassifierCV):
        return pipeline.fit(X, y)  # class_weight="balanced" in the classifier itself
    return pipeline.fit(X, y, classifier__sample_weight=compute_sample_weight("balanced", y))


def macro_ovr_auc(estimator, X, y) -> float:
    """Model-selection score: mean over classes of the one-vs-rest ROC AUC of the class's decision value
    (``decision_function``; one column for two classes). A scikit-learn scorer (``estimator, X, y``)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(estimator.decision_function(X), dtype=float)
    y = np.asarray(y)
    if scores.ndim == 1:
        return float(roc_auc_score(y == estimator.classes_[1], scores))
    aucs = [roc_auc_score(y == c, scores[:, i]) for i, c in enumerate(estimator.classes_) if 0 < (y == c).sum() < len(y)]
    return float(np.mean(aucs)) if aucs else float("nan")


def fit_predict_fold(kind: str, classifier: str, features, labels: dict, train_ids, test_ids, seed: int,
                     n_classes: int = len(CLASS_NAMES)):
    """Fit one baseline on ``train_ids`` only (C tuned by nested cross-validation inside them) and predict ``test_ids``.

    ``features``: DataFrame (participants x features) for ``gm``, ``voxel`` and ``demography``, dict of
    time-series arrays for ``connectivity``. With every training class of at least :data:`MIN_TUNING_CLASS`
    participants, ``GridSearchCV`` picks ``C`` from :data:`C_GRID` by :func:`macro_ovr_auc` on
    ``min(3, smallest // 2)`` stratified inner folds (shuffled with ``seed``) of the training participants,
    refitting the whole pipeline (features, scaling, classifier) on each inner training split; otherwise ``C`` =
    :data:`DEFAULT_C`. The final pipeline with that ``C`` (and, for ``svm``, Platt probabilities on
    ``min(3, smallest)`` internal folds) is fitted on all training participants.

    Returns ``(pipeline, proba, C)``: the fitted pipeline, ``proba`` (n_test, n_classes) float64 over the
    task's classes (labels 0 .. n_classes - 1; 0 for a class absent from training) and the ``C`` used.

    Raises
    ------
    ValueError
        A training class has fewer than 2 participants.
    """
    import tempfile
    import warnings

    import numpy as np
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    def take(ids):
        return [features[i] for i in ids] if kind == "connectivity" else features.loc[list(ids)].to_numpy(np.float64)

    y = np.array([labels[i] for i in train_ids], dtype=int)
    counts = np.bincount(y)
    smallest = int(counts[counts > 0].min())
    if smallest < 2:
        raise ValueError("a training class has fewer than 2 participants (internal cross-validation needs 2)")
    X = take(train_ids)
    C = DEFAULT_C
    if smallest >= MIN_TUNING_CLASS:
        with tempfile.TemporaryDirectory(prefix="bidsad-baseline-") as cache, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-converged candidates of the grid are expected (and not chosen)
            search = GridSearchCV(make_pipeline(kind, classifier, seed, None, memory=cache if kind == "connectivity" else None),
                                  {"classifier__C": list(C_GRID[classifier])}, scoring=macro_ovr_auc, refit=False,
                                  cv=StratifiedKFold(min(3, smallest // 2), shuffle=True, random_state=seed))
            C = float(search.fit(X, y).best_params_["classifier__C"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        pipeline = fit_balanced(make_pipeline(kind, classifier, seed, min(3, smallest), C), X, y)
    proba = np.zeros((len(test_ids), n_classes))
    proba[:, pipeline.classes_] = pipeline.predict_proba(take(test_ids))
    return pipeline, proba, C


def _read_kind(kind: str, inputs: dict, bids_dir: Path | None, ids: list) -> tuple:
    """Features of one input kind: ``(features, participants that have them, notes)``; ``features`` is
    ``None`` (and the notes say why) when nobody has them."""
    what = KINDS[kind][1]
    if kind == "demography":
        table = read_demography(bids_dir, ids) if bids_dir is not None else None
        if table is None or table.shape[1] == 0:
            return None, [], [messages.BASELINES_SKIPPED_DEMOGRAPHY]
        return table, list(table.index[table.notna().any(axis=1)]), []
    paths = inputs[kind]
    if not paths:
        why = "no participant has the map" if kind == "voxel" else f"no participant has the table ({KINDS[kind][0].ending()})"
        return None, [], [messages.BASELINES_SKIPPED.format(what=what, why=why)]
    if kind == "voxel":
        features, notes = read_voxels(paths)
        return features, list(features.index), notes
    readers = {"gm": read_gm, "volumes": read_volumes, "connectivity": read_timeseries}
    return readers[kind](paths), list(paths), []


def run_baselines(out_dir: Path, included, splits, config, classes=CLASS_NAMES):
    """Every baseline of :data:`BASELINES` on the participant-level folds of ``splits``; writes
    ``group/baseline-<name>/predictions.tsv``.

    Each kind uses the splits of its preferred cohort (:data:`KINDS`: ``mri`` for ``gm``, ``voxel`` and
    ``demography``, ``mri+bold`` then ``mri`` for ``connectivity``; else the first cohort), restricted to
    participants that have its inputs; in the paper protocol only the original samples (``copy`` 0) are
    used, so baselines never leak. ``classes``: the task's class names (``included["label"]`` indexes them);
    ``config.execution.bids_dir`` holds participants.tsv (age, sex).

    Returns ``(results, metric_rows, notes)``: ``results`` as ``metrics.json["models"]`` plus, per baseline,
    ``inputs``, ``classifier``, ``C_grid``, ``tuning`` and the ``C`` chosen per fold (``hyperparameters``);
    long-format metric rows; and messages (e.g. :data:`bidsad.messages.BASELINES_SKIPPED` when inputs are absent).
    """
    import pandas as pd

    from bidsad.learn.evaluate import classification_metrics, evaluate_pooled, metrics_rows
    from bidsad.learn.folds import fold_label, fold_tag

    out_dir = Path(out_dir)
    group_dir = out_dir / "group"
    learning, seed = config.learning, config.seeds.random_seed
    bids_dir = Path(config.execution.bids_dir) if config.execution.bids_dir else None
    ids = list(included["participant_id"])
    labels = dict(zip(ids, included["label"].astype(int)))
    diagnoses = dict(zip(ids, included["diagnosis"]))
    inputs = find_inputs(out_dir, ids)
    results, rows, notes = {}, [], []
    cohorts = list(dict.fromkeys(splits["cohort"]))
    for kind, (_, what, preferred) in KINDS.items():
        if kind == "connectivity" and not inputs["connectivity"] and (included["bold"] == "").all():
            LOGGER.info(messages.BASELINES_NO_BOLD)  # a T1w-only dataset: nothing to rerun for
            continue
        features, have, kind_notes = _read_kind(kind, inputs, bids_dir, ids)
        notes += kind_notes
        if features is None:
            continue
        cohort = next((c for c in preferred if c in cohorts), cohorts[0])
        part = splits[(splits["cohort"] == cohort) & (splits["participant_id"].isin(have))]
        if "copy" in part:
            part = part[part["copy"].astype(int) == 0]
        for name, (baseline_kind, classifier) in BASELINES.items():
            if baseline_kind != kind:
                continue
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
                    _, proba, C = fit_predict_fold(kind, classifier, features, labels, train_ids, test_ids, seed, len(classes))
                except Exception as err:  # one baseline fold must not lose the others
                    notes.append(messages.FOLD_SKIPPED.format(model=f"{name} (baseline)", fold=fold_label(tag).removeprefix("fold "),
                                                              why=err))
                    continue
                table = pd.DataFrame({"participant_id": test_ids, "repeat": int(repeat), "fold": int(fold),
                                      "diagnosis": [diagnoses[i] for i in test_ids], "label": [labels[i] for i in test_ids],
                                      "predicted_label": proba.argmax(axis=1)})
                table["predicted_diagnosis"] = [classes[c] for c in table["predicted_label"]]
                for code, cls in enumerate(classes):
                    table[f"probability_{cls}"] = proba[:, code].round(6)
                predictions.append(table)
                fold_metrics = classification_metrics(table["label"], proba, classes)
                rows += metrics_rows(name, tag.removeprefix("fold-"), fold_metrics)
                result = results.setdefault(name, {
                    "folds": {}, "atlas": inputs["atlas"].get(kind, ""), "cohort": cohort, "inputs": what,
                    "classifier": classifier, "class_weight": "balanced", "C_grid": list(C_GRID[classifier]),
                    "tuning": "GridSearchCV, macro one-vs-rest ROC AUC, stratified inner folds of the training participants",
                    "hyperparameters": {}})
                result["folds"][tag.removeprefix("fold-")] = fold_metrics
                result["hyperparameters"][tag.removeprefix("fold-")] = {"C": C}
            if not predictions:
                continue
            _, evaluation, pooled_rows = evaluate_pooled(name, predictions, group_dir / f"baseline-{name}" / "predictions.tsv",
                                                         learning, seed)
            rows += pooled_rows
            results[name].update(evaluation)
    return results, rows, notes
