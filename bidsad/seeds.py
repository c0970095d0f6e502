"""Named random streams, all derived from the one master seed (``--random-seed``, :class:`bidsad.config.Seeds`).

Every randomised step asks :func:`seed_for` for its stream by name, so each derivation is written once. The
formulas are the ones bidsad has always used (recorded splits, fold models and registrations depend on them):

``split`` (repeat)
    Shuffle of repeat ``repeat`` (1-based) of the participant-level k-fold (:func:`bidsad.learn.splits.make_splits`):
    ``master + repeat - 1``.
``validation`` (fold, repeat)
    Inner validation split of one fold's training participants (:func:`bidsad.learn.splits.add_validation`):
    ``master + fold + 1000 * (repeat - 1)``.
``fold`` (model, fold, repeat)
    Weight initialisation, shuffling and augmentation of one model's fold (:func:`bidsad.learn.train.train_fold`):
    ``(master * 1_000_003 + crc32(model) + fold + 1000 * (repeat - 1)) mod 2**31`` (stable across runs and platforms).
``ants`` ()
    antsRegistration's random sampling (:func:`bidsad.interfaces.registration.set_ants_seed`): ``master + 1``,
    since ANTs reads 0 as "seed from the clock".

Other steps (bootstrap, permutations, the baselines' inner folds) use the master seed itself.
"""

from __future__ import annotations

import os
import random
import sys

import zlib


def _split(master: int, repeat: int) -> int:
    return master + int(repeat) - 1


def _validation(master: int, fold: int, repeat: int) -> int:
    return master + int(fold) + 1000 * (int(repeat) - 1)


def _fold(master: int, model: str, fold: int, repeat: int) -> int:
    return (master * 1_000_003 + zlib.crc32(model.encode()) + int(fold) + 1000 * (int(repeat) - 1)) % 2**31


def _ants(master: int) -> int:
    return master + 1


#: Stream name -> derivation ``(master, *keys) -> int``; see the module docstring.
STREAMS = {"split": _split, "validation": _validation, "fold": _fold, "ants": _ants}


def seed_for(stream: str, master: int, *keys) -> int:
    """The seed (int >= 0) of ``stream`` (:data:`STREAMS`) for ``keys``, derived from the master seed ``master``.

    Raises
    ------
    KeyError
        ``stream`` is not a named stream.
    TypeError
        ``keys`` do not match the stream's keys.
    """
    return int(STREAMS[stream](int(master), *keys))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when already imported) TensorFlow/Keras from one master seed."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    import numpy as np

    np.random.seed(seed % 2**32)
    if "keras" in sys.modules or "tensorflow" in sys.modules:
        import keras

        keras.utils.set_random_seed(seed)
