"""``group/group.html``: one offline file with cohort, splits, metrics and warnings."""

from __future__ import annotations

import json
from pathlib import Path

from bidsad import __version__
from bidsad.bids import CLASS_NAMES


def diagnosis_description(bids_dir: Path) -> str:
    """The ``diagnosis`` description of participants.json, if any (e.g. a placeholder-label notice)."""
    path = Path(bids_dir) / "participants.json"
    try:
        return str(json.loads(path.read_text()).get("diagnosis", {}).get("Description", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def write_group_report(config, cohort, splits, results: dict, warnings: list[str]) -> Path:
    """Render the group report to ``<out_dir>/group/group.html`` (atomically) and return its path."""
    from bidsad.learn.models import MODALITIES
    from bidsad.reports import render
    from bidsad.utils import atomic_write_text

    ex, learning = config.execution, config.learning
    target = Path(ex.out_dir) / "group" / "group.html"
    test_sets = splits[splits["role"] == "test"].groupby(["cohort", "fold"])["participant_id"].apply(list)
    folds = {cohort_name: int(group["fold"].max()) for cohort_name, group in splits.groupby("cohort")}
    html = render(
        "group.html", version=__version__, run_uuid=ex.run_uuid, cohort=cohort.astype(object).fillna(""),
        n_included=int(cohort["included"].sum()), test_sets=test_sets.to_dict(), folds=folds, results=results, classes=CLASS_NAMES,
        warnings=warnings, learning=learning, seed=config.seeds.random_seed, preset=config.features.preset,
        modalities=MODALITIES, diagnosis_note=diagnosis_description(Path(ex.bids_dir)),
    )
    return atomic_write_text(target, html)
