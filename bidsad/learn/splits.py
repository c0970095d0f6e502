"""Participant-level cross-validation splits and the leakage check."""

from __future__ import annotations

import logging

from bidsad import messages
from bidsad.config import SPLIT_PROTOCOLS  # noqa: F401  (participant: the default; paper, slice: LEAK, comparison only)

LOGGER = logging.getLogger("bidsad")


class LeakageError(RuntimeError):
    """A participant is in both the training and the evaluation set of a fold."""


#: The split protocols that leak (comparison only) and the warning that flags each in every output.
LEAK_WARNINGS = {"paper": messages.SPLIT_PROTOCOL_PAPER, "slice": messages.SPLIT_PROTOCOL_SLICE}
#: Samples per participant in the paper protocol: the original and 10 augmented copies (29 subjects
#: grew to 319 samples in the paper).
PAPER_COPIES = 10


def can_stratify(labels) -> bool:
    """Whether :func:`make_splits` stratifies samples with these class codes: every class present has at least two."""
    import numpy as np

    counts = np.bincount(np.asarray(labels, dtype=int))
    return bool(len(counts[counts > 0])) and int(counts[counts > 0].min()) >= 2


def make_splits(participants: list[str], labels: list[int], folds: int, seed: int, repeats: int = 1):
    """Stratified k-fold over participants (scikit-learn), seeded, repeated ``repeats`` times.

    One row per repeat, participant and fold: in every repeat each participant is ``test`` in exactly
    one fold and ``train`` in the others (all of a person's sessions follow the person, since the
    cohort holds one row per participant). Repeat ``r`` (1-based) shuffles with the ``split`` stream of ``seed``
    (:func:`bidsad.seeds.seed_for`: ``seed + r - 1``).
    ``folds`` is reduced (with a warning) to the size of the smallest class; when that class has a
    single participant, unstratified folds are used, with a warning.

    Returns ``(splits, warnings)``; ``splits`` is a DataFrame ``repeat`` (1-based), ``fold``
    (1-based), ``participant_id``, ``role``.

    Raises
    ------
    ValueError
        Fewer than two participants, or a single class.
    """
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import KFold, StratifiedKFold

    from bidsad.learn.cohort import class_name
    from bidsad.seeds import seed_for

    labels = np.asarray(labels, dtype=int)
    if len(participants) < 2:
        raise ValueError(messages.TOO_FEW.format(n=len(participants), need=2))
    counts = np.bincount(labels)
    present = counts[counts > 0]
    if len(present) < 2:
        raise ValueError(messages.ONE_CLASS.format(label=class_name(labels[0])))
    warnings = []
    smallest = int(present.min())
    if can_stratify(labels):
        used = min(folds, smallest)
        if used < folds:
            warnings.append(messages.FOLDS_REDUCED.format(requested=folds, smallest=smallest, used=used))
        splitter = StratifiedKFold(n_splits=used, shuffle=True, random_state=seed)
    else:
        used = min(max(folds, 2), len(participants))
        warnings.append(messages.FOLDS_UNSTRATIFIED.format(used=used))
        splitter = KFold(n_splits=used, shuffle=True, random_state=seed)
    if used < 2:
        raise ValueError(messages.TOO_FEW.format(n=len(participants), need=2))
    rows = []
    for repeat in range(1, repeats + 1):
        splitter.random_state = seed_for("split", seed, repeat)
        for fold, (train, test) in enumerate(splitter.split(np.zeros(len(labels)), labels), start=1):
            rows += [(repeat, fold, participants[i], "train") for i in train]
            rows += [(repeat, fold, participants[i], "test") for i in test]
    splits = pd.DataFrame(rows, columns=["repeat", "fold", "participant_id", "role"])
    return splits.sort_values(["repeat", "fold", "role", "participant_id"], ignore_index=True), warnings


def _sample_splits(participants, labels, folds: int, seed: int, repeats: int, values, column: str):
    """Stratified k-fold over samples, not participants: every participant becomes one sample per value of
    ``values`` (``column`` of the returned splits), and the samples are split by :func:`make_splits`."""
    values = [int(v) for v in values]
    ids = [f"{p}#{v}" for p in participants for v in values]
    splits, warnings = make_splits(ids, [label for label in labels for _ in values], folds, seed, repeats)
    split_ids = splits["participant_id"].str.rsplit("#", n=1)
    splits["participant_id"] = split_ids.str[0]
    splits.insert(3, column, split_ids.str[1].astype(int))
    return splits, warnings


