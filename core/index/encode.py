"""Document texts to token ids for index builds: exactly the model tokenizer's ids, at the speed of
the fastest engine that gives them.

Every index build (local, sharded, Ray) tokenizes through :class:`TextEncoder`; its ids are those of
``tokenizer(texts, add_special_tokens=False)["input_ids"]`` (the transformers call the rest of the
pipeline uses), returned flat (:class:`EncodedTexts`: one ``uint32`` array and document offsets, no
per-token Python objects).

Engines:

* ``fastokens`` (optional package, Rust, multi-threaded; several times HF tokenizers' speed on
  byte-level BPE) is used only where it is known to give identical ids:

  1. the tokenizer's pipeline is made of components covered by the property tests
     (:func:`fast_unsupported_reason`: a BPE model without dropout, no normalizer, ByteLevel
     pre-tokenization alone or after regex splits, and digit splits) — otherwise HF, per tokenizer;
  2. at start-up both engines encode a probe set (Unicode, code, whitespace runs, every added token
     inside text) and must agree on every probe — otherwise HF, per tokenizer;
  3. a batch fastokens refuses (it raises where the vocabulary lacks a byte, which HF drops silently)
     is encoded document by document, and the documents it refuses go to HF;
  4. each batch, a seeded sample of documents (``verify_share`` of its characters, at least one
     document) is re-encoded with HF; on any difference the batch is encoded with HF, the encoder
     switches to HF for good and says so in its log and :attr:`TextEncoder.stats`.

* ``hf``: the tokenizer's own Rust backend (``tokenizers``), ``encode_batch_fast`` over the whole
  batch (its own thread pool), the same call transformers makes; slow (Python) tokenizers go
  through the transformers call itself.

An encoder pickles as its tokenizer JSON, so process pools and Ray tasks rebuild it on their side
(:func:`encode_texts` is the one function they call; :func:`encode_batch` takes a tokenizer or an
encoder and returns one array per text, for the Ray build's tasks in core/cluster/build.py).
"""
from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

ENGINES = ("auto", "fastokens", "hf")
ENGINE_ENV = "PROPME_TOKENIZER_ENGINE"  # overrides engine="auto" (e.g. "hf" to rule fastokens out)
VERIFY_SHARE = 0.004  # share of each batch's characters re-encoded with HF to check fastokens
FAST_PRE_TOKENIZERS = frozenset({"ByteLevel", "Split", "Digits"})

# Probes run through both engines before fastokens is trusted with a tokenizer.
PROBES = (
    "", " ", "  ", "\n", "\n\n\n", "\t", "\r\n", " \n ", "   \n\t  x", "a" * 300, " " * 97 + "x",
    "Hello, world! It's the cat's hat; they'll've said 'No'.", "HELLO'S WORLD'LL",
    "def f(x):\n    return x + 1  # comment\n\n\nclass A:\n\tpass\n",
    "for i in range(10):\n        print(i, end='')\r\n",
    "1234567890 3.14159 1e-10 0x1F 1_000_000 ١٢٣ ١٢٣٤ １２３",
    "naïve café résumé façade e\u0301 ﬁ ﬂ Å Å", "Ελληνικά Русский 中文字符 日本語のテキスト 한국어 עברית العربية",
    "emoji 😀👍🏽 🏳️‍🌈 flags 🇩🇪🇯🇵 \u200b\u200c\u200d\ufeff zero-width", "\u00a0nbsp\u3000ideographic\u2003em",
    "tab\tsep\tvalues\n1\t2\t3\n", "<html><body class=\"x\">&amp;&lt;</body></html>",
    "\\x00 \x00 \x01 \x1b[31m \x7f \x85 \u2028 \u2029", "https://example.org/path?q=1&r=2#frag",
    "   leading and trailing   ", "ALLCAPS lowercase MiXeD camelCase snake_case kebab-case",
)


