"""core.generation.model: loading a local model folder safely, identity for cache keys, device/dtype choice."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from core.config import ModelConfig
from core.errors import ModelLoadError
from core.generation.model import context_length, load_model, model_identity, resolve_device, resolve_dtype
from tests import fixtures_model
from tests.fixtures_model import make_tiny_model_dir

tiny_model_dir, tiny_lm = fixtures_model.tiny_model_dir, fixtures_model.tiny_lm  # shared fixtures


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_loads_tiny_folder_ready_for_generation(tiny_lm):
    assert tiny_lm.device == "cpu" and tiny_lm.dtype == "float32"
    assert not tiny_lm.model.training
    assert next(tiny_lm.model.parameters()).dtype == torch.float32
    tok = tiny_lm.tokenizer
    assert tok.pad_token_id == tok.eos_token_id  # GPT-2 style tokenizer had no pad token
    assert tok.padding_side == "left"
    assert context_length(tiny_lm.model) == 128


def test_explicit_dtype_is_applied(tiny_model_dir):
    lm = load_model(ModelConfig(str(tiny_model_dir), device="cpu", dtype="bfloat16"))
    assert lm.dtype == "bfloat16" and next(lm.model.parameters()).dtype == torch.bfloat16


def test_device_and_dtype_resolution_on_cpu_machine():
    if not torch.cuda.is_available():
        assert resolve_device("auto") in ("cpu", "mps")
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            resolve_device("cuda")
    assert resolve_dtype("auto", "cpu") == "float32"
    with pytest.raises(ModelLoadError, match="unknown dtype 'fp8'"):
        resolve_dtype("fp8", "cpu")
    with pytest.raises(ModelLoadError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_missing_config_names_the_file(tmp_path, tiny_model_dir):
    d = _copy(tiny_model_dir, tmp_path / "m")
    (d / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(ModelConfig(str(d), device="cpu"))


def test_missing_weights_say_what_to_do(tmp_path, tiny_model_dir):
    d = _copy(tiny_model_dir, tmp_path / "m")
    (d / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"no weights .*save_pretrained"):
        load_model(ModelConfig(str(d), device="cpu"))


def test_truncated_safetensors_is_reported(tmp_path, tiny_model_dir):
    d = _copy(tiny_model_dir, tmp_path / "m")
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match=r"model.safetensors: corrupt or truncated"):
        load_model(ModelConfig(str(d), device="cpu"))


def test_missing_shard_listed_in_index(tmp_path, tiny_model_dir):
    d = _copy(tiny_model_dir, tmp_path / "m")
    (d / "model.safetensors").rename(d / "model-00001-of-00002.safetensors")
    weight_map = {"transformer.wte.weight": "model-00001-of-00002.safetensors",
                  "transformer.h.0.attn.c_attn.weight": "model-00002-of-00002.safetensors"}
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    with pytest.raises(ModelLoadError, match=r"missing weight shard\(s\) \['model-00002-of-00002.safetensors'\]"):
        load_model(ModelConfig(str(d), device="cpu"))


def test_not_a_folder(tmp_path):
    f = tmp_path / "weights.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file"):
        load_model(ModelConfig(str(f), device="cpu"))


class _Exploit:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_malicious_pickle_is_refused_without_running_it(tmp_path, tiny_model_dir):
    d = _copy(tiny_model_dir, tmp_path / "m")
    (d / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    torch.save({"transformer.wte.weight": _Exploit(str(marker))}, d / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"pytorch_model.bin: refused .*weights_only=True.*safetensors"):
        load_model(ModelConfig(str(d), device="cpu"))
    assert not marker.exists()


def test_plain_tensor_bin_checkpoint_loads_like_safetensors(tmp_path, tiny_lm):
    d = make_tiny_model_dir(tmp_path / "bin", safe_serialization=False)
    assert (d / "pytorch_model.bin").exists() and not list(d.glob("*.safetensors"))
    lm = load_model(ModelConfig(str(d), device="cpu"))
    x = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.equal(lm.model(x).logits, tiny_lm.model(x).logits)


def test_identity_tracks_weights_not_location(tmp_path, tiny_model_dir):
    a = _copy(tiny_model_dir, tmp_path / "a" / "tiny")
    b = _copy(tiny_model_dir, tmp_path / "b" / "tiny")
    assert model_identity(str(a)) == model_identity(str(b)) == model_identity(str(tiny_model_dir)).replace(
        tiny_model_dir.name, "tiny")
    make_tiny_model_dir(b, seed=1)  # retrained in place: same file names, new weights
    assert model_identity(str(a)) != model_identity(str(b))
    assert model_identity("EleutherAI/pythia-160m", "step1000") == "hub:EleutherAI/pythia-160m@step1000"
    assert model_identity("gpt2") == "hub:gpt2@default"


def test_identity_of_big_files_uses_size_and_edges(tmp_path, monkeypatch):
    import core.generation.model_identity as m

    monkeypatch.setattr(m, "_SMALL_FILE", 10)
    monkeypatch.setattr(m, "_EDGE_BYTES", 4)
    d = tmp_path / "big"
    d.mkdir()
    w = d / "model.safetensors"
    w.write_bytes(b"0123456789abcdefghij")
    base = model_identity(str(d))
    w.write_bytes(b"0123456789abcdefghiX")  # last bytes changed
    assert model_identity(str(d)) != base
    w.write_bytes(b"0123456789abcdefghij!")  # size changed
    assert model_identity(str(d)) != base
    w.write_bytes(b"0123456789abcdefghij")
    assert model_identity(str(d)) == base
