"""Benchmark: how much CN-vs-AD signal three more atrophy measures carry on bidsad's derivatives (issue 14).

Usage: python benchmarks/ceiling_oasis.py OUT_DIR PARTICIPANTS_TSV [--repeats 10]

``OUT_DIR``: a bidsad participant-level output folder of oasis1-dev (``../shared/data/oasis1-dev``);
``PARTICIPANTS_TSV``: its ``participants.tsv`` (``participant_id``, ``age``, ``sex``, ``diagnosis``). CN and AD
only. Each measure is scored by its AUC as a plain score (no fitting) and, where it has many features, by a
class-balanced linear model under repeated stratified 5-fold cross-validation (scikit-learn; probabilities or
decision values averaged over the repeats, as the group level does):

1. **age- and sex-adjusted tissue fractions** (W-scores: the fractions of TIV from ``*_desc-volumes_morph.tsv``
   regressed on age and sex in each fold's *training CN* only, residuals divided by their SD; Jack et al.'s
   normative adjustment), beside the unadjusted fractions;
2. **ventricular CSF**: the template's central CSF (MNI152 2009 brain mask minus its GM and WM templates, inside
   |x| < 28, -45 < y < 30, -5 < z < 32 mm) warped into each T1w by its ``from-MNI..._to-T1w`` transform
   (antspyx), CSF probability summed inside it, as a fraction of TIV;
3. **deformation-based morphometry**: the log Jacobian determinant of each T1w-to-template warp (antspyx
   ``create_jacobian_determinant_image`` of the composed displacement field, on the 2 mm template grid), averaged
   over 2x2x2 blocks inside the template brain mask, minus its mean (global scale), linear SVM (C 1e-5..1e-3).

Prints the machine, load, and one line per measure; the last line is a one-line summary.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path


def tissue_table(out_dir: Path, ids) -> "pd.DataFrame":
    import pandas as pd

    rows = []
    for pid in ids:
        table = pd.read_csv(out_dir / pid / "anat" / f"{pid}_desc-volumes_morph.tsv", sep="\t").set_index("name")
        rows.append({**table["fraction_of_tiv"].astype(float).to_dict(), "TIV_ml": float(table.loc["TIV", "volume_ml"])})
    return pd.DataFrame(rows)


def template_masks(reference: Path):
    """(brain mask, ventricle ROI) of the 2 mm template on ``reference``'s grid, boolean arrays."""
    import nibabel as nib
    import numpy as np
    from nilearn import datasets
    from nilearn.image import resample_to_img

    ref = nib.load(reference)
    brain = resample_to_img(datasets.load_mni152_brain_mask(resolution=2), ref, interpolation="nearest").get_fdata() > 0
    tissue = sum(resample_to_img(load(resolution=2), ref).get_fdata()
                 for load in (datasets.load_mni152_gm_template, datasets.load_mni152_wm_template))
    xyz = nib.affines.apply_affine(ref.affine, np.indices(brain.shape).reshape(3, -1).T).reshape(brain.shape + (3,))
    box = (abs(xyz[..., 0]) < 28) & (xyz[..., 1] > -45) & (xyz[..., 1] < 30) & (xyz[..., 2] > -5) & (xyz[..., 2] < 32)
    return brain, brain & (tissue < 0.3) & box, ref.affine


def warp_measures(out_dir: Path, pid: str, ventricles, affine, work: Path):
    """(ventricular CSF in ml, log-Jacobian map on the template grid) of one participant."""
    import ants
    import nibabel as nib
    import numpy as np

    anat = out_dir / pid / "anat"
    space = "space-MNI152NLin2009aSym_res-2"
    fixed = ants.image_read(str(anat / f"{pid}_{space}_desc-brain_mask.nii.gz"))
    native_csf = ants.image_read(str(anat / f"{pid}_label-CSF_probseg.nii.gz"))
    nib.save(nib.Nifti1Image(ventricles.astype("float32"), affine), work / "roi.nii.gz")
    roi = ants.apply_transforms(native_csf, ants.image_read(str(work / "roi.nii.gz")),
                                [str(anat / f"{pid}_from-MNI152NLin2009aSym_to-T1w_mode-image_xfm.h5")])
    csf_ml = float((roi.numpy() * native_csf.numpy()).sum() * np.prod(native_csf.spacing) / 1000)
    field = ants.apply_transforms(fixed, ants.image_read(str(anat / f"{pid}_desc-preproc_T1w.nii.gz")),
                                  [str(anat / f"{pid}_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.h5")],
                                  compose=str(work / f"{pid}_"))
    return csf_ml, ants.create_jacobian_determinant_image(fixed, field, do_log=True).numpy()