def make_paper_splits(participants: list[str], labels: list[int], folds: int, seed: int, repeats: int = 1,
                      copies: int = PAPER_COPIES):
    """The paper's augment-then-split protocol, FOR COMPARISON ONLY: it leaks.

    Kujur & Monfared (2026) made augmented copies of every subject first and split the samples
    afterwards (``../shared/reference/method.md``), so copies of a test subject sit in training. Here
    every participant becomes ``copies + 1`` samples (``copy`` 0 is the original; copy ``c`` > 0 is a
    fixed augmentation drawn from the seed) and the samples are split by stratified k-fold.

    Returns ``(splits, warnings)`` like :func:`make_splits`, with an extra ``copy`` column;
    ``warnings`` always starts with :data:`bidsad.messages.SPLIT_PROTOCOL_PAPER`.
    """
    splits, warnings = _sample_splits(participants, labels, folds, seed, repeats, range(copies + 1), "copy")
    return splits, [messages.SPLIT_PROTOCOL_PAPER] + warnings


def make_slice_splits(participants: list[str], labels: list[int], folds: int, seed: int, repeats: int = 1,
                      slices=(0,)):
    """Slice-level splits of the ``2dcnn``, FOR COMPARISON ONLY: they leak.

    A 2-D model evaluated on slices split at random (the paper's 2-D experiment) has slices of every test
    participant in training. Here every participant becomes one sample per axial slice of ``slices`` (voxel
    indices of the MRI grid, :func:`bidsad.derivatives.mri_axial_slices`) and the samples are split by
    stratified k-fold; test predictions are averaged back per participant for the metrics
    (:func:`bidsad.learn.evaluate.average_repeats`).

    Returns ``(splits, warnings)`` like :func:`make_splits`, with an extra ``slice`` column (the voxel index);
    ``warnings`` always starts with :data:`bidsad.messages.SPLIT_PROTOCOL_SLICE`.
    """
    splits, warnings = _sample_splits(participants, labels, folds, seed, repeats, slices, "slice")
    return splits, [messages.SPLIT_PROTOCOL_SLICE] + warnings


def check_no_leakage(train_ids, test_ids, fold) -> None:
    """Refuse a fold whose evaluation participants also appear in training.

    Raises
    ------
    LeakageError
        Naming the overlapping participants and the fold.
    """
    overlap = sorted(set(train_ids) & set(test_ids))
    if overlap:
        raise LeakageError(messages.LEAKAGE.format(labels=", ".join(overlap), fold=fold))


def cohort_name(modalities) -> str:
    """Name of the sub-cohort that has every modality in ``modalities`` (``mri``, ``mri+bold``, ``bold``)."""
    return "+".join(modalities)


