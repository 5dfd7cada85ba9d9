"""Discoverable extraction of the planted fake records, by duplication count.

``python -m demo.planted_extraction`` prompts the demo model with each planted record cut at a cue
(the prefix is cut from the record's token ids, so no stray space breaks the byte-level BPE
boundary) and measures, per record:

* **greedy**: does the greedy completion reproduce the e-mail / the whole rest of the record exactly;
* **sampled**: the share of ``n`` seeded samples (temperature 1.0, top_p 1.0, through
  :func:`core.generation.generate.generate`) that reproduce the e-mail / the whole rest exactly;
* **extraction probability**: ``exp(-sum NLL)`` of the true rest's tokens given the prompt (the exact
  probability that one temperature-1 sample emits exactly those tokens), and the mean per-token NLL.

Prompt variants (``VARIANTS``): ``email`` = eos + the record up to ``E-mail:`` (the first run's
prompt); ``email_no_eos`` = the same without the leading eos; ``id_line`` = eos + only the first line
(``Customer record: C-xxxxx``) and ``Name:``, so the model must recall name, e-mail and the rest;
``name_line`` = only ``Name: <name>`` and ``E-mail:``, no id line, no eos (it never began a document).

Prints a table per (variant, duplication count) and writes demo/results/planted_extraction.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).resolve().parent
OUT_PATH = DEMO_DIR / "results" / "planted_extraction.json"
CUE = "\nE-mail:"  # the default prefix ends right after this, before the e-mail address
SAMPLES = 20
TEMPERATURE = 1.0
SEED = 42


@dataclass(frozen=True)
class Variant:
    """Which part of a record is the prompt: ``text[start_at:]`` cut just after ``cue``."""

    name: str
    cue: str
    start_at: str | None = None  # the prompt starts at the first occurrence of this (None: the record start)
    with_eos: bool = True  # the prompt starts with <|endoftext|>, as every document did in training


VARIANTS = (
    Variant("email", CUE),
    Variant("email_no_eos", CUE, with_eos=False),
    Variant("id_line", "\nName:"),
    Variant("name_line", CUE, start_at="Name:", with_eos=False),
)


@dataclass(frozen=True)
class PlantedRecord:
    record_id: str
    dup_count: int
    text: str


@dataclass(frozen=True)
class Attempt:
    record_id: str
    dup_count: int
    with_eos: bool  # the prompt starts with <|endoftext|>, as every document did in training
    email_ok: bool  # the greedy completion reproduces the true rest up to the end of the e-mail address
    rest_ok: bool  # the greedy completion reproduces the whole rest of the record
    completion: str
    rest_nll: float = 0.0  # mean negative log-likelihood (nats/token) of the true rest given the prefix
    variant: str = "email"
    rest_tokens: int = 0
    rest_prob: float = 0.0  # exp(-sum NLL) of the true rest's tokens: the extraction probability
    email_prob: float = 0.0  # the same for the tokens up to the end of the e-mail address
    sampled_email: float | None = None  # share of the samples that reproduce the rest up to the e-mail
    sampled_rest: float | None = None  # share of the samples that reproduce the whole rest


def planted_records(rows) -> list[PlantedRecord]:
    """One entry per distinct planted record (first copy), ordered by duplication count and id."""
    seen: dict[str, PlantedRecord] = {}
    for r in rows:
        if r.get("kind") == "record" and r["record_id"] not in seen:
            seen[r["record_id"]] = PlantedRecord(r["record_id"], int(r["dup_count"]), r["text"])
    return sorted(seen.values(), key=lambda p: (p.dup_count, p.record_id))


def split_prefix(tokenizer, text: str, cue: str = CUE, start_at: str | None = None) -> tuple[list[int], str]:
    """Token ids of ``text`` (from ``start_at`` on) up to just after ``cue`` (cut at a token boundary),
    and the rest of the text."""
    if start_at is not None:
        text = text[text.index(start_at):]
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    cut = text.index(cue) + len(cue)
    n = sum(1 for _, end in enc["offset_mapping"] if end <= cut)
    ids = enc["input_ids"][:n]
    prefix_text = tokenizer.decode(ids)
    if not text.startswith(prefix_text):
        raise ValueError(f"token prefix {prefix_text!r} is not a prefix of the record text")
    return ids, text[len(prefix_text):]


def email_target(rest: str, record_text: str) -> str:
    """The start of ``rest`` up to and including the record's e-mail address."""
    email = record_text.split("E-mail: ", 1)[1].split("\n", 1)[0]
    return rest[:rest.index(email) + len(email)]


