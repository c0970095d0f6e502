"""Custom Keras layers (import this module before loading a saved bidsad model)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bidsad")
class FramesToBatch(keras.layers.Layer):
    """Apply a per-frame model with the frames folded into the batch axis.

    ``(batch, frames, x, y, z, c)`` -> ``(batch * frames, x, y, z, c)`` -> ``frame_model`` ->
    ``(batch, frames, features)``: one call of the frame CNN over all frames, where Keras 3's
    ``TimeDistributed`` loops in Python over a static time axis. Numerically equal to
    ``TimeDistributed(frame_model)`` (tested).
    """

    def __init__(self, frame_model, **kwargs):
        super().__init__(**kwargs)
        self.frame_model = frame_model

    def build(self, input_shape):
        self.frame_model.build((None, *input_shape[2:]))
        self.built = True

    def call(self, inputs, training=None):
        shape = ops.shape(inputs)
        folded = ops.reshape(inputs, (shape[0] * shape[1], *inputs.shape[2:]))
        features = self.frame_model(folded, training=training)
        return ops.reshape(features, (shape[0], shape[1], features.shape[-1]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.frame_model.output_shape[-1])

    def get_config(self):
        return {**super().get_config(), "frame_model": keras.saving.serialize_keras_object(self.frame_model)}

    @classmethod
    def from_config(cls, config):
        config["frame_model"] = keras.saving.deserialize_keras_object(config["frame_model"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="bidsad")
class FrameMask(keras.layers.Layer):
    """The frame mask of an fMRI run as the boolean Keras mask of the recurrent layers.

    Input: float (batch, frames), 1 on real frames and 0 on padded ones (the tensor sidecar's ``frame_mask``);
    output: bool (batch, frames), true where the input is above 0.5, passed as ``mask=`` to the LSTM/GRU
    layers so that padded frames are skipped (the state carries over them).
    """

    def call(self, frame_mask):
        return ops.greater(frame_mask, 0.5)

    def compute_output_spec(self, frame_mask):
        return keras.KerasTensor(frame_mask.shape, dtype="bool")


@keras.saving.register_keras_serializable(package="bidsad")
class Augment(keras.layers.Layer):
    """Training-only augmentation of a batch of model inputs, inside the model (on the GPU when there is one).

    Input and output: a dict ``{"mri": (B, x, y, z, 1), "bold": (B, T, x, y, z, 1), "frame_mask": (B, T)}`` (any
    subset), float32 whatever the mixed-precision policy. With ``training`` true (``fit``), the batch is augmented
    by :func:`bidsad.learn.augment.augment_batch` with a new stateless seed per batch from a
    ``keras.random.SeedGenerator(seed)``; otherwise (validation, ``predict``, saliency) it passes unchanged.
    ``params``: :class:`bidsad.config.Augmentation` as a dict; ``voxel_mm``: grid voxel size (mm) per modality.
    """

    def __init__(self, params: dict, voxel_mm: dict, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.params, self.voxel_mm, self.seed = dict(params), dict(voxel_mm), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training:
            return dict(inputs)
        from bidsad.learn.augment import augment_batch

        return augment_batch(inputs, self.seed_generator.next(), self.params, self.voxel_mm)

    def compute_output_spec(self, inputs, training=None):
        return {key: keras.KerasTensor(value.shape, dtype=value.dtype) for key, value in inputs.items()}

    def get_config(self):
        return {**super().get_config(), "params": self.params, "voxel_mm": self.voxel_mm, "seed": self.seed}


def with_augmentation(model, params: dict, voxel_mm: dict, seed=None):
    """``model`` behind an :class:`Augment` layer: the same inputs and outputs, training batches augmented on the
    model's device, every other call unchanged. Saves and loads with ``keras.models.load_model``."""
    inputs = {tensor.name: keras.Input(tensor.shape[1:], name=tensor.name) for tensor in model.inputs}
    return keras.Model(inputs, model(Augment(params, voxel_mm, seed, name="augment")(inputs)), name=model.name)


@keras.saving.register_keras_serializable(package="bidsad")
class AxialSlices(keras.layers.Layer):
    """Axial slices of a volume as a sequence of 2-D images.

    ``(batch, x, y, z, c)`` -> ``(batch, len(indices), x, y, c)``: the slices ``z = indices`` (voxel indices along
    the third axis, in the given order). A serialisable replacement for a ``Lambda`` (saved models reload with
    ``keras.models.load_model`` and its default ``safe_mode``).
    """

    def __init__(self, indices, **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]

    def call(self, inputs):
        return ops.transpose(ops.take(inputs, self.indices, axis=3), (0, 3, 1, 2, 4))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.indices), input_shape[1], input_shape[2], input_shape[4])

    def get_config(self):
        return {**super().get_config(), "indices": self.indices}
