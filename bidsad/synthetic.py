"""Synthetic BIDS cohorts with known class effects, for tests and benchmarks (never for results).

Built on the MNI152 2009a template shipped by nilearn (no download). Every participant gets a
skull-stripped T1w and a resting-state BOLD run whose class effects are known:

- **Atrophy** (T1w): the lateral ventricles grow by ``ventricle_mm * severity * effect`` mm (dark CSF
  replaces tissue within that distance of the template's ventricles) and the hippocampi (spheres of
  ``HIPPOCAMPUS_RADIUS_MM`` at ``HIPPOCAMPI_MNI``) lose ``hippocampal_loss * severity * effect`` of their
  intensity. Severity is 0 for CN, 0.5 for MCI and 1 for AD.
- **Connectivity** (BOLD): the default-mode nodes (``DMN_MNI``) share one band-limited signal whose
  weight falls from ``dmn_coupling`` by ``(1 - 0.6 * severity * effect)``; the other voxels carry
  independent noise.
- **Nuisance**: per-participant intensity scale, Gaussian noise, ventricle-size variability
  (``ventricle_sd_mm``), and a random rigid pose (up to ``max_rotation_deg`` and ``max_shift_mm``) written
  into the header, so that the classes differ only by the effects above.

Run ``python -m bidsad.synthetic OUT --participants 60 --effect 1.0`` to write one. With
``--derivatives`` (:func:`make_synthetic_derivatives`), the cohort is written directly as the group
level's inputs (model tensors, sidecars, regional tables), bypassing preprocessing: for group-level
tests and benchmarks.
"""

from __future__ import annotations

import json
from pathlib import Path

from bidsad.phenotype import CLASS_NAMES

SEVERITY = {"CN": 0.0, "MCI": 0.5, "AD": 1.0}
HIPPOCAMPI_MNI = ((-28.0, -22.0, -14.0), (28.0, -22.0, -14.0))
HIPPOCAMPUS_RADIUS_MM = 9.0
VENTRICLE_BOX_MNI = ((-30.0, 30.0), (-45.0, 30.0), (-5.0, 35.0))  # x, y, z ranges (mm)
DMN_MNI = ((0.0, -52.0, 26.0), (0.0, 52.0, -6.0), (-46.0, -66.0, 30.0), (46.0, -66.0, 30.0))
NODE_RADIUS_MM = 8.0

DEFAULTS = {
    "effect": 1.0, "ventricle_mm": 6.0, "ventricle_sd_mm": 0.7, "hippocampal_loss": 0.5, "dmn_coupling": 0.8,
    "noise_sd": 0.03, "max_rotation_deg": 5.0, "max_shift_mm": 5.0, "n_volumes": 40, "repetition_time": 2.0,
    "bold_voxel_mm": 6.0,
}


def _rigid(rng, max_rotation_deg, max_shift_mm):
    """Random 4x4 rigid transform (rotation about the origin, then translation), float64."""
    import numpy as np
    from scipy.spatial.transform import Rotation

    angles = rng.uniform(-max_rotation_deg, max_rotation_deg, 3)
    rigid = np.eye(4)
    rigid[:3, :3] = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
    rigid[:3, 3] = rng.uniform(-max_shift_mm, max_shift_mm, 3)
    return rigid


def _world(shape, affine):
    """World coordinates (mm) of every voxel centre, shape (*shape, 3)."""
    import numpy as np

    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def _template():
    import numpy as np
    from nilearn import datasets

    template = datasets.load_mni152_template(resolution=2)
    mask = np.asarray(datasets.load_mni152_brain_mask(resolution=2).dataobj) > 0
    data = np.where(mask, np.asarray(template.get_fdata(), np.float32), 0.0).astype(np.float32)
    return data, mask, template.affine


