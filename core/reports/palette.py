"""One colour per setting, shared by every chart of the app and of the HTML report.

A setting keeps its colour whatever else is in the run: the known settings have fixed colours
(prefix red = the attack, natural settings blue/green/purple/orange, the chance floor grey); any
other name gets one of the remaining colours by a stable hash of its name (never by its position).
"""
from __future__ import annotations

import zlib

SETTING_COLORS = {
    "prefix": "#d62728",  # the attack
    "generic": "#1f77b4",
    "specific": "#2ca02c",
    "unconditional": "#9467bd",
    "minimal-cue": "#ff7f0e",
    "floor": "#7f7f7f",  # chance baseline: texts never seen in training
}
OTHER_COLORS = ("#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79", "#637939")
FLOOR_COLOR = SETTING_COLORS["floor"]


def setting_color(setting: str) -> str:
    """The colour of ``setting`` in every chart.

    >>> setting_color("prefix"), setting_color("floor")
    ('#d62728', '#7f7f7f')
    >>> setting_color("my-set") == setting_color("my-set") and setting_color("my-set") in OTHER_COLORS
    True
    """
    if setting in SETTING_COLORS:
        return SETTING_COLORS[setting]
    return OTHER_COLORS[zlib.crc32(str(setting).encode("utf-8")) % len(OTHER_COLORS)]
