"""One fold of the group level (:func:`train_fold`): train one model on a :class:`bidsad.learn.folds.Fold`'s
training participants with the recipe of ``config.learning`` (optimizer :func:`make_optimizer`, class weights
:func:`class_weights`), resumably, and predict its test participants. The group level's orchestration (folds,
models, evaluation, reports) is :mod:`bidsad.group`."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from bidsad import messages
from bidsad.phenotype import CLASS_NAMES

LOGGER = logging.getLogger("bidsad")


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


def _fold_parameters(config, out_dir: Path, fold) -> str:
    """Hash of everything that determines one fold's result: settings, members and their tensor files."""
    from bidsad.config import MODALITIES
    from bidsad.utils import params_hash

    learning = config.learning
    members = {}
    for role, table in (("train", fold.train), ("validation", fold.validation), ("test", fold.test)):
        if table is None:
            continue
        entries = []
        for _, row in table.iterrows():
            files = []
            for modality in MODALITIES[fold.model]:
                stat = (Path(out_dir) / row[modality]).stat()
                files.append([row[modality], stat.st_size, stat.st_mtime_ns])
            entries.append([row["participant_id"], int(row.get("copy", 0)), int(row["label"]), files,
                            *([int(row["slice"])] if "slice" in row else [])])
        members[role] = entries
    settings = {k: getattr(learning, k) for k in ("epochs", "batch_size", "learning_rate", "dropout", "augment",
                                                  "patience", "class_weight", "deterministic", "lr_schedule", "l2",
                                                  "batch_norm", "mri_downsample")}
    if learning.augment or "copy" in fold.train:  # on-the-fly augmentation, or the paper protocol's fixed copies
        settings["augmentation"] = dataclasses.asdict(config.augmentation)
    if "bold" in MODALITIES[fold.model]:  # models saved before the recurrent layers took the frame mask never resume
        settings["frame_mask_input"] = True
    if fold.model == "2dcnn":
        settings["slices_mm"] = [float(z) for z in learning.slices_mm]
    return params_hash({"model": fold.model, "fold": fold.tag, "seed": config.seeds.random_seed,
                        "preset": config.features.preset, "settings": settings, "members": members})


def _predict(model, out_dir: Path, fold, batch_size: int, classes, copy_ranges: dict):
    """The fold's predictions (DataFrame, one row per test participant or sample; see :func:`train_fold`)."""
    import pandas as pd

    from bidsad.config import MODALITIES
    from bidsad.learn.data import make_dataset

    test_rows = fold.test
    test_ds = make_dataset(out_dir, test_rows, MODALITIES[fold.model], batch_size=batch_size, shuffle=False,
                           seed=fold.seed, with_labels=False, copy_ranges=copy_ranges)
    proba = model.predict(test_ds, verbose=0).astype("float64")
    predictions = pd.DataFrame({
        "participant_id": test_rows["participant_id"].to_list(),
        "repeat": fold.repeat,
        "fold": fold.index,
        "diagnosis": test_rows["diagnosis"].to_list(),
        "label": test_rows["label"].astype(int).to_list(),
        "predicted_label": proba.argmax(axis=1),
    })
    if "copy" in test_rows and test_rows["copy"].astype(int).any():
        predictions.insert(1, "copy", test_rows["copy"].astype(int).to_list())
    if "slice" in test_rows:
        predictions.insert(1, "slice", test_rows["slice"].astype(int).to_list())
    predictions["predicted_diagnosis"] = [classes[c] for c in predictions["predicted_label"]]
    for code, name in enumerate(classes):
        predictions[f"probability_{name}"] = proba[:, code].round(6)
    return predictions


def _augments(learning, fold) -> bool:
    """On-the-fly augmentation of this fold's training batches: ``learning.augment``, unless the rows are the
    paper protocol's fixed augmented copies."""
    return learning.augment and not ("copy" in fold.train and fold.train["copy"].astype(int).any())


