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


def anchored(path: str | os.PathLike, root: Path | None) -> str | os.PathLike:
    """``path`` read inside ``root`` when it is relative (no leading ``/`` or ``~``) and a root is set:
    what a relative path typed into the app means on a server with a data root.

    >>> anchored("escape/res", Path("/srv/data")).as_posix()
    '/srv/data/escape/res'
    """
    if root is None or not isinstance(path, str | os.PathLike):
        return path
    text = os.fspath(path)
    if isinstance(text, bytes) or not text.strip() or "\0" in text:
        return path  # resolve() words the problem
    text = text.strip()
    if text.startswith("~") or Path(text).is_absolute():
        return path
    return Path(root) / text


def confine(path: str | os.PathLike, root: Path | None, *, what: str = "path",
            root_name: str = "the data root", anchor: bool = False) -> Path:
    """``path`` resolved (see :func:`resolve`); :class:`OutsideRoot` when it lies outside ``root``.

    ``root`` None confines nothing. The root itself counts as inside. ``anchor``: a relative path is read
    inside ``root`` (:func:`anchored`; the app's boxes), not against the working folder.

    >>> confine("/srv/data/run1", Path("/srv/data")).as_posix()
    '/srv/data/run1'
    """
    if anchor:
        path = anchored(path, root)
    resolved = resolve(path, what=what)
    if root is None:
        return resolved
    real_root = resolve(root, what="root")
    if not resolved.is_relative_to(real_root):
        note = f" (set by {DATA_ROOT_ENV})" if root_name == "the data root" else ""
        raise OutsideRoot(f"{what} {resolved} is outside {root_name} {real_root}{note}: choose a path inside it",
                          path=resolved, root=real_root)
    return resolved


def app_folder(root: Path, *parts: str, what: str = "the app's folder") -> Path:
    """``root/parts...``, a folder the app creates and writes inside the data root, created if missing.

    Every component below ``root`` is checked as it is made: a symbolic link (``.propme-app`` linked
    elsewhere, say) or a file is refused with :class:`OutsideRoot` naming it, so nothing the app writes
    can land outside the root. The result is resolved and confined once more.
    """
    real_root = resolve(root, what="root")
    try:
        real_root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"the data root {real_root} cannot be created ({e.strerror or e})") from None
    here = real_root
    for part in parts:
        if part in ("", ".", "..") or "/" in part or "\0" in part:
            raise ConfigError(f"{what}: {part!r} is not a folder name")
        here = here / part
        try:
            here.mkdir(mode=0o755)
        except FileExistsError:
            pass
        except OSError as e:
            raise ConfigError(f"{what} {here} cannot be created ({e.strerror or e}); check the data root's "
                              "permissions and free space") from None
        if here.is_symlink() or not here.is_dir():
            kind = "a symbolic link" if here.is_symlink() else "not a folder"
            raise OutsideRoot(f"{what} {here} is {kind}: the app writes only into real folders inside the data root "
                              f"{real_root}; remove it (the app makes the folder again)", path=here, root=real_root)
    return confine(here, real_root, what=what)


def no_link(path: Path, *, what: str = "folder") -> Path:
    """``path`` when it is not a symbolic link; :class:`ConfigError` naming it otherwise (a folder the app is
    about to write into must be the real one)."""
    if path.is_symlink():
        raise ConfigError(f"{what} {path} is a symbolic link: the app never writes through a link; remove it")
    return path


def missing_local_path(value: str, base: Path | None = None) -> Path | None:
    """The local path ``value`` names when it looks like a path (see :func:`looks_like_local_path`, or ends
    in ``.gguf``) and nothing exists there; None otherwise (it exists, or it is a hub id).
    Relative paths are read against ``base`` (default: the working folder)."""
    text = value.strip() if isinstance(value, str) else ""
    if not text or "\0" in text or not (looks_like_local_path(text) or text.lower().endswith(".gguf")):
        return None
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    return None if os.path.lexists(path) else path


def check_exists(value: str, *, what: str = "model", base: Path | None = None) -> None:
    """ConfigError ``no such file or folder PATH`` when ``value`` looks like a local path that does not exist:
    the check the CLI runs before anything loads and the Run form runs as the user types."""
    missing = missing_local_path(value, base)
    if missing is not None:
        raise ConfigError(f"{what}: no such file or folder {missing}; fix the path"
                          + (" (relative paths are read from the config file's folder)" if base else "")
                          + " or give a hub id (org/name)")


def check_corpus_path(value: str, root: Path | None = None) -> Path | None:
    """The corpus file or folder the Run form names (confined to ``root``, relative paths read inside it),
    or None for a hub dataset (``hf:NAME``); ConfigError ``no such file or folder PATH`` when it is not there."""
    text = value.strip() if isinstance(value, str) else ""
    if text.startswith("hf:"):
        return None
    path = confine(text, root, what="corpus file", anchor=True)
    if not path.exists():
        raise ConfigError(f"corpus: no such file or folder {path}; check the path")
    return path


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
    if len(name) > MAX_NAME_CHARS or len(name.encode("utf-8")) > MAX_NAME_BYTES:  # one short line
        raise ConfigError(f"{what} is too long ({len(name)} characters, {len(name.encode('utf-8'))} bytes): at most "
                          f"{MAX_NAME_CHARS} characters and {MAX_NAME_BYTES} bytes, as it names a folder")
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
    if names_local_path(text) or text.lower().endswith(".gguf"):
        path = confine(text, root, what=what)
        if not os.path.lexists(path):
            raise ConfigError(f"{what}: no such file or folder {path}; fix the path or give a hub id (org/name)")
        return str(path)
    if root is not None and (not HUB_ID.fullmatch(text) or ".." in text):
        raise ConfigError(f"{what} {text!a} is neither a folder inside the data root nor a hub id (org/name)")
    return text
