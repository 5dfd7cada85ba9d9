"""What a run's charts read: the capability-propensity plane's points and PM against the span threshold.

The story in words (and the report input) is :mod:`app.story`.

No Streamlit here.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.charts import PlanePoint
from core.config import CAPABILITY
from core.scoring.propensity import pm_curve


def plane_points(label: str, intervals: Mapping[str, Mapping[str, Any]], metric: str,
                 floors: Sequence[str] = ()) -> list:
    """Capability-propensity points of one run: one per natural setting (needs a prefix setting), in the
    setting's colour; chance ``floors`` are no point (the story's charts draw them as a baseline)."""
    cap = intervals.get(CAPABILITY)
    if cap is None:
        return []
    return [PlanePoint(f"{label} / {s}", cap[metric], ivs[metric], s) for s, ivs in intervals.items()
            if s != CAPABILITY and s not in floors]


def pm_curves(curves: Mapping[str, Sequence[float]]) -> dict[str, list[tuple[int, float]]]:
    """PM of R_n against n per compared setting, from span-share curves (cheap; 0/0 points left out)."""
    return pm_curve(curves, CAPABILITY)
