"""Anatomical workflow graph, model grid and datasink naming (no image processing)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bidsad.derivatives import resize_mri_volume_grid
from bidsad.interfaces.bids import DerivativesDataSink
from bidsad.templates import template_image

from .conftest import DEMO


def test_model_grid_is_the_template_box_resized():
    template = template_image("T1w", 1)
    assert np.allclose(resize_mri_volume_grid(template.shape), template.affine)
    paper = resize_mri_volume_grid((128, 128, 176))
    assert np.allclose(np.diag(paper)[:3], [197 / 128, 233 / 128, 189 / 176])
    # first and last voxel edges coincide with the template box edges
    assert np.allclose(paper @ [-0.5, -0.5, -0.5, 1], template.affine @ [-0.5, -0.5, -0.5, 1])
    assert np.allclose(paper @ [127.5, 127.5, 175.5, 1], template.affine @ [196.5, 232.5, 188.5, 1])


@pytest.mark.parametrize("method", ["affine", "syn"])
def test_anat_workflow_builds(tmp_path, method):
    from bidsad.workflows.anat import init_anat_preproc_wf

    wf = init_anat_preproc_wf(t1w=DEMO / "sub-01/anat/sub-01_T1w.nii.gz", bids_dir=DEMO, out_dir=str(tmp_path),
                              preset="small", registration=method, omp_nthreads=1, seed=3)
    names = set(wf.list_node_names())
    for node in ("conform_t1w", "n4", "brain_extraction", "tissues", "register", "t1w_to_mni", "t1w_tensor",
                 "ds_t1w2mni_xfm", "ds_mni2t1w_xfm", "ds_gm_probseg_mni", "plot_normalisation"):
        assert node in names
    register = wf.get_node("register")
    assert register.inputs.method == method and register.inputs.seed == 3


def test_datasink_transform_names_and_skull_stripped(tmp_path):
    src = DEMO / "sub-04/anat/sub-04_T1w.nii.gz"
    payload = tmp_path / "x.h5"
    payload.write_bytes(b"HDF")
    result = DerivativesDataSink(base_directory=str(tmp_path / "out"), source_file=str(src), in_file=str(payload),
                                 datatype="anat", suffix="xfm", from_="T1w", to="MNI152NLin2009aSym", mode="image",
                                 extension=".h5", meta_dict={"Sources": ["bids::x"]}, skull_stripped=True).run()
    out = result.outputs.out_file
    assert out.endswith("sub-04/anat/sub-04_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.h5")
    assert json.loads(open(result.outputs.out_meta).read()) == {"Sources": ["bids::x"], "SkullStripped": True}


def test_registration_levels_sized_to_the_input():
    from bidsad.interfaces.registration import stage_sizes

    fine = stage_sizes(1.0)
    assert fine == stage_sizes(2.0) == {"aff_shrink_factors": (6, 4, 2), "aff_smoothing_sigmas": (3, 2, 1),
                                         "aff_iterations": (2100, 1200, 1200)}  # SyN: antspyx's levels
    assert stage_sizes(4.0)["reg_iterations"] == (40, 0, 0)
    assert stage_sizes(8.0)["aff_shrink_factors"] == (6, 4)


def test_template_brain_box_keeps_the_brain_where_it_was(tmp_path):
    import ants

    from bidsad.interfaces.registration import template_brain_box, template_file

    box = template_brain_box(tmp_path)
    full = ants.image_read(str(template_file(tmp_path, "T1w", 2)))
    assert np.prod(box.shape) < 0.8 * np.prod(full.shape)
    # back on the full grid (world positions), every template brain voxel has its value; outside the box 0
    back = ants.resample_image_to_target(box, full, interp_type="nearestNeighbor").numpy()
    brain = np.asarray(template_image("mask", 2).dataobj) > 0
    assert np.array_equal(back[brain], full.numpy()[brain])
    assert (back != 0).sum() < (full.numpy() != 0).sum()
