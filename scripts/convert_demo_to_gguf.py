"""Convert a GPT-2 architecture Hugging Face folder (the shipped demo model) to GGUF for llama.cpp.

Uses llama.cpp's own converter (``convert_hf_to_gguf.py``'s ``conversion`` package and ``gguf-py``) from
a llama.cpp source tree, for example the one vendored in the llama-cpp-python sdist::

    .venv/bin/pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/lcp
    tar xzf /tmp/lcp/llama_cpp_python-0.3.36.tar.gz -C /tmp/lcp
    .venv/bin/python scripts/convert_demo_to_gguf.py --llama-cpp /tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp \\
        demo/model /work/bench_data/demo.gguf

Two gaps of the stock converter are filled here, without editing llama.cpp's files:

* The demo tokenizer is a custom byte-level BPE, so its pre-tokenizer hash is not in llama.cpp's table
  and the converter refuses it ("BPE pre-tokenizer was not recognized"). Its ``tokenizer.json`` uses
  exactly GPT-2's pre-tokenization (no normalizer, ``ByteLevel`` with GPT-2's split regex and no prefix
  space), which llama.cpp implements as pre-tokenizer ``gpt-2``; this script checks that and then writes
  ``gpt-2``. A tokenizer that differs is refused.
* transformers 5 no longer writes GPT-2's ``n_ctx`` into config.json; ``n_positions`` is the same value.

The HF tokenizer adds no BOS token (its post-processor is plain ``ByteLevel``); gguf's ``SpecialVocab``
reads that and writes ``add_bos_token = false``, so llama.cpp tokenizes a text prompt without a BOS too.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

GPT2_PRE = "gpt-2"


def check_gpt2_pretokenizer(model_dir: Path) -> None:
    """Raise ValueError unless ``tokenizer.json`` pre-tokenizes exactly like GPT-2 (byte-level BPE)."""
    tok = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    pre, model = tok.get("pre_tokenizer") or {}, tok.get("model") or {}
    problems = []
    if tok.get("normalizer") is not None:
        problems.append(f"normalizer is {tok['normalizer'].get('type')!r}, GPT-2 has none")
    if pre.get("type") != "ByteLevel" or not pre.get("use_regex", True) or pre.get("add_prefix_space"):
        problems.append(f"pre_tokenizer is {pre!r}, GPT-2 is ByteLevel(use_regex=true, add_prefix_space=false)")
    if model.get("type") != "BPE" or model.get("byte_fallback"):
        problems.append(f"model is {model.get('type')!r} (byte_fallback={model.get('byte_fallback')}), GPT-2 is byte-level BPE")
    if problems:
        raise ValueError(f"{model_dir / 'tokenizer.json'}: not GPT-2 pre-tokenization, refusing pre-tokenizer "
                         f"{GPT2_PRE!r}: " + "; ".join(problems))


def convert(model_dir: Path, out: Path, llama_cpp: Path, outtype: str = "f32") -> Path:
    """Write ``out`` (GGUF) from ``model_dir`` with the converter in the llama.cpp tree ``llama_cpp``."""
    if not (llama_cpp / "conversion" / "gpt2.py").is_file() or not (llama_cpp / "gguf-py" / "gguf").is_dir():
        raise FileNotFoundError(f"{llama_cpp} is not a llama.cpp source tree with conversion/gpt2.py and gguf-py/")
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("architectures") != ["GPT2LMHeadModel"]:
        raise ValueError(f"{model_dir / 'config.json'}: architectures {config.get('architectures')}, "
                         "this script converts GPT2LMHeadModel only")
    check_gpt2_pretokenizer(model_dir)
    for p in (llama_cpp / "gguf-py", llama_cpp):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    import gguf
    from conversion.gpt2 import GPT2Model

    class DemoGPT2(GPT2Model):
        model_arch = gguf.MODEL_ARCH.GPT2

        def get_vocab_base_pre(self, tokenizer) -> str:  # checked by check_gpt2_pretokenizer
            return GPT2_PRE

    hparams = dict(config)
    hparams.setdefault("n_ctx", hparams["n_positions"])
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16}[outtype]
    out.parent.mkdir(parents=True, exist_ok=True)
    model = DemoGPT2(model_dir, ftype, out, hparams=hparams, eager=True)
    model.write()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--llama-cpp", type=Path, required=True, help="llama.cpp source tree (has convert_hf_to_gguf.py)")
    ap.add_argument("--outtype", choices=("f32", "f16"), default="f32")
    args = ap.parse_args(argv)
    print(convert(args.model_dir, args.out, args.llama_cpp, args.outtype))
    return 0


if __name__ == "__main__":
    sys.exit(main())
