"""Group level: cohort -> participant-level folds -> train per fold -> predictions -> metrics -> report."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bidsad import __version__, messages
from bidsad.bids import CLASS_NAMES

LOGGER = logging.getLogger("bidsad")


def software_versions() -> dict:
    """Versions of bidsad and the libraries that shape its numbers."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"bidsad": __version__}
    for package in ("tensorflow", "tensorflow-cpu", "keras", "numpy", "scikit-learn", "nibabel", "nilearn",
                    "nipype", "pybids", "pandas", "antspyx", "matplotlib", "jinja2"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            pass
    return versions


def fold_seed(seed: int, model: str, fold: int) -> int:
    """Seed of one model and fold, derived from the master seed (stable across runs and platforms)."""
    import zlib

    return (seed * 1_000_003 + zlib.crc32(model.encode()) + fold) % 2**31


def train_fold(config, out_dir: Path, model_name: str, fold: int, train_rows, test_rows, model_dir: Path,
               saliency=None, validation_rows=None):
    """Train one model on one fold's training participants and predict its test participants.

    Training data are augmented on the fly unless ``config.learning.augment`` is off; with
    ``validation_rows`` (training participants held out, never test ones), training stops early when
    the validation loss has not improved for ``config.learning.patience`` epochs, keeping the best weights.

    Writes ``model.keras``, ``history.tsv`` (loss and accuracy per epoch) and ``predictions.tsv``
    into ``model_dir``; returns the predictions DataFrame. For models with an MRI branch, the test
    participants' gradient saliency maps are added to ``saliency`` (a
    :class:`bidsad.learn.saliency.SaliencyAccumulator`) when one is given.
    """
    import keras
    import pandas as pd

    from bidsad.learn.data import make_dataset, tensor_shapes
    from bidsad.learn.models import MODALITIES, build_model
    from bidsad.utils import atomic_write_text

    learning = config.learning
    seed = fold_seed(config.seeds.random_seed, model_name, fold)
    keras.utils.set_random_seed(seed)
    modalities = MODALITIES[model_name]
    shapes = tensor_shapes(out_dir, train_rows.iloc[0], modalities)
    model = build_model(model_name, shapes, len(CLASS_NAMES), dropout=learning.dropout)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    augment = {} if learning.augment else None
    train_ds = make_dataset(out_dir, train_rows, modalities, batch_size=learning.batch_size, shuffle=True, seed=seed,
                            augment=augment)
    fit_args = {}
    if validation_rows is not None and len(validation_rows):
        fit_args["validation_data"] = make_dataset(out_dir, validation_rows, modalities,
                                                   batch_size=learning.batch_size, shuffle=False, seed=seed)
        fit_args["callbacks"] = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=learning.patience,
                                                               restore_best_weights=True)]
    history = model.fit(train_ds, epochs=learning.epochs, shuffle=False, verbose=0, **fit_args)  # tf.data shuffles
    test_ds = make_dataset(out_dir, test_rows, modalities, batch_size=learning.batch_size, shuffle=False,
                           seed=seed, with_labels=False)
    proba = model.predict(test_ds, verbose=0)

    model_dir.mkdir(parents=True, exist_ok=True)
    tmp_model = model_dir / ".model.keras.tmp.keras"
    model.save(tmp_model)
    os.replace(tmp_model, model_dir / "model.keras")
    hist = pd.DataFrame(history.history)
    hist.insert(0, "epoch", range(1, len(hist) + 1))
    atomic_write_text(model_dir / "history.tsv", hist.to_csv(sep="\t", index=False))
    predictions = pd.DataFrame({
        "participant_id": test_rows["participant_id"].to_list(),
        "fold": fold,
        "diagnosis": test_rows["diagnosis"].to_list(),
        "label": test_rows["label"].astype(int).to_list(),
        "predicted_label": proba.argmax(axis=1),
    })
    predictions["predicted_diagnosis"] = [CLASS_NAMES[c] for c in predictions["predicted_label"]]
    for code, name in enumerate(CLASS_NAMES):
        predictions[f"probability_{name}"] = proba[:, code].round(6)
    atomic_write_text(model_dir / "predictions.tsv", predictions.to_csv(sep="\t", index=False))
    if saliency is not None and "mri" in modalities:
        from bidsad.learn.saliency import fold_saliency

        try:
            fold_saliency(model, out_dir, test_rows, modalities, learning.batch_size, saliency)
        except Exception as err:  # saliency is a report, never a reason to lose the fold
            LOGGER.debug("saliency of model %s, fold %d failed", model_name, fold, exc_info=True)
            saliency.failures.append(messages.SALIENCY_FAILED.format(model=f"{model_name}, fold {fold}", why=err))
    return predictions


