"""Overlap of the natural prompt sets themselves with the demo corpus.

``python -m demo.prompt_overlap`` traces every prompt text (as if it were a completion) against
the demo index with the demo experiment's trace settings and reports ALS, FMR, NVR, the longest
span, and how many prompts occur verbatim in the corpus. Writes demo/results/prompt_overlap.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

OUT_PATH = Path(__file__).resolve().parent / "results" / "prompt_overlap.json"


def overlap(index, tokenizer, setting: str, path: Path, trace_cfg) -> dict:
    """Metrics of one prompt set traced against ``index`` (prompts stand in for completions)."""
    from core.prompts.sets import load_prompt_set
    from core.records import GenKey
    from core.scoring.metrics import als, fmr, max_span, nvr
    from core.tracing.trace import trace_many

    prompts = load_prompt_set(path, setting, on_bad_rows="stop").prompts
    traces = trace_many(index, tokenizer, [(GenKey(setting, p.prompt_id), p.text) for p in prompts], trace_cfg)
    verbatim = sum(index.count(tokenizer(p.text, add_special_tokens=False)["input_ids"]) > 0 for p in prompts)
    return {"setting": setting, "prompts": len(prompts), "als": round(als(traces), 3), "fmr": round(fmr(traces), 3),
            "nvr": round(nvr(traces), 4), "max_span": max_span(traces), "prompts_found_verbatim": int(verbatim)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT_PATH)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from core.config.file import load_experiment
    from core.index.tokenizer import load_tokenizer
    from core.runs.demo import demo_experiment_path, demo_model_dir, demo_prompt_paths, ensure_demo_index

    index = ensure_demo_index()
    tok = load_tokenizer(str(demo_model_dir()))
    trace_cfg = load_experiment(demo_experiment_path()).trace
    rows = [overlap(index, tok, s, p, trace_cfg) for s, p in demo_prompt_paths().items()]
    for r in rows:
        print(json.dumps(r))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"trace": {"mode": trace_cfg.mode}, "sets": rows}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
