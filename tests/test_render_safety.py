"""Untrusted text reaches Streamlit only through app/render.py (issue 10 item 4).

1. ``render.md_literal`` against an independent CommonMark parser (markdown-it-py): whatever the
   text, the rendered HTML is one paragraph whose text is the input with control characters made
   visible, and no tag, link, image, entity, ``$`` math, ``:directive`` or ``:emoji:`` survives.
2. An AST guard over app/ and pages/: every markdown-rendering ``st.*`` call (body, label, help,
   delta, tab names, radio options) receives a string literal or ``render.md_literal(...)`` output
   (also inside f-strings, ``+`` and ``x if c else y``); ``st.html`` and ``unsafe_allow_html`` only in
   app/render.py. A planted violation in a temporary file is caught (the guard can fail).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from markdown_it import MarkdownIt

from app import render
from core.reports.highlight import visible_controls

ROOT = Path(__file__).resolve().parents[1]

# Streamlit calls whose text is rendered as markdown (Streamlit 1.67: StreamlitMarkdown in the
# frontend), by method name -> positions of text arguments and keywords holding text.
BODY = ((0,), ("body",))
LABEL = ((0,), ("label", "help"))
MARKDOWN_CALLS: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {
    "markdown": BODY, "subheader": BODY, "header": BODY, "title": BODY, "caption": BODY,
    "info": BODY, "warning": BODY, "error": BODY, "success": BODY, "toast": BODY,
    "write": ((0, 1, 2, 3, 4, 5), ()),
    "metric": ((0, 2), ("label", "delta", "help")),
    "expander": LABEL, "popover": LABEL, "status": LABEL, "spinner": ((0,), ("text",)),
    "progress": ((1,), ("text",)), "tabs": ((0,), ("tabs",)),
    "selectbox": LABEL, "multiselect": LABEL, "radio": ((0,), ("label", "help", "captions")),
    "slider": LABEL, "select_slider": LABEL, "text_input": LABEL, "text_area": LABEL,
    "number_input": LABEL, "checkbox": LABEL, "toggle": LABEL, "button": LABEL,
    "download_button": LABEL, "link_button": LABEL, "file_uploader": LABEL, "date_input": LABEL,
    "time_input": LABEL, "color_picker": LABEL, "camera_input": LABEL, "form_submit_button": LABEL,
    "pills": LABEL, "segmented_control": LABEL, "page_link": ((), ("label", "help")),
}
OPTIONS_AS_MARKDOWN = {"radio", "pills", "segmented_control"}  # their options are markdown too
NOT_STREAMLIT = {"log", "logger", "logging", "warnings", "parser"}  # receivers with .info/.warning/.error
SAFE_HELPERS = {"md_literal"}


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _safe_call(node: ast.AST, in_render: bool) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    if isinstance(f, ast.Attribute):
        return f.attr in SAFE_HELPERS and isinstance(f.value, ast.Name) and f.value.id == "render"
    return in_render and isinstance(f, ast.Name) and f.id in SAFE_HELPERS


def safe_text(node: ast.AST, in_render: bool = False) -> bool:
    """A string literal, md_literal output, or f-string / + / conditional built only from those."""
    if isinstance(node, ast.Constant):
        return True
    if _safe_call(node, in_render):
        return True
    if isinstance(node, ast.JoinedStr):
        return all(isinstance(v, ast.Constant) or (v.conversion == -1 and v.format_spec is None
                                                    and _safe_call(v.value, in_render)) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return safe_text(node.left, in_render) and safe_text(node.right, in_render)
    if isinstance(node, ast.IfExp):
        return safe_text(node.body, in_render) and safe_text(node.orelse, in_render)
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(safe_text(e, in_render) for e in node.elts)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join"
            and isinstance(node.func.value, ast.Constant) and len(node.args) == 1 and not node.keywords):
        # "sep".join(safe pieces): a literal separator between md_literal output stays literal
        parts = node.args[0]
        if isinstance(parts, (ast.GeneratorExp, ast.ListComp)):
            return safe_text(parts.elt, in_render)
        return isinstance(parts, (ast.List, ast.Tuple)) and safe_text(parts, in_render)
    return False


def _constant_collection(node: ast.AST, assigned: dict[str, list[ast.AST]]) -> bool:
    """Options built only from literals (names resolved through their assignments in the module)."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(_constant_collection(e, assigned) for e in node.elts)
    if isinstance(node, ast.BinOp):
        return _constant_collection(node.left, assigned) and _constant_collection(node.right, assigned)
    if isinstance(node, ast.IfExp):
        return _constant_collection(node.body, assigned) and _constant_collection(node.orelse, assigned)
    if isinstance(node, ast.Name) and node.id in assigned:
        return all(_constant_collection(v, assigned) for v in assigned[node.id])
    return False


