"""Gradient saliency of the MRI branch, averaged per class, written as NIfTI on the model grid.

Method: vanilla gradient saliency (Simonyan, Vedaldi & Zisserman 2014, *Deep inside convolutional
networks*, ICLR workshop): for each test participant, the absolute gradient of the predicted
probability of the participant's true class with respect to the MRI input, ``|d p_c / d x|``, scaled
to a maximum of 1 per participant so that every participant weighs the same. Maps are computed with
the fold's model on that fold's test participants only (out of fold) and averaged per true class.
"""

from __future__ import annotations

import json
from pathlib import Path

from bidsad.derivatives import FRAME_MASK_KEY, SALIENCY_MAP, SALIENCY_MEAN_INPUT
from bidsad.phenotype import CLASS_NAMES

METHOD = ("vanilla gradient saliency (Simonyan et al. 2014): |d p(true class) / d MRI input|, scaled to a "
          "maximum of 1 per participant, from the model of the fold in which the participant was tested, "
          "averaged over the participants of each true class")


def gradient_saliency(model, inputs: dict, labels):
    """Per-participant gradient saliency of the MRI input.

    Parameters
    ----------
    model : keras.Model with an ``"mri"`` input (x, y, z, 1) and softmax output (n, n_classes).
    inputs : dict of float32 arrays, ``"mri"`` (n, x, y, z, 1) and, for fusion models, ``"bold"`` and
        ``"frame_mask"`` (n, frames).
    labels : int array (n,), the class whose probability is differentiated.

    Returns float32 array (n, x, y, z), each map scaled to a maximum of 1 (all-zero maps stay 0).
    """
    import numpy as np
    import tensorflow as tf

    tensors = {k: tf.convert_to_tensor(v, dtype=tf.float32) for k, v in inputs.items()}
    labels = tf.convert_to_tensor(np.asarray(labels, dtype=np.int32))
    with tf.GradientTape() as tape:
        tape.watch(tensors["mri"])
        proba = model(tensors, training=False)
        score = tf.gather(proba, labels, axis=1, batch_dims=1)
    grads = np.abs(tape.gradient(score, tensors["mri"]).numpy()[..., 0]).astype(np.float32)
    peak = grads.reshape(len(grads), -1).max(axis=1)
    return grads / np.where(peak > 0, peak, 1.0)[:, None, None, None]


class SaliencyAccumulator:
    """Running per-class sums of saliency maps and of the MRI inputs (memory: two grids per class)."""

    def __init__(self, classes=CLASS_NAMES):
        self.classes = tuple(classes)  # the task's class names, in label order
        self.sums, self.inputs, self.counts = {}, {}, {}
        self.failures: list[str] = []  # messages of folds whose maps could not be computed

    def add(self, maps, mri, labels) -> None:
        """Add maps (n, x, y, z), the MRI inputs (n, x, y, z) and their true labels (n,; indices in ``classes``)."""
        import numpy as np

        for saliency, image, label in zip(maps, mri, np.asarray(labels, dtype=int)):
            name = self.classes[label]
            if name not in self.sums:
                self.sums[name], self.inputs[name], self.counts[name] = np.zeros_like(saliency, np.float64), np.zeros_like(image, np.float64), 0
            self.sums[name] += saliency
            self.inputs[name] += image
            self.counts[name] += 1

    def __bool__(self) -> bool:
        return bool(self.counts)


def fold_saliency(model, out_dir: Path, test_rows, modalities, batch_size: int, accumulator: SaliencyAccumulator):
    """Add the saliency maps of one fold's test participants (``test_rows``: cohort rows) to ``accumulator``."""
    import numpy as np

    from bidsad.learn.data import frame_masks

    out_dir = Path(out_dir)
    rows = test_rows.reset_index(drop=True)
    for start in range(0, len(rows), batch_size):
        batch = rows.iloc[start:start + batch_size]
        inputs = {m: np.stack([np.load(out_dir / p)[..., None].astype(np.float32) for p in batch[m]]) for m in modalities}
        if "bold" in modalities:
            inputs[FRAME_MASK_KEY] = frame_masks(out_dir, batch["bold"], inputs["bold"].shape[1])
        labels = batch["label"].astype(int).to_numpy()
        accumulator.add(gradient_saliency(model, inputs, labels), inputs["mri"][..., 0], labels)


def _grid(out_dir: Path, mri_paths) -> tuple:
    """The grid affine and space shared by the MRI tensors' sidecars (``grid_affine``, ``Space``).

    When the participants' affines differ (grids centred per participant, not yet in a template
    space), the mean affine is returned with ``consistent`` False.
    """
    import numpy as np

    metas = [json.loads((Path(out_dir) / p).with_suffix(".json").read_text()) for p in mri_paths]
    affines = np.array([m["grid_affine"] for m in metas], dtype=float)
    spaces = {m.get("Space") for m in metas}
    consistent = bool(np.allclose(affines, affines[0], atol=1e-3))
    space = spaces.pop() if len(spaces) == 1 else None
    return (affines[0] if consistent else affines.mean(axis=0)), space, consistent


def write_saliency(accumulator: SaliencyAccumulator, out_dir: Path, mri_paths, folder: Path, model_name: str) -> list[Path]:
    """Write each class's mean saliency map (and mean MRI input, the figure's background) as NIfTI.

    Files: ``folder/[space-<space>_]label-<class>_desc-saliency_map.nii.gz`` and
    ``..._desc-meaninput_T1w.nii.gz``, float32, with the grid affine of the MRI tensors' sidecars and
    a JSON sidecar (method, participants, space). ``mri_paths``: the MRI tensors used (relative to
    ``out_dir``). Returns the saliency map paths.
    """
    import gzip

    import nibabel as nb
    import numpy as np

    from bidsad.utils import atomic_write_bytes, atomic_write_json

    affine, space, consistent = _grid(out_dir, mri_paths)
    prefix = f"space-{space}_" if space else ""
    for stale in Path(folder).glob("*label-*_desc-*"):  # maps of an earlier run of this model
        stale.unlink()
    written = []
    for name in CLASS_NAMES:
        if name not in accumulator.counts:
            continue
        count = accumulator.counts[name]
        for ending, data in ((SALIENCY_MAP, accumulator.sums[name] / count),
                             (SALIENCY_MEAN_INPUT, accumulator.inputs[name] / count)):
            path = Path(folder) / f"{prefix}label-{name}_{ending}.nii.gz"
            img = nb.Nifti1Image(data.astype(np.float32), affine)
            img.header.set_xyzt_units("mm")
            atomic_write_bytes(path, gzip.compress(img.to_bytes(), mtime=0))
            atomic_write_json(path.with_name(path.name.replace(".nii.gz", ".json")), {
                "Model": model_name, "Class": name, "NumberOfParticipants": count,
                "Description": METHOD if ending == SALIENCY_MAP else "mean of the MRI model inputs of these participants",
                "Space": space or "model grid (the tensors' grid_affine; not a template space)",
                "GridAffinesConsistent": consistent,
                **({} if consistent else {"Note": "participants' grid affines differ; the mean affine is used, so "
                                                  "voxels correspond only approximately across participants"}),
            })
            if ending == SALIENCY_MAP:
                written.append(path)
    return written
