"""Model registry: the architectures of Kujur & Monfared (2026), arXiv:2603.13367.

Every builder is ``build_<name>(input_shapes, n_classes=3, *, dropout=0.1) -> keras.Model``, where
``input_shapes`` maps ``"mri"`` to ``(x, y, z, 1)`` and/or ``"bold"`` to ``(frames, x, y, z, 1)``
(float32 tensors, RAS axis order); models with ``bold`` take a second fMRI input ``frame_mask`` (frames,),
float32 1 on real frames and 0 on padded ones, the Keras mask of their recurrent layers. The models output
class probabilities (softmax) over CN = 0, MCI = 1, AD = 2.

Reading of the paper's unstated details (see ``../shared/reference/method.md``): the MRI branch is
Conv3D(32, 3x3x3, stride 2, 'same') + ReLU (half size), MaxPool3D(2) (quarter), Conv3D(32, 3x3x3,
'same') + ReLU, MaxPool3D(2), Flatten, Dense(128) + ReLU. At 128x128x176 the flatten holds
16x16x22x32 = 180,224 features (23.1 M weights in the Dense layer). The fMRI branch applies the same
two-stage CNN to every frame (frames folded into the batch axis) and feeds the flattened frame features to three
stacked recurrent layers of 32 units. Fusion: concatenate (128 + 32) -> Dense(64) + ReLU ->
Dropout(0.1) -> Dense(n_classes) softmax. Keras is imported lazily so that the command line stays fast.

Regularisation (bidsad's recipe, not the paper's; every builder accepts it, the defaults leave the paper's
models unchanged): ``l2`` (L2 penalty on every convolution and dense kernel), ``batch_norm`` (batch
normalisation after every convolution, before its ReLU) and ``mri_downsample`` (the MRI input averaged over
``k x k x k`` voxel blocks by an AveragePooling3D layer before the first convolution: a coarser grid for the
same tensors).
"""

from __future__ import annotations

from bidsad.config import AXIAL_SLICES_MM, MODALITIES, MODEL_NAMES  # registry names and inputs (the --models vocabulary)
from bidsad.derivatives import FRAME_MASK_KEY


def _regulariser(reg: dict):
    from keras import regularizers

    return regularizers.L2(reg["l2"]) if reg.get("l2") else None


def _conv(h, dims: int, filters: int, name: str, reg: dict, strides: int = 1):
    """Conv (3 x ... x 3, 'same') -> [BatchNorm] -> ReLU."""
    from keras import layers

    conv = layers.Conv3D if dims == 3 else layers.Conv2D
    if not reg.get("batch_norm"):
        return conv(filters, 3, strides=strides, padding="same", activation="relu", kernel_regularizer=_regulariser(reg),
                    name=name)(h)
    h = conv(filters, 3, strides=strides, padding="same", use_bias=False, kernel_regularizer=_regulariser(reg),
             name=name)(h)
    h = layers.BatchNormalization(name=f"{name}_bn")(h)
    return layers.Activation("relu", name=f"{name}_relu")(h)


def _dense(h, units: int, name: str, reg: dict):
    from keras import layers

    return layers.Dense(units, activation="relu", kernel_regularizer=_regulariser(reg), name=name)(h)


def _conv_stack(inputs, prefix: str, gap: bool, reg: dict):
    """Conv3D(32, s2) -> MaxPool -> Conv3D(32) -> MaxPool -> Flatten (or global average pooling)."""
    from keras import layers

    h = _conv(inputs, 3, 32, f"{prefix}_conv1", reg, strides=2)
    h = layers.MaxPooling3D(2, name=f"{prefix}_pool1")(h)
    h = _conv(h, 3, 32, f"{prefix}_conv2", reg)
    h = layers.MaxPooling3D(2, name=f"{prefix}_pool2")(h)
    if gap:
        return layers.GlobalAveragePooling3D(name=f"{prefix}_gap")(h)
    return layers.Flatten(name=f"{prefix}_flatten")(h)


def _mri_input(inputs, reg: dict):
    """The MRI input, averaged over ``mri_downsample``-cubed voxel blocks when that is above 1."""
    from keras import layers

    k = int(reg.get("mri_downsample") or 1)
    return layers.AveragePooling3D(k, padding="same", name="mri_downsample")(inputs) if k > 1 else inputs


def _mri_branch(inputs, gap: bool, reg: dict):
    """MRI branch: (x, y, z, 1) -> 128 features."""
    return _dense(_conv_stack(_mri_input(inputs, reg), "mri", gap, reg), 128, "mri_dense", reg)


