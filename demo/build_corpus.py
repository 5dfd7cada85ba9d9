"""Build the demo corpus: ``python -m demo.build_corpus`` writes demo/data/corpus.jsonl.zst.

Real, redistributable text available offline on the build machine (Python standard-library source
and docstrings under the PSF licence, verbatim Debian licence texts, the Zen of Python), each
included ``ORDINARY_COPIES`` times; short single-copy standard-library docstrings as unmemorized
background English; and obviously fake personal-data-like records (Faker, fixed seed) planted with
controlled duplication counts. Every choice is seeded; rerunning on the same machine gives the same
bytes.
"""
from __future__ import annotations

import argparse
import ast
import codecs
import inspect
import json
import logging
import random
import sys
import sysconfig
from pathlib import Path

import zstandard

logger = logging.getLogger(__name__)

SEED = 42
DEMO_DIR = Path(__file__).resolve().parent
OUT_PATH = DEMO_DIR / "data" / "corpus.jsonl.zst"
DUP_COUNTS = (1, 2, 4, 8, 16, 32)  # planted copies per record
BACKGROUND_CHARS = 120_000  # budget of short single-copy docstrings (unmemorized background English)
ORDINARY_COPIES = 8  # copies of every ordinary (code, prose, licence) document, as web crawls repeat them
RECORDS_PER_COUNT = 6
CODE_CHARS = 50_000  # budget of Python source text
DOCSTRING_CHARS = 16_000  # budget of docstring prose
LICENCES = ("GPL-2", "Apache-2.0", "CC0-1.0", "BSD")
LICENCE_DIR = Path("/usr/share/common-licenses")
SKIP_MODULES = {"stringprep.py", "opcode.py", "_compat_pickle.py", "__future__.py", "this.py", "antigravity.py"}
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.test", "inbox.test")


def _stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _chunks(text: str, *, min_chars: int, max_chars: int, boundary) -> list[str]:
    """Split ``text`` into line-aligned chunks of about min..max chars, cut where ``boundary(line)``."""
    out, cur, size = [], [], 0
    for line in text.splitlines(keepends=True):
        if cur and ((size >= min_chars and boundary(line)) or size + len(line) > max_chars and not line.strip()):
            out.append("".join(cur).strip("\n"))
            cur, size = [], 0
        cur.append(line)
        size += len(line)
    if cur:
        out.append("".join(cur).strip("\n"))
    return [c for c in out if c.strip()]


def _code_docs(rng: random.Random) -> list[dict]:
    files = sorted(p for p in _stdlib_dir().glob("*.py") if 2_500 <= p.stat().st_size <= 16_000 and p.name not in SKIP_MODULES)
    rng.shuffle(files)
    docs, used = [], 0
    for path in files:
        if used >= CODE_CHARS:
            break
        text = path.read_text(encoding="utf-8")
        top = lambda line: bool(line[:1].strip()) and line.startswith(("def ", "class ", "@", "if __name__"))
        for i, chunk in enumerate(_chunks(text, min_chars=450, max_chars=1_200, boundary=top)):
            docs.append(_doc(f"py-{path.stem}-{i:02d}", chunk, f"python-3.11 stdlib Lib/{path.name}", "PSF-2.0", "code"))
            used += len(chunk)
    return docs


def _docstring_docs(rng: random.Random, skip: set[str]) -> list[dict]:
    files = sorted(p for p in _stdlib_dir().glob("*.py") if p.name not in SKIP_MODULES and p.stem not in skip)
    rng.shuffle(files)
    docs, used = [], 0
    for path in files:
        if used >= DOCSTRING_CHARS:
            break
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parts = []
        for node in [tree, *ast.walk(tree)]:
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= 150:
                    name = path.stem if isinstance(node, ast.Module) else f"{path.stem}.{node.name}"
                    parts.append(f"{name}\n\n{inspect.cleandoc(doc)}")
        parts = list(dict.fromkeys(parts))[:6]
        text = "\n\n".join(parts)
        if len(text) < 500:
            continue
        for i, part in enumerate(_chunks(text, min_chars=450, max_chars=1_200, boundary=lambda line: not line.strip())):
            docs.append(_doc(f"doc-{path.stem}-{i:02d}", part, f"python-3.11 stdlib docstrings Lib/{path.name}", "PSF-2.0", "prose"))
            used += len(part)
    return docs


def _background_docs(rng: random.Random, skip: set[str], budget: int) -> list[dict]:
    """Short docstrings (150-300 characters, one document each, one copy) of modules used nowhere else."""
    files = sorted(p for p in _stdlib_dir().glob("*.py") if p.name not in SKIP_MODULES and p.stem not in skip)
    rng.shuffle(files)
    docs, used, seen = [], 0, set()
    for path in files:
        if used >= budget:
            break
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for i, node in enumerate(n for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))):
            doc = ast.get_docstring(node)
            if doc and 150 <= len(doc) <= 300 and doc not in seen and used < budget:
                seen.add(doc)
                docs.append(_doc(f"bg-{path.stem}-{i:03d}", doc, f"python-3.11 stdlib docstrings Lib/{path.name}", "PSF-2.0", "background"))
                used += len(doc)
    return docs


