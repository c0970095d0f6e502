"""The BIDS validator (``bids-validator-deno``) run on the input dataset, and its errors summarised."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from bidsad import messages
from bidsad.bids import InputError

LOGGER = logging.getLogger("bidsad")


def bids_validator_command() -> list[str] | None:
    """Command of the BIDS validator (the ``bids-validator-deno`` wheel: its own runtime, works offline), or
    ``None`` when it is not installed. Looked up beside the running Python first, then on ``PATH``."""
    import shutil
    import sys

    beside = Path(sys.executable).parent / "bids-validator-deno"
    found = str(beside) if beside.is_file() else shutil.which("bids-validator-deno")
    return [found] if found else None


def run_bids_validator(dataset: Path, timeout: float = 600) -> list[dict]:
    """Run the BIDS validator on ``dataset`` and return its issues of severity ``error``.

    Each issue is the validator's JSON object (``code``, ``location``, ``severity``, ...), with the
    validator's explanation of the code added as ``message``. Method: ``bids-validator-deno --format json``
    (BIDS schema of the installed wheel; no network).

    Raises
    ------
    FileNotFoundError
        The validator is not installed (:func:`bids_validator_command` is ``None``).
    RuntimeError
        It did not finish within ``timeout`` s or gave no JSON (its stderr quoted).
    """
    import subprocess

    command = bids_validator_command()
    if command is None:
        raise FileNotFoundError("bids-validator-deno")
    try:
        proc = subprocess.run([*command, "--format", "json", str(dataset)], capture_output=True, text=True,
                              timeout=timeout, env={**__import__("os").environ, "NO_COLOR": "1"})
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"no answer within {timeout:.0f} s") from None
    except OSError as err:  # e.g. not executable for this UID (a container run with -u): the run goes on
        raise RuntimeError(f"could not start {command[0]}: {err.strerror or err}") from None
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise RuntimeError(proc.stderr.strip()[-500:] or f"exit status {proc.returncode}, no output") from None
    explained = report["issues"].get("codeMessages") or {}
    errors = [dict(issue) for issue in report["issues"]["issues"] if issue.get("severity") == "error"]
    for issue in errors:
        issue.setdefault("message", explained.get(issue.get("code"), ""))
    return errors


def summarise_validator_errors(errors: list[dict], root: Path, limit: int = 10) -> str:
    """One line per error code: the code, how many distinct files (the validator may report one file several
    times: one missing key each, or a sidecar once per data file), the first files (relative to ``root``), the
    validator's sub-codes (e.g. the missing keys) and its explanation; at most ``limit`` codes, most files first."""
    from collections import defaultdict

    by_code = defaultdict(list)
    for issue in errors:
        by_code[issue.get("code", "?")].append(issue)

    def files(issues: list[dict]) -> list[str]:
        return sorted({str(i.get("location", "")).lstrip("/") for i in issues if i.get("location")})

    lines = []
    for code, issues in sorted(by_code.items(), key=lambda item: (-len(files(item[1])), -len(item[1])))[:limit]:
        where = files(issues)
        count = f"{len(where)} file{'s' if len(where) != 1 else ''}" if where else f"{len(issues)}x"
        shown = ", ".join(where[:3]) + (f" and {len(where) - 3} more" if len(where) > 3 else "")
        subcodes = ", ".join(dict.fromkeys(str(i["subCode"]) for i in issues if i.get("subCode")))
        why = " ".join(str(issues[0].get("message") or "").split())[:200]
        lines.append(f"  {code} ({count}{': ' + shown if shown else ''}{'; ' + subcodes if subcodes else ''})"
                     f"{' - ' + why if why else ''}")
    return "\n".join(lines)


def _read_by_bidsad(location: str, labels: list[str] | None = None) -> bool:
    """Whether a validator issue's location (``/sub-01/anat/...``, ``/participants.tsv``) is in what bidsad
    reads: the selected participants' ``sub-*`` folders (all when ``labels`` is ``None``) and files at the
    dataset root (see :data:`bidsad.bids.INDEX_IGNORE`)."""
    parts = [part for part in location.split("/") if part]
    if not parts or len(parts) == 1 and not location.endswith("/"):
        return True
    return parts[0].startswith("sub-") and (not labels or parts[0].removeprefix("sub-") in labels)


def _drop_bom_errors(bids_dir: Path, errors: list[dict]) -> list[dict]:
    """Validator errors without those caused only by a UTF-8 byte-order mark on a JSON sidecar, which bidsad
    reads (field case BR-05): ``INVALID_JSON_ENCODING`` on that file and ``SIDECAR_KEY_REQUIRED`` on the data
    file beside it (the validator cannot read its keys). Each tolerated file is named in a warning."""
    def has_bom(location: str) -> bool:
        path = bids_dir / location.lstrip("/")
        try:
            return path.suffix == ".json" and path.read_bytes()[:3] == b"\xef\xbb\xbf"
        except OSError:
            return False

    boms = {str(e.get("location", "")) for e in errors
            if e.get("code") == "INVALID_JSON_ENCODING" and has_bom(str(e.get("location", "")))}
    if not boms:
        return errors
    LOGGER.warning(messages.VALIDATOR_BOM.format(files=", ".join(sorted(b.lstrip("/") for b in boms))))
    stems = {b.removesuffix(".json") for b in boms}

    def caused_by_bom(error: dict) -> bool:
        location = str(error.get("location", ""))
        if error.get("code") == "INVALID_JSON_ENCODING":
            return location in boms
        return error.get("code") == "SIDECAR_KEY_REQUIRED" and location.removesuffix(".gz").rsplit(".", 1)[0] in stems

    return [e for e in errors if not caused_by_bom(e)]


def validate_input(bids_dir: Path, labels: list[str] | None = None) -> None:
    """BIDS validation of the input at start (as fMRIPrep does), with the validator wheel; with ``labels``
    (``--participant-label``) only those participants' errors count.

    Logs one line when the validator is missing or fails to run (the run goes on). Raises
    :class:`bidsad.bids.InputError` with a summary of the errors (:func:`summarise_validator_errors`) and the way on
    (fix them, or ``--skip-bids-validation``) when the dataset has errors in what bidsad reads (``sub-*``
    folders and root files; errors elsewhere, e.g. an earlier run's outputs in a top-level folder, are
    logged at INFO); warnings are ignored.
    """
    bids_dir = Path(bids_dir)
    try:
        errors = run_bids_validator(bids_dir)
    except FileNotFoundError:
        LOGGER.warning(messages.VALIDATOR_MISSING)
        return
    except RuntimeError as err:
        LOGGER.warning(messages.VALIDATOR_FAILED.format(why=err))
        return
    unread = [e for e in errors if not _read_by_bidsad(str(e.get("location", "")), labels)]
    if unread:  # e.g. an earlier run's outputs or a nested dataset at the top level: never read as raw data
        LOGGER.info(messages.VALIDATOR_IGNORED.format(
            n=len(unread), where=", ".join(sorted({str(e.get("location", "")).lstrip("/") for e in unread})[:5])))
    errors = [e for e in errors if e not in unread]
    errors = _drop_bom_errors(bids_dir, errors)
    if errors:
        import shlex

        command = shlex.join(bids_validator_command() or ["bids-validator-deno"])
        raise InputError(messages.VALIDATOR_ERRORS.format(
            bids=shlex.quote(str(bids_dir)), n=len(errors), summary=summarise_validator_errors(errors, bids_dir),
            command=command))
    LOGGER.info(messages.VALIDATOR_OK.format(bids=bids_dir))
