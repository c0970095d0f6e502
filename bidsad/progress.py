"""Participant-level progress: a line per finished participant and each failure as it happens.

:class:`Progress` is a nipype ``status_callback`` (``plugin_args["status_callback"]``; MultiProc, Linear and
the cluster plugins call it with ``(node, "start" | "end" | "exception")``). It logs

- ``sub-X done, k of N, elapsed 3m12s`` (or ``sub-X failed, ...``) when the last step of a participant ends;
- ``sub-X: step <name> failed`` at once when a step fails (the reason is summarised at the end);
- the share of steps done: a progress bar (tqdm) on a terminal, plain INFO lines every 10 % in logs.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time

from bidsad import messages

LOGGER = logging.getLogger("bidsad")
PARTICIPANT = re.compile(r"single_subject_(.+?)_wf")


def format_elapsed(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``3725`` -> ``1h02m05s``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")


def _label(name: str) -> str | None:
    match = PARTICIPANT.search(name)
    return match.group(1) if match else None


class Progress:
    """Track the steps (nipype nodes) of every participant of ``workflow`` and report as they finish.

    Parameters
    ----------
    workflow : the nipype workflow about to run (its flattened graph gives each participant's steps; N is
        the number of participants with steps).
    bar : show a tqdm bar (default: when stderr is a terminal); otherwise INFO lines every 10 %.
    announce : log the "done, k of N" line per participant and the share of steps done (default); ``False``
        when the caller runs one graph per participant and announces them itself (only failures are logged).
    """

    def __init__(self, workflow, bar: bool | None = None, clock=time.monotonic, announce: bool = True):
        import networkx as nx

        self._clock = clock
        self.start = clock()
        self.announce = announce
        from nipype.interfaces.utility import IdentityInterface
        from nipype.pipeline.engine import JoinNode

        graph = workflow._create_flat_graph()
        self._children = {node.fullname: {d.fullname for d in nx.descendants(graph, node)} for node in graph.nodes}
        self.pending: dict[str, set[str]] = {}
        for node in graph.nodes:  # nipype drops identity nodes (inputnode, outputnode) before it runs anything
            if isinstance(node.interface, IdentityInterface) and not isinstance(node, JoinNode):
                continue
            label = _label(node.fullname)
            if label is not None:
                self.pending.setdefault(label, set()).add(node.fullname)
        self.total_participants = len(self.pending)
        self.failed: set[str] = set()
        self.finished: list[str] = []
        self.steps_total = sum(len(v) for v in self.pending.values())
        self.steps_done = 0
        self._next_share = 0.1
        self._lock = threading.Lock()
        self._bar = None
        if bar if bar is not None else sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self.steps_total, unit="step", desc="participant level", leave=False)

    def __call__(self, node, status: str) -> None:
        """nipype status callback: ``status`` is ``start``, ``end`` or ``exception``."""
        if status not in ("end", "exception"):
            return
        name = node.fullname
        label = _label(name)
        with self._lock:
            gone = {name} | (self._children.get(name, set()) if status == "exception" else set())
            if label is not None and status == "exception":
                self.failed.add(label)
                LOGGER.error(messages.STEP_FAILED.format(label=label, step=name.split(f"single_subject_{label}_wf.")[-1],
                                                         elapsed=format_elapsed(self._clock() - self.start)))
            removed = 0
            for lab in [label] if label is not None else list(self.pending):
                before = len(self.pending.get(lab, ()))
                self.pending.get(lab, set()).difference_update(gone)
                removed += before - len(self.pending.get(lab, ()))
            if not self.announce:
                return
            self._advance(removed)
            if label is not None and not self.pending.get(label) and label not in self.finished:
                self.finished.append(label)
                template = messages.PARTICIPANT_FINISHED_FAILED if label in self.failed else messages.PARTICIPANT_FINISHED
                self._write(template.format(label=label, k=len(self.finished), n=self.total_participants,
                                            elapsed=format_elapsed(self._clock() - self.start)))

    def __getstate__(self) -> dict:
        """nipype stores the plugin arguments (this callback among them) in every MapNode it pickles: a
        pickled copy carries no lock and no bar (it is never called)."""
        return {**self.__dict__, "_lock": None, "_bar": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _advance(self, steps: int) -> None:
        self.steps_done += steps
        if self._bar is not None:
            self._bar.update(steps)
        elif self.steps_total and self.steps_done / self.steps_total >= self._next_share:
            share = self.steps_done / self.steps_total
            LOGGER.info(messages.STEPS_DONE.format(done=self.steps_done, total=self.steps_total, share=100 * share,
                                                   elapsed=format_elapsed(self._clock() - self.start)))
            while self._next_share <= share:
                self._next_share += 0.1

    def _write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.clear()
        LOGGER.info(line)
        if self._bar is not None:
            self._bar.refresh()

    def close(self) -> None:
        """Close the bar (if any)."""
        if self._bar is not None:
            self._bar.close()
