"""Tiny in-process models for generation tests: no hub, no download, built in well under a second.

``make_tiny_tokenizer`` trains a byte-level BPE (a few hundred tokens) on a fixed text;
``make_tiny_model_dir`` saves a randomly initialised 2-layer, 64-wide GPT-2 (seeded) plus that
tokenizer to a folder, exactly as ``save_pretrained`` would lay out a real model.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

EOS = "<|endoftext|>"

TRAIN_TEXT = (
    "The quick brown fox jumps over the lazy dog. A memorization audit asks whether a model can "
    "reproduce its training data, and whether it does so under ordinary use. The cat sat on the mat. "
    "Numbers like 12345 and 67890 appear in code: def f(x): return x + 1. Hello world! "
    "She sells sea shells by the sea shore. It was the best of times, it was the worst of times. "
) * 4


def make_tiny_tokenizer(vocab_size: int = 320) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with ``<|endoftext|>`` as bos/eos and no pad token (like GPT-2)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([TRAIN_TEXT], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS)


def make_tiny_model(vocab_size: int, n_positions: int = 128, seed: int = 0, model_cls=GPT2LMHeadModel,
                    config=None) -> torch.nn.Module:
    """A seeded random-init GPT-2 (2 layers, 64 wide); eos/bos = token 0 as in the tiny tokenizer."""
    config = config or GPT2Config(
        vocab_size=vocab_size, n_positions=n_positions, n_embd=64, n_layer=2, n_head=2,
        bos_token_id=0, eos_token_id=0,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # test fixture only: restores the global RNG below
    try:
        model = model_cls(config)
    finally:
        torch.random.set_rng_state(state)
    # Sharpen the random logits so greedy argmax is far from ties (real models are not near-uniform).
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0) if p.dim() == 2 else None
    return model.eval()


def make_tiny_model_dir(folder: str | Path, n_positions: int = 128, seed: int = 0,
                        safe_serialization: bool = True) -> Path:
    """Save the tiny tokenizer and a tiny GPT-2 into ``folder`` (created); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tiny_tokenizer()
    model = make_tiny_model(len(tokenizer), n_positions=n_positions, seed=seed)
    model.save_pretrained(folder)
    if not safe_serialization:  # an old-style pickled checkpoint (transformers 5 only writes safetensors)
        (folder / "model.safetensors").unlink()
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny GPT-2 + tokenizer folder, shared by the session (read-only by convention)."""
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_dir):
    """The tiny model loaded through core.generation.model.load_model on CPU (float32)."""
    from core.config import ModelConfig
    from core.generation.model import load_model

    return load_model(ModelConfig(str(tiny_model_dir), device="cpu"))