def _frame_cnn(frame_shape, gap: bool, reg: dict):
    """Per-frame 3D CNN of the fMRI branch: (x, y, z, 1) -> flattened (or pooled) features."""
    import keras

    frame = keras.Input(frame_shape, name="frame")
    return keras.Model(frame, _conv_stack(frame, "frame", gap, reg), name="frame_cnn")


def _bold_inputs(input_shapes):
    """The fMRI inputs: the run ``bold`` (frames, x, y, z, 1) and its ``frame_mask`` (frames,), float32
    1 on real frames and 0 on padding (:data:`bidsad.derivatives.FRAME_MASK_KEY`)."""
    import keras

    shape = tuple(input_shapes["bold"])
    return keras.Input(shape, name="bold"), keras.Input(shape[:1], name=FRAME_MASK_KEY)


def _bold_branch(inputs, frame_mask, cell: str, gap: bool, reg: dict):
    """fMRI branch: (frames, x, y, z, 1) -> 32 features (three stacked LSTM or GRU layers of 32); padded
    frames (``frame_mask`` 0) are masked out of the recurrent layers."""
    from keras import layers

    from bidsad.learn.layers import FrameMask, FramesToBatch

    recurrent = {"lstm": layers.LSTM, "gru": layers.GRU}[cell]
    mask = FrameMask(name="bold_frame_mask")(frame_mask)
    h = FramesToBatch(_frame_cnn(tuple(inputs.shape[2:]), gap, reg), name="bold_frames")(inputs)
    h = recurrent(32, return_sequences=True, name=f"bold_{cell}1")(h, mask=mask)
    h = recurrent(32, return_sequences=True, name=f"bold_{cell}2")(h, mask=mask)
    return recurrent(32, name=f"bold_{cell}3")(h, mask=mask)


def _head(features, n_classes: int, dropout: float, reg: dict):
    from keras import layers

    h = _dense(features, 64, "fusion_dense", reg)
    h = layers.Dropout(dropout, name="fusion_dropout")(h)
    return layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities")(h)


def _fusion(input_shapes, n_classes, dropout, cell, name, gap, reg):
    import keras
    from keras import layers

    mri = keras.Input(tuple(input_shapes["mri"]), name="mri")
    bold, mask = _bold_inputs(input_shapes)
    fused = layers.Concatenate(name="fusion")([_mri_branch(mri, gap, reg), _bold_branch(bold, mask, cell, gap, reg)])
    return keras.Model({"mri": mri, "bold": bold, FRAME_MASK_KEY: mask}, _head(fused, n_classes, dropout, reg), name=name)


def _bold_only(input_shapes, n_classes, dropout, cell, name, gap, reg):
    import keras

    bold, mask = _bold_inputs(input_shapes)
    return keras.Model({"bold": bold, FRAME_MASK_KEY: mask},
                       _head(_bold_branch(bold, mask, cell, gap, reg), n_classes, dropout, reg), name=name)


def build_3dcnn_lstm(input_shapes: dict, n_classes: int = 3, *, dropout: float = 0.1, gap: bool = False, **reg):
    """3DCNN-LSTM: MRI 3D-CNN branch fused with the per-frame CNN + 3 x LSTM(32) fMRI branch."""
    return _fusion(input_shapes, n_classes, dropout, "lstm", "3dcnn_lstm" + "_gap" * gap, gap, reg)


def build_3dcnn_gru(input_shapes: dict, n_classes: int = 3, *, dropout: float = 0.1, gap: bool = False, **reg):
    """3DCNN-GRU: as :func:`build_3dcnn_lstm` with GRU layers."""
    return _fusion(input_shapes, n_classes, dropout, "gru", "3dcnn_gru" + "_gap" * gap, gap, reg)


def build_3dlstm(input_shapes: dict, n_classes: int = 3, *, dropout: float = 0.1, gap: bool = False, **reg):
    """3DLSTM: the fMRI branch alone (per-frame 3D CNN + 3 x LSTM(32))."""
    return _bold_only(input_shapes, n_classes, dropout, "lstm", "3dlstm" + "_gap" * gap, gap, reg)


def build_3dgru(input_shapes: dict, n_classes: int = 3, *, dropout: float = 0.1, gap: bool = False, **reg):
    """3DGRU: the fMRI branch alone with GRU layers."""
    return _bold_only(input_shapes, n_classes, dropout, "gru", "3dgru" + "_gap" * gap, gap, reg)