def synthetic_t1w(severity: float, rng, params: dict):
    """One synthetic T1w (float32 array on the 2 mm template grid, its brain mask and the affine).

    Returns ``(data, affine, ventricle_growth_mm)``; the affine includes the random rigid pose; the
    growth (mm, negative: shrinkage) is the drawn ground truth of the atrophy effect.
    """
    import numpy as np
    from scipy import ndimage

    data, mask, affine = _template()
    xyz = _world(data.shape, affine)
    box = np.ones(data.shape, bool)
    for axis, (low, high) in enumerate(VENTRICLE_BOX_MNI):
        box &= (xyz[..., axis] >= low) & (xyz[..., axis] <= high)
    csf_level = 0.3 * float(np.median(data[mask]))  # CSF clearly darker than tissue, as in T1w
    ventricles = box & mask & (data < np.percentile(data[mask], 12))
    ventricles = ndimage.binary_opening(ventricles, iterations=1)
    grow_mm = params["ventricle_mm"] * severity * params["effect"] + rng.normal(0.0, params["ventricle_sd_mm"])
    if grow_mm >= 0:
        distance = ndimage.distance_transform_edt(~ventricles, sampling=2.0)
        grown = (distance <= grow_mm) & mask
        partial = np.clip(grow_mm + 2.0 - distance, 0.0, 2.0) / 2.0 * (~grown) * mask  # 2 mm rim
        data = np.where(grown, csf_level, data * (1 - partial) + csf_level * partial).astype(np.float32)
    else:  # smaller than the template: the ventricles' outer rim becomes white-matter-like tissue
        depth = ndimage.distance_transform_edt(ventricles, sampling=2.0)
        filled = ventricles & (depth <= -grow_mm)
        data = np.where(filled, float(np.percentile(data[mask], 75)), data).astype(np.float32)

    for centre in HIPPOCAMPI_MNI:
        sphere = np.linalg.norm(xyz - np.asarray(centre), axis=-1) <= HIPPOCAMPUS_RADIUS_MM
        data[sphere & mask] *= 1.0 - params["hippocampal_loss"] * severity * params["effect"]
    data *= rng.uniform(0.8, 1.2)
    data += rng.normal(0.0, params["noise_sd"], data.shape).astype(np.float32) * mask
    data = np.clip(data, 0, None)
    posed = _rigid(rng, params["max_rotation_deg"], params["max_shift_mm"]) @ affine
    return data.astype(np.float32), posed, float(grow_mm)


def synthetic_bold(severity: float, rng, params: dict):
    """One synthetic BOLD run: float32 (x, y, z, volumes) at ``bold_voxel_mm``, and its affine.

    The default-mode nodes share a signal of weight ``dmn_coupling * (1 - 0.6 * severity * effect)``.
    """
    import numpy as np
    from nilearn.image import resample_img

    data, mask, affine = _template()
    import nibabel as nb

    voxel = params["bold_voxel_mm"]
    target = np.diag([voxel, voxel, voxel, 1.0])
    target[:3, 3] = affine[:3, 3]
    shape = tuple(int(np.ceil(s * 2.0 / voxel)) for s in data.shape)
    base = resample_img(nb.Nifti1Image(data, affine), target_affine=target, target_shape=shape,
                        interpolation="linear", force_resample=True, copy_header=True)
    base = np.asarray(base.dataobj, np.float32) * 1000.0
    inside = base > 0.2 * base.max()
    xyz = _world(shape, target)
    n, tr = int(params["n_volumes"]), float(params["repetition_time"])
    t = np.arange(n) * tr
    shared = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in rng.uniform(0.01, 0.08, 4))
    shared = (shared - shared.mean()) / shared.std()
    weight = params["dmn_coupling"] * (1.0 - 0.6 * severity * params["effect"])
    series = rng.normal(0.0, 1.0, (*shape, n)).astype(np.float32)
    for centre in DMN_MNI:
        node = (np.linalg.norm(xyz - np.asarray(centre), axis=-1) <= NODE_RADIUS_MM) & inside
        series[node] = weight * shared + np.sqrt(max(1.0 - weight**2, 0.0)) * series[node]
    bold = np.where(inside[..., None], base[..., None] * (1.0 + 0.01 * series), 0.0).astype(np.float32)
    posed = _rigid(rng, params["max_rotation_deg"], params["max_shift_mm"]) @ target
    return bold, posed


