"""One fold's resumable training state and the Keras callbacks that keep it.

:class:`FoldState` is what ``state.json`` in the fold's work folder holds (the parameters hash, finished
epochs, history, early-stopping state, done). The callbacks are separate objects with one job each:
:class:`EpochLog` records and logs every epoch into the state, :class:`ResumableEarlyStopping` is Keras'
early stopping that can start from a saved state, and :class:`Checkpoint` saves the model, the best
weights and the state after every epoch. Imports Keras: import this module inside functions only.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from bidsad.utils import atomic_write_text

LOGGER = logging.getLogger("bidsad")
#: Files of a fold's work folder.
STATE_FILE, CHECKPOINT_FILE, BEST_WEIGHTS_FILE = "state.json", "checkpoint.keras", "best.weights.npz"


@dataclass
class FoldState:
    """Progress of one fold (``state.json``): ``parameters`` (hash of everything that determines the result),
    ``epoch`` (finished epochs), ``history`` (one dict per epoch: ``epoch``, losses and metrics, ``seconds``),
    ``done`` (trained and predicted) and ``early_stopping`` (:meth:`ResumableEarlyStopping.snapshot`, or ``None``)."""

    parameters: str
    epoch: int = 0
    history: list = field(default_factory=list)
    done: bool = False
    early_stopping: dict | None = None

    @classmethod
    def resume(cls, state_dir: Path | None, parameters: str) -> "FoldState":
        """The saved state of ``state_dir`` when it was saved with the same ``parameters``; otherwise a fresh
        state, and ``state_dir`` (when given) is emptied and created."""
        if state_dir is None:
            return cls(parameters)
        try:
            saved = json.loads((Path(state_dir) / STATE_FILE).read_text())
        except (OSError, ValueError):
            saved = None
        if saved and saved.get("parameters") == parameters:
            state = cls(**{k: saved[k] for k in ("parameters", "epoch", "history", "done") if k in saved},
                        early_stopping=saved.get("early_stopping"))
        else:
            shutil.rmtree(state_dir, ignore_errors=True)
            state = cls(parameters)
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        return state

    def restart(self) -> None:
        """Forget every finished epoch (training starts from scratch)."""
        self.epoch, self.history, self.early_stopping = 0, [], None

    def save(self, state_dir: Path) -> None:
        """Write ``state.json`` (atomically)."""
        atomic_write_text(Path(state_dir) / STATE_FILE, json.dumps(asdict(self)))


class EpochLog(keras.callbacks.Callback):
    """Times every epoch, appends its logs (and ``seconds``) to ``state.history`` and logs them."""

    def __init__(self, state: FoldState, model_name: str, fold_label: str):
        super().__init__()
        self.state, self.model_name, self.fold_label = state, model_name, fold_label

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs["seconds"] = time.perf_counter() - self.started
        self.state.history.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        LOGGER.info("model %s, %s, epoch %d: %s", self.model_name, self.fold_label, epoch + 1,
                    ", ".join(f"{k} {float(v):.4g}" for k, v in logs.items()))


def load_weights(path: Path) -> list:
    """Weights saved by :meth:`ResumableEarlyStopping.save_best` (a list of arrays, in layer order)."""
    with np.load(path) as arrays:
        return [arrays[f"w{i}"] for i in range(len(arrays.files))]


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping on ``val_loss`` with the best weights restored, that continues from ``saved``
    (:meth:`snapshot` of an interrupted run) and the best weights in ``best_file`` when both exist."""

    def __init__(self, patience: int, saved: dict | None = None, best_file: Path | None = None):
        super().__init__(monitor="val_loss", patience=patience, restore_best_weights=True)
        self.saved, self.best_file = saved, best_file

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.saved and self.best_file is not None and self.best_file.is_file():
            self.best, self.wait, self.best_epoch = self.saved["best"], self.saved["wait"], self.saved["best_epoch"]
            self.best_weights = load_weights(self.best_file)

    def snapshot(self) -> dict:
        """``{"best", "wait", "best_epoch"}``: what :meth:`on_train_begin` needs to continue."""
        return {"best": None if self.best is None else float(self.best), "wait": int(self.wait),
                "best_epoch": int(self.best_epoch)}

    def save_best(self, epoch: int, path: Path) -> None:
        """Save the best weights to ``path`` (``.npz``, atomically) when ``epoch`` (0-based) is the best so far."""
        if self.best_weights is not None and self.best_epoch == epoch:
            tmp = path.parent / ".best.weights.tmp.npz"
            np.savez(tmp, **{f"w{i}": w for i, w in enumerate(self.best_weights)})
            os.replace(tmp, path)


class Checkpoint(keras.callbacks.Callback):
    """After every epoch: the best weights and early-stopping state (with a ``stopper``), the model
    (``checkpoint.keras``) and ``state`` (``state.json``), all in ``state_dir``, each written atomically."""

    def __init__(self, state: FoldState, state_dir: Path, stopper: ResumableEarlyStopping | None = None):
        super().__init__()
        self.state, self.state_dir, self.stopper = state, Path(state_dir), stopper

    def on_epoch_end(self, epoch, logs=None):
        if self.stopper is not None:
            self.stopper.save_best(epoch, self.state_dir / BEST_WEIGHTS_FILE)
            self.state.early_stopping = self.stopper.snapshot()
        tmp = self.state_dir / ".checkpoint.tmp.keras"
        self.model.save(tmp)
        os.replace(tmp, self.state_dir / CHECKPOINT_FILE)
        self.state.epoch = epoch + 1
        self.state.save(self.state_dir)
