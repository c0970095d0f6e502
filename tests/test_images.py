"""Image conformance and model tensors on synthetic images with known answers."""

from __future__ import annotations

import nibabel as nb
import numpy as np
import pytest

from bidsad.derivatives import grid_affine
from bidsad.interfaces.images import bounding_box, conform_image


def _blob(shape=(40, 48, 40), center=(20, 24, 20), radius=12.0):
    idx = np.indices(shape).astype(float)
    dist = np.sqrt(sum((idx[i] - center[i]) ** 2 for i in range(3)))
    return np.where(dist < radius, 100.0 + idx[0], 0.0).astype(np.float32)


def test_conform_scales_reorients_and_cleans(tmp_path):
    data = _blob().astype(np.int16)
    data[0, 0, 0] = 7
    las = np.diag([-2.0, 2.0, 2.0, 1.0])
    img = nb.Nifti1Image(data[..., None], las)  # 4-D with a singleton: squeezed
    img.header.set_slope_inter(0.5, 10)
    nb.save(img, tmp_path / "in.nii.gz")
    warnings = conform_image(tmp_path / "in.nii.gz", tmp_path / "out.nii.gz", 3, "T1w", "sub-01/anat/in.nii.gz")
    out = nb.load(tmp_path / "out.nii.gz")
    assert nb.aff2axcodes(out.affine) == ("R", "A", "S") and out.shape == data.shape
    assert out.get_data_dtype() == np.float32 and not warnings
    # voxel (0,0,0) of the LAS input is the last x index in RAS; scaling 0.5 * 7 + 10
    assert np.asarray(out.dataobj)[-1, 0, 0] == pytest.approx(13.5)
    assert np.allclose(out.affine @ [data.shape[0] - 1, 0, 0, 1], las @ [0, 0, 0, 1])


def test_conform_nonfinite_and_dimensions(tmp_path):
    data = _blob()
    data[1, 1, 1], data[2, 2, 2] = np.nan, np.inf
    nb.save(nb.Nifti1Image(data, np.eye(4)), tmp_path / "nan.nii.gz")
    warnings = conform_image(tmp_path / "nan.nii.gz", tmp_path / "o.nii.gz", 3, "T1w", "sub-01/anat/nan.nii.gz")
    assert warnings == ["sub-01/anat/nan.nii.gz: 2 non-finite voxel values (NaN/Inf) were set to 0."]
    assert np.isfinite(nb.load(tmp_path / "o.nii.gz").get_fdata()).all()
    with pytest.raises(ValueError, match="sub-01/func/x.nii.gz: a BOLD image must be 4-D"):
        conform_image(tmp_path / "nan.nii.gz", tmp_path / "o.nii.gz", 4, "BOLD", "sub-01/func/x.nii.gz")
    nb.save(nb.Nifti1Image(np.full((4, 4, 4), np.nan, np.float32), np.eye(4)), tmp_path / "allnan.nii.gz")
    with pytest.raises(ValueError, match="every voxel is non-finite"):
        conform_image(tmp_path / "allnan.nii.gz", tmp_path / "o.nii.gz", 3, "T1w", "allnan.nii.gz")


def test_grid_affine_centres_the_field_of_view():
    affine = grid_affine((10.0, -20.0, 5.0), (180.0, 216.0, 180.0), (48, 56, 48))
    centre = affine @ [(48 - 1) / 2, (56 - 1) / 2, (48 - 1) / 2, 1]
    assert np.allclose(centre[:3], [10.0, -20.0, 5.0])
    assert np.allclose(np.diag(affine)[:3], [3.75, 216 / 56, 3.75])


def test_conform_refuses_multivolume_t1w(tmp_path):
    nb.save(nb.Nifti1Image(np.ones((8, 8, 8, 3), np.float32), np.eye(4)), tmp_path / "multi.nii.gz")
    with pytest.raises(ValueError, match=r"sub-01/anat/multi.nii.gz: a T1w image must be a single 3-D volume; this one holds 3 volumes"):
        conform_image(tmp_path / "multi.nii.gz", tmp_path / "o.nii.gz", 3, "T1w", "sub-01/anat/multi.nii.gz")