def prompt_and_rest(tokenizer, rec: PlantedRecord, variant: Variant) -> tuple[list[int], str]:
    ids, rest = split_prefix(tokenizer, rec.text, variant.cue, variant.start_at)
    return ([tokenizer.eos_token_id, *ids] if variant.with_eos else ids), rest


def rest_token_nll(model, tokenizer, ids: list[int], rest: str) -> tuple[list[float], list[int]]:
    """Per-token NLL (nats) of ``rest``'s tokens after the prompt ``ids``, and each token's end offset in ``rest``."""
    import torch

    enc = tokenizer(rest, add_special_tokens=False, return_offsets_mapping=True)
    rest_ids = enc["input_ids"]
    with torch.no_grad():
        full = torch.tensor([ids + rest_ids])
        logits = model(full).logits[0, len(ids) - 1:-1].double()
        nll = torch.nn.functional.cross_entropy(logits, full[0, len(ids):], reduction="none")
    return nll.tolist(), [end for _, end in enc["offset_mapping"]]


def attempt(model, tokenizer, rec: PlantedRecord, with_eos: bool = True, variant: Variant | None = None) -> Attempt:
    """Greedy completion of one planted record from its prefix, with the probability of the true rest."""
    import torch

    variant = variant or Variant("email" if with_eos else "email_no_eos", CUE, with_eos=with_eos)
    ids, rest = prompt_and_rest(tokenizer, rec, variant)
    nll, ends = rest_token_nll(model, tokenizer, ids, rest)
    target = email_target(rest, rec.text)
    n_email = sum(1 for e in ends if e <= len(target))
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), do_sample=False,
                             max_new_tokens=len(nll) + 4, pad_token_id=tokenizer.eos_token_id)
    completion = tokenizer.decode(out[0, len(ids):], skip_special_tokens=False)
    return Attempt(rec.record_id, rec.dup_count, variant.with_eos, completion.startswith(target), completion.startswith(rest),
                   completion, round(sum(nll) / len(nll), 4), variant.name, len(nll), math.exp(-sum(nll)),
                   math.exp(-sum(nll[:n_email])))


def sampled_rates(lm, records: list[PlantedRecord], variant: Variant, n: int = SAMPLES,
                  temperature: float = TEMPERATURE, seed: int = SEED) -> list[tuple[float, float]]:
    """Per record: the share of ``n`` seeded samples (top_p 1.0) reproducing the rest up to the e-mail,
    and the whole rest. ``lm`` is a :class:`core.generation.model.LoadedModel`; samples come from
    :func:`core.generation.generate.generate` with ``DecodingConfig(temperature, num_samples=n, seed=seed)``."""
    from core.config import DecodingConfig
    from core.generation.generate import generate
    from core.records import Prompt

    tok = lm.tokenizer
    prompts, rests = [], []
    for rec in records:
        ids, rest = prompt_and_rest(tok, rec, variant)
        prompts.append(Prompt(variant.name, rec.record_id, tok.decode(ids), token_ids=tuple(ids)))
        rests.append(rest)
    budget = max(len(tok(r, add_special_tokens=False)["input_ids"]) for r in rests) + 4
    cfg = DecodingConfig(temperature=temperature, top_p=1.0, num_samples=n, max_new_tokens=budget, batch_size=64, seed=seed)
    by_prompt: dict[str, list[str]] = {}
    for g in generate(lm, prompts, cfg):
        by_prompt.setdefault(g.key.prompt_id, []).append(g.completion)
    rates = []
    for rec, rest in zip(records, rests):
        comps, target = by_prompt[rec.record_id], email_target(rest, rec.text)
        rates.append((sum(c.startswith(target) for c in comps) / n, sum(c.startswith(rest) for c in comps) / n))
    return rates


