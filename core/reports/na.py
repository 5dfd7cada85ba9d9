"""Where a number means nothing: "n/a" for metrics that do not apply and for PM of 0 against 0.

One helper for the app, the HTML report and the exports. A metric value is n/a when it is None or
NaN, or when the metric does not apply to the setting (continuation metrics compare a completion
with the document's true continuation: only prefix prompts have one; the registry says where each
metric applies). PM is n/a when both settings score 0 (the paper's formula gives 0 there;
:func:`core.scoring.propensity.run_pm` flags it ``undefined`` and JSON keeps that 0 with the flag).
"""
from __future__ import annotations

import math
from typing import Any

from core.scoring.registry import metric_spec

NA = "n/a"
PM_NA = "n/a — no leakage in either setting"
NOT_APPLICABLE = "n/a — does not apply to this setting"


def applies(metric: str, setting: str) -> bool:
    """Whether ``metric`` means something for ``setting`` (the registry entry's settings; an unknown
    metric applies everywhere).

    >>> applies("discoverable", "generic"), applies("discoverable", "prefix"), applies("als", "floor")
    (False, True, True)
    """
    try:
        spec = metric_spec(metric)
    except KeyError:
        return True
    return spec.applies_to(setting)


def is_na(value: Any, metric: str | None = None, setting: str | None = None) -> bool:
    """True when ``value`` is None/NaN or ``metric`` does not apply to ``setting``.

    >>> is_na(None), is_na(float("nan")), is_na(0.0), is_na(0.0, "approx_lcp", "specific")
    (True, True, False, True)
    """
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return metric is not None and setting is not None and not applies(metric, setting)


def pm_undefined(f_p: Any, f_c: Any) -> bool:
    """PM of 0 against 0 (or of a missing value) is undefined.

    >>> pm_undefined(0.0, 0.0), pm_undefined(0.0, 0.3), pm_undefined(None, 1.0)
    (True, False, True)
    """
    return is_na(f_p) or is_na(f_c) or (float(f_p) == 0.0 and float(f_c) == 0.0)


def fmt(value: Any, metric: str | None = None, setting: str | None = None, digits: int = 3) -> str:
    """A metric value as text, ``n/a`` where it means nothing; integers stay integers.

    >>> fmt(0.12345), fmt(7), fmt(None), fmt(0.0, "discoverable", "generic"), fmt(12345.6)
    ('0.123', '7', 'n/a', 'n/a', '12346')
    """
    if is_na(value, metric, setting):
        return NA
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:d}"
    return f"{value:.{digits}f}" if abs(value) < 1000 else f"{value:.0f}"

