"""Train the toy demo model: ``python -m demo.train_model`` (tokenizer + GPT-2, seeded, CPU).

Step 1 trains a byte-level BPE tokenizer on demo/data/corpus.jsonl.zst; step 2 trains a small GPT-2
causal LM (plain loop, AdamW, cosine schedule, documents packed into 256-token blocks with
<|endoftext|> separators) and writes the bundle to demo/model/: model.safetensors, config.json,
generation_config.json, tokenizer.json, tokenizer_config.json, training_log.json and SHA256SUMS.
This is a TOY DEMO MODEL that memorizes its tiny corpus on purpose; it is useless for anything else.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from demo.build_corpus import OUT_PATH as CORPUS_PATH
from demo.build_corpus import read_corpus

logger = logging.getLogger(__name__)

SEED = 42
MODEL_DIR = Path(__file__).resolve().parent / "model"
EOS = "<|endoftext|>"
VOCAB_SIZE = 4096
BLOCK = 256
ARCH = {"n_layer": 4, "n_embd": 128, "n_head": 4, "n_positions": 512}
CHECKSUMMED = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def train_tokenizer(texts: list[str], out_dir: Path, vocab_size: int = VOCAB_SIZE):
    """Byte-level BPE with <|endoftext|> (id 0) as bos/eos/pad; saved so AutoTokenizer loads it."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS], show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=EOS, eos_token=EOS, pad_token=EOS,
                                  unk_token=EOS, model_max_length=ARCH["n_positions"])
    tok.save_pretrained(str(out_dir))
    return tok


def pack_blocks(docs_ids: list[list[int]], eos_id: int, rng: random.Random, block: int = BLOCK) -> torch.Tensor:
    """One epoch: documents in a seeded order, each preceded by eos, concatenated and cut into blocks."""
    order = list(range(len(docs_ids)))
    rng.shuffle(order)
    stream: list[int] = []
    for i in order:
        stream.append(eos_id)
        stream.extend(docs_ids[i])
    n = len(stream) // block
    return torch.tensor(stream[: n * block], dtype=torch.long).view(n, block)


def sha256sums(folder: Path, names=CHECKSUMMED) -> str:
    """Lines '<sha256>  <name>' (sha256sum format) for the bundle files."""
    return "".join(f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in names)


def save_bundle(model, tok, folder: Path, log: dict) -> None:
    """Weights, configs, tokenizer, training log and SHA256SUMS of a (possibly intermediate) model."""
    from transformers import GenerationConfig

    folder.mkdir(parents=True, exist_ok=True)
    eos_id = tok.convert_tokens_to_ids(EOS)
    model.eval()
    model.save_pretrained(str(folder), safe_serialization=True)
    tok.save_pretrained(str(folder))
    GenerationConfig(bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id, do_sample=False,
                     max_new_tokens=256).save_pretrained(str(folder))
    (folder / "training_log.json").write_text(json.dumps(log, indent=1))
    (folder / "SHA256SUMS").write_text(sha256sums(folder))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train the toy demo model (seeded, CPU).")
    ap.add_argument("--out", type=Path, default=MODEL_DIR)
    ap.add_argument("--corpus", type=Path, default=CORPUS_PATH, help="corpus file written by demo.build_corpus")
    ap.add_argument("--epochs", type=int, default=36)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", type=Path, default=None,
                    help="continue training the model (and reuse the tokenizer) saved in this folder")
    ap.add_argument("--seed", type=int, default=SEED, help="seed of this stage's data order")
    ap.add_argument("--checkpoint-every", type=int, default=0, metavar="EPOCHS",
                    help="also save the whole bundle every this many epochs to <out>/checkpoints/epoch-NN")
    ap.add_argument("--bench-steps", type=int, default=0, help="only time this many steps, save nothing")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    from transformers import GPT2Config, GPT2LMHeadModel

    rows = read_corpus(args.corpus)
    texts = [r["text"] for r in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.resume:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(args.resume), local_files_only=True)
        previous = json.loads((args.resume / "training_log.json").read_text())
        tok.save_pretrained(str(args.out))  # the resumed model keeps its tokenizer beside it
    else:
        tok = train_tokenizer(list(dict.fromkeys(texts)), args.out)  # distinct texts: copies do not skew merges
        previous = None
    eos_id = tok.convert_tokens_to_ids(EOS)
    docs_ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    n_tokens = sum(len(d) + 1 for d in docs_ids)
    logger.info("corpus: %d docs, %d tokens (incl. one eos per doc), vocab %d, eos id %d", len(rows), n_tokens, len(tok), eos_id)

    cfg = GPT2Config(vocab_size=len(tok), bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ARCH)
    model = GPT2LMHeadModel.from_pretrained(str(args.resume)) if args.resume else GPT2LMHeadModel(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("model: %s, %d parameters", ARCH, n_params)
    data_rng = random.Random(args.seed)
    steps_per_epoch = math.ceil(pack_blocks(docs_ids, eos_id, random.Random(0)).shape[0] / args.batch_size)
    total = steps_per_epoch * args.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / args.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))))
    log = {"note": "TOY DEMO MODEL training log", "seed": args.seed, "resumed_from": str(args.resume) if args.resume else None,
           "previous_stages": ([*previous.get("previous_stages", []), {k: v for k, v in previous.items() if k != "previous_stages"}]
                               if previous else []), "arch": ARCH, "n_params": n_params, "corpus_tokens": n_tokens,
           "epochs": args.epochs, "batch_size": args.batch_size, "block": BLOCK, "lr": args.lr, "warmup": args.warmup,
           "threads": args.threads, "steps": total, "torch": torch.__version__, "loss": []}
    model.train()
    t0 = time.time()
    step = 0
    for epoch in range(args.epochs):
        blocks = pack_blocks(docs_ids, eos_id, data_rng)
        perm = torch.randperm(blocks.shape[0])
        for b in range(0, blocks.shape[0], args.batch_size):
            batch = blocks[perm[b: b + args.batch_size]]
            loss = model(input_ids=batch, labels=batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            log["loss"].append({"step": step, "epoch": epoch + 1, "loss": round(loss.item(), 4),
                                "lr": round(sched.get_last_lr()[0], 7), "elapsed_s": round(time.time() - t0, 1)})
            if args.bench_steps and step >= args.bench_steps:
                el = time.time() - t0
                logger.info("bench: %d steps in %.1fs -> %.2fs/step; %d steps total -> ~%.1f min", step, el, el / step, total, el / step * total / 60)
                return 0
            if step % 20 == 0:
                logger.info("step %d/%d epoch %d loss %.4f elapsed %.0fs", step, total, epoch + 1, loss.item(), time.time() - t0)
                (args.out / "training_log.json").write_text(json.dumps(log, indent=1))
        if args.checkpoint_every and (epoch + 1) % args.checkpoint_every == 0 and epoch + 1 < args.epochs:
            ckpt = {**log, "checkpoint_epoch": epoch + 1, "runtime_s": round(time.time() - t0, 1), "final_loss": log["loss"][-1]["loss"]}
            save_bundle(model, tok, args.out / "checkpoints" / f"epoch-{epoch + 1:02d}", ckpt)
            model.train()
    log["runtime_s"] = round(time.time() - t0, 1)
    log["final_loss"] = log["loss"][-1]["loss"]
    save_bundle(model, tok, args.out, log)
    logger.info("done in %.0fs, final loss %.4f", log["runtime_s"], log["final_loss"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
