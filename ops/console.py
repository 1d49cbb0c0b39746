"""The CLI's terminal output, through rich: one Console per command, tables, progress bars and live views.

On a terminal: colours, box tables, bars redrawn in place. Piped (or ``NO_COLOR``): no colour and no
escape codes, tables as plain aligned columns, a bar as one final line, so scripts can read the output.
``--json`` bypasses all of this."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

WIDE = 200
"""Columns a piped table may use before it wraps: wide enough for a status line with its alarms."""


def console(file: TextIO | None = None) -> Console:
    """A Console on ``file`` (default stdout): colours and redraws only when it is a terminal."""
    out = file or sys.stdout
    terminal = out.isatty()
    return Console(
        file=out,
        force_terminal=terminal,
        no_color=not terminal,
        highlight=False,
        soft_wrap=not terminal,
        width=None if terminal else WIDE,
    )


def table(out: Console, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> Table:
    """A table of ``rows``: boxed on a terminal, plain columns (header first) when piped."""
    terminal = out.is_terminal
    grid = Table(
        title=title if terminal else None,
        box=box.SIMPLE_HEAD if terminal else None,
        pad_edge=False,
        show_edge=terminal,
        header_style="bold" if terminal else "",
    )
    for number, name in enumerate(columns):
        grid.add_column(name, justify="left" if number == 0 else "right", no_wrap=True)
    for row in rows:
        grid.add_row(*(str(cell) for cell in row))
    return grid


class Bar:
    """A progress bar: rich's on a terminal; piped, one line when it closes (``label done/total, extra``)."""

    def __init__(self, out: Console, label: str, total: int):
        self.out = out
        self.label = label
        self.total = max(1, total)
        self.done = 0
        self.extra = ""
        self._progress: Progress | None = None
        if out.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[extra]}"),
                TimeRemainingColumn(),
                console=out,
                transient=False,
            )
            self._task = self._progress.add_task(label, total=self.total, extra="")
            self._progress.start()

    def update(self, done: int, total: int | None = None, extra: str = "") -> None:
        self.done, self.extra = done, extra
        self.total = max(self.total, total or 0, done)
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=self.total, extra=extra)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        elif self.done:
            tail = f", {self.extra}" if self.extra else ""
            self.out.print(f"{self.label} {self.done}/{self.total}{tail}")


@contextmanager
def bar(out: Console, label: str, total: int) -> Iterator[Bar]:
    progress = Bar(out, label, total)
    try:
        yield progress
    finally:
        progress.close()
