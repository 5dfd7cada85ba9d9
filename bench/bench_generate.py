"""Generation throughput on CPU: core.generation.generate at batch 1/8/32 vs a naive one-prompt-at-a-time loop.

    .venv/bin/python bench/bench_generate.py [--new-tokens 32] [--prompts 32] [--skip-160m]

Models: the demo model (demo/model, skipped with a message when it is not built) and a randomly
initialised Pythia-160M-shaped GPTNeoX (12 layers, 768 wide, vocab 50304). Prompts are random
token ids of fixed length, so every row does the same work; eos is disabled so every row decodes
exactly --new-tokens tokens. The naive baseline recomputes the whole sequence for each token with
no KV cache and no batching, one prompt at a time (as in a textbook sampling loop), and runs on a
few prompts only; its tokens/s is the baseline every ratio is printed against, measured in the same
run. Short runs by design (32 new tokens): numbers are indicative, not a full benchmark.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from core.config import DecodingConfig, ModelConfig
from core.generation.generate import generate
from core.generation.model import LoadedModel, load_model
from core.records import Prompt


def wordlevel_tokenizer(vocab: int):
    """Words w0..w{vocab-1} plus an <eos> id the model never emits (id = vocab); pad = w0."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {f"w{i}": i for i in range(vocab)} | {"<eos>": vocab}
    tok = Tokenizer(models.WordLevel(vocab=words, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="w0", unk_token="w0")
    tok.padding_side = "left"
    return tok


def pythia_160m_shaped() -> LoadedModel:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(vocab_size=50304, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                           intermediate_size=3072, max_position_embeddings=2048, rotary_pct=0.25,
                           use_parallel_residual=True, bos_token_id=None, eos_token_id=None)
    torch.manual_seed(0)  # bench script, not core: a fixed random init
    model = GPTNeoXForCausalLM(config).eval()
    model.generation_config.eos_token_id = None
    return LoadedModel(model, wordlevel_tokenizer(50304), "random:pythia-160m-shaped", "cpu", "float32",
                       ModelConfig("random:pythia-160m-shaped"))


def random_prompts(n: int, length: int, vocab: int) -> list[Prompt]:
    g = torch.Generator().manual_seed(1)
    return [Prompt("bench", f"b{i}", "", token_ids=tuple(torch.randint(1, vocab, (length,), generator=g).tolist()))
            for i in range(n)]


@torch.no_grad()
def naive_tokens_per_s(lm: LoadedModel, prompts: list[Prompt], new_tokens: int) -> float:
    t0 = time.perf_counter()
    for p in prompts:
        seq = list(p.token_ids)
        for _ in range(new_tokens):
            seq.append(int(lm.model(torch.tensor([seq])).logits[0, -1].argmax()))
    return len(prompts) * new_tokens / (time.perf_counter() - t0)


def bench(name: str, lm: LoadedModel, n_prompts: int, prompt_len: int, new_tokens: int, naive_n: int) -> None:
    vocab = lm.model.get_output_embeddings().weight.shape[0]
    prompts = random_prompts(n_prompts, prompt_len, vocab)
    generate(lm, prompts[:2], DecodingConfig(max_new_tokens=2, batch_size=2))  # warm-up
    base = naive_tokens_per_s(lm, prompts[:naive_n], new_tokens)
    print(f"\n{name}: {n_prompts} prompts x {prompt_len} tokens, {new_tokens} new tokens each, "
          f"{torch.get_num_threads()} torch threads")
    print(f"  {'naive loop (no cache, 1 prompt, ' + str(naive_n) + ' prompts)':<44} {base:9.1f} tok/s   1.00x")
    greedy = None
    for bs in (1, 8, 32):
        t0 = time.perf_counter()
        gens = generate(lm, prompts, DecodingConfig(max_new_tokens=new_tokens, batch_size=bs,
                                                     max_prompt_tokens=prompt_len))
        dt = time.perf_counter() - t0
        n_tok = sum(len(g.completion_ids) for g in gens)
        ids = [g.completion_ids for g in gens]
        same = "" if greedy is None else ("  (same tokens as batch 1)" if ids == greedy else "  (tokens differ!)")
        greedy = greedy or ids
        print(f"  {'core.generation.generate batch ' + str(bs):<44} {n_tok / dt:9.1f} tok/s {n_tok / dt / base:6.2f}x{same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--naive-prompts", type=int, default=4)
    ap.add_argument("--skip-160m", action="store_true")
    args = ap.parse_args()
    demo = ROOT / "demo" / "model"
    if (demo / "config.json").is_file():
        lm = load_model(ModelConfig(str(demo), device="cpu"))
        bench(f"demo model ({demo})", lm, args.prompts, args.prompt_len, args.new_tokens, args.naive_prompts)
    else:
        print(f"demo model: skipped, {demo}/config.json does not exist (build the demo model first)")
    if not args.skip_160m:
        bench("Pythia-160M-shaped GPTNeoX (random weights)", pythia_160m_shaped(), args.prompts, args.prompt_len,
              args.new_tokens, args.naive_prompts)


if __name__ == "__main__":
    main()