def cross_validate(X, y, Z, *, model, repeats: int, wscore: bool = False):
    """(AUC, balanced accuracy) of repeat-averaged out-of-fold scores."""
    import numpy as np
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score
    from sklearn.model_selection import RepeatedStratifiedKFold

    scores = np.zeros((repeats, len(y)))
    for i, (train, test) in enumerate(RepeatedStratifiedKFold(n_splits=5, n_repeats=repeats, random_state=0).split(X, y)):
        Xtr, Xte = X[train], X[test]
        if wscore:
            cn = train[y[train] == 0]
            norm = LinearRegression().fit(Z[cn], X[cn])
            sd = (X[cn] - norm.predict(Z[cn])).std(0)
            Xtr, Xte = (X[train] - norm.predict(Z[train])) / sd, (X[test] - norm.predict(Z[test])) / sd
        mean, scale = Xtr.mean(0), Xtr.std(0) if isinstance(model, LogisticRegression) else Xtr.std()
        fitted = model.fit((Xtr - mean) / scale, y[train])
        scores[i // 5, test] = fitted.decision_function((Xte - mean) / scale)
    score = scores.mean(0)
    return roc_auc_score(y, score), balanced_accuracy_score(y, score > 0)


def main(argv=None) -> int:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.svm import LinearSVC

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("participants_tsv", type=Path)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    table = pd.read_csv(args.participants_tsv, sep="\t")
    table = table[table["diagnosis"].isin(["CN", "AD"])].reset_index(drop=True)
    y = (table["diagnosis"] == "AD").to_numpy(int)
    Z = np.c_[table["age"].astype(float), (table["sex"] == "M").astype(float)]
    fractions = tissue_table(args.out_dir, table["participant_id"])
    names = [c for c in fractions if c not in ("TIV", "TIV_ml")]
    X = fractions[names].to_numpy(float)
    print(f"{len(y)} participants ({int((y == 0).sum())} CN, {int(y.sum())} AD), {args.repeats} x 5-fold")
    logreg = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000)
    results = {}
    for label, wscore in (("tissue fractions", False), ("tissue fractions, age/sex W-scores", True)):
        results[label] = cross_validate(X, y, Z, model=logreg, repeats=args.repeats, wscore=wscore)
    csf = X[:, [names.index("CSF")]]
    for label, wscore in (("CSF/TIV", False), ("CSF/TIV, age/sex W-score", True)):
        results[label] = cross_validate(csf, y, Z, model=logreg, repeats=args.repeats, wscore=wscore)
    first = table["participant_id"][0]
    brain, ventricles, affine = template_masks(
        args.out_dir / first / "anat" / f"{first}_space-MNI152NLin2009aSym_res-2_desc-brain_mask.nii.gz")
    print(f"ventricle ROI {ventricles.sum() * 8 / 1000:.1f} ml on the template")
    vent, logj = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for pid in table["participant_id"]:
            ml, jac = warp_measures(args.out_dir, pid, ventricles, affine, Path(tmp))
            vent.append(ml)
            s = [d // 2 * 2 for d in jac.shape]
            blocks = jac[: s[0], : s[1], : s[2]].reshape(s[0] // 2, 2, s[1] // 2, 2, s[2] // 2, 2).mean((1, 3, 5))
            logj.append(blocks)
    inside = brain[: s[0], : s[1], : s[2]].reshape(s[0] // 2, 2, s[1] // 2, 2, s[2] // 2, 2).mean((1, 3, 5)) > 0.5
    J = np.stack(logj)[:, inside]
    J -= J.mean(1, keepdims=True)
    vent_fraction = np.array(vent) / fractions["TIV_ml"].to_numpy()
    print(f"CSF/TIV, no fitting: AUC {roc_auc_score(y, csf[:, 0]):.3f}; "
          f"ventricular CSF/TIV, no fitting: AUC {roc_auc_score(y, vent_fraction):.3f}")
    for C in (1e-5, 1e-4, 1e-3):
        svm = LinearSVC(C=C, class_weight="balanced", max_iter=20000)
        results[f"log-Jacobian voxels ({J.shape[1]}), linear SVM C={C:g}"] = cross_validate(J, y, Z, model=svm, repeats=args.repeats)
    for label, (auc, ba) in results.items():
        print(f"{label:55s} AUC {auc:.3f}  balanced accuracy {ba:.3f}")
    best = max(results.items(), key=lambda kv: kv[1][0])
    print(f"summary: best {best[0]} AUC {best[1][0]:.3f}, balanced accuracy {best[1][1]:.3f}; "
          f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