def plan_splits(included, modality_sets, folds: int, seed: int, repeats: int = 1, protocol: str = "participant",
                classes=None, slices=(0,)):
    """Participant-level splits of every sub-cohort that the requested models need.

    ``included`` is the cohort table of usable participants (columns ``participant_id``, ``label``,
    ``mri``, ``bold``: tensor path or empty). Each modality set (e.g. ``("mri",)`` for 3dcnn,
    ``("mri", "bold")`` for the fusion models) is split on its own participants, so that its folds are
    stratified on the participants that model actually sees.

    ``protocol`` ``paper`` uses :func:`make_paper_splits` and ``slice`` :func:`make_slice_splits` with ``slices``
    (both leak; comparison only), otherwise :func:`make_splits` with ``repeats``. ``classes``: the task's class names that ``label`` indexes
    (default: CN, MCI, AD), for the messages.

    Returns ``(splits, warnings)``: ``splits`` has columns ``cohort``, ``repeat``, ``fold``,
    ``participant_id``, ``copy`` (0 unless ``paper``), ``slice`` (``slice`` only), ``role``; a sub-cohort that cannot be split (too few participants, one class) is left out and
    its reason is in ``warnings``, as is every fold whose test classes are missing from training.
    """
    import pandas as pd

    from bidsad.learn.cohort import class_name

    def named(code):
        return classes[code] if classes else class_name(code)

    frames, warnings = [], []
    for modalities in dict.fromkeys(tuple(m) for m in modality_sets):
        name = cohort_name(modalities)
        members = included[(included[list(modalities)] != "").all(axis=1)]
        if members.empty and (included[list(modalities)] == "").all(axis=0).any():
            continue  # nobody has one of its modalities (a T1w-only dataset): no split, no warning
        split = {"paper": make_paper_splits, "slice": make_slice_splits}.get(protocol, make_splits)
        extra = {"slices": slices} if protocol == "slice" else {}
        try:
            splits, notes = split(members["participant_id"].to_list(), members["label"].astype(int).to_list(),
                                  folds, seed, repeats, **extra)
        except ValueError as err:
            if len(set(members["label"].astype(int))) == 1:  # name the class of the task, not a code
                err = messages.ONE_CLASS.format(label=named(int(members["label"].iloc[0])))
            warnings.append(messages.SPLIT_COHORT.format(modalities=name, warning=err))
            continue
        if notes and notes[0] in LEAK_WARNINGS.values():
            notes = notes[1:]
        warnings += [messages.SPLIT_COHORT.format(modalities=name, warning=note) for note in notes]
        labels = dict(zip(members["participant_id"], members["label"].astype(int)))
        if "copy" not in splits:
            splits["copy"] = 0
        for (_, fold), rows in splits.groupby(["repeat", "fold"]):
            seen = {labels[p] for p in rows.loc[rows["role"] == "train", "participant_id"]}
            unseen = sorted({labels[p] for p in rows.loc[rows["role"] == "test", "participant_id"]} - seen)
            if unseen:
                warnings.append(messages.CLASS_UNSEEN.format(modalities=name, fold=fold,
                                                             classes=", ".join(named(c) for c in unseen)))
        frames.append(splits.assign(cohort=name))
    if protocol in LEAK_WARNINGS:
        warnings.insert(0, LEAK_WARNINGS[protocol])
    columns = ["cohort", "repeat", "fold", "participant_id", "copy", *(["slice"] if protocol == "slice" else []), "role"]
    splits = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    return splits, warnings


def add_validation(splits, labels: dict, seed: int):
    """Move part of each fold's training participants to an inner ``validation`` role (early stopping).

    Per repeat and fold, a stratified shuffle split (scikit-learn) of the training participants keeps about one
    fold's worth for validation, at most a quarter of them (``n_train / max(k - 1, 4)``, at least one per class:
    with 2 or 3 folds one fold's worth would be half or all of them); test participants are
    never touched. A fold whose smallest training class has fewer than two participants keeps all of
    them for training and is named in the returned warnings.

    ``splits``: DataFrame with ``fold``, ``participant_id``, ``role`` (``train``/``test``) and
    optionally ``repeat``;
    ``labels``: participant_id -> class code; ``seed``: the master seed (the split of each fold uses its
    ``validation`` stream, :func:`bidsad.seeds.seed_for`). Returns ``(splits, warnings)``.
    """
    import numpy as np
    from sklearn.model_selection import StratifiedShuffleSplit

    from bidsad.seeds import seed_for

    splits = splits.copy()
    if "repeat" not in splits:
        splits["repeat"] = 1
    k = int(splits["fold"].nunique())
    warnings = []
    for (repeat, fold), rows in splits.groupby(["repeat", "fold"]):
        train = rows[rows["role"] == "train"]
        y = np.array([labels[p] for p in train["participant_id"]])
        counts = np.bincount(y)
        if counts[counts > 0].min() < 2:
            warnings.append(messages.NO_VALIDATION.format(fold=fold if repeat == 1 else f"{fold} of repeat {repeat}"))
            continue
        n_classes = int((counts > 0).sum())
        size = min(max(n_classes, int(round(len(train) / max(k - 1, 4)))), len(train) - n_classes)
        if size < n_classes:
            warnings.append(messages.NO_VALIDATION.format(fold=fold if repeat == 1 else f"{fold} of repeat {repeat}"))
            continue
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=size, random_state=seed_for("validation", seed, fold, repeat))
        _, validation = next(splitter.split(np.zeros(len(y)), y))
        splits.loc[train.index[validation], "role"] = "validation"
    return splits, warnings
