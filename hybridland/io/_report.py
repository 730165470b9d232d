"""Errors and reports of the input readers: every problem and every repair names its basins.

A reader either refuses bad input with a ``ForcingDataError`` (one paragraph: the variable, the
basins by id and name, what is wrong and how to fix it) or, when asked to repair it (trim the
period, drop basins, swap inverted temperatures), records each repair in a ``LoadReport`` and
emits a ``DataAdjustmentWarning``. Nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

MAX_LISTED = 10
"""How many basins a message lists before it says 'and N more' (the report keeps them all)."""


class ForcingDataError(ValueError):
    """Input data that cannot be used as it is; the message says what, where and how to fix it.

    ``variable`` names the offending variable (``None`` for file-level problems) and ``basins``
    the ids of the offending basins (empty when the problem is not per basin).
    """

    def __init__(self, message: str, *, variable: str | None = None, basins: Sequence[str] = ()):
        super().__init__(message)
        self.variable = variable
        self.basins = tuple(basins)


class DataAdjustmentWarning(UserWarning):
    """A reader changed the data it was given (dropped basins, trimmed days, swapped values)."""


@dataclasses.dataclass(frozen=True)
class BasinNote:
    """One basin and what was found (or done) there, e.g. ``'PE missing on all 20454 days'``."""

    basin: str
    name: str
    detail: str

    @property
    def label(self) -> str:
        """``'id (name)'``, or the id alone when the file has no name for the basin."""
        return f"{self.basin} ({self.name})" if self.name else self.basin

    def __str__(self) -> str:
        return f"{self.label}: {self.detail}"


def list_notes(notes: Sequence[BasinNote], limit: int | None = MAX_LISTED) -> str:
    """Notes joined by '; ', cut after ``limit`` with a count of the rest."""
    shown = notes if limit is None else notes[:limit]
    text = "; ".join(str(n) for n in shown)
    if limit is not None and len(notes) > limit:
        text += f"; and {len(notes) - limit} more"
    return text


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What a reader did to the data beyond reading it, basin by basin.

    - ``dropped``: basins removed (with ``drop_incomplete``) and why;
    - ``trimmed_start`` / ``trimmed_end``: ``(first, last, n_days)`` of the days cut from each end
      of the period (with ``trim``), and ``trim_causes`` the basins whose gaps forced the cut;
    - ``swapped``: basins where daily minimum and maximum temperature were swapped because the
      minimum exceeded the maximum (with ``inverted_temperature='swap'``);
    - ``replaced``: values beyond every climate on Earth on isolated days (recording errors),
      replaced by interpolation between the nearest plausible days of the basin (with
      ``implausible='interpolate'``), each with its value, replacement and day.
    """

    dropped: tuple[BasinNote, ...] = ()
    trimmed_start: tuple[str, str, int] | None = None
    trimmed_end: tuple[str, str, int] | None = None
    trim_causes: tuple[BasinNote, ...] = ()
    swapped: tuple[BasinNote, ...] = ()
    replaced: tuple[BasinNote, ...] = ()

    @property
    def dropped_basins(self) -> tuple[str, ...]:
        return tuple(n.basin for n in self.dropped)

    @property
    def changed(self) -> bool:
        """Whether anything was dropped, trimmed or repaired."""
        return bool(self.dropped or self.trimmed_start or self.trimmed_end or self.swapped
                    or self.replaced)

    def messages(self, limit: int | None = MAX_LISTED) -> list[str]:
        """One line per adjustment, each naming the basins concerned (``limit`` per line)."""
        lines = []
        if self.dropped:
            lines.append(
                f"dropped {len(self.dropped)} basin(s) with incomplete data: "
                + list_notes(self.dropped, limit)
            )
        for end, cut in (("start", self.trimmed_start), ("end", self.trimmed_end)):
            if cut is not None:
                first, last, n = cut
                lines.append(
                    f"trimmed {n} day(s) at the {end} of the period ({first} .. {last}) where "
                    "forcing is missing in: " + list_notes(self.trim_causes, limit)
                )
        if self.swapped:
            lines.append(
                f"swapped T_min and T_max where T_min > T_max in {len(self.swapped)} basin(s): "
                + list_notes(self.swapped, limit)
            )
        if self.replaced:
            lines.append(
                f"replaced values beyond any climate on Earth (recording errors) by "
                f"interpolation between the neighbouring days in {len(self.replaced)} basin "
                "variable(s): " + list_notes(self.replaced, limit)
            )
        return lines

    def __str__(self) -> str:
        return "\n".join(self.messages(limit=None)) or "no adjustments"

    def warn(self) -> None:
        """Emit each adjustment as a ``DataAdjustmentWarning`` (full basin lists)."""
        for line in self.messages(limit=None):
            warnings.warn(line, DataAdjustmentWarning, stacklevel=3)
