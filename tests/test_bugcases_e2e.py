"""Field bug cases end to end (issue 8): read-only input with spaces and non-ASCII in every path under the C
locale (BR-05, BR-06, BR-07, BR-09), and a run killed during the participant level then resumed (BR-26)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import nibabel as nb
import numpy as np
import pytest

from .conftest import DEMO, tree_checksums

pytestmark = pytest.mark.integration
FAST = ["--preset", "small", "--anat-registration", "affine", "--nprocs", "1", "--omp-nthreads", "1"]


def _bidsad(*args, env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "bidsad", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}, timeout=1200, **kwargs)


def _copy_demo(bids: Path, labels=("01",)):
    shutil.copytree(DEMO, bids, ignore=shutil.ignore_patterns(*[f"sub-0{i}" for i in range(1, 7) if f"0{i}" not in labels]))
    for path in [bids, *bids.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return bids


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        self.links += [value for name, value in attrs if name in ("src", "href") and value]


def _mtimes(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_mode) for p in [root, *root.rglob("*")]}


@pytest.mark.slow  # over a minute on 2 cores: kept out of the default suite (15 min budget); run with -m slow
def test_br07_br09_read_only_input_odd_paths_c_locale(tmp_path):
    base = tmp_path / "My Data" / "Étude ü – 2024"
    bids = _copy_demo(base / "bids")
    tsv = bids / "participants.tsv"
    lines = tsv.read_text(encoding="utf-8").splitlines()
    tsv.write_text("\n".join([lines[0] + "\tsite"] + [line + "\tZürich" for line in lines[1:]]) + "\n", encoding="utf-8")
    sidecar = bids / "sub-01/func/sub-01_task-rest_bold.json"
    meta = json.loads(sidecar.read_text())
    meta["InstitutionName"] = "Hôpital Saint-Éloi"
    sidecar.write_bytes(b"\xef\xbb\xbf" + json.dumps(meta, ensure_ascii=False).encode("utf-8"))  # BR-05: BOM
    for path in list((bids / "sub-01").rglob("*.*")):  # BR-05: AppleDouble files that are not data
        (path.parent / f"._{path.name}").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \xb0" * 64)
    (bids / ".DS_Store").write_bytes(os.urandom(512))
    zeros = nb.Nifti1Image(np.zeros((16, 16, 16), np.int16), np.eye(4))
    for folder in ("derivatives/other", "old_run", "sourcedata"):  # BR-06: decoys of all-zero images
        (bids / folder / "sub-01/anat").mkdir(parents=True)
        (bids / folder / "dataset_description.json").write_text('{"Name": "o", "BIDSVersion": "1.8.0", "DatasetType": "derivative"}')
        nb.save(zeros, bids / folder / "sub-01/anat/sub-01_T1w.nii.gz")
    subprocess.run(["chmod", "-R", "a-w", str(bids)], check=True)
    before, stats = tree_checksums(bids), _mtimes(bids)
    out, work = tmp_path / "out dir" / "résultats", tmp_path / "wörk dir"
    proc = _bidsad(bids, out, "participant", *FAST, "-w", work, env={"LC_ALL": "C", "LANG": "C"})
    assert proc.returncode == 0, proc.stderr
    assert tree_checksums(bids) == before and _mtimes(bids) == stats  # nothing created, changed or touched
    subprocess.run(["chmod", "-R", "u+w", str(bids)], check=True)
    for text in (proc.stderr, *(p.read_text(encoding="utf-8") for p in (out / "logs").glob("*.log"))):
        assert "UnicodeEncodeError" not in text and "UnicodeDecodeError" not in text and "Traceback" not in text
    assert "._" not in "".join(str(p) for p in out.rglob("*"))
    preproc = nb.load(out / "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz").get_fdata()
    assert np.abs(preproc).max() > 0
    meta = json.loads((out / "sub-01/anat/sub-01_desc-preproc_T1w.json").read_text(encoding="utf-8"))
    assert meta["Sources"] == ["bids:raw:sub-01/anat/sub-01_T1w.nii.gz"]
    bold = json.loads((out / "sub-01/features/sub-01_task-rest_res-small_desc-model_bold.json").read_text(encoding="utf-8"))
    assert bold["RepetitionTime"] == 2.52
    report = out / "sub-01.html"
    parser = _Links()
    parser.feed(report.read_text(encoding="utf-8"))
    relative = [link for link in parser.links if not urlparse(link).scheme and not link.startswith("#")]
    for link in relative:
        assert (report.parent / unquote(urlparse(link).path)).exists(), link
    summary = json.loads(next((out / "logs").glob("summary-participant-*.json")).read_text(encoding="utf-8"))
    assert summary["sub-01"]["status"] == "ok" and summary["sub-01"]["bold"][0].endswith("sub-01_task-rest_bold.nii.gz")


def _digests(root: Path) -> dict:
    """Relative path -> SHA-256 of every output but logs (timestamps) and reports (run times)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and "logs" not in p.parts and p.suffix != ".html"}


