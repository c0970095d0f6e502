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