def _model(config, out_dir: Path, fold, state, state_dir: Path | None, strategy, n_classes: int):
    """The checkpoint of an interrupted run (``state`` has finished epochs), else a new compiled model."""
    import keras

    from bidsad.config import MODALITIES
    from bidsad.learn.callbacks import CHECKPOINT_FILE
    from bidsad.learn.data import tensor_shapes
    from bidsad.learn.models import build_model

    learning = config.learning
    with strategy.scope():
        if state.epoch > 0 and (state_dir / CHECKPOINT_FILE).is_file():
            import bidsad.learn.layers  # noqa: F401  (registers the custom layer for loading)

            LOGGER.warning(messages.FOLD_RESUMED.format(model=fold.model, fold=fold.label, epoch=state.epoch,
                                                        path=state_dir))
            return keras.models.load_model(state_dir / CHECKPOINT_FILE)
        state.restart()
        shapes = tensor_shapes(out_dir, fold.train.iloc[0], MODALITIES[fold.model])
        model = build_model(fold.model, shapes, n_classes, dropout=learning.dropout, l2=learning.l2,
                            batch_norm=learning.batch_norm, mri_downsample=learning.mri_downsample,
                            slices_mm=learning.slices_mm)
        if _augments(learning, fold):  # training batches augmented inside the model, on its device
            from bidsad.learn.data import voxel_sizes
            from bidsad.learn.layers import with_augmentation

            model = with_augmentation(model, dataclasses.asdict(config.augmentation),
                                      voxel_sizes(out_dir, fold.train.iloc[0], MODALITIES[fold.model]), seed=fold.seed)
        model.compile(optimizer=make_optimizer(learning, len(fold.train)),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _callbacks(state, state_dir: Path | None, fold, validation: bool, patience: int) -> list:
    """Progress in the log, resumable early stopping (with ``validation``) and per-epoch checkpoints (``state_dir``)."""
    from bidsad.learn.callbacks import BEST_WEIGHTS_FILE, Checkpoint, EpochLog, ResumableEarlyStopping

    stopper = None
    if validation:
        stopper = ResumableEarlyStopping(patience, state.early_stopping,
                                         None if state_dir is None else state_dir / BEST_WEIGHTS_FILE)
    callbacks = [EpochLog(state, fold.model, fold.label)] + ([stopper] if stopper else [])
    if state_dir is not None:
        callbacks.append(Checkpoint(state, state_dir, stopper))
    return callbacks


def _fit(model, config, out_dir: Path, fold, state, state_dir: Path | None, classes, extra_callbacks) -> None:
    """Train ``model`` from ``state.epoch`` to ``config.learning.epochs`` (see :func:`train_fold`)."""
    import tensorflow as tf

    from bidsad.config import MODALITIES
    from bidsad.learn.callbacks import BEST_WEIGHTS_FILE, load_weights
    from bidsad.learn.data import make_dataset

    learning, modalities = config.learning, MODALITIES[fold.model]
    ranges = dataclasses.asdict(config.augmentation)  # of the paper protocol's fixed copies
    train_ds = make_dataset(out_dir, fold.train, modalities, batch_size=learning.batch_size, shuffle=True,
                            seed=fold.seed + state.epoch, copy_ranges=ranges)
    validation = fold.validation is not None and len(fold.validation) > 0
    weights = class_weights(fold.train["label"].astype(int), learning.class_weight, len(classes))  # training rows only
    fit_args = {"class_weight": weights}
    if validation:
        validation_ds = make_dataset(out_dir, fold.validation, modalities, batch_size=learning.batch_size,
                                     shuffle=False, seed=fold.seed, copy_ranges=ranges)
        if weights:  # the early-stopping loss weighs the classes as training does
            table = tf.constant([weights[c] for c in range(len(classes))], tf.float32)
            validation_ds = validation_ds.map(lambda x, y: (x, y, tf.gather(table, y)))
        fit_args["validation_data"] = validation_ds
    callbacks = _callbacks(state, state_dir, fold, validation, learning.patience)
    if state.epoch < learning.epochs:
        model.fit(train_ds, epochs=learning.epochs, initial_epoch=state.epoch, shuffle=False, verbose=0,
                  callbacks=callbacks + list(extra_callbacks), **fit_args)  # tf.data shuffles
    elif validation and state_dir is not None and (state_dir / BEST_WEIGHTS_FILE).is_file():
        model.set_weights(load_weights(state_dir / BEST_WEIGHTS_FILE))  # all epochs were done before an interruption


def train_fold(config, out_dir: Path, fold, model_dir: Path, *, saliency=None, state_dir: Path | None = None,
               strategy=None, extra_callbacks=(), classes=CLASS_NAMES):
    """Train ``fold.model`` on one :class:`bidsad.learn.folds.Fold`'s training participants and predict its test
    participants (tensors read from ``out_dir``, the derivatives folder).

    The recipe is ``config.learning`` (:data:`bidsad.config.RECIPES`): Adam (:func:`make_optimizer`), sparse
    categorical cross-entropy, the model's regularisation (``dropout``, ``l2``, ``batch_norm``,
    ``mri_downsample``; :func:`bidsad.learn.models.build_model`) and optional ``balanced`` class weights
    (:func:`class_weights`), computed from ``fold.train`` alone: validation and test participants never change
    them. Weights, shuffling and augmentation are seeded with ``fold.seed``. Training batches are augmented on the
    fly inside the model (:class:`bidsad.learn.layers.Augment`, on the model's device; ranges
    ``config.augmentation``) unless ``config.learning.augment`` is off (rows with ``copy`` > 0 are the paper
    protocol's fixed copies and are not augmented again); with ``fold.validation`` rows (training participants held out, never test
    ones), the validation loss is weighted with the same class weights and training stops early when it has not
    improved for ``config.learning.patience`` epochs, keeping the best weights.

    With ``state_dir`` (under the work directory), the model, early-stopping state and history are saved
    there after every epoch (:mod:`bidsad.learn.callbacks`); a rerun with the same parameters (hash of settings,
    members and tensor files) resumes from the last finished epoch, and a finished fold is reused without
    training. ``strategy``: a ``tf.distribute`` strategy (default: the current one); ``extra_callbacks``: more
    Keras callbacks for ``fit``.

    Writes ``model.keras``, ``history.tsv`` (loss, accuracy and seconds per epoch) and ``predictions.tsv``
    into ``model_dir``; returns the predictions DataFrame (one row per test participant, or per test
    sample with a ``copy`` column in the paper protocol, per test slice with a ``slice`` column in the slice
    protocol; ``label`` and one ``probability_<class>`` column
    per class of ``classes``, the task's class names in label order: the model has ``len(classes)``
    outputs). For models with an MRI branch, the test participants' gradient saliency maps are added to
    ``saliency`` (a :class:`bidsad.learn.saliency.SaliencyAccumulator`) when one is given.
    """
    import keras
    import pandas as pd
    import tensorflow as tf

    from bidsad.config import MODALITIES
    from bidsad.learn.callbacks import FoldState
    from bidsad.utils import atomic_write_text

    learning = config.learning
    keras.utils.set_random_seed(fold.seed)
    strategy = strategy or tf.distribute.get_strategy()
    model_dir = Path(model_dir)
    state_dir = None if state_dir is None else Path(state_dir)
    state = FoldState.resume(state_dir, _fold_parameters(config, out_dir, fold))
    if state.done and (state_dir / "model.keras").is_file():
        import bidsad.learn.layers  # noqa: F401  (registers the custom layer for loading)

        LOGGER.info(messages.FOLD_REUSED.format(model=fold.model, fold=fold.label, path=state_dir))
        with strategy.scope():
            model = keras.models.load_model(state_dir / "model.keras")
        predictions = pd.read_csv(state_dir / "predictions.tsv", sep="\t")
    else:
        model = _model(config, out_dir, fold, state, state_dir, strategy, len(classes))
        _fit(model, config, out_dir, fold, state, state_dir, classes, extra_callbacks)
        predictions = _predict(model, out_dir, fold, learning.batch_size, classes,
                               dataclasses.asdict(config.augmentation))
        if state_dir is not None:
            tmp = state_dir / ".model.tmp.keras"
            model.save(tmp)
            os.replace(tmp, state_dir / "model.keras")
            atomic_write_text(state_dir / "predictions.tsv", predictions.to_csv(sep="\t", index=False))
            state.done = True
            state.save(state_dir)
            (state_dir / "checkpoint.keras").unlink(missing_ok=True)

    model_dir.mkdir(parents=True, exist_ok=True)
    tmp_model = model_dir / ".model.keras.tmp.keras"
    model.save(tmp_model)
    os.replace(tmp_model, model_dir / "model.keras")
    atomic_write_text(model_dir / "history.tsv", pd.DataFrame(state.history).to_csv(sep="\t", index=False))
    atomic_write_text(model_dir / "predictions.tsv", predictions.to_csv(sep="\t", index=False))
    if saliency is not None and "mri" in MODALITIES[fold.model]:
        from bidsad.learn.saliency import fold_saliency

        try:
            fold_saliency(model, out_dir, fold.test, MODALITIES[fold.model], learning.batch_size, saliency)
        except Exception as err:  # saliency is a report, never a reason to lose the fold
            LOGGER.debug("saliency of model %s, %s failed", fold.model, fold.label, exc_info=True)
            saliency.failures.append(messages.SALIENCY_FAILED.format(model=f"{fold.model}, {fold.label}", why=err))
    return predictions