def make_synthetic_cohort(root: Path, n_participants: int = 60, *, seed: int = 0, with_bold: bool = True,
                          **params) -> Path:
    """Write a synthetic BIDS dataset of ``n_participants`` (classes CN, MCI, AD in turn) to ``root``.

    ``params`` override :data:`DEFAULTS` (``effect`` scales every class effect; 0 gives no effect).
    ``participants.tsv`` records ``diagnosis`` and the true ``ventricle_growth_mm``; the BOLD sidecars
    carry ``RepetitionTime``. Returns ``root``.

    Raises
    ------
    ValueError
        Unknown parameter names.
    """
    import nibabel as nb
    import numpy as np

    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown synthetic-cohort parameter(s): {', '.join(sorted(unknown))}")
    params = {**DEFAULTS, **params}
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({
        "Name": "bidsad synthetic cohort (NOT real data)", "BIDSVersion": "1.10.0", "DatasetType": "raw",
        "GeneratedBy": [{"Name": "bidsad.synthetic", "Description": json.dumps(params)}]}, indent=2))
    (root / "README").write_text("Synthetic data made by bidsad.synthetic from the MNI152 2009a template "
                                 "(nilearn). Class effects are artificial. For tests and benchmarks only.\n")
    (root / "task-rest_bold.json").write_text(json.dumps({"TaskName": "rest",
                                                          "RepetitionTime": params["repetition_time"]}))
    rows = ["participant_id\tdiagnosis\tventricle_growth_mm"]
    rng = np.random.default_rng(seed)
    for index in range(n_participants):
        label = f"{index + 1:03d}"
        diagnosis = CLASS_NAMES[index % 3]
        severity = SEVERITY[diagnosis]
        sub_rng = np.random.default_rng(rng.integers(2**32))
        anat = root / f"sub-{label}" / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        data, affine, growth = synthetic_t1w(severity, sub_rng, params)
        img = nb.Nifti1Image(data * 1000.0, affine)
        img.set_data_dtype(np.int16)  # nibabel chooses scl_slope, as scanners' integer files have
        nb.save(img, anat / f"sub-{label}_T1w.nii.gz")
        if with_bold:
            func = root / f"sub-{label}" / "func"
            func.mkdir(parents=True, exist_ok=True)
            bold, bold_affine = synthetic_bold(severity, sub_rng, params)
            bold_img = nb.Nifti1Image(bold, bold_affine)
            bold_img.header.set_xyzt_units("mm", "sec")
            bold_img.header.set_zooms((*bold_img.header.get_zooms()[:3], params["repetition_time"]))
            nb.save(bold_img, func / f"sub-{label}_task-rest_bold.nii.gz")
        rows.append(f"sub-{label}\t{diagnosis}\t{growth:.3f}")
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    return root


#: Atlas label of the synthetic regional tables (read from file names by the group level).
SYNTHETIC_ATLAS = "synthetic"
#: Regions of the synthetic regional tables; the first four form the "default mode" set.
N_REGIONS = 12


def _ellipsoid(shape, centre, radii):
    """Boolean mask of an axis-aligned ellipsoid (voxel units) on a grid of ``shape``."""
    import numpy as np

    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1.0


def synthetic_mri_tensor(severity: float, rng, shape, effect: float):
    """A model-input MRI tensor (float32, ``shape``, z-scored inside a head ellipsoid, 0 outside).

    Atrophy as in :func:`synthetic_t1w`, drawn directly on the grid: a central dark "ventricle"
    ellipsoid whose radii grow by ``60% * severity * effect`` and two bright "hippocampus" spheres
    that lose ``severity * effect`` of their contrast; smooth noise and a random shift of up to
    two voxels make every participant different.
    """
    import numpy as np
    from scipy import ndimage

    shape = tuple(int(n) for n in shape)
    centre = np.array(shape) / 2 + rng.uniform(-2, 2, 3)
    head = _ellipsoid(shape, centre, np.array(shape) * 0.42)
    data = ndimage.gaussian_filter(rng.normal(size=shape), 1.0).astype(np.float32) * 2.0
    radii = np.array(shape) * 0.10 * (1 + 0.6 * severity * effect + rng.normal(0, 0.05))
    data[_ellipsoid(shape, centre, radii)] -= 3.0
    for side in (-1, 1):
        spot = centre + np.array([side * shape[0] * 0.22, -shape[1] * 0.05, -shape[2] * 0.12])
        data[_ellipsoid(shape, spot, np.array(shape) * 0.07)] += 2.0 * (1 - severity * effect)
    data = np.where(head, data, 0.0)
    data[head] = (data[head] - data[head].mean()) / data[head].std()
    return data.astype(np.float32)


