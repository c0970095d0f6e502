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

Run ``python -m bidsad.synthetic OUT --participants 60 --effect 1.0`` to write one.
"""

from __future__ import annotations

import json
from pathlib import Path

CLASS_NAMES = ("CN", "MCI", "AD")
SEVERITY = {"CN": 0.0, "MCI": 0.5, "AD": 1.0}
HIPPOCAMPI_MNI = ((-28.0, -22.0, -14.0), (28.0, -22.0, -14.0))
HIPPOCAMPUS_RADIUS_MM = 9.0
VENTRICLE_BOX_MNI = ((-30.0, 30.0), (-45.0, 30.0), (-5.0, 35.0))  # x, y, z ranges (mm)
DMN_MNI = ((0.0, -52.0, 26.0), (0.0, 52.0, -6.0), (-46.0, -66.0, 30.0), (46.0, -66.0, 30.0))
NODE_RADIUS_MM = 8.0

DEFAULTS = {
    "effect": 1.0,
    "ventricle_mm": 6.0,
    "ventricle_sd_mm": 0.7,
    "hippocampal_loss": 0.5,
    "dmn_coupling": 0.8,
    "noise_sd": 0.03,
    "max_rotation_deg": 5.0,
    "max_shift_mm": 5.0,
    "n_volumes": 40,
    "repetition_time": 2.0,
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


def main(argv=None) -> None:
    """``python -m bidsad.synthetic OUT [--participants N] [--effect E] [--seed S] [--no-bold]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bidsad.synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the BIDS dataset into")
    parser.add_argument("--participants", type=int, default=60)
    parser.add_argument("--effect", type=float, default=DEFAULTS["effect"], help="class effect strength (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-bold", action="store_true", help="T1w only")
    opts = parser.parse_args(argv)
    make_synthetic_cohort(opts.out, opts.participants, seed=opts.seed, with_bold=not opts.no_bold, effect=opts.effect)


if __name__ == "__main__":
    main()
