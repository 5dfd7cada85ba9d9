"""Discoverable extraction of the planted fake records, by duplication count.

``python -m demo.planted_extraction`` prompts the demo model with each planted record up to just
before its e-mail address (the prefix is cut from the record's token ids, so no stray space breaks
the byte-level BPE boundary), decodes greedily, and checks whether the completion reproduces the
rest of the record (e-mail, phone, account, city) exactly. Prints a table per duplication count and
writes it to demo/results/planted_extraction.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).resolve().parent
OUT_PATH = DEMO_DIR / "results" / "planted_extraction.json"
CUE = "\nE-mail:"  # the prefix ends right after this, before the e-mail address


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
    email_ok: bool  # the completion starts with the true e-mail address
    rest_ok: bool  # the completion reproduces the whole rest of the record
    completion: str
    rest_nll: float = 0.0  # mean negative log-likelihood (nats/token) of the true rest given the prefix


def planted_records(rows) -> list[PlantedRecord]:
    """One entry per distinct planted record (first copy), ordered by duplication count and id."""
    seen: dict[str, PlantedRecord] = {}
    for r in rows:
        if r.get("kind") == "record" and r["record_id"] not in seen:
            seen[r["record_id"]] = PlantedRecord(r["record_id"], int(r["dup_count"]), r["text"])
    return sorted(seen.values(), key=lambda p: (p.dup_count, p.record_id))


def split_prefix(tokenizer, text: str) -> tuple[list[int], str]:
    """Token ids of ``text`` up to just after ``CUE`` (cut at a token boundary), and the rest as text."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    cut = text.index(CUE) + len(CUE)
    n = sum(1 for _, end in enc["offset_mapping"] if end <= cut)
    ids = enc["input_ids"][:n]
    prefix_text = tokenizer.decode(ids)
    if not text.startswith(prefix_text):
        raise ValueError(f"token prefix {prefix_text!r} is not a prefix of the record text")
    return ids, text[len(prefix_text):]


def attempt(model, tokenizer, rec: PlantedRecord, with_eos: bool = True) -> Attempt:
    """Greedy completion of one planted record from its prefix."""
    import torch

    ids, rest = split_prefix(tokenizer, rec.text)
    if with_eos:
        ids = [tokenizer.eos_token_id, *ids]
    rest_ids = tokenizer(rest, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), do_sample=False,
                             max_new_tokens=len(rest_ids) + 4, pad_token_id=tokenizer.eos_token_id)
        full = torch.tensor([ids + rest_ids])
        logits = model(full).logits[0, len(ids) - 1:-1]
        nll = torch.nn.functional.cross_entropy(logits, full[0, len(ids):]).item()
    completion = tokenizer.decode(out[0, len(ids):], skip_special_tokens=False)
    email = rest.split("\n", 1)[0]
    return Attempt(rec.record_id, rec.dup_count, with_eos, completion.startswith(email), completion.startswith(rest), completion,
                   round(nll, 4))


def load_demo_model(model_dir: Path | None = None):
    """(model, tokenizer) of the toy demo model, offline, CPU, eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = model_dir or DEMO_DIR / "model"
    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True).eval()
    return model, tok


def table(attempts: list[Attempt]) -> list[dict]:
    """Rows per (duplication count, with_eos): records, e-mails reproduced, full rests reproduced."""
    rows = []
    for with_eos in (True, False):
        for dup in sorted({a.dup_count for a in attempts}):
            group = [a for a in attempts if a.dup_count == dup and a.with_eos == with_eos]
            if group:
                rows.append({"dup_count": dup, "with_eos": with_eos, "records": len(group),
                             "email_extracted": sum(a.email_ok for a in group), "rest_extracted": sum(a.rest_ok for a in group),
                             "mean_rest_nll": round(sum(a.rest_nll for a in group) / len(group), 4)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Discoverable extraction of the planted records by duplication count.")
    ap.add_argument("--out", type=Path, default=OUT_PATH)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    from demo.build_corpus import read_corpus

    torch.set_num_threads(2)
    model, tok = load_demo_model()
    attempts = [attempt(model, tok, rec, with_eos) for with_eos in (True, False) for rec in planted_records(read_corpus())]
    rows = table(attempts)
    print("| copies | prompt starts with eos | records | e-mail reproduced | whole rest reproduced | mean NLL of the rest (nats/token) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dup_count']} | {'yes' if r['with_eos'] else 'no'} | {r['records']} | {r['email_extracted']} | {r['rest_extracted']} | {r['mean_rest_nll']:.4f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"table": rows, "attempts": [asdict(a) for a in attempts]}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