def _dmn_signal(severity, rng, n_volumes, n_series, effect, params):
    """``n_series`` time series (n_volumes, n_series): the first four share one signal whose weight
    falls with severity (as :func:`synthetic_bold`), the rest are independent noise."""
    import numpy as np
    from scipy import ndimage

    shared = ndimage.gaussian_filter1d(rng.normal(size=n_volumes), 1.5)
    shared /= shared.std()
    weight = params["dmn_coupling"] * (1 - 0.6 * severity * effect)
    series = rng.normal(size=(n_volumes, n_series))
    series[:, :4] = weight * shared[:, None] + np.sqrt(1 - weight**2) * series[:, :4]
    return series


def synthetic_bold_tensor(severity: float, rng, shape, frames: int, effect: float, params: dict):
    """A model-input BOLD tensor (float32, ``(frames, *shape)``): four "default-mode" blobs share a
    signal whose weight falls with severity; other voxels carry noise; z-scored per voxel."""
    import numpy as np

    shape = tuple(int(n) for n in shape)
    data = rng.normal(size=(frames, *shape)).astype(np.float32)
    series = _dmn_signal(severity, rng, frames, 4, effect, params)
    spots = [(0.5, 0.3, 0.6), (0.5, 0.75, 0.4), (0.25, 0.3, 0.65), (0.75, 0.3, 0.65)]
    for node, spot in enumerate(spots):
        blob = _ellipsoid(shape, np.array(spot) * shape, np.array(shape) * 0.12)
        data[:, blob] = series[:, node, None] + 0.3 * data[:, blob]
    data = (data - data.mean(axis=0)) / data.std(axis=0)
    return data.astype(np.float32)