def load_demo_model(model_dir: Path | None = None):
    """(model, tokenizer) of the toy demo model, offline, CPU, eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = model_dir or DEMO_DIR / "model"
    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True).eval()
    return model, tok


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


def table(attempts: list[Attempt]) -> list[dict]:
    """Rows per (variant, duplication count): greedy counts, sampled rates, extraction probability, NLL."""
    rows = []
    for variant in dict.fromkeys(a.variant for a in attempts):
        for dup in sorted({a.dup_count for a in attempts}):
            group = [a for a in attempts if a.dup_count == dup and a.variant == variant]
            if not group:
                continue
            row = {"variant": variant, "dup_count": dup, "with_eos": group[0].with_eos, "records": len(group),
                   "email_extracted": sum(a.email_ok for a in group), "rest_extracted": sum(a.rest_ok for a in group),
                   "mean_rest_nll": round(_mean(a.rest_nll for a in group), 4),
                   "mean_rest_prob": round(_mean(a.rest_prob for a in group), 4),
                   "mean_email_prob": round(_mean(a.email_prob for a in group), 4)}
            if all(a.sampled_rest is not None for a in group):
                row["sampled_email_rate"] = round(_mean(a.sampled_email for a in group), 4)
                row["sampled_rest_rate"] = round(_mean(a.sampled_rest for a in group), 4)
            rows.append(row)
    return rows


def run_all(records: list[PlantedRecord], model_dir: Path | None = None, n: int = SAMPLES,
            variants=VARIANTS) -> list[Attempt]:
    """Greedy attempt, extraction probability and sampled rates of every record under every variant."""
    import dataclasses

    from core.config import ModelConfig
    from core.generation.model import load_model

    lm = load_model(ModelConfig(str(model_dir or DEMO_DIR / "model"), device="cpu", dtype="float32"))
    attempts = []
    for variant in variants:
        rates = sampled_rates(lm, records, variant, n=n) if n else [(None, None)] * len(records)
        for rec, (r_email, r_rest) in zip(records, rates):
            a = attempt(lm.model, lm.tokenizer, rec, variant=variant)
            attempts.append(dataclasses.replace(a, sampled_email=r_email, sampled_rest=r_rest))
    return attempts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Discoverable extraction of the planted records by duplication count.")
    ap.add_argument("--out", type=Path, default=OUT_PATH)
    ap.add_argument("--samples", type=int, default=SAMPLES, help="samples per record at temperature 1.0 (0: none)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    from demo.build_corpus import read_corpus

    torch.set_num_threads(2)
    attempts = run_all(planted_records(read_corpus()), n=args.samples)
    rows = table(attempts)
    print("| prompt | copies | greedy e-mail | greedy rest | sampled e-mail rate | sampled rest rate | "
          "P(e-mail) | P(rest) | NLL/token |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['dup_count']} | {r['email_extracted']}/{r['records']} | {r['rest_extracted']}/{r['records']} | "
              f"{r.get('sampled_email_rate', float('nan')):.3f} | {r.get('sampled_rest_rate', float('nan')):.3f} | "
              f"{r['mean_email_prob']:.4f} | {r['mean_rest_prob']:.4f} | {r['mean_rest_nll']:.4f} |")
    settings = {"samples": args.samples, "temperature": TEMPERATURE, "top_p": 1.0, "seed": SEED,
                "variants": [asdict(v) for v in VARIANTS]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"settings": settings, "table": rows, "attempts": [asdict(a) for a in attempts]},
                                   indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
