"""Names of the derivatives: BIDS entity order, :func:`derivative_path`, and the ``bids:raw:`` URIs of
``Sources``."""

from __future__ import annotations

import functools
from pathlib import Path

from bidsad.utils import relpath


def bids_uri(path: Path, root: Path) -> str:
    """BIDS URI of an input file in the raw dataset (``bids:raw:sub-01/anat/sub-01_T1w.nii.gz``);
    ``raw`` is declared in the derivatives' ``DatasetLinks``."""
    return f"bids:raw:{relpath(path, root)}"


def bids_uri_path(uri: str, bids_dir: Path) -> Path | None:
    """The file of a ``bids:raw:<relative path>`` URI (:func:`bids_uri`) under ``bids_dir``, else ``None``."""
    prefix = "bids:raw:"
    return Path(bids_dir) / uri[len(prefix):] if isinstance(uri, str) and uri.startswith(prefix) else None


#: Entities that bidsad's derivatives add and the BIDS schema's entity table lacks, with the entity they
#: come before: transforms (``from``/``to``/``mode``, as fMRIPrep names them) and BEP017's ``stat``.
EXTRA_ENTITIES = {"from": "space", "to": "space", "mode": "space", "stat": None}


@functools.lru_cache(maxsize=1)
def entity_order() -> tuple[str, ...]:
    """Short entity names (``sub``, ``ses``, ``task`` ...) in the order of the BIDS schema's entity table
    (bidsschematools, as pybids ships it), with :data:`EXTRA_ENTITIES` inserted."""
    import bidsschematools.schema

    schema = bidsschematools.schema.load_schema()
    order = [schema.objects.entities[name]["name"] for name in schema.rules.entities]
    for key, before in EXTRA_ENTITIES.items():
        order.insert(order.index(before) if before in order else len(order), key)
    return tuple(order)


def source_entities(source: Path) -> dict[str, str]:
    """Every ``key-value`` entity of a BIDS file name, in file-name order (``sub-01_dir-AP_bold.nii.gz``
    -> ``{"sub": "01", "dir": "AP"}``); the suffix and extension are dropped."""
    name = Path(source).name.split(".")[0]
    return dict(part.split("-", 1) for part in name.split("_")[:-1] if "-" in part)


def derivative_path(out_dir: Path, source: Path, *, datatype: str, suffix: str, extension: str, **entities) -> Path:
    """BIDS-Derivatives path for an output of ``source``: every entity of the source file name is kept
    (``sub ses task acq ce rec dir run echo part ...``), so runs that differ in any entity get distinct
    outputs.

    ``entities`` adds derivative entities (``from``, ``to``, ``mode``, ``space``, ``atlas``, ``res``,
    ``label``, ``desc``, ``stat`` ...; ``None`` values are omitted) and overrides a source entity of the
    same name. Names follow :func:`entity_order` (BIDS schema order); entities it does not know come last.
    """
    src = source_entities(source)
    merged = {**src, **{key: value for key, value in entities.items() if value not in (None, "")}}
    order = entity_order()
    rank = {key: index for index, key in enumerate(order)}
    keys = sorted(merged, key=lambda key: rank.get(key, len(order)))
    name = "_".join(f"{key}-{merged[key]}" for key in keys) + f"_{suffix}{extension}"
    folder = Path(out_dir) / f"sub-{src['sub']}"
    if src.get("ses"):
        folder /= f"ses-{src['ses']}"
    return folder / datatype / name