@pytest.mark.slow
def test_br26_killed_run_resumes_to_the_same_outputs(tmp_path):
    """SIGKILL during the participant level as soon as the first derivative appears, rerun with the same work
    directory: same file list and checksums as an uninterrupted run; no partial file ever visible."""
    bids = _copy_demo(tmp_path / "bids", labels=("01", "04"))
    out, work = tmp_path / "out", tmp_path / "work"
    single = {}  # FAST has --omp-nthreads 1: one ITK thread, so antsRegistration is bit-reproducible
    proc = subprocess.Popen([sys.executable, "-m", "bidsad", bids, out, "participant", *FAST, "-w", work],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, **single})
    start = time.time()
    while time.time() - start < 600 and proc.poll() is None and not list(out.glob("sub-*/anat/*.nii.gz")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    present = list(out.rglob("*.nii.gz"))
    assert present, "the run ended before writing a derivative"
    for path in present:  # every file visible after the kill is complete
        assert np.isfinite(nb.load(path).get_fdata()).all()
    # a write cut short leaves only a hidden temporary (.<name>.<random>.tmp), never a partial <name>
    assert all(p.name.startswith(".") for p in out.rglob("*.tmp"))
    resumed = _bidsad(bids, out, "participant", *FAST, "-w", work, env=single)
    assert resumed.returncode == 0, resumed.stderr
    clean = _bidsad(bids, tmp_path / "out2", "participant", *FAST, "-w", tmp_path / "work2", env=single)
    assert clean.returncode == 0, clean.stderr
    first, second = _digests(out), _digests(tmp_path / "out2")
    assert not list(out.rglob("*.tmp"))  # the rerun removed the temporaries of the killed run
    assert sorted(first) == sorted(second)
    checked = [k for k in first if k.endswith((".npy", ".tsv", ".nii.gz", ".json"))]
    differing = [k for k in checked if first[k] != second[k]]
    print(f"{len(first)} files; {len(checked)} tensors/TSVs/images/sidecars compared; differing: {differing}")
    assert not differing


@pytest.mark.slow  # about 1 min (run with -m slow); the parser side is in the default suite
def test_br06_out_dir_under_bids_derivatives_with_decoys(tmp_path):
    """Outputs in <bids_dir>/derivatives/bidsad (BIDS's place for them) beside decoy derivatives of all-zero
    images: the raw T1w is used (non-zero output, Sources name it only); a rerun gives the same outputs."""
    bids = _copy_demo(tmp_path / "bids", labels=("04",))  # sub-04: T1w only
    zeros = nb.Nifti1Image(np.zeros((16, 16, 16), np.int16), np.eye(4))
    for folder in ("derivatives/other", "old_run", "sourcedata"):
        (bids / folder / "sub-04/anat").mkdir(parents=True)
        (bids / folder / "dataset_description.json").write_text('{"Name": "o", "BIDSVersion": "1.8.0", "DatasetType": "derivative"}')
        nb.save(zeros, bids / folder / "sub-04/anat/sub-04_T1w.nii.gz")
    out, work = bids / "derivatives" / "bidsad", tmp_path / "work"
    first = _bidsad(bids, out, "participant", *FAST, "-w", work)
    assert first.returncode == 0, first.stderr
    preproc = out / "sub-04/anat/sub-04_desc-preproc_T1w.nii.gz"
    assert np.abs(nb.load(preproc).get_fdata()).max() > 0
    sources = json.loads(preproc.with_name("sub-04_desc-preproc_T1w.json").read_text())["Sources"]
    assert sources == ["bids:raw:sub-04/anat/sub-04_T1w.nii.gz"]
    digests = _digests(out)
    second = _bidsad(bids, out, "participant", *FAST, "-w", work)
    assert second.returncode == 0, second.stderr
    assert _digests(out) == digests
    for out_dir, work_dir in ((bids, work), (tmp_path / "o", bids / "work")):  # refused before any processing
        refused = _bidsad(bids, out_dir, "participant", "-w", work_dir)
        assert refused.returncode == 2 and str(out_dir if out_dir == bids else work_dir) in refused.stderr
