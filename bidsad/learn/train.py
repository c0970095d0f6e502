"""Group level: cohort -> participant-level folds -> train per fold -> predictions -> metrics -> report."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from bidsad import __version__, messages
from bidsad.phenotype import CLASS_NAMES

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


def average_repeats(predictions):
    """One out-of-fold prediction per participant (per sample in the paper protocol): the class
    probabilities averaged over repeats (every repeat's model never saw that participant), argmax."""
    from bidsad.learn.evaluate import prediction_classes, probability_columns

    keys = ["participant_id"] + (["copy"] if "copy" in predictions else [])
    if "repeat" not in predictions or predictions["repeat"].nunique() == 1:
        return predictions
    classes = prediction_classes(predictions)
    probabilities = probability_columns(classes)
    first = predictions.groupby(keys, sort=False)[["diagnosis", "label"]].first()
    mean = predictions.groupby(keys, sort=False)[probabilities].mean()
    out = first.join(mean).reset_index()
    out["predicted_label"] = out[probabilities].to_numpy().argmax(axis=1)
    out["predicted_diagnosis"] = [classes[c] for c in out["predicted_label"]]
    return out


def evaluate_pooled(name: str, fold_predictions: list, out_file: Path, learning, seed: int):
    """Pool one model's (or baseline's) out-of-fold predictions, write them to ``out_file`` (TSV, atomically),
    and evaluate them once per participant (:func:`average_repeats`, then
    :func:`bidsad.learn.evaluate.evaluate_predictions` with ``learning.n_bootstrap`` / ``n_permutations``).

    Returns ``(pooled, evaluation, rows)``: the pooled predictions (DataFrame, as written), the evaluation dict
    and its ``metrics.tsv`` rows (pooled metrics with CIs, then the permutation p-value, ``n/a`` when it could
    not be computed).
    """
    import pandas as pd

    from bidsad.learn.evaluate import evaluate_predictions, metrics_rows
    from bidsad.utils import atomic_write_text

    pooled = pd.concat(fold_predictions, ignore_index=True)
    atomic_write_text(out_file, pooled.to_csv(sep="\t", index=False))
    evaluation = evaluate_predictions(average_repeats(pooled), n_bootstrap=learning.n_bootstrap,
                                      n_permutations=learning.n_permutations, seed=seed)
    rows = metrics_rows(name, "pooled", evaluation["pooled"], evaluation["ci"])
    p_value = evaluation["permutation"]["p_value"]
    rows.append({"model": name, "fold": "pooled", "metric": "permutation_p_value",
                 "value": "n/a" if p_value is None else p_value, "ci_low": "n/a", "ci_high": "n/a"})
    return pooled, evaluation, rows


def fold_tag(repeat: int, fold: int, repeats: int) -> str:
    """Folder name of one fold: ``fold-<k>``, or ``repeat-<r>_fold-<k>`` with repeated cross-validation."""
    return f"fold-{fold}" if repeats == 1 else f"repeat-{repeat}_fold-{fold}"


def fold_label(tag: str) -> str:
    """Readable name of a fold folder: ``fold-2`` -> ``fold 2``, ``repeat-3_fold-2`` -> ``fold 2 of repeat 3``."""
    match = re.fullmatch(r"(?:repeat-(\d+)_)?fold-(\d+)", tag)
    if not match:
        return tag
    return f"fold {match.group(2)}" + (f" of repeat {match.group(1)}" if match.group(1) else "")


def compute_device(config):
    """Where and how the group level trains: ``(strategy, description)``.

    With GPUs, Keras' global policy becomes ``mixed_bfloat16`` (bf16 compute, float32 weights; the
    softmax layer stays float32) and several GPUs are used through ``tf.distribute.MirroredStrategy``
    (the global batch is split between them). Without a GPU: float32 on the CPU (default strategy).
    ``config.learning.deterministic`` turns on ``tf.config.experimental.enable_op_determinism``
    (bit-identical reruns with the same seed, slower on GPU).
    """
    import keras
    import tensorflow as tf

    if config.learning.deterministic:
        tf.config.experimental.enable_op_determinism()
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        keras.mixed_precision.set_global_policy("float32")
        return tf.distribute.get_strategy(), "CPU, float32"
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy(), f"{len(gpus)} GPUs (MirroredStrategy), mixed_bfloat16"
    return tf.distribute.get_strategy(), "1 GPU, mixed_bfloat16"


def class_weights(labels, mode: str, n_classes: int = len(CLASS_NAMES)) -> dict | None:
    """Keras ``class_weight`` (class code 0 .. ``n_classes`` - 1 -> weight) for ``mode`` ``balanced``
    (scikit-learn's ``n / (k * n_c)`` over the classes present in ``labels``; absent classes get 1.0), or
    ``None`` for ``none``. Pass the training participants' labels only."""
    if mode != "balanced":
        return None
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.asarray(labels, dtype=int)
    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    return {c: float(dict(zip(present, weights)).get(c, 1.0)) for c in range(n_classes)}


def make_optimizer(learning, n_train: int):
    """Adam with ``learning.learning_rate``: constant, or (``lr_schedule`` ``cosine``) cosine decay to 0 over
    ``learning.epochs`` epochs of ``ceil(n_train / batch_size)`` steps (Loshchilov & Hutter 2017, without
    restarts; the step count lives in the optimizer, so a resumed fold continues the same schedule)."""
    import math

    import keras

    rate = learning.learning_rate
    if learning.lr_schedule == "cosine":
        steps = max(1, math.ceil(n_train / learning.batch_size) * learning.epochs)
        rate = keras.optimizers.schedules.CosineDecay(learning.learning_rate, decay_steps=steps)
    return keras.optimizers.Adam(learning_rate=rate)


def _fold_parameters(config, out_dir: Path, model_name: str, tag: str, rows: dict) -> str:
    """Hash of everything that determines one fold's result: settings, members and their tensor files."""
    from bidsad.learn.models import MODALITIES
    from bidsad.utils import params_hash

    learning = config.learning
    members = {}
    for role, table in rows.items():
        if table is None:
            continue
        entries = []
        for _, row in table.iterrows():
            files = []
            for modality in MODALITIES[model_name]:
                stat = (Path(out_dir) / row[modality]).stat()
                files.append([row[modality], stat.st_size, stat.st_mtime_ns])
            entries.append([row["participant_id"], int(row.get("copy", 0)), int(row["label"]), files])
        members[role] = entries
    settings = {k: getattr(learning, k) for k in ("epochs", "batch_size", "learning_rate", "dropout", "augment",
                                                  "patience", "class_weight", "deterministic", "lr_schedule", "l2",
                                                  "batch_norm", "mri_downsample")}
    return params_hash({"model": model_name, "fold": tag, "seed": config.seeds.random_seed,
                        "preset": config.features.preset, "settings": settings, "members": members})


def _callbacks(keras, state_dir: Path | None, state: dict, model_name: str, tag: str, validation: bool, patience: int):
    """Progress in the log, per-epoch checkpoints (``state_dir``) and resumable early stopping."""
    import json
    import time

    import numpy as np

    from bidsad.utils import atomic_write_text

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            seconds = time.perf_counter() - self.started
            logs["seconds"] = seconds
            state["history"].append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
            LOGGER.info("model %s, %s, epoch %d: %s", model_name, fold_label(tag), epoch + 1,
                        ", ".join(f"{k} {float(v):.4g}" for k, v in logs.items()))

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            saved = state.get("early_stopping")
            if saved and state_dir is not None and (state_dir / "best.weights.npz").is_file():
                self.best, self.wait, self.best_epoch = saved["best"], saved["wait"], saved["best_epoch"]
                with np.load(state_dir / "best.weights.npz") as arrays:
                    self.best_weights = [arrays[f"w{i}"] for i in range(len(arrays.files))]

    class Checkpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if stopper is not None:
                if stopper.best_weights is not None and stopper.best_epoch == epoch:
                    tmp = state_dir / ".best.weights.tmp.npz"
                    np.savez(tmp, **{f"w{i}": w for i, w in enumerate(stopper.best_weights)})
                    os.replace(tmp, state_dir / "best.weights.npz")
                state["early_stopping"] = {"best": None if stopper.best is None else float(stopper.best),
                                           "wait": int(stopper.wait),
                                           "best_epoch": int(stopper.best_epoch)}
            tmp = state_dir / ".checkpoint.tmp.keras"
            self.model.save(tmp)
            os.replace(tmp, state_dir / "checkpoint.keras")
            state["epoch"] = epoch + 1
            atomic_write_text(state_dir / "state.json", json.dumps(state))

    stopper = None
    if validation:
        stopper = ResumableEarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    callbacks = [Progress()] + ([stopper] if stopper else [])
    if state_dir is not None:
        callbacks.append(Checkpoint())
    return callbacks


def train_fold(config, out_dir: Path, model_name: str, fold: int, train_rows, test_rows, model_dir: Path,
               saliency=None, validation_rows=None, *, repeat: int = 1, repeats: int = 1, state_dir: Path | None = None,
               strategy=None, extra_callbacks=(), classes=CLASS_NAMES):
    """Train one model on one fold's training participants and predict its test participants.

    The recipe is ``config.learning`` (:data:`bidsad.config.RECIPES`): Adam (:func:`make_optimizer`), sparse
    categorical cross-entropy, the model's regularisation (``dropout``, ``l2``, ``batch_norm``,
    ``mri_downsample``; :func:`bidsad.learn.models.build_model`) and optional ``balanced`` class weights
    (:func:`class_weights`), computed from ``train_rows`` alone: validation and test participants never change
    them. Training data are augmented on the fly unless ``config.learning.augment`` is off (rows with ``copy``
    > 0 are the paper protocol's fixed copies and are not augmented again); with ``validation_rows`` (training
    participants held out, never test ones), the validation loss is weighted with the same class weights and
    training stops early when it has not improved for ``config.learning.patience`` epochs, keeping the best
    weights.

    With ``state_dir`` (under the work directory), the model, early-stopping state and history are saved
    there after every epoch; a rerun with the same parameters (hash of settings, members and tensor
    files) resumes from the last finished epoch, and a finished fold is reused without training.

    Writes ``model.keras``, ``history.tsv`` (loss, accuracy and seconds per epoch) and ``predictions.tsv``
    into ``model_dir``; returns the predictions DataFrame (one row per test participant, or per test
    sample with a ``copy`` column in the paper protocol; ``label`` and one ``probability_<class>`` column
    per class of ``classes``, the task's class names in label order: the model has ``len(classes)``
    outputs). For models with an MRI branch, the test
    participants' gradient saliency maps are added to ``saliency`` (a
    :class:`bidsad.learn.saliency.SaliencyAccumulator`) when one is given.
    """
    import json
    import shutil

    import keras
    import pandas as pd
    import tensorflow as tf

    from bidsad.learn.data import make_dataset, tensor_shapes
    from bidsad.learn.models import MODALITIES, build_model
    from bidsad.utils import atomic_write_text

    learning = config.learning
    tag = fold_tag(repeat, fold, repeats)
    seed = fold_seed(config.seeds.random_seed, model_name, fold + 1000 * (repeat - 1))
    keras.utils.set_random_seed(seed)
    strategy = strategy or tf.distribute.get_strategy()
    modalities = MODALITIES[model_name]
    model_dir = Path(model_dir)
    parameters = _fold_parameters(config, out_dir, model_name, tag,
                                  {"train": train_rows, "validation": validation_rows, "test": test_rows})
    state = {"parameters": parameters, "epoch": 0, "history": [], "done": False}
    if state_dir is not None:
        state_dir = Path(state_dir)
        try:
            saved = json.loads((state_dir / "state.json").read_text())
        except (OSError, ValueError):
            saved = None
        if saved and saved.get("parameters") == parameters:
            state = saved
        else:
            shutil.rmtree(state_dir, ignore_errors=True)
        state_dir.mkdir(parents=True, exist_ok=True)

    def finish(model):
        proba_model = model
        test_ds = make_dataset(out_dir, test_rows, modalities, batch_size=learning.batch_size, shuffle=False,
                               seed=seed, with_labels=False)
        proba = proba_model.predict(test_ds, verbose=0).astype("float64")
        predictions = pd.DataFrame({
            "participant_id": test_rows["participant_id"].to_list(),
            "repeat": repeat,
            "fold": fold,
            "diagnosis": test_rows["diagnosis"].to_list(),
            "label": test_rows["label"].astype(int).to_list(),
            "predicted_label": proba.argmax(axis=1),
        })
        if "copy" in test_rows and test_rows["copy"].astype(int).any():
            predictions.insert(1, "copy", test_rows["copy"].astype(int).to_list())
        predictions["predicted_diagnosis"] = [classes[c] for c in predictions["predicted_label"]]
        for code, name in enumerate(classes):
            predictions[f"probability_{name}"] = proba[:, code].round(6)
        return predictions

    if state["done"] and (state_dir / "model.keras").is_file():
        import bidsad.learn.layers  # noqa: F401  (registers the custom layer for loading)

        LOGGER.info(messages.FOLD_REUSED.format(model=model_name, fold=fold_label(tag), path=state_dir))
        with strategy.scope():
            model = keras.models.load_model(state_dir / "model.keras")
        predictions = pd.read_csv(state_dir / "predictions.tsv", sep="\t")
    else:
        with strategy.scope():
            if state["epoch"] > 0 and (state_dir / "checkpoint.keras").is_file():
                import bidsad.learn.layers  # noqa: F401

                LOGGER.warning(messages.FOLD_RESUMED.format(model=model_name, fold=fold_label(tag), epoch=state["epoch"],
                                                            path=state_dir))
                model = keras.models.load_model(state_dir / "checkpoint.keras")
            else:
                state.update(epoch=0, history=[], early_stopping=None)
                shapes = tensor_shapes(out_dir, train_rows.iloc[0], modalities)
                model = build_model(model_name, shapes, len(classes), dropout=learning.dropout, l2=learning.l2,
                                    batch_norm=learning.batch_norm, mri_downsample=learning.mri_downsample)
                model.compile(optimizer=make_optimizer(learning, len(train_rows)),
                              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        paper_copies = "copy" in train_rows and train_rows["copy"].astype(int).any()
        augment = {} if learning.augment and not paper_copies else None
        train_ds = make_dataset(out_dir, train_rows, modalities, batch_size=learning.batch_size, shuffle=True,
                                seed=seed + state["epoch"], augment=augment)
        validation = validation_rows is not None and len(validation_rows) > 0
        weights = class_weights(train_rows["label"].astype(int), learning.class_weight, len(classes))  # training rows only
        fit_args = {"class_weight": weights}
        if validation:
            validation_ds = make_dataset(out_dir, validation_rows, modalities, batch_size=learning.batch_size,
                                         shuffle=False, seed=seed)
            if weights:  # the early-stopping loss weighs the classes as training does
                table = tf.constant([weights[c] for c in range(len(classes))], tf.float32)
                validation_ds = validation_ds.map(lambda x, y: (x, y, tf.gather(table, y)))
            fit_args["validation_data"] = validation_ds
        callbacks = _callbacks(keras, state_dir, state, model_name, tag, validation, learning.patience)
        if state["epoch"] < learning.epochs:
            model.fit(train_ds, epochs=learning.epochs, initial_epoch=state["epoch"], shuffle=False, verbose=0,
                      callbacks=callbacks + list(extra_callbacks), **fit_args)  # tf.data shuffles
        elif validation and state_dir is not None and (state_dir / "best.weights.npz").is_file():
            import numpy as np  # all epochs were done before an interruption: restore the best weights

            with np.load(state_dir / "best.weights.npz") as arrays:
                model.set_weights([arrays[f"w{i}"] for i in range(len(arrays.files))])
        predictions = finish(model)
        if state_dir is not None:
            tmp = state_dir / ".model.tmp.keras"
            model.save(tmp)
            os.replace(tmp, state_dir / "model.keras")
            atomic_write_text(state_dir / "predictions.tsv", predictions.to_csv(sep="\t", index=False))
            state["done"] = True
            atomic_write_text(state_dir / "state.json", json.dumps(state))
            (state_dir / "checkpoint.keras").unlink(missing_ok=True)

    model_dir.mkdir(parents=True, exist_ok=True)
    tmp_model = model_dir / ".model.keras.tmp.keras"
    model.save(tmp_model)
    os.replace(tmp_model, model_dir / "model.keras")
    hist = pd.DataFrame(state["history"])
    atomic_write_text(model_dir / "history.tsv", hist.to_csv(sep="\t", index=False))
    atomic_write_text(model_dir / "predictions.tsv", predictions.to_csv(sep="\t", index=False))
    if saliency is not None and "mri" in modalities:
        from bidsad.learn.saliency import fold_saliency

        try:
            fold_saliency(model, out_dir, test_rows, modalities, learning.batch_size, saliency)
        except Exception as err:  # saliency is a report, never a reason to lose the fold
            LOGGER.debug("saliency of model %s, %s failed", model_name, fold_label(tag), exc_info=True)
            saliency.failures.append(messages.SALIENCY_FAILED.format(model=f"{model_name}, {fold_label(tag)}", why=err))
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
    from bidsad.config import recipe_summary, seed_everything
    from bidsad.learn.cohort import (build_cohort, check_duplicate_scans, keep_earlier_group, select_classes,
                                     select_participants, write_cohort)
    from bidsad.learn.evaluate import classification_metrics, metrics_rows, probability_columns
    from bidsad.learn.models import MODALITIES
    from bidsad.learn.saliency import SaliencyAccumulator, write_saliency
    from bidsad.learn.splits import add_validation, check_no_leakage, cohort_name, plan_splits
    from bidsad.reports.boilerplate import write_boilerplate
    from bidsad.reports.group import write_group_report
    from bidsad.utils import atomic_write_json, atomic_write_text

    ex, learning = config.execution, config.learning
    out_dir, bids_dir = Path(ex.out_dir), Path(ex.bids_dir)
    group_dir = out_dir / "group"
    state_root = Path(ex.work_dir) / "bidsad_group" if ex.work_dir else None
    seed_everything(config.seeds.random_seed)
    if not ex.verbose:
        tf.get_logger().setLevel("ERROR")
    keras.utils.set_random_seed(config.seeds.random_seed)
    strategy, device = compute_device(config)
    LOGGER.info("group level: training on %s; deterministic ops %s", device, "on" if learning.deterministic else "off")
    paper = learning.split_protocol == "paper"

    cohort = build_cohort(out_dir, bids_dir, config.features.preset, config.features.mri_input)
    if ex.participant_label:  # --participant-label at the group level: the others are listed, not used
        cohort = select_participants(cohort, ex.participant_label)
    cohort, classes, class_notes = select_classes(cohort, learning.classes)
    class_notes += check_duplicate_scans(cohort)  # refuses one scan under two IDs (InputError)
    LOGGER.info("group level: task %s", " vs ".join(classes))
    keep_earlier_group(group_dir, overwrite=ex.overwrite)
    shutil.rmtree(group_dir, ignore_errors=True)  # group/ always describes one run
    included = cohort[cohort["included"]].reset_index(drop=True)
    models = list(dict.fromkeys(learning.models))
    splits, warnings = plan_splits(included, [MODALITIES[m] for m in models], learning.folds,
                                   config.seeds.random_seed, learning.repeats, learning.split_protocol, classes)
    members = {name: set(part["participant_id"]) for name, part in splits.groupby("cohort")}
    cohort["models"] = [" ".join(m for m in models if pid in members.get(cohort_name(MODALITIES[m]), ()))
                        for pid in cohort["participant_id"]]  # who went where (fusion models: MRI and BOLD)
    write_cohort(group_dir, cohort, classes)
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
    warnings += class_notes
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
            absent = [m for m in modalities if (included[m] == "").all()]
            if absent:  # the dataset has none of its inputs (e.g. T1w only): said, not a warning
                LOGGER.info(messages.MODEL_NO_INPUTS.format(model=model_name, modalities=", ".join(absent)))
                continue
            warn(messages.MODEL_SKIPPED.format(model=model_name, why=f"its {cohort_name(modalities)} cohort cannot be split"))
            continue
        fold_predictions, saliency = [], SaliencyAccumulator(classes)
        for (repeat, fold), members in model_splits.groupby(["repeat", "fold"]):
            train_rows, validation_rows, test_rows = (
                members.loc[members["role"] == role, ["participant_id", "copy"]].merge(usable, on="participant_id")
                for role in ("train", "validation", "test"))
            tag = fold_tag(int(repeat), int(fold), learning.repeats)
            label = fold_label(tag)
            trained_on = list(train_rows["participant_id"]) + list(validation_rows["participant_id"])
            if paper:
                overlap = set(trained_on) & set(test_rows["participant_id"])
                if overlap:
                    warn(messages.LEAKAGE_BYPASSED.format(fold=label.removeprefix("fold "), n=len(overlap)))
            else:
                check_no_leakage(trained_on, test_rows["participant_id"], label.removeprefix("fold "))
            LOGGER.info("model %s, %s: training on %d, testing on %d participants", model_name, label, len(train_rows), len(test_rows))
            try:
                predictions = train_fold(config, out_dir, model_name, int(fold), train_rows, test_rows,
                                         group_dir / f"model-{model_name}" / tag, saliency, validation_rows,
                                         repeat=int(repeat), repeats=learning.repeats, strategy=strategy,
                                         state_dir=state_root / f"model-{model_name}" / tag if state_root else None,
                                         classes=classes)
            except Exception as err:  # one model's failure must not lose the others
                LOGGER.exception("model %s, %s failed", model_name, label)
                warn(f"model {model_name}, {label} failed: {err}")
                status = 1
                continue
            fold_predictions.append(predictions)
            fold_metrics = classification_metrics(predictions["label"], predictions[probability_columns(classes)], classes)
            metric_rows += metrics_rows(model_name, tag.removeprefix("fold-"), fold_metrics)
            results.setdefault(model_name, {"folds": {}})["folds"][tag.removeprefix("fold-")] = fold_metrics
        if not fold_predictions:
            continue
        pooled, evaluation, pooled_rows = evaluate_pooled(model_name, fold_predictions,
                                                          group_dir / f"model-{model_name}" / "predictions.tsv",
                                                          learning, config.seeds.random_seed)
        metric_rows += pooled_rows
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

    baseline_results, baseline_rows = {}, []
    try:
        from bidsad.learn.baselines import run_baselines

        baseline_results, baseline_rows, notes = run_baselines(out_dir, included, splits, config, classes)
        for note in notes:
            warn(note)
    except Exception as err:  # baselines are a comparison, never a reason to lose the models
        LOGGER.exception("baselines failed")
        warn(f"baselines failed: {err}")
    metrics = pd.DataFrame(metric_rows + baseline_rows, columns=["model", "fold", "metric", "value", "ci_low", "ci_high"])
    if paper:
        metrics.insert(0, "split_protocol", "paper (LEAKS: copies of test participants in training)")
    atomic_write_text(group_dir / "metrics.tsv", metrics.to_csv(sep="\t", index=False))
    protocol = ("paper: augment-then-split (LEAKS; comparison only)" if paper else
                "participant-level stratified k-fold" + (f", repeated {learning.repeats} times" if learning.repeats > 1 else ""))
    summary = {
        "models": results, "baselines": baseline_results, "preset": config.features.preset,
        "mri_input": config.features.mri_input,
        "classes": list(classes), "task": " vs ".join(classes),
        "folds": {c: int(f.max()) for c, f in splits.groupby("cohort")["fold"]}, "repeats": learning.repeats,
        "random_seed": config.seeds.random_seed, "epochs": learning.epochs, "learning_rate": learning.learning_rate,
        "batch_size": learning.batch_size, "split_protocol": protocol, "split_protocol_name": learning.split_protocol,
        "leaks": paper, "paper_protocol_warning": messages.SPLIT_PROTOCOL_PAPER if paper else None,
        "augmentation": learning.augment, "inner_validation": learning.validation, "patience": learning.patience,
        "class_weight": learning.class_weight, "deterministic": learning.deterministic, "device": device,
        "versions": software_versions(), "warnings": warnings, "models_requested": list(dict.fromkeys(learning.models)),
        "dropout": learning.dropout, "n_bootstrap": learning.n_bootstrap, "n_permutations": learning.n_permutations,
        "run_uuid": ex.run_uuid, "recipe": recipe_summary(learning),
    }
    atomic_write_json(group_dir / "metrics.json", summary)
    try:  # what --apply-models needs: training participants and their scans, tensor parameters, fold models
        from bidsad.learn.apply import write_model_card

        write_model_card(out_dir, cohort, classes, config, summary)
    except Exception as err:  # never costs the results already written
        LOGGER.exception("model card failed")
        warn(messages.MODEL_CARD_FAILED.format(why=err))
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
    if paper:
        LOGGER.warning(messages.SPLIT_PROTOCOL_PAPER)
    return status
