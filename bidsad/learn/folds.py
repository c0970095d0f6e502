"""Cross-validation folds as records: one model's training, inner-validation and test participants of one
fold, with the fold's name and seed (:class:`Fold`), and the names of fold folders."""

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