def run_group_level(config) -> int:
    """Run the group level; return the exit status (1 when a model failed, else 0).

    Raises
    ------
    InputError
        No usable features, an unusable participants.tsv, or no cohort that can be split.
    """
    import shutil

    import pandas as pd

    from bidsad.utils import native_stderr_silenced

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_silenced(not config.execution.verbose):
        import keras
        import tensorflow as tf

    from bidsad.bids import InputError
    from bidsad.config import seed_everything
    from bidsad.learn.cohort import build_cohort
    from bidsad.learn.evaluate import classification_metrics, evaluate_predictions, metrics_rows
    from bidsad.learn.models import MODALITIES
    from bidsad.learn.saliency import SaliencyAccumulator, write_saliency
    from bidsad.learn.splits import add_validation, check_no_leakage, cohort_name, plan_splits
    from bidsad.reports.boilerplate import write_boilerplate
    from bidsad.reports.group import write_group_report
    from bidsad.utils import atomic_write_json, atomic_write_text

    ex, learning = config.execution, config.learning
    out_dir, bids_dir = Path(ex.out_dir), Path(ex.bids_dir)
    group_dir = out_dir / "group"
    seed_everything(config.seeds.random_seed)
    tf.config.experimental.enable_op_determinism()
    if not ex.verbose:
        tf.get_logger().setLevel("ERROR")
    keras.utils.set_random_seed(config.seeds.random_seed)

    cohort = build_cohort(out_dir, bids_dir, config.features.preset)
    previous = sorted(p.name.removeprefix("model-") for p in group_dir.glob("model-*"))
    if previous:
        LOGGER.warning(messages.GROUP_REPLACED.format(models=", ".join(previous)))
    shutil.rmtree(group_dir, ignore_errors=True)  # group/ always describes one run
    atomic_write_text(group_dir / "cohort.tsv", cohort.to_csv(sep="\t", index=False, na_rep="n/a"))
    included = cohort[cohort["included"]].reset_index(drop=True)
    models = list(dict.fromkeys(learning.models))
    splits, warnings = plan_splits(included, [MODALITIES[m] for m in models], learning.folds,
                                   config.seeds.random_seed)
    if splits.empty:
        raise InputError("; ".join(warnings))
    if learning.validation:
        labels = dict(zip(included["participant_id"], included["label"].astype(int)))
        parts = []
        for name, part in splits.groupby("cohort", sort=False):
            part, notes = add_validation(part, labels, config.seeds.random_seed)
            parts.append(part)
            warnings += [messages.SPLIT_COHORT.format(modalities=name, warning=note) for note in notes]
        splits = pd.concat(parts, ignore_index=True)
    if len(included) < 30:
        warnings.append(messages.SMALL_N.format(n=len(included)))
    for warning in warnings:
        LOGGER.warning(warning)

    def warn(message: str) -> None:
        warnings.append(message)
        LOGGER.warning(message)
    atomic_write_text(group_dir / "splits.tsv", splits.to_csv(sep="\t", index=False))

    status, metric_rows, results = 0, [], {}
    for model_name in models:
        modalities = MODALITIES[model_name]
        usable = included[(included[list(modalities)] != "").all(axis=1)]
        model_splits = splits[splits["cohort"] == cohort_name(modalities)]
        if model_splits.empty:
            warn(messages.MODEL_SKIPPED.format(model=model_name, why=f"its {cohort_name(modalities)} cohort cannot be split"))
            continue
        fold_predictions, saliency = [], SaliencyAccumulator()
        for fold, members in model_splits.groupby("fold"):
            train_rows, validation_rows, test_rows = (
                usable[usable["participant_id"].isin(members.loc[members["role"] == role, "participant_id"])]
                for role in ("train", "validation", "test"))
            check_no_leakage(list(train_rows["participant_id"]) + list(validation_rows["participant_id"]),
                             test_rows["participant_id"], fold)
            LOGGER.info("model %s, fold %d: training on %d, testing on %d participants", model_name, fold, len(train_rows), len(test_rows))
            try:
                predictions = train_fold(config, out_dir, model_name, int(fold), train_rows, test_rows,
                                         group_dir / f"model-{model_name}" / f"fold-{fold}", saliency,
                                         validation_rows)
            except Exception as err:  # one model's failure must not lose the others
                LOGGER.exception("model %s, fold %d failed", model_name, fold)
                warn(f"model {model_name}, fold {fold} failed: {err}")
                status = 1
                continue
            fold_predictions.append(predictions)
            fold_metrics = classification_metrics(predictions["label"], predictions[[f"probability_{c}" for c in CLASS_NAMES]])
            metric_rows += metrics_rows(model_name, str(fold), fold_metrics)
            results.setdefault(model_name, {"folds": {}})["folds"][str(fold)] = fold_metrics
        if not fold_predictions:
            continue
        pooled = pd.concat(fold_predictions, ignore_index=True)
        atomic_write_text(group_dir / f"model-{model_name}" / "predictions.tsv", pooled.to_csv(sep="\t", index=False))
        evaluation = evaluate_predictions(pooled, n_bootstrap=learning.n_bootstrap,
                                          n_permutations=learning.n_permutations, seed=config.seeds.random_seed)
        metric_rows += metrics_rows(model_name, "pooled", evaluation["pooled"], evaluation["ci"])
        permutation = evaluation["permutation"]
        metric_rows.append({"model": model_name, "fold": "pooled", "metric": "permutation_p_value",
                            "value": "n/a" if permutation["p_value"] is None else permutation["p_value"],
                            "ci_low": "n/a", "ci_high": "n/a"})
        results[model_name].update(evaluation)
        for failure in saliency.failures:
            warn(failure)
        if saliency:
            try:
                used = usable[usable["participant_id"].isin(pooled["participant_id"])]["mri"]
                write_saliency(saliency, out_dir, used, group_dir / f"model-{model_name}" / "saliency", model_name)
            except Exception as err:  # a saliency failure must not lose the model's results
                LOGGER.debug("saliency maps of model %s failed", model_name, exc_info=True)
                warn(messages.SALIENCY_FAILED.format(model=model_name, why=err))

    metrics = pd.DataFrame(metric_rows, columns=["model", "fold", "metric", "value", "ci_low", "ci_high"])
    atomic_write_text(group_dir / "metrics.tsv", metrics.to_csv(sep="\t", index=False))
    atomic_write_json(group_dir / "metrics.json", {
        "models": results, "preset": config.features.preset, "folds": {c: int(f.max()) for c, f in splits.groupby("cohort")["fold"]},
        "random_seed": config.seeds.random_seed, "epochs": learning.epochs, "learning_rate": learning.learning_rate,
        "batch_size": learning.batch_size, "split_protocol": "participant-level stratified k-fold",
        "augmentation": learning.augment, "inner_validation": learning.validation, "patience": learning.patience,
        "versions": software_versions(), "warnings": warnings, "models_requested": list(dict.fromkeys(learning.models)),
        "dropout": learning.dropout, "n_bootstrap": learning.n_bootstrap, "n_permutations": learning.n_permutations,
        "run_uuid": ex.run_uuid,
    })
    try:
        report = write_group_report(out_dir, bids_dir)
    except Exception as err:  # the report must never cost the results already written
        import traceback

        LOGGER.error(messages.REPORT_FAILED.format(report=group_dir / "group.html", why=err, details=group_dir / "group.err"))
        atomic_write_text(group_dir / "group.err", f"group report failed: {err!r}\n\n{traceback.format_exc()}")
        return 1
    (group_dir / "group.err").unlink(missing_ok=True)
    try:
        write_boilerplate(out_dir)
    except Exception as err:  # never fatal: the outputs are written
        LOGGER.warning(messages.BOILERPLATE_FAILED.format(why=err))
    LOGGER.info(messages.GROUP_DONE.format(report=report))
    return status
