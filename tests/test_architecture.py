"""Architecture rules from STYLE.md, checked on the source tree."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_streamlit():
    offenders = [p.name for p in (ROOT / "core").rglob("*.py") if "streamlit" in _imports(p)]
    assert offenders == []


def test_cache_decorators_live_only_in_app_cached():
    users = sorted(
        str(p.relative_to(ROOT))
        for d in ("app", "app_pages", "core")
        for p in (ROOT / d).rglob("*.py")
        if re.search(r"@st\.cache_(data|resource)", p.read_text(encoding="utf-8"))
    )
    assert users in ([], ["app/cached.py"])


def test_every_page_is_listed_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in (ROOT / "app_pages").glob("*.py") if p.name != "__init__.py")
    assert pages, "no pages found in app_pages/"
    missing = [p for p in pages if f"app_pages/{p}" not in readme]
    assert missing == []


def test_every_core_module_is_listed_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    mods = sorted(p.name for p in (ROOT / "core").glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    missing = [m for m in mods if f"core/{m}" not in readme]
    assert missing == []


def test_no_silent_broad_excepts():
    pattern = re.compile(r"except\s+(Exception|BaseException)?\s*:\s*\n\s*(pass|continue)\b")
    offenders = [
        str(p.relative_to(ROOT))
        for d in ("core", "app", "app_pages")
        for p in (ROOT / d).rglob("*.py")
        if pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []
