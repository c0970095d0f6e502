"""Cross-validation folds as records: one model's training, inner-validation and test participants of one
fold, with the fold's name and seed (:class:`Fold`), the names of fold folders, and how the folds of a run were
made and which of them ran, in facts (:func:`fold_design`) and words (:func:`validation_text`, :func:`folds_ran_text`)."""

from __future__ import annotations

import re
from dataclasses import dataclass


def fold_tag(repeat: int, fold: int, repeats: int) -> str:
    """Folder name of one fold: ``fold-<k>``, or ``repeat-<r>_fold-<k>`` with repeated cross-validation."""
    return f"fold-{fold}" if repeats == 1 else f"repeat-{repeat}_fold-{fold}"


def fold_label(tag: str) -> str:
    """Readable name of a fold folder: ``fold-2`` -> ``fold 2``, ``repeat-3_fold-2`` -> ``fold 2 of repeat 3``."""
    match = re.fullmatch(r"(?:repeat-(\d+)_)?fold-(\d+)", tag)
    if not match:
        return tag
    return f"fold {match.group(2)}" + (f" of repeat {match.group(1)}" if match.group(1) else "")


@dataclass(frozen=True, eq=False)
class Fold:
    """One model's fold of the participant-level cross-validation.

    ``train``, ``test`` and ``validation`` are cohort rows (DataFrames with ``participant_id``, ``label``,
    ``diagnosis``, the tensor columns ``mri`` / ``bold`` relative to the derivatives folder, and ``copy``);
    ``validation`` is ``None`` or the fold's inner validation participants (possibly none). ``repeat`` and
    ``index`` are 1-based; ``tag`` is :func:`fold_tag`; ``seed`` the fold's seed (``fold`` stream of
    :func:`bidsad.seeds.seed_for`). Build one with :func:`make_fold`.
    """

    model: str
    repeat: int
    index: int
    tag: str
    seed: int
    train: object
    test: object
    validation: object = None

    @property
    def label(self) -> str:
        """Readable name (:func:`fold_label`), e.g. ``fold 2 of repeat 3``."""
        return fold_label(self.tag)


def make_fold(model: str, master_seed: int, train, test, validation=None, *, index: int = 1, repeat: int = 1,
              repeats: int = 1) -> Fold:
    """The :class:`Fold` ``index`` of repeat ``repeat`` (of ``repeats``) of ``model``, with its tag and its seed
    derived from ``master_seed``."""
    from bidsad.seeds import seed_for

    return Fold(model=model, repeat=int(repeat), index=int(index), tag=fold_tag(int(repeat), int(index), repeats),
                seed=seed_for("fold", master_seed, model, index, repeat), train=train, test=test, validation=validation)


def model_folds(model: str, splits, usable, master_seed: int, repeats: int):
    """Every :class:`Fold` of ``model``, in (repeat, fold) order.

    ``splits``: the model's rows of ``splits.tsv`` (``repeat``, ``fold``, ``participant_id``, ``copy``, ``slice`` in the
    slice protocol, ``role`` ``train`` / ``validation`` / ``test``); ``usable``: the cohort rows of the participants that have the model's
    inputs. Each role's rows keep the order of ``splits`` (a DataFrame each; ``validation`` may be empty).
    """
    samples = [c for c in ("participant_id", "copy", "slice") if c in splits]
    for (repeat, index), members in splits.groupby(["repeat", "fold"]):
        train, validation, test = (
            members.loc[members["role"] == role, samples].merge(usable, on="participant_id")
            for role in ("train", "validation", "test"))
        yield make_fold(model, master_seed, train, test, validation, index=int(index), repeat=int(repeat), repeats=repeats)


def fold_design(splits, labels: dict | None = None) -> dict:
    """How the folds of each sub-cohort were made, read from the ``splits.tsv`` table (``cohort``, ``repeat``,
    ``fold``, ``participant_id``, ``role``; one row per sample and fold) and ``labels`` (participant_id -> class code).

    Returns ``{cohort: {"folds": k, "n_folds": folds over all repeats, "validation_folds": folds with an inner
    validation split, "stratified": bool}}``; ``stratified`` applies the rule of
    :func:`bidsad.learn.splits.make_splits` to the split samples, and is ``None`` without ``labels``.
    """
    from bidsad.learn.splits import can_stratify

    design = {}
    for cohort, rows in splits.groupby("cohort", sort=False):
        keys = ["repeat", "fold"] if "repeat" in rows else ["fold"]
        folds = [members for _, members in rows.groupby(keys)]
        samples = folds[0]["participant_id"] if labels is not None else ()  # every sample once per fold
        design[str(cohort)] = {
            "folds": int(rows["fold"].max()), "n_folds": len(folds),
            "validation_folds": sum("validation" in set(members.get("role", ())) for members in folds),
            "stratified": can_stratify([labels[p] for p in samples]) if labels is not None else None}
    return design


def stratification_text(design: dict | None) -> str:
    """Whether the folds of ``design`` (:func:`fold_design`) were stratified by diagnosis, in words."""
    known = {c: d["stratified"] for c, d in (design or {}).items() if d.get("stratified") is not None}
    if not known:
        return "stratified by diagnosis where the class sizes allow"
    if all(known.values()):
        return "stratified by diagnosis"
    if not any(known.values()):
        return "not stratified: a class had a single participant"
    yes, no = (", ".join(c for c, s in known.items() if s is want) for want in (True, False))
    return f"stratified by diagnosis in {yes}, not in {no} (a class there had a single participant)"


def validation_text(requested: bool, design: dict | None) -> str:
    """The inner validation split that the folds of ``design`` (:func:`fold_design`) had, in words; ``requested``:
    the run's ``validation`` setting. Without ``design`` (a run recorded before it existed) only the request is said."""
    if not requested:
        return "not used (every fold trained for all its epochs)"
    if not design:
        return "requested (held out in each fold whose classes each had at least two training participants)"
    used = sum(d["validation_folds"] for d in design.values())
    total = sum(d["n_folds"] for d in design.values())
    if used == total:
        return f"held out in all {total} folds"
    if used == 0:
        return (f"none: none of the {total} folds had two training participants in every class, so every fold "
                "trained for all its epochs")
    return (f"held out in {used} of {total} folds (the others had a class with fewer than two training participants "
            "and trained for all their epochs)")


def folds_ran_text(tags, planned: int) -> str | None:
    """The folds that produced results when fewer than the ``planned`` did, in words (``"folds 2 and 3 of 5"``,
    with repeats ``"2 of 6 folds (fold 1 of repeat 2, fold 3 of repeat 2)"``); ``None`` when all did. ``tags``: fold
    tags as in ``metrics.json`` (``2``, ``repeat-1_fold-2``)."""
    tags = list(tags)
    if len(tags) >= planned:
        return None
    if any(t.startswith("repeat-") for t in tags):
        return f"{len(tags)} of {planned} folds ({', '.join(fold_label(t) for t in tags)})"
    names = [str(t) for t in tags]
    listed = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)
    return f"fold{'s' if len(names) != 1 else ''} {listed or 'none'} of {planned}"