def violations(path: Path, text: str | None = None) -> list[str]:
    """'file:line: what' for each markdown-rendering call given text that is not shown literally."""
    source = path.read_text(encoding="utf-8") if text is None else text
    tree = ast.parse(source)
    in_render = path.resolve() == (ROOT / "app" / "render.py").resolve()
    assigned: dict[str, list[ast.AST]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    assigned.setdefault(t.id, []).append(node.value)
    out = []

    def bad(node: ast.AST, what: str) -> None:
        out.append(f"{path.name}:{node.lineno}: {what}: {ast.unparse(node)[:120]}")

    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name = node.func.attr
        if _root_name(node.func.value) in NOT_STREAMLIT | {"render"}:  # render.caption etc. escape themselves
            continue
        for kw in node.keywords:
            if kw.arg == "unsafe_allow_html" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                bad(node, "unsafe_allow_html outside app/render.py" if not in_render else "unsafe_allow_html")
        if name == "html" and _root_name(node.func.value) == "st" and not in_render:
            bad(node, "st.html outside app/render.py (use render.plain / render.window)")
        if name not in MARKDOWN_CALLS:
            continue
        positions, keywords = MARKDOWN_CALLS[name]
        args = [a for i, a in enumerate(node.args) if i in positions]
        args += [kw.value for kw in node.keywords if kw.arg in keywords]
        for a in args:
            if not safe_text(a, in_render):
                bad(a, f".{name}() renders markdown and gets text not passed through render.md_literal")
        if name in OPTIONS_AS_MARKDOWN:
            fmt = next((kw.value for kw in node.keywords if kw.arg == "format_func"), None)
            options = node.args[1] if len(node.args) > 1 else next(
                (kw.value for kw in node.keywords if kw.arg == "options"), None)
            if fmt is not None:
                ok = (isinstance(fmt, ast.Attribute) and fmt.attr in SAFE_HELPERS) or (
                    isinstance(fmt, ast.Lambda) and safe_text(fmt.body, in_render))
                if not ok:
                    bad(fmt, f".{name}() shows options as markdown: format_func must return md_literal output")
            elif options is not None and not _constant_collection(options, assigned):
                bad(options, f".{name}() shows options as markdown: give literal options or format_func=render.md_literal")
    return out


def app_sources() -> list[Path]:
    files = sorted((ROOT / "app").rglob("*.py")) + sorted((ROOT / "pages").glob("*.py"))
    assert len(files) > 10
    return files


def test_no_markdown_rendering_call_gets_unescaped_text():
    found = [v for p in app_sources() for v in violations(p)]
    assert found == [], "\n".join(found)


PLANTED = '''
import streamlit as st
from app import render
c1, c2 = st.columns(2)
name = run.manifest["run_name"]
st.subheader(f"Run: {name}")                         # 1 f-string with raw text
c1.metric(f"PM ({name})", "0.5")                    # 2 metric label
st.sidebar.info(name)                               # 3 through st.sidebar
st.write("Leaked in: " + ", ".join(settings))       # 4 concatenation with raw text
st.expander(label=name)                             # 5 keyword label
st.tabs(["a", name])                                # 6 tab names
st.radio("pick", settings)                          # 7 radio options are markdown
st.radio("pick", ["x"], format_func=lambda s: s)    # 8 radio format_func
st.markdown(render.md_literal(name), unsafe_allow_html=True)  # 9 unsafe html
st.html("<b>" + name + "</b>")                      # 10 st.html outside render
st.caption(f"{render.md_literal(name)!r}")          # 11 conversion after escaping
st.selectbox(name, [1, 2])                          # 12 widget label
st.slider("n", help=name)                           # 13 help text
st.caption(" · ".join(f"**{t}**" for t in terms))   # 14 joined raw pieces
log.warning(name)                                   # not streamlit: fine
st.subheader(render.md_literal(f"Run: {name}"))     # fine
st.caption(f"{render.md_literal(name)} and **bold**")  # fine
kinds = ["a"] + (["b"] if x else [])
st.radio("kind", kinds)                             # fine: literal options
st.info("x" if x else render.md_literal(name))      # fine
st.caption("a: " + " · ".join(f"**{render.md_literal(t)}**" for t in terms))  # fine: joined escaped pieces
'''


def test_guard_catches_planted_violations(tmp_path):
    path = tmp_path / "planted_page.py"
    path.write_text(PLANTED, encoding="utf-8")
    found = violations(path)
    lines = sorted({int(v.split(":")[1]) for v in found})
    expected = sorted(i + 1 for i, line in enumerate(PLANTED.splitlines()) if re.search(r"# \d+ ", line))
    assert lines == expected, "\n".join(found)


def test_guard_sees_a_violation_planted_into_a_real_page(tmp_path):
    page = (ROOT / "pages" / "overview.py").read_text(encoding="utf-8")
    assert violations(ROOT / "pages" / "overview.py", page) == []
    planted = page + "\n    st.subheader(label)\n"
    assert len(violations(tmp_path / "overview.py", planted)) == 1


# --- md_literal against an independent CommonMark parser ------------------------------------------

PAYLOADS = [
    "![x](http://127.0.0.1:9/img) [link](http://127.0.0.1:9/a) <img src=http://127.0.0.1:9/h>",
    ":red[red] :material/home: :smile: $x^2$ $$\\int$$ **b** _i_ `c` # h",
    "it's & &#x27; &amp; <b>bold</b>",
    "abc\u202edcba\u202c \u2066iso\u2069 zero\u200bwidth \x00\x07\x1b[31m",
    "1. item\n- item\n> quote\n---\n| a | b |\n|---|---|\n    code",
    "\\*not em\\* \\\\ trailing backslash\\",
    "https://example.com/auto www.example.com user@example.com",
]


def rendered(markdown: str) -> tuple[str, list[str], str]:
    """(text content, tags other than p/br, raw html) of ``markdown`` under CommonMark + GFM tables/strikethrough/linkify-less."""
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    tokens = md.parse(markdown)
    tags, text = [], []
    for t in tokens:
        if t.type == "inline":
            for c in t.children or []:
                if c.type == "text":
                    text.append(c.content)
                elif c.type in ("softbreak", "hardbreak"):
                    text.append("\n")
                else:
                    tags.append(c.type)
        elif t.type not in ("paragraph_open", "paragraph_close"):
            tags.append(t.type)
    return "".join(text), tags, md.render(markdown)


def norm(s: str) -> str:
    """Line-edge whitespace trimmed (CommonMark drops it from a paragraph's lines); md_literal's word
    joiners dropped (input ones are shown as [U+2060], so none of the input's is lost)."""
    s = s.replace(render.WORD_JOINER, "")
    return "\n".join(line.strip() for line in s.split("\n")).strip()


def expected_text(s: str) -> str:
    """What CommonMark shows for a literal paragraph: controls visible, line-edge blanks trimmed."""
    return norm(visible_controls(s))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_md_literal_payloads_render_as_their_own_text(payload):
    text, tags, html = rendered(render.md_literal(payload))
    assert tags == [], (tags, html)
    assert norm(text) == expected_text(payload)
    assert "<a" not in html and "<img" not in html
    assert not re.search(r"(?i)https?:|www\.|\w@", text)  # no GFM autolink literal can match (Streamlit has them)


@settings(max_examples=300, deadline=None)
@given(hst.text(alphabet=hst.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60))
def test_md_literal_is_literal_for_any_text(s):
    s = s.replace("\r", "")  # CommonMark normalises CR line endings
    if any(line.strip() == "" for line in s.split("\n")[1:-1]) or s != s.strip("\n"):
        s = " ".join(s.split("\n"))  # blank lines split paragraphs: a one-paragraph oracle needs none
    md = render.md_literal(s)
    text, tags, html = rendered(md)
    assert tags == [], (s, tags, html)
    assert norm(text) == expected_text(s)
    assert norm(render.shown(md)) == expected_text(s)
    # Streamlit-only syntax (not CommonMark): no unescaped $, colon or shortcode can start
    assert not re.search(r"(?<!\\)[$:]", md.replace("\\\\", ""))
    assert not re.search(r":(?!material/|streamlit:)[\w+-][\w_+-]*:", md)  # Streamlit's emoji trigger