def test_conform_one_affine_and_qform_sform_warning(tmp_path):
    img = nb.Nifti1Image(_blob(), np.diag([2.0, 2.0, 2.0, 1.0]))
    shifted = img.affine.copy()
    shifted[:3, 3] += [0.0, 5.0, 0.0]
    img.set_qform(shifted, code=1)
    img.set_sform(img.affine, code=2)
    nb.save(img, tmp_path / "qs.nii.gz")
    warnings = conform_image(tmp_path / "qs.nii.gz", tmp_path / "o.nii.gz", 3, "T1w", "qs.nii.gz")
    assert len(warnings) == 1 and "qform and sform of the header disagree (by up to 5.00 mm)" in warnings[0]
    out = nb.load(tmp_path / "o.nii.gz")
    assert np.allclose(out.get_qform(), out.get_sform()) and np.allclose(out.affine, np.diag([2.0, 2.0, 2.0, 1.0]))


def test_bounding_box_with_margin_clipped():
    mask = np.zeros((10, 12, 8), bool)
    mask[3:5, 6, 1:7] = True
    assert bounding_box(mask) == (slice(3, 5), slice(6, 7), slice(1, 7))
    assert bounding_box(mask, 2) == (slice(1, 7), slice(4, 9), slice(0, 8))
    with pytest.raises(ValueError, match="empty"):
        bounding_box(np.zeros((3, 3, 3)))


def test_tissue_maps_on_the_brain_box_equal_the_whole_field(tmp_path):
    """Atropos on the mask's bounding box (issue 19) gives the maps of Atropos on the whole field of view."""
    import ants

    from bidsad.interfaces.segmentation import segment_tissues

    rng = np.random.default_rng(0)
    shape = (48, 40, 36)
    ijk = np.indices(shape).astype(float)
    r = np.sqrt(((ijk - np.array([22, 20, 18])[:, None, None, None]) ** 2).sum(axis=0))
    mask = r < 14
    data = np.where(r < 6, 300.0, np.where(r < 10, 200.0, 100.0)) + rng.normal(0, 15, shape)
    data = np.where(mask, data, rng.uniform(0, 400, shape)).astype(np.float32)
    affine = np.diag([1.2, 1.0, 1.1, 1.0])
    nb.save(nb.Nifti1Image(data, affine), tmp_path / "t1w.nii.gz")
    nb.save(nb.Nifti1Image(mask.astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    outs = segment_tissues(tmp_path / "t1w.nii.gz", tmp_path / "mask.nii.gz", tmp_path)
    whole = ants.atropos(a=ants.from_numpy(data, spacing=(1.2, 1.0, 1.1)),
                         x=ants.from_numpy(mask.astype(np.float32), spacing=(1.2, 1.0, 1.1)),
                         i="Kmeans[3]", m="[0.2,1x1x1]", c="[5,0]", r=0)["probabilityimages"]
    for index, (path, expected) in enumerate(zip(outs, whole)):
        got = np.asarray(nb.load(path).dataobj)
        assert got.shape == shape and np.allclose(nb.load(path).affine, affine)
        assert np.abs(got - np.clip(expected.numpy(), 0, 1)).max() < 1e-6
        assert not got[~mask].any()
        # CSF, GM, WM: dark to bright, each shell mostly its class
        shell = [(r >= 10) & mask, (r >= 6) & (r < 10), r < 6][index]
        assert got[shell].mean() > 0.9


def test_masked_brain_box_keeps_world_positions(tmp_path):
    import ants

    from bidsad.interfaces.registration import masked_brain_box

    data = np.random.default_rng(1).uniform(1, 2, (60, 50, 40)).astype(np.float32)
    mask = np.zeros(data.shape, np.uint8)
    mask[20:30, 15:35, 10:20] = 1
    affine = np.array([[-2.0, 0, 0, 50], [0, 2, 0, -40], [0, 0, 2, -30], [0, 0, 0, 1]])
    nb.save(nb.Nifti1Image(data, affine), tmp_path / "t1w.nii.gz")
    nb.save(nb.Nifti1Image(mask, affine), tmp_path / "mask.nii.gz")
    box = masked_brain_box(tmp_path / "t1w.nii.gz", tmp_path / "mask.nii.gz", margin_mm=6.0)
    assert box.shape == (16, 26, 16)  # 3 voxels (6 mm / 2 mm) around the mask on each side
    full = ants.image_read(str(tmp_path / "t1w.nii.gz"))
    # the box's first voxel is voxel (17, 12, 7) of the full image, at the same world position
    assert np.allclose(box.origin, ants.transform_index_to_physical_point(full, [17, 12, 7]))
    assert np.allclose(box.numpy(), (data * mask)[17:33, 12:38, 7:23])
