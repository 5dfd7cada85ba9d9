"""The Run form's values kept on the server, so a browser reload (a new session) finds the form as it was.

A session's form values live in ``st.session_state`` (:mod:`app.widgets`); a reload starts a new session
with none. So the Run page also saves them here, under a random token that the page's URL carries
(``?form=``), and under the id of each job the form started (``?job=``): a reload of that URL seeds the form
from here. Module-level, guarded by a lock, the newest :data:`MAX_FORMS` kept; no Streamlit here.
"""
from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from typing import Any

MAX_FORMS = 256
_FORMS: OrderedDict[str, dict[str, Any]] = OrderedDict()
_LOCK = threading.Lock()


def new_token() -> str:
    """A fresh form token (128 random bits, 32 hex digits: only a URL it was shown in finds the form)."""
    return uuid.uuid4().hex


def is_token(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def save(token: str, values: dict[str, Any]) -> None:
    """Remember ``values`` (widget key -> value) under ``token`` (a form token or a job id)."""
    if not is_token(token):
        return
    with _LOCK:
        _FORMS[token] = dict(values)
        _FORMS.move_to_end(token)
        while len(_FORMS) > MAX_FORMS:
            _FORMS.popitem(last=False)


def load(token: str | None) -> dict[str, Any] | None:
    """The values saved under ``token``, or None."""
    with _LOCK:
        found = _FORMS.get(token) if token else None
        return dict(found) if found is not None else None
