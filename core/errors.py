"""Typed errors raised by the engine.

Every error the user can cause is a :class:`PropMeError` subclass whose message says what was
expected and how to fix it. The CLI and the app catch ``PropMeError`` once, at their boundary, and
show ``str(error)``; anything else is a bug and is allowed to surface.
"""
from __future__ import annotations


class PropMeError(Exception):
    """Base class: the UI and the CLI show ``str(e)`` and stop."""


class ConfigError(PropMeError):
    """A configuration value (TOML, CLI flag, widget) is missing or out of range."""


class OutsideRoot(ConfigError):
    """A path resolves (symlinks and ``..`` followed) outside the folder it must stay in (core/paths.py)."""

    def __init__(self, message: str, *, path=None, root=None):
        super().__init__(message)
        self.path, self.root = path, root


class CorpusError(PropMeError):
    """A corpus file or folder cannot be read at all (missing, unknown format, empty)."""


class BadRowsError(CorpusError):
    """Rows were invalid and the caller asked to stop on bad rows.

    ``problems`` holds :class:`core.corpus.load.RowProblem` values (file, line, reason).
    """

    def __init__(self, message: str, problems: tuple = ()):
        super().__init__(message)
        self.problems = tuple(problems)


class IndexNotBuilt(PropMeError):
    """No (finished) index at the given folder."""


class IndexDamaged(PropMeError):
    """An index file does not match its checksum or breaks the index's structure (core/index/verify.py):
    refused before anything is traced from it (not an IndexNotBuilt: nothing rebuilds over it unasked)."""

    def __init__(self, message: str, *, path=None):
        super().__init__(message)
        self.path = path


class IndexMismatch(PropMeError):
    """The index was built with another tokenizer than the one in use, or is inconsistent."""


class QueryOutOfRange(PropMeError):
    """A rank, document index or token id lies outside the index."""


class ModelLoadError(PropMeError):
    """A model or tokenizer folder/hub id cannot be loaded."""


class PromptSetError(PropMeError):
    """A prompt-set file is empty, malformed, or a setting cannot produce prompts."""


class CacheError(PropMeError):
    """The result cache cannot be opened or written."""


class BackendError(PropMeError):
    """A generation server (OpenAI-compatible endpoint) failed after retries."""


class ResultsError(PropMeError):
    """A results folder is missing files or was written by an incompatible version."""


class GenerationError(PropMeError):
    """Generation cannot proceed (e.g. out of GPU memory even at batch size 1)."""


class DamagedFile(PropMeError):
    """A file the project reads (a JSON manifest, summary, prompt file, upload) cannot be parsed: one line
    ``damaged FILE: why`` (core/jsonio.py)."""


class DamagedResults(ResultsError, DamagedFile):
    """A JSON file of a results folder cannot be parsed (both a ResultsError and a DamagedFile)."""
