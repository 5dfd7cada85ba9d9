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


def _luminance(hex_color: str) -> float:
    """WCAG 2 relative luminance of ``#rrggbb``."""
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(fg: str, bg: str = "#ffffff") -> float:
    """WCAG 2 contrast ratio of two ``#rrggbb`` colours (1 to 21).

    >>> round(contrast("#000000"), 1), round(contrast("#737375", "#f4f4f6"), 1)
    (21.0, 4.3)
    """
    a, b = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def text_color(setting: str, bg: str = "#ffffff", ratio: float = 4.5) -> str:
    """``setting``'s colour for TEXT on ``bg``: its chart colour, darkened in steps of 5% until it reaches
    ``ratio`` (WCAG AA for body text), so a setting's name written in its colour stays readable.

    >>> text_color("prefix") == setting_color("prefix")  # already 4.5:1 on white
    True
    >>> contrast(text_color("specific")) >= 4.5 and text_color("specific") != setting_color("specific")
    True
    """
    color = setting_color(setting)
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    factor = 1.0
    while contrast(color, bg) < ratio and factor > 0:
        factor = round(factor - 0.05, 2)
        color = "#{:02x}{:02x}{:02x}".format(*(int(c * factor) for c in (r, g, b)))
    return color
