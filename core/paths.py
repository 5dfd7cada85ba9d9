"""The one path policy: every path from a user, a TOML file, a form, an upload or a manifest is checked here.

- :func:`resolve` turns a typed path into an absolute one with ``~``, ``..`` and symlinks followed
  (a NUL byte or an empty value is a :class:`~core.errors.ConfigError`, never a ``ValueError``).
- :func:`confine` resolves a path and refuses it (:class:`~core.errors.OutsideRoot`, naming both)
  when it lies outside a root: the data root of a shared server (``$PROPME_DATA_ROOT``, read by
  :func:`data_root`) or the output folder of a run.
- :func:`safe_name` accepts a run name only when it is exactly one harmless folder name, so
  ``output_dir/name`` can never be ``output_dir`` itself, its parent or a path elsewhere.
- :func:`cache_root` is the one folder the tool keeps its caches in (the result cache, the compiled
  libsais): ``$PROPME_CACHE_DIR``, else ``~/.cache/propme``.
- :func:`model_source` tells a local folder from a hub id (a "hub id" that names an existing local
  path is a path, and is confined like one).
"""
from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path

from core.errors import ConfigError, OutsideRoot

DATA_ROOT_ENV = "PROPME_DATA_ROOT"  # optional: the app reads and writes only under this folder
CACHE_ENV = "PROPME_CACHE_DIR"  # optional: where the caches live (default ~/.cache/propme)
MAX_NAME_CHARS = 100  # a run name: at most this many characters ...
MAX_NAME_BYTES = 200  # ... and UTF-8 bytes (a folder name is <= 255 bytes; our temp folders add ~30)
FORBIDDEN_NAME_CHARS = '/\\:*?"<>|'  # separators, and what Windows refuses in a file name
NAME_RULE = (f"a run name is one folder name: 1-{MAX_NAME_CHARS} characters (at most {MAX_NAME_BYTES} bytes "
             "as UTF-8), not starting with '.', no leading or trailing spaces, none of "
             f"{' '.join(FORBIDDEN_NAME_CHARS)} and no control or invisible formatting characters "
             "(e.g. 'pythia-70m-greedy')")
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")  # org/name or name


