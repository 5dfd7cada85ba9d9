"""Portable paths in a run manifest: stored relative to the results folder, absolute once loaded.

A manifest names folders and files on the machine that ran it (index folders, the model and tokenizer
folders, prompt files). Those that lie in the same project as the results folder are written relative
to the results folder, so a results folder moved or copied together with its project (a fresh
checkout of the demo, a copied experiment folder) still finds its index; on load they are resolved
back to absolute paths, so readers never see the difference. Paths elsewhere are kept as given.

"The same project" means under one of :func:`portable_roots`: the PropMe checkout (when the results
folder is inside it) and the folder two levels above the results folder (the folder holding
``output_dir``, usually the experiment's own folder). The manifest's ``relative_paths`` lists the
fields stored relative (``index/dirs/0``, ``settings/1/prompts_path``, ...).
"""
from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

CHECKOUT_ROOT = Path(__file__).resolve().parents[2]
PATH_FIELDS = (("index", "dirs", "*"), ("index", "tokenizer"), ("model", "tokenizer"),
               ("model", "config", "name_or_path"), ("settings", "*", "prompts_path"))
RELATIVE_KEY = "relative_paths"


def portable_roots(folder: str | os.PathLike) -> list[Path]:
    """Folders whose contents are stored relative to the results ``folder`` (see the module doc).

    >>> [str(p) for p in portable_roots("/x/proj/results/run")]
    ['/x/proj']
    """
    folder = Path(os.path.abspath(folder))
    roots = [folder.parent.parent] if folder.parent.parent != folder.parent else []
    if _under(folder, CHECKOUT_ROOT) and CHECKOUT_ROOT not in roots:
        roots.insert(0, CHECKOUT_ROOT)
    return [r for r in roots if r != Path(r.anchor)]  # never a whole drive


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _fields(manifest: Any, pattern: tuple[str, ...], trail: tuple[str, ...] = ()) -> Iterator[tuple[Any, Any, str]]:
    """(container, key, pointer) of every field matching ``pattern`` (``*``: each list item)."""
    if not pattern:
        return
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        items = list(enumerate(manifest)) if isinstance(manifest, list) else []
    elif isinstance(manifest, Mapping) and head in manifest:
        items = [(head, manifest[head])]
    else:
        items = []
    for key, value in items:
        if rest:
            yield from _fields(value, rest, (*trail, str(key)))
        else:
            yield manifest, key, "/".join((*trail, str(key)))


def make_relative(manifest: Mapping[str, Any], folder: str | os.PathLike) -> dict[str, Any]:
    """A copy of ``manifest`` whose absolute paths under :func:`portable_roots` are relative to ``folder``.

    Only normalised absolute paths are rewritten (a hub id or a relative name is left alone), and
    ``relative_paths`` lists the rewritten fields (replacing any list already there).

    >>> m = make_relative({"index": {"dirs": ["/x/proj/index", "/elsewhere/i"]}}, "/x/proj/results/run")
    >>> m["index"]["dirs"], m["relative_paths"]
    (['../../index', '/elsewhere/i'], ['index/dirs/0'])
    """
    out = copy.deepcopy(dict(manifest))
    out.pop(RELATIVE_KEY, None)
    base = os.path.abspath(folder)
    roots = portable_roots(base)
    done = []
    for pattern in PATH_FIELDS:
        for container, key, pointer in list(_fields(out, pattern)):
            value = container[key]
            if not (isinstance(value, str) and os.path.isabs(value) and os.path.normpath(value) == value):
                continue
            if any(_under(Path(value), r) for r in roots):
                container[key] = os.path.relpath(value, base)
                done.append(pointer)
    out[RELATIVE_KEY] = done
    return out


def resolve(manifest: Mapping[str, Any], folder: str | os.PathLike) -> dict[str, Any]:
    """A copy of ``manifest`` with the fields listed in ``relative_paths`` made absolute against ``folder``.

    >>> resolve({"index": {"dirs": ["../../index"]}, "relative_paths": ["index/dirs/0"]}, "/y/p/results/run")["index"]
    {'dirs': ['/y/p/index']}
    """
    out = copy.deepcopy(dict(manifest))
    listed = out.get(RELATIVE_KEY)
    if not isinstance(listed, list) or not listed:
        return out
    wanted = {p for p in listed if isinstance(p, str)}  # a hand-edited manifest may hold anything
    base = os.path.abspath(folder)
    for pattern in PATH_FIELDS:
        for container, key, pointer in list(_fields(out, pattern)):
            if pointer in wanted and isinstance(container[key], str) and not os.path.isabs(container[key]):
                container[key] = os.path.normpath(os.path.join(base, container[key]))
    return out