def build_3dcnn(input_shapes: dict, n_classes: int = 3, *, dropout: float = 0.1, gap: bool = False, **reg):
    """3DCNN: the MRI branch alone, with the fusion head (Dense 64, Dropout, softmax)."""
    import keras

    mri = keras.Input(tuple(input_shapes["mri"]), name="mri")
    return keras.Model({"mri": mri}, _head(_mri_branch(mri, gap, reg), n_classes, dropout, reg),
                       name="3dcnn" + "_gap" * gap)


def build_2dcnn(input_shapes: dict, n_classes: int = 3, *, dropout: float = 0.1, slices_mm=AXIAL_SLICES_MM, **reg):
    """2DCNN: one 2D CNN shared by K axial slices of the MRI volume; the participant's class probabilities are the
    mean of its slices' (all slices of a participant stay on one side of every participant-level split).

    Input ``mri`` (x, y, z, 1), float32, on the MRI model grid (:func:`bidsad.derivatives.resize_mri_volume_grid`).
    The slices are those nearest to the MNI z positions ``slices_mm`` (mm;
    :func:`bidsad.derivatives.mri_axial_slices`): by default :data:`bidsad.config.AXIAL_SLICES_MM`, every 5 mm from
    z = -30 to -5 mm through the hippocampi and amygdalae (K = 6 at the ``paper`` and ``small`` grids, whose slices
    are 1.07 and 3.9 mm thick). They are taken inside the model (layer ``axial_slices``, (batch, K, x, y, 1)) and
    folded into the batch axis (:class:`bidsad.learn.layers.FramesToBatch`) through the slice CNN ``slice_cnn``:
    [AveragePooling2D(``mri_downsample``), in-plane], Conv2D(32) + MaxPool, Conv2D(64) + MaxPool, Flatten,
    Dense(128), the head (Dense 64, Dropout, softmax) -> (batch, K, n_classes); their mean is the output
    (batch, n_classes). The paper's 2-D model read slices as independent samples (``--split-protocol slice``).

    Raises
    ------
    ValueError
        A position of ``slices_mm`` outside the grid.
    """
    import keras
    from keras import layers

    from bidsad.derivatives import mri_axial_slices
    from bidsad.learn.layers import AxialSlices, FramesToBatch

    shape = tuple(input_shapes["mri"])
    image = keras.Input((shape[0], shape[1], shape[3]), name="slice")
    k = int(reg.get("mri_downsample") or 1)
    h = layers.AveragePooling2D(k, padding="same", name="mri_downsample")(image) if k > 1 else image
    h = _conv(h, 2, 32, "conv1", reg)
    h = layers.MaxPooling2D(2, name="pool1")(h)
    h = _conv(h, 2, 64, "conv2", reg)
    h = layers.MaxPooling2D(2, name="pool2")(h)
    h = layers.Flatten(name="flatten")(h)
    h = _dense(h, 128, "dense", reg)
    slice_cnn = keras.Model(image, _head(h, n_classes, dropout, reg), name="slice_cnn")
    mri = keras.Input(shape, name="mri")
    h = AxialSlices(mri_axial_slices(shape[:3], slices_mm), name="axial_slices")(mri)
    h = FramesToBatch(slice_cnn, name="slice_probabilities")(h)
    return keras.Model({"mri": mri}, layers.GlobalAveragePooling1D(name="slice_mean")(h), name="2dcnn")


BUILDERS = {
    "3dcnn-lstm": build_3dcnn_lstm,
    "3dcnn-gru": build_3dcnn_gru,
    "3dlstm": build_3dlstm,
    "3dgru": build_3dgru,
    "3dcnn": build_3dcnn,
    "2dcnn": build_2dcnn,
}


def build_model(name: str, input_shapes: dict, n_classes: int = 3, **hyper):
    """Build a registered model by name (``<name>-gap`` builds ``<name>`` with ``gap=True``).

    ``hyper``: ``dropout`` and the regularisation ``l2`` (float, 0 = none), ``batch_norm`` (bool) and
    ``mri_downsample`` (int voxels, 1 = none; see the module docstring), and ``slices_mm`` (``2dcnn``'s axial
    slices, MNI z in mm; other models ignore it).

    Raises
    ------
    KeyError
        ``name`` is not in :data:`bidsad.config.MODEL_NAMES`.
    """
    if name not in MODALITIES:
        raise KeyError(f"unknown model '{name}'; choose from {', '.join(MODEL_NAMES)}")
    base, gap = (name[: -len("-gap")], True) if name.endswith("-gap") else (name, False)
    if gap:
        hyper["gap"] = True
    return BUILDERS[base]({k: input_shapes[k] for k in MODALITIES[name]}, n_classes, **hyper)
