"""core.index.gguf_reads: inside a load, one parse per GGUF file and one tensor-name map per architecture; outside it,
the gguf package as it was. (That a real GGUF model and its tokenizer load the same through it as through plain
transformers is checked on SmolLM2 in tests/test_real_model.py.)"""
from __future__ import annotations

import threading

import gguf
import numpy as np
import pytest

from core.index.gguf_reads import shared_reads


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(2)
    w.add_string("general.name", "tiny")
    w.add_tensor("token_embd.weight", np.arange(12, dtype=np.float32).reshape(3, 4))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _fields(reader) -> dict:
    return {k: [bytes(p).hex() for p in f.parts] for k, f in reader.fields.items()}


def test_one_parse_per_file_inside_and_the_package_untouched_outside(tiny):
    original = (gguf.GGUFReader, gguf.get_tensor_name_map)
    plain = gguf.GGUFReader(tiny)
    with shared_reads():
        first = gguf.GGUFReader(tiny)
        assert gguf.GGUFReader(str(tiny)) is first and gguf.GGUFReader(tiny, "r") is first
        with shared_reads():  # nested: the same readers
            assert gguf.GGUFReader(tiny) is first
        assert gguf.GGUFReader(tiny) is first
        assert _fields(first) == _fields(plain)
        assert np.array_equal(first.tensors[0].data, plain.tensors[0].data)
        arch = gguf.MODEL_ARCH.LLAMA
        shared = gguf.get_tensor_name_map(arch, 2)
        assert gguf.get_tensor_name_map(arch, 2) is shared
        want = original[1](arch, 2)
        names = ["model.embed_tokens", "model.layers.1.self_attn.q_proj", "model.layers.0.mlp.down_proj", "lm_head"]
        assert [shared.get_name(n) for n in names] == [want.get_name(n) for n in names] == \
            ["token_embd", "blk.1.attn_q", "blk.0.ffn_down", "output"]
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == original
    with shared_reads():
        assert gguf.GGUFReader(tiny) is not first  # a new load parses afresh (the file may have changed)


def test_the_package_is_restored_after_an_error_and_loads_in_threads_take_turns(tiny):
    original = (gguf.GGUFReader, gguf.get_tensor_name_map)
    with pytest.raises(ValueError), shared_reads():
        raise ValueError("a load that fails")
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == original
    seen = []

    def other():
        with shared_reads():
            seen.append(gguf.GGUFReader(tiny))

    with shared_reads():
        mine = gguf.GGUFReader(tiny)
        t = threading.Thread(target=other)
        t.start()
        t.join(0.5)
        assert t.is_alive() and not seen  # waits for this load to finish
    t.join(10)
    assert len(seen) == 1 and seen[0] is not mine
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == original
