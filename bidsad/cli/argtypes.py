"""Value types of bidsad's command-line options: pure converters (argparse ``type=``) and their notes.

Every converter takes the text given on the command line and returns the value, or raises
:class:`argparse.ArgumentTypeError` with a message (argparse names the option in front of it). None has
side effects: options whose value deserves an INFO note (a bare ``--mem`` number, a ``sub-`` prefix
removed) use the :class:`Noted` action, which keeps the notes in the parsed namespace for
:func:`bidsad.cli.parser.parse_args` to collect after parsing.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path

from bidsad import messages

_MEM_UNITS = {"": 1.0, "g": 1.0, "gb": 1.0, "m": 1e-3, "mb": 1e-3, "t": 1e3, "tb": 1e3}
_NUMBER_WITH_UNIT = r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*"

#: ``--mem`` above this many times the machine's memory is refused as a unit mistake (e.g. MB read as GB).
MEM_ABSURD_FACTOR = 64

#: Pipelines whose outputs ``--derivatives`` accepts.
DERIVATIVES_NAMES = ("fmriprep",)


def machine_memory_gb() -> float:
    """Physical memory of this machine in GB (0 when unknown)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        return 0.0


def _memory(value: str, bare_unit: str) -> float:
    """Parse an amount of memory to GB: a number with unit M/MB, G/GB or T/TB (case-insensitive), or a bare
    number in ``bare_unit`` (``gb`` for ``--mem``, ``mb`` for ``--mem-mb``, as fMRIPrep's ``--mem_mb``).

    More than :data:`MEM_ABSURD_FACTOR` times this machine's memory is refused (a unit mistake:
    ``--mem 16000`` meant MB). A bare number gets a note (:func:`_memory_note`).
    """
    match = re.fullmatch(_NUMBER_WITH_UNIT, str(value))
    if not match or match.group(2).lower() not in _MEM_UNITS or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(messages.MEM_BAD.format(value=value))
    unit = match.group(2).lower() or bare_unit
    gb = float(match.group(1)) * _MEM_UNITS[unit]
    machine = machine_memory_gb()
    if machine and gb > MEM_ABSURD_FACTOR * machine:
        raise argparse.ArgumentTypeError(messages.MEM_ABSURD.format(value=value, gb=gb, machine=machine,
                                                                    factor=MEM_ABSURD_FACTOR))
    return gb


def _to_gb(value: str) -> float:
    """Parse ``--mem``: bare numbers are GB; units M/MB, G/GB, T/TB accepted (see :func:`_memory`)."""
    return _memory(value, "gb")


def _mb_to_gb(value: str) -> float:
    """Parse ``--mem-mb`` / ``--mem_mb`` (fMRIPrep's spelling): bare numbers are MB (see :func:`_memory`)."""
    return _memory(value, "mb")


def _memory_note(bare_unit: str):
    """The note maker of a memory option whose bare numbers are in ``bare_unit``: ``(text, gb)`` -> the INFO
    note that a bare number was read in that unit, or ``None`` when a unit was given."""

    def note(value: str, gb: float) -> str | None:
        if re.fullmatch(_NUMBER_WITH_UNIT, str(value)).group(2):
            return None
        return messages.MEM_BARE.format(value=value, gb=gb, unit=bare_unit.upper())

    return note


def _int_at_least(minimum: int):
    """argparse type: an integer >= ``minimum`` (argparse names the argument in its error)."""

    def check(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = minimum - 1
        if number < minimum:
            raise argparse.ArgumentTypeError(messages.AT_LEAST.format(minimum=minimum, value=value))
        return number

    return check


def _plugin_arg(value: str) -> tuple[str, object]:
    """Parse one ``--plugin-args`` item ``KEY=VALUE`` (split at the first ``=``).

    VALUE is read as JSON when it is valid JSON (``4`` -> int, ``16.5`` -> float, ``true`` -> bool),
    otherwise kept as text (``sbatch_args=--mem=8G --time=02:00:00`` -> that string).
    """
    key, sep, raw = value.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(messages.PLUGIN_ARG_BAD.format(value=value))
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        parsed = raw
    return key.strip(), parsed


def _positive_float(value: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(messages.POSITIVE_NUMBER.format(value=value))
    return number


def _derivatives(value: str) -> tuple[str, Path]:
    """Parse one ``--derivatives`` item ``NAME=PATH`` (nipreps style); NAME in :data:`DERIVATIVES_NAMES`."""
    name, sep, path = value.partition("=")
    if not sep or name.strip().lower() not in DERIVATIVES_NAMES or not path.strip():
        raise argparse.ArgumentTypeError(messages.DERIVATIVES_BAD.format(value=value, names=", ".join(DERIVATIVES_NAMES)))
    return name.strip().lower(), Path(path.strip())


def _participant_label(value: str) -> str:
    """Accept ``01`` and ``sub-01``: remove one exact leading ``sub-`` (never a character strip)."""
    label = value.removeprefix("sub-")
    if not label:
        raise argparse.ArgumentTypeError(messages.LABEL_EMPTY.format(value=value))
    return label


def _label_note(value: str, label: str) -> str | None:
    """The INFO note that ``value`` was read as ``label`` (a ``sub-`` prefix removed), or ``None``."""
    return messages.LABEL_NORMALISED.format(value=value, label=label) if label != value else None


class Noted(argparse.Action):
    """Store an option's values converted by ``convert`` (as ``type=convert`` would, with the same error
    messages), and append the notes ``note(text, value)`` makes of them (``(logging.INFO, note)``, in
    command-line order) to the namespace's ``notes`` list, which the caller provides.
    """

    def __init__(self, option_strings, dest, *, convert, note, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.convert, self.note = convert, note

    def __call__(self, parser, namespace, values, option_string=None):
        texts = values if isinstance(values, list) else [values]
        converted = []
        for text in texts:
            try:
                value = self.convert(text)
            except argparse.ArgumentTypeError as err:
                raise argparse.ArgumentError(self, str(err)) from None
            converted.append(value)
            note = self.note(text, value)
            if note:
                namespace.notes.append((logging.INFO, note))
        setattr(namespace, self.dest, converted if isinstance(values, list) else converted[0])