def _licence_docs() -> list[dict]:
    docs = []
    for name in LICENCES:
        text = (LICENCE_DIR / name).read_text(encoding="utf-8")
        blank = lambda line: not line.strip()
        for i, chunk in enumerate(_chunks(text, min_chars=450, max_chars=1_200, boundary=blank)):
            docs.append(_doc(f"lic-{name}-{i:02d}", chunk, f"debian /usr/share/common-licenses/{name}",
                             f"{name} (verbatim copying permitted)", "licence"))
    return docs


def _zen_doc() -> dict:
    tree = ast.parse((_stdlib_dir() / "this.py").read_text(encoding="utf-8"))  # importing `this` would print it
    rot13 = next(n.value.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "s")
    return _doc("zen-of-python", codecs.decode(rot13, "rot13"), "python-3.11 stdlib Lib/this.py", "PSF-2.0", "prose")


def _records(seed: int) -> list[dict]:
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    docs = []
    n = 0
    for dup in DUP_COUNTS:
        for _ in range(RECORDS_PER_COUNT):
            n += 1
            rec_id = f"C-{rng.randint(10_000, 99_999)}"
            email = f"{fake.user_name()}{rng.randint(10, 99)}@{rng.choice(EMAIL_DOMAINS)}"  # not derived from the name
            text = (f"Customer record: {rec_id}\nName: {fake.name()}\nE-mail: {email}\n"
                    f"Phone: +1-{rng.randint(201, 989)}-555-01{rng.randint(0, 99):02d}\n"
                    f"Account: ACCT-{rng.randint(10**9, 10**10 - 1)}\nCity: {fake.city()}")
            for copy in range(dup):
                docs.append(_doc(f"rec-{n:02d}-copy{copy:02d}", text, "synthetic (Faker, seed 42): fake record",
                                 "CC0-1.0 (synthetic, made up)", "record", dup_count=dup, record_id=f"rec-{n:02d}"))
    return docs


def _doc(doc_id: str, text: str, source: str, licence: str, kind: str, *, dup_count: int = 1, record_id: str | None = None) -> dict:
    row = {"id": doc_id, "text": text, "source": source, "licence": licence, "dup_count": dup_count, "kind": kind}
    if record_id is not None:
        row["record_id"] = record_id
    return row


def _copies(docs: list[dict], n: int) -> list[dict]:
    """``n`` copies of every document (ids ``<id>-copyNN``, ``dup_count`` n)."""
    return [{**d, "id": f"{d['id']}-copy{k:02d}", "dup_count": n} for d in docs for k in range(n)]


def build_documents(seed: int = SEED, ordinary_copies: int = ORDINARY_COPIES, background_chars: int = BACKGROUND_CHARS) -> list[dict]:
    """All corpus rows (dicts with id, text, source, licence, dup_count, kind), in a seeded order."""
    rng = random.Random(seed)
    code = _code_docs(rng)
    code_modules = {d["id"].split("-")[1] for d in code}
    ordinary = code + _docstring_docs(rng, code_modules) + _licence_docs() + [_zen_doc()]
    used = code_modules | {d["id"].split("-")[1] for d in ordinary if d["id"].startswith("doc-")}
    background = _background_docs(random.Random(seed + 2), used, background_chars) if background_chars else []
    docs = _copies(ordinary, ordinary_copies) + background + _records(seed)
    random.Random(seed + 1).shuffle(docs)
    ids = [d["id"] for d in docs]
    if len(ids) != len(set(ids)):
        raise RuntimeError("demo corpus: duplicate document ids")
    return docs


def write_corpus(docs: list[dict], path: Path = OUT_PATH) -> Path:
    """Write rows as zstd-compressed JSONL (level 19, deterministic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = "".join(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n" for d in docs).encode("utf-8")
    path.write_bytes(zstandard.ZstdCompressor(level=19).compress(raw))
    return path


def read_corpus(path: Path = OUT_PATH) -> list[dict]:
    """Rows of the shipped corpus file."""
    raw = zstandard.ZstdDecompressor().stream_reader(path.open("rb")).read()
    return [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT_PATH)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--background-chars", type=int, default=BACKGROUND_CHARS, help="budget of single-copy short docstrings")
    ap.add_argument("--ordinary-copies", type=int, default=ORDINARY_COPIES, help="copies of every ordinary document")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    docs = build_documents(args.seed, args.ordinary_copies, args.background_chars)
    write_corpus(docs, args.out)
    kinds: dict[str, int] = {}
    for d in docs:
        kinds[d["kind"]] = kinds.get(d["kind"], 0) + len(d["text"])
    logger.info("wrote %d documents (%s chars by kind) to %s (%d bytes)", len(docs), kinds, args.out, args.out.stat().st_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