def make_synthetic_derivatives(root: Path, n_participants: int = 60, *, preset: str = "small", seed: int = 0,
                               effect: float = 1.0, with_bold: bool = True, shuffle_labels: bool = False,
                               n_volumes: int = 60, **params) -> tuple[Path, Path]:
    """Write a synthetic cohort directly as group-level inputs, BYPASSING PREPROCESSING.

    For group-level tests and benchmarks only: no image is preprocessed. Writes ``root/bids`` (a fake
    BIDS dataset holding only ``dataset_description.json`` and ``participants.tsv``) and
    ``root/derivatives`` with, per participant, exactly the files the participant level writes for the
    group level, named by the contract (:mod:`bidsad.derivatives`) and on its grids: the T1w model tensor
    (``MRI_TENSORS["t1w"]``, ``features/sub-<l>_res-<preset>_desc-model_T1w.npy``; its sidecar has the fields and
    ``ParametersHash`` of :func:`bidsad.interfaces.tensors.finish_meta`), optionally the fMRI tensor
    (``BOLD_TENSOR``), and the baselines' inputs: regional GM volumes (``GM_MORPH``, atlas ``synthetic``; ``index``,
    ``name``, ``volume_ml``), tissue volumes (``VOLUMES_MORPH``: TIV, GM and the two "hippocampi"), a coarse "modulated grey-matter" map (``VOXEL_GM``: every 4th voxel of the MRI
    tensor, mapped into [0, 1]) and, with BOLD, ROI time series (``ROI_TIMESERIES``, ``n_volumes`` rows x
    :data:`N_REGIONS` regions).

    Classes cycle CN, MCI, AD (severity 0, 0.5, 1); ``effect`` scales every class effect (0: none).
    ``shuffle_labels`` permutes the diagnoses in participants.tsv (seeded) after the data are drawn,
    so that the data carry no information about the recorded labels. participants.tsv also has ``age``
    (60-90) and ``sex`` drawn independently of the diagnosis. Returns ``(bids_dir, out_dir)``.
    """
    import nibabel as nb
    import numpy as np

    from bidsad.derivatives import (BOLD_TENSOR, CONTENT_HASH_KEY, FRAME_MASK_KEY, GM_MORPH, GRID_FOV_MM, MRI_TENSORS,
                                    PRESETS, ROI_TIMESERIES, TEMPLATE_FOV_MM, TEMPLATE_SPACE, VOLUMES_MORPH, VOXEL_GM,
                                    array_content_hash, bold_model_grid, resize_mri_volume_grid)
    from bidsad.derivatives.naming import derivative_path
    from bidsad.interfaces.tensors import finish_meta

    params = {**DEFAULTS, **params}
    grid = PRESETS[preset]
    root = Path(root)
    bids_dir, out_dir = root / "bids", root / "derivatives"
    for folder in (bids_dir, out_dir):
        folder.mkdir(parents=True, exist_ok=True)
    (bids_dir / "dataset_description.json").write_text(json.dumps({
        "Name": "bidsad synthetic derivatives (NOT real data; preprocessing bypassed)", "BIDSVersion": "1.10.0",
        "DatasetType": "raw"}, indent=2))
    (out_dir / "dataset_description.json").write_text(json.dumps({
        "Name": "bidsad synthetic derivatives", "BIDSVersion": "1.10.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "bidsad.synthetic.make_synthetic_derivatives",
                         "Description": "group-level inputs drawn directly; preprocessing bypassed"}]}, indent=2))
    common = {"preset": preset, "Space": TEMPLATE_SPACE, "Synthetic": True}
    how = {"normalisation": "synthetic: drawn z-scored (bidsad.synthetic, preprocessing bypassed)",
           "interpolation": "none (drawn on the model grid)", "warnings": []}
    rng = np.random.default_rng(seed)
    diagnoses = [CLASS_NAMES[i % 3] for i in range(n_participants)]
    names = [f"roi-{i + 1:03d}" for i in range(N_REGIONS)]
    for index, diagnosis in enumerate(diagnoses):
        label = f"{index + 1:03d}"
        severity = SEVERITY[diagnosis]
        sub_rng = np.random.default_rng(rng.integers(2**32))
        t1w_source, bold_source = Path(f"sub-{label}_T1w.nii.gz"), Path(f"sub-{label}_task-rest_bold.nii.gz")
        mri = synthetic_mri_tensor(severity, sub_rng, grid["mri_shape"], effect)
        stem = derivative_path(out_dir, t1w_source, **MRI_TENSORS["t1w"].sink_args(res=preset)).with_suffix("")
        stem.parent.mkdir(parents=True, exist_ok=True)
        np.save(stem.with_suffix(".npy"), mri)
        affine = resize_mri_volume_grid(grid["mri_shape"])
        meta = {"shape": list(mri.shape), "dtype": "float32", "grid_affine": affine.round(6).tolist(),
                CONTENT_HASH_KEY: array_content_hash(mri),  # no source scan: the drawn tensor stands in for it
                "voxel_size_mm": [round(float(v), 6) for v in np.diag(affine)[:3]],
                "field_of_view_mm": list(TEMPLATE_FOV_MM), "frames": None, "Modality": "T1w", **common}
        stem.with_suffix(".json").write_text(json.dumps(finish_meta(meta, {}, **how), indent=2))
        morph = derivative_path(out_dir, t1w_source, **GM_MORPH.sink_args(atlas=SYNTHETIC_ATLAS))
        morph.parent.mkdir(parents=True, exist_ok=True)
        volumes = 10.0 * sub_rng.uniform(0.95, 1.05) * (1 + 0.05 * sub_rng.normal(size=N_REGIONS))
        volumes[:2] *= 1 - 0.4 * severity * effect  # "hippocampi" shrink with severity
        pd_rows = ["index\tname\tvolume_ml"] + [f"{i + 1}\t{n}\t{v:.4f}" for i, (n, v) in enumerate(zip(names, volumes))]
        morph.write_text("\n".join(pd_rows) + "\n")
        tissues = {"TIV": 1500.0, "GM": 600.0 * volumes[2:].mean() / 10.0, "hippocampus_left": volumes[0] / 3,
                   "hippocampus_right": volumes[1] / 3}  # no new draws: the tissue table follows the regional one
        derivative_path(out_dir, t1w_source, **VOLUMES_MORPH.sink_args()).write_text("\n".join(
            ["name\tvolume_ml\tfraction_of_tiv\tregion_ml"] + [f"{n}\t{v:.4f}\t{v / 1500.0:.6f}\tn/a" for n, v in tissues.items()]) + "\n")
        coarse = mri[::4, ::4, ::4]  # a "grey-matter map at 4 mm" carrying the same class effect as the tensor
        gm = np.where(coarse != 0, np.clip(0.5 + 0.25 * coarse, 0.0, 1.0), 0.0).astype(np.float32)
        nb.save(nb.Nifti1Image(gm, np.diag([4.0, 4.0, 4.0, 1.0])),
                derivative_path(out_dir, t1w_source, **VOXEL_GM.sink_args()))
        if with_bold:
            bold = synthetic_bold_tensor(severity, sub_rng, grid["bold_shape"], grid["frames"], effect, params)
            stem = derivative_path(out_dir, bold_source, **BOLD_TENSOR.sink_args(res=preset)).with_suffix("")
            np.save(stem.with_suffix(".npy"), bold)
            meta = {"shape": list(bold.shape), "dtype": "float32",
                    "grid_affine": bold_model_grid(grid["bold_shape"]).round(6).tolist(),
                    "voxel_size_mm": [round(f / n, 6) for f, n in zip(GRID_FOV_MM, grid["bold_shape"])],
                    "field_of_view_mm": list(GRID_FOV_MM), "frames": grid["frames"], "n_volumes": grid["frames"],
                    FRAME_MASK_KEY: [True] * grid["frames"], "Modality": "bold",
                    "RepetitionTime": params["repetition_time"], **common}
            stem.with_suffix(".json").write_text(json.dumps(finish_meta(meta, {}, **how), indent=2))
            series = _dmn_signal(severity, sub_rng, n_volumes, N_REGIONS, effect, params)
            lines = ["\t".join(names)] + ["\t".join(f"{v:.5f}" for v in row) for row in series]
            stem = derivative_path(out_dir, bold_source,
                                   **ROI_TIMESERIES.sink_args(atlas=SYNTHETIC_ATLAS)).with_suffix("")
            stem.parent.mkdir(parents=True, exist_ok=True)
            stem.with_suffix(".tsv").write_text("\n".join(lines) + "\n")
            stem.with_suffix(".json").write_text(json.dumps({"Atlas": SYNTHETIC_ATLAS, "Denoise": "none (synthetic)",
                                                             "RepetitionTime": params["repetition_time"]}))
    if shuffle_labels:
        diagnoses = list(np.random.default_rng(seed + 1).permutation(diagnoses))
    demography = np.random.default_rng([seed, 7])  # its own stream: the images do not change with it
    ages, sexes = demography.integers(60, 91, len(diagnoses)), demography.choice(["F", "M"], len(diagnoses))
    rows = ["participant_id\tage\tsex\tdiagnosis"] + [f"sub-{i + 1:03d}\t{a}\t{x}\t{d}"
                                                   for i, (a, x, d) in enumerate(zip(ages, sexes, diagnoses))]
    (bids_dir / "participants.tsv").write_text("\n".join(rows) + "\n")
    return bids_dir, out_dir


def main(argv=None) -> None:
    """``python -m bidsad.synthetic OUT [--participants N] [--effect E] [--seed S] [--no-bold]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bidsad.synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the BIDS dataset into")
    parser.add_argument("--participants", type=int, default=60)
    parser.add_argument("--effect", type=float, default=DEFAULTS["effect"], help="class effect strength (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-bold", action="store_true", help="T1w only")
    parser.add_argument("--derivatives", metavar="PRESET",
                        help="write OUT/bids + OUT/derivatives as group-level inputs of PRESET (bypasses preprocessing)")
    parser.add_argument("--shuffle-labels", action="store_true", help="with --derivatives: permute the diagnoses")
    opts = parser.parse_args(argv)
    if opts.derivatives:
        make_synthetic_derivatives(opts.out, opts.participants, preset=opts.derivatives, seed=opts.seed,
                                   effect=opts.effect, with_bold=not opts.no_bold, shuffle_labels=opts.shuffle_labels)
        return
    make_synthetic_cohort(opts.out, opts.participants, seed=opts.seed, with_bold=not opts.no_bold, effect=opts.effect)


if __name__ == "__main__":
    main()