@dataclass(frozen=True)
class EncodedTexts:
    """Token ids of several texts: ``ids`` concatenated (uint32), text i is ``ids[offsets[i]:offsets[i+1]]``."""

    ids: np.ndarray
    offsets: np.ndarray  # int64, len(texts) + 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def doc(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    def lists(self) -> list[list[int]]:
        return [self.doc(i).tolist() for i in range(len(self))]

    @staticmethod
    def from_lists(seqs: Sequence[Sequence[int]]) -> EncodedTexts:
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.fromiter((t for s in seqs for t in s), dtype=np.uint32, count=int(offsets[-1]))
        return EncodedTexts(ids, offsets)


@dataclass
class EncodeStats:
    """What an encoder did: documents per engine, how many were checked against HF, and why HF."""

    fast_docs: int = 0
    hf_docs: int = 0
    verified_docs: int = 0
    refused_batches: int = 0  # batches fastokens raised on (re-encoded per document)
    mismatches: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"fast_docs": self.fast_docs, "hf_docs": self.hf_docs, "verified_docs": self.verified_docs,
                "refused_batches": self.refused_batches, "mismatches": list(self.mismatches)}


def fast_unsupported_reason(spec: dict) -> str | None:
    """Why fastokens is not used for a tokenizer.json (parsed), or None when its components are
    among those the property tests cover (tests/test_tokenize_fast.py)."""
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        return f"model type {model.get('type')!r} (only BPE is checked)"
    if model.get("dropout") not in (None, 0, 0.0):
        return "BPE dropout (random segmentation)"
    if model.get("byte_fallback"):
        return "BPE byte_fallback (not covered by the property tests)"
    if spec.get("normalizer") is not None:
        return f"normalizer {spec['normalizer'].get('type')!r} (not covered by the property tests)"
    pre = spec.get("pre_tokenizer")
    if pre is None:
        return "no pre-tokenizer"
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [p.get("type") for p in parts]
    if not kinds or any(k not in FAST_PRE_TOKENIZERS for k in kinds) or "ByteLevel" not in kinds:
        return f"pre-tokenizer {'+'.join(map(str, kinds)) or 'empty'} (checked: ByteLevel, Split, Digits with ByteLevel)"
    return None


def _clean_spec(spec: dict) -> dict:
    """The tokenizer.json without truncation and padding (transformers turns both off for a plain call)."""
    return {**spec, "truncation": None, "padding": None}


