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
        for d in ("app", "pages", "core")
        for p in (ROOT / d).rglob("*.py")
        if re.search(r"@st\.cache_(data|resource)", p.read_text(encoding="utf-8"))
    )
    assert users in ([], ["app/cached.py"])


def test_every_page_is_listed_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in (ROOT / "pages").glob("*.py") if p.name != "__init__.py")
    assert pages, "no pages found in pages/"
    missing = [p for p in pages if f"pages/{p}" not in readme]
    assert missing == []


def _file_map(readme: str) -> set[str]:
    """Paths in the first column of the README's file-map tables (`| `core/x.py` | ... |`)."""
    return set(re.findall(r"^\| `((?:core|app|pages)/[\w/]+\.py)` \|", readme, re.MULTILINE))


def test_the_readme_file_map_matches_the_tree():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tree = {
        str(p.relative_to(ROOT))
        for d in ("core", "app", "pages")
        for p in (ROOT / d).rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    }
    listed = _file_map(readme)
    assert sorted(tree - listed) == [], "modules missing from the README file map"
    assert sorted(listed - tree) == [], "README file map lists files that do not exist"


def _core_import_graph() -> dict[str, set[str]]:
    """Module -> core modules it imports (absolute imports only; core uses no relative ones)."""
    mods = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (ROOT / "core").rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in mods)
            elif isinstance(node, ast.ImportFrom) and node.module and node.module in mods:
                subs = {f"{node.module}.{a.name}" for a in node.names} & mods.keys()  # `from core import config`
                deps.update(subs)
                if len(subs) < len(node.names):  # a name defined in the module itself
                    deps.add(node.module)
        graph[mod] = deps - {mod}
    return graph


def test_core_has_no_import_cycle():
    graph = _core_import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (cycle := visit(d)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            assert False, " -> ".join(cycle)


def test_cycle_check_finds_a_planted_cycle(monkeypatch):
    graph = {"core.a": {"core.b"}, "core.b": {"core.c"}, "core.c": {"core.a"}}
    import sys

    monkeypatch.setattr(sys.modules[__name__], "_core_import_graph", lambda: graph)
    try:
        test_core_has_no_import_cycle()
    except AssertionError as e:
        assert "core.a -> core.b -> core.c -> core.a" in str(e)
    else:
        raise AssertionError("planted cycle not found")


def test_no_silent_broad_excepts():
    pattern = re.compile(r"except\s+(Exception|BaseException)?\s*:\s*\n\s*(pass|continue)\b")
    offenders = [
        str(p.relative_to(ROOT))
        for d in ("core", "app", "pages")
        for p in (ROOT / d).rglob("*.py")
        if pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


STAGES = ("corpus", "index", "prompts", "generation", "tracing", "cluster", "scoring", "runs", "reports")
SHARED = ("core.config", "core.records", "core.errors", "core.paths", "core.progress", "core.jsonio")


def _rank(module: str) -> int:
    """Pipeline position: shared top-level modules first, then the stages in order, then the CLI."""
    if module in SHARED or module.startswith("core.config."):  # the config package is shared as a whole
        return -1
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 and parts[1] in STAGES else len(STAGES)


def test_no_core_import_points_back_up_the_pipeline():
    back = sorted(f"{m} -> {d}" for m, deps in _core_import_graph().items() for d in deps if _rank(d) > _rank(m))
    assert back == []
