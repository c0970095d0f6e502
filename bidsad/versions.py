"""Versions of bidsad and of the libraries that shape its numbers (recorded in metrics.json, model cards and
the citation boilerplate)."""

from __future__ import annotations

from bidsad import __version__

#: Distributions whose versions are recorded (those not installed are left out).
PACKAGES = ("tensorflow", "tensorflow-cpu", "keras", "numpy", "scipy", "scikit-learn", "nibabel", "nilearn", "nipype",
            "pybids", "pandas", "antspyx", "deepbet", "torch", "matplotlib", "jinja2")


def software_versions() -> dict:
    """``{"bidsad": version, <distribution>: version, ...}`` for bidsad and each installed one of :data:`PACKAGES`
    (from the installed distributions' metadata; nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"bidsad": __version__}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            pass
    return versions