class TextEncoder:
    """Encodes document texts as the model tokenizer does (no special tokens added), flat and fast.

    ``engine``: "auto" (fastokens where exact, else HF), "hf", or "fastokens" (raises when it
    cannot be used). ``verify_share``: share of each batch's characters also encoded with HF as a
    check (0 turns the check off; the probe check at start-up stays). ``seed`` picks the checked
    documents. The environment variable ``PROPME_TOKENIZER_ENGINE`` overrides "auto".
    """

    def __init__(self, tokenizer, engine: str = "auto", *, verify_share: float = VERIFY_SHARE, seed: int = 0):
        if engine not in ENGINES:
            raise ValueError(f"tokenizer engine must be one of {ENGINES}, got {engine!r}")
        if engine == "auto":
            engine = os.environ.get(ENGINE_ENV, "auto") or "auto"
            if engine not in ENGINES:
                raise ValueError(f"{ENGINE_ENV}={engine!r}: expected one of {ENGINES}")
        self.tokenizer = tokenizer
        self.requested = engine
        self.verify_share = float(verify_share)
        self.seed = seed
        self.stats = EncodeStats()
        self._rng = random.Random(seed)
        backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
        self._split_special = bool(getattr(tokenizer, "split_special_tokens", False))
        self._spec = _clean_spec(json.loads(backend.to_str())) if backend is not None else None
        self._hf = self._plain_backend() if backend is not None else None
        self._fast, self.reason = None, "engine 'hf' requested"
        if engine != "hf":
            self._fast, self.reason = self._load_fast()
            if self._fast is None and engine == "fastokens":
                raise ValueError(f"fastokens cannot be used for this tokenizer: {self.reason}")

    # ---- set-up --------------------------------------------------------------------------------
    def _plain_backend(self):
        from tokenizers import Tokenizer

        hf = Tokenizer.from_str(json.dumps(self._spec))
        hf.encode_special_tokens = self._split_special
        return hf

    def _load_fast(self):
        if self._spec is None:
            return None, "a slow (Python) tokenizer"
        reason = fast_unsupported_reason(self._spec)
        if reason is not None:
            return None, reason
        try:
            import fastokens
        except ImportError:
            return None, "fastokens is not installed (pip install fastokens)"
        try:
            fast = fastokens.Tokenizer.from_json_str(json.dumps(self._spec))
        except Exception as e:  # noqa: BLE001 - any refusal of the spec means: not usable
            return None, f"fastokens cannot load it ({type(e).__name__}: {e})"
        probes = list(PROBES) + _added_token_probes(self._spec)
        want = self._hf_lists(probes)
        try:
            got = self._fast_flat(fast, probes).lists()
        except Exception as e:  # noqa: BLE001
            return None, f"fastokens failed on the probe texts ({type(e).__name__}: {e})"
        bad = [p for p, a, b in zip(probes, got, want) if a != b]
        if bad:
            return None, f"fastokens ids differ from tokenizers' on {len(bad)} probe text(s), e.g. {bad[0][:40]!r}"
        return fast, None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_fast"] = state["_hf"] = None
        state["_had_fast"] = self._fast is not None
        if self._spec is None:
            return state
        state["tokenizer"] = None  # rebuilt from the spec: a transformers tokenizer object is not needed
        return state

    def __setstate__(self, state):
        had_fast = state.pop("_had_fast", False)
        self.__dict__.update(state)
        if self._spec is not None:
            self._hf = self._plain_backend()
            if had_fast:
                import fastokens

                self._fast = fastokens.Tokenizer.from_json_str(json.dumps(self._spec))

    # ---- engines -------------------------------------------------------------------------------
    @property
    def engine(self) -> str:
        """The engine in use now, with its version (recorded beside the index)."""
        from importlib.metadata import version

        if self._fast is not None:
            return f"fastokens {version('fastokens')}"
        if self._hf is not None:
            return f"tokenizers {version('tokenizers')}"
        return f"transformers {version('transformers')} ({type(self.tokenizer).__name__})"

    def _fast_flat(self, fast, texts: Sequence[str]) -> EncodedTexts:
        ids, offsets = fast.encode_batch_flat(list(texts), add_special_tokens=False,
                                              split_special_tokens=self._split_special)
        return EncodedTexts(np.frombuffer(ids, dtype=np.uint32), np.frombuffer(offsets, dtype=np.uint64).astype(np.int64))

    def _hf_lists(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        if self._hf is not None:
            return [e.ids for e in self._hf.encode_batch_fast(list(texts), add_special_tokens=False)]
        return list(self.tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)["input_ids"])

    def encode_hf(self, texts: Sequence[str]) -> EncodedTexts:
        """The reference encoding (HF tokenizers, or transformers for a slow tokenizer)."""
        out = EncodedTexts.from_lists(self._hf_lists(texts))
        self.stats.hf_docs += len(texts)
        return out

    def encode(self, texts: Sequence[str]) -> EncodedTexts:
        """Token ids of ``texts`` (identical to the model tokenizer's, no special tokens added)."""
        texts = list(texts)
        if self._fast is None or not texts:
            return self.encode_hf(texts)
        try:
            out = self._fast_flat(self._fast, texts)
        except Exception:  # noqa: BLE001 - fastokens refuses texts HF accepts (a byte without a token)
            self.stats.refused_batches += 1
            return self._encode_each(texts)
        if self._verify(texts, out):
            self.stats.fast_docs += len(texts)
            return out
        return self.encode_hf(texts)

    def _encode_each(self, texts: list[str]) -> EncodedTexts:
        seqs: list[list[int]] = []
        for t in texts:
            try:
                seqs.append(self._fast_flat(self._fast, [t]).ids.tolist())
                self.stats.fast_docs += 1
            except Exception:  # noqa: BLE001
                seqs.append(self._hf_lists([t])[0])
                self.stats.hf_docs += 1
        return EncodedTexts.from_lists(seqs)

    def _verify(self, texts: list[str], out: EncodedTexts) -> bool:
        """Re-encode a seeded sample of the batch with HF; on a difference switch to HF for good."""
        if self.verify_share <= 0:
            return True
        budget = self.verify_share * sum(len(t) for t in texts)
        order = list(range(len(texts)))
        self._rng.shuffle(order)
        picked, chars = [], 0
        for i in order:
            if picked and chars + len(texts[i]) > budget:
                continue
            picked.append(i)
            chars += len(texts[i])
            if chars >= budget:
                break
        want = self._hf_lists([texts[i] for i in picked])
        self.stats.verified_docs += len(picked)
        for i, ids in zip(picked, want):
            if out.doc(i).tolist() != ids:
                msg = (f"fastokens ids differ from tokenizers' on a document of {len(texts[i])} characters "
                       f"starting {texts[i][:40]!r}; tokenizing with tokenizers from here on")
                log.warning(msg)
                self.stats.mismatches.append(msg)
                self._fast, self.reason = None, msg
                return False
        return True


