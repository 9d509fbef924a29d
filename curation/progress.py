"""The one progress interface between stages and whoever shows progress to a person.

Stages and executors report through :class:`Progress`; they never print. The CLI
renders it as a live bar (``corpusmill.pipelines.console``); tests and library
callers use :class:`SilentProgress`, or collect the events.
"""

from __future__ import annotations

from typing import Any, Protocol


class Progress(Protocol):
    """Events of a stage run, in the order they happen."""

    def phase_started(self, label: str, total: int, done: int) -> None:
        """A phase of ``total`` units starts; ``done`` of them were already complete (a resumed run)."""

    def unit_finished(self, label: str, record: dict[str, Any]) -> None:
        """One unit finished; ``record`` is its completion record (``stats`` counts its documents)."""

    def phase_finished(self, label: str) -> None:
        """Every unit of the phase is complete."""

    def note(self, text: str) -> None:
        """A one-line status message for the person running the stage (resumes, estimates, warnings)."""


class SilentProgress:
    """Discards every event: for tests and library callers that want none."""

    def phase_started(self, label: str, total: int, done: int) -> None:
        pass

    def unit_finished(self, label: str, record: dict[str, Any]) -> None:
        pass

    def phase_finished(self, label: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class RecordingProgress(SilentProgress):
    """Keeps the notes: lets tests check what a stage told its user."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)
