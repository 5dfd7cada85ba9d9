"""How a run's chance floor was made, in one plain sentence (Overview's details, the report's methods).

Reads the manifest's ``floor`` record (written by :mod:`core.runs.experiment`): documents held out of
the index at build time (:mod:`core.index.holdout`) or texts given as a setting of kind ``floor``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from core.runs.manifest import Manifest

SHOWN_IDS = 8  # ids named in the sentence; the manifest holds all


def floor_description(manifest: Manifest, floors: Sequence[str]) -> str:
    """'' when the run has no floor.

    >>> m = Manifest("r", floor={"kind": "holdout", "setting": "floor", "docs": 2, "requested": 20, "seed": 42,
    ...                          "ids": ["GPL-2", "MIT"], "max_tokens": 24, "found_in_index": []})
    >>> floor_description(m, ["floor"])[:65]
    'floor: 2 corpus documents held out of the index when it was built'
    """
    if not floors:
        return ""
    rec = dict(manifest.floor or {})
    if rec.get("kind") == "holdout":
        ids = [str(i) for i in rec.get("ids") or ()]
        named = ", ".join(ids[:SHOWN_IDS]) + (f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")
        asked = rec.get("requested")
        fewer = (f" ({asked} asked; a small corpus keeps most of its documents)"
                 if isinstance(asked, int) and asked > len(ids) else "")
        dropped = rec.get("found_in_index") or []
        dropped_text = (f"; {len(dropped)} held-out text(s) found verbatim in the index were dropped"
                        if dropped else "")
        return (f"{rec.get('setting', floors[0])}: {len(ids)} corpus documents held out of the index "
                f"when it was built (seeded sample, seed {rec.get('seed')}){fewer}: {named}. Same kind of text as the "
                f"corpus, by construction not in the index; each cut to its first {rec.get('max_tokens')} tokens (the "
                f"completion budget) and traced like a completion{dropped_text}.")
    settings = {s.name: s for s in manifest.settings}
    parts = []
    for f in floors:
        s = settings.get(f)
        source = Path(s.prompts_path).name if s is not None and s.prompts_path else "texts"
        parts.append(f"{f} ({source})")
    return (f"{', '.join(parts)}: texts given as known not to be in the corpus, traced like completions "
            "(the run's own floor setting).")