def _added_token_probes(spec: dict) -> list[str]:
    """Every added token inside text: alone, between words, at the ends, next to spaces and newlines."""
    out = []
    for tok in spec.get("added_tokens") or []:
        c = tok.get("content", "")
        if c:
            out += [c, f"a{c}b", f" {c} ", f"x {c}\n{c}{c} y", f"\n\n{c}\n", f"'s{c}12 "]
    return out


def encode_texts(encoder: TextEncoder, texts: Sequence[str]) -> EncodedTexts:
    """Token ids of ``texts`` through ``encoder``: the one tokenizing call of every index build."""
    return encoder.encode(texts)


_ENCODERS: dict[int, tuple[object, TextEncoder]] = {}  # id(tokenizer) -> (tokenizer kept alive, its encoder)
_BY_CONTENT: dict[tuple[str, bool], TextEncoder] = {}  # sha256 of the tokenizer JSON -> its encoder
_ENCODERS_LOCK = __import__("threading").Lock()


def encoder_for(tokenizer) -> TextEncoder:
    """The process's :class:`TextEncoder` for ``tokenizer`` (built once per tokenizer object: building
    one parses the tokenizer JSON and runs the probe check, tenths of a second)."""
    if isinstance(tokenizer, TextEncoder):
        return tokenizer
    with _ENCODERS_LOCK:
        hit = _ENCODERS.get(id(tokenizer))
        if hit is not None and hit[0] is tokenizer:
            return hit[1]
        # a copy of a tokenizer seen before (e.g. unpickled by each Ray task): same JSON, same encoder
        backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
        key = None
        if backend is not None:
            import hashlib

            key = (hashlib.sha256(backend.to_str().encode()).hexdigest(),
                   bool(getattr(tokenizer, "split_special_tokens", False)))
        enc = _BY_CONTENT.get(key) if key is not None else None
        if enc is None:
            enc = TextEncoder(tokenizer)
            if key is not None:
                if len(_BY_CONTENT) >= 4:
                    _BY_CONTENT.pop(next(iter(_BY_CONTENT)))
                _BY_CONTENT[key] = enc
        if len(_ENCODERS) >= 4:
            _ENCODERS.pop(next(iter(_ENCODERS)))
        _ENCODERS[id(tokenizer)] = (tokenizer, enc)
        return enc


def encode_batch(tokenizer, texts: Sequence[str]) -> list[np.ndarray]:
    """Token ids (no special tokens) of each text, as uint32 views of one flat array: the same ids as
    ``tokenizer(texts, add_special_tokens=False)``, through :func:`encoder_for` (``tokenizer`` may be a
    :class:`TextEncoder`, which pickles small: what a Ray task should receive)."""
    if not texts:
        return []
    enc = encode_texts(encoder_for(tokenizer), texts)
    return [enc.doc(i) for i in range(len(enc))]