def data_root(environ: Mapping[str, str] | None = None) -> Path | None:
    """The configured data root (``$PROPME_DATA_ROOT``), resolved, or None when paths are not confined."""
    value = (os.environ if environ is None else environ).get(DATA_ROOT_ENV, "").strip()
    return resolve(value, what=DATA_ROOT_ENV) if value else None


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """The tool's cache folder: ``$PROPME_CACHE_DIR`` (``~`` expanded), else ``~/.cache/propme``.

    >>> cache_root({"PROPME_CACHE_DIR": "/srv/cache"}).as_posix()
    '/srv/cache'
    """
    value = (os.environ if environ is None else environ).get(CACHE_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "propme"


def resolve(path: str | os.PathLike, *, what: str = "path") -> Path:
    """``path`` made absolute, with ``~``, ``..`` and every symlink followed (it need not exist).

    >>> resolve("/srv/data/../data/run1").as_posix()
    '/srv/data/run1'
    """
    try:
        text = os.fspath(path)
    except TypeError:
        raise ConfigError(f"{what} must be a path (text), got {type(path).__name__} {str(path)[:80]!a}") from None
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    text = text.strip()
    if not text:
        raise ConfigError(f"no {what} given: type the folder or file to open")
    if "\0" in text:
        raise ConfigError(f"{what} {text!r} contains a NUL character: type the path without it")
    try:
        return Path(text).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as e:  # a symlink loop, an unknown ~user, ...
        raise ConfigError(f"{what} {text!r} cannot be resolved ({e}): check the path") from None


def confine(path: str | os.PathLike, root: Path | None, *, what: str = "path",
            root_name: str = "the data root") -> Path:
    """``path`` resolved (see :func:`resolve`); :class:`OutsideRoot` when it lies outside ``root``.

    ``root`` None confines nothing. The root itself counts as inside.

    >>> confine("/srv/data/run1", Path("/srv/data")).as_posix()
    '/srv/data/run1'
    """
    resolved = resolve(path, what=what)
    if root is None:
        return resolved
    real_root = resolve(root, what="root")
    if not resolved.is_relative_to(real_root):
        note = f" (set by {DATA_ROOT_ENV})" if root_name == "the data root" else ""
        raise OutsideRoot(f"{what} {resolved} is outside {root_name} {real_root}{note}: choose a path inside it",
                          path=resolved, root=real_root)
    return resolved


def safe_name(name: object, *, what: str = "run name") -> str:
    """``name`` when it is exactly one safe folder name (see ``NAME_RULE``); ConfigError otherwise.

    >>> safe_name("pythia-70m greedy")
    'pythia-70m greedy'
    >>> safe_name("../escaped")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    core.errors.ConfigError: run name '../escaped' is refused: it contains '/'; a run name is one folder name: ...
    """
    if not isinstance(name, str):
        raise ConfigError(f"{what} must be a string, got {type(name).__name__}; {NAME_RULE}")
    problem = _name_problem(name)
    if problem:
        raise ConfigError(f"{what} {name[:120]!a} is refused: {problem}; {NAME_RULE}")
    return name


def _name_problem(name: str) -> str | None:
    if not name or name.isspace():
        return "it is empty"
    if name in (".", ".."):
        return f"{name!r} is not a folder name of its own"
    if bad := sorted({c for c in name if c in FORBIDDEN_NAME_CHARS}):
        return "it contains " + " ".join(repr(c) for c in bad)
    if name.startswith("."):
        return "it starts with '.' (hidden folders and this tool's temporary folders start with '.')"
    if name != name.strip():
        return "it has leading or trailing spaces"
    for c in name:
        if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            return f"it contains the control or invisible character U+{ord(c):04X}"
    if len(name) > MAX_NAME_CHARS or len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"it is too long ({len(name)} characters, {len(name.encode('utf-8'))} bytes)"
    return None


def child(folder: str | os.PathLike, name: str, *, what: str = "run name") -> Path:
    """``folder/name`` for a :func:`safe_name`, checked to lie directly inside ``folder`` (resolved)."""
    parent = resolve(folder, what="output folder")
    out = parent / safe_name(name, what=what)
    if out.is_symlink():
        raise ConfigError(f"{out} is a symbolic link: a results folder is never written through a link; "
                          "remove the link or choose another run name")
    return out


def looks_like_local_path(name: str) -> bool:
    """True when ``name`` can only be a local path, never a hub id (``org/name``).

    >>> [looks_like_local_path(n) for n in ("gpt2", "org/model", "./m", "/abs/m", "~/m", "a/b/c", "m/")]
    [False, False, True, True, True, True, True]
    """
    return (name.startswith((".", "/", "~")) or name.endswith("/") or "\\" in name or name.count("/") > 1
            or Path(name).is_absolute())


def names_local_path(name: str) -> bool:
    """True when loaders would read ``name`` from disk: it looks like a path or names an existing one
    (relative to the working folder, as ``from_pretrained`` reads it; a dangling link counts)."""
    if "\0" in name:
        return True  # resolve() refuses it with a clear message
    return looks_like_local_path(name) or os.path.lexists(os.path.expanduser(name))


def model_source(value: str, root: Path | None, *, what: str = "model") -> str:
    """A model or tokenizer as a user named it: a local folder (resolved and confined to ``root``) or a hub id.

    A value that names an existing local path is a path even when typed as a hub id, so it cannot
    bypass the data root. With a root set, anything else must be a plain hub id (``org/name``).
    """
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise ConfigError(f"no {what} given: type a folder or a hub id (org/name)")
    if names_local_path(text):
        return str(confine(text, root, what=what))
    if root is not None and (not HUB_ID.fullmatch(text) or ".." in text):
        raise ConfigError(f"{what} {text!a} is neither a folder inside the data root nor a hub id (org/name)")
    return text
