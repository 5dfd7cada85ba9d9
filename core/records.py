"""The values that flow through a run: prompts, generations, traced spans and documents.

Results are keyed by :class:`GenKey` (setting, prompt id, sample index), never by text, so two
identical completions stay two records.
"""
from __future__ import annotations

from dataclasses import dataclass

MATCH_TIERS = ("exact_full_raw", "exact_full_normalized", "partial")


@dataclass(frozen=True, order=True)
class GenKey:
    setting: str
    prompt_id: str
    sample_index: int = 0


@dataclass(frozen=True)
class Prompt:
    setting: str
    prompt_id: str
    text: str  # the prompt as shown to a reader
    token_ids: tuple[int, ...] | None = None  # exact model token ids (prefix prompts are built from ids)
    domain: str | None = None  # generic prompts: one of ten domains
    source_doc_id: str | None = None  # prefix: the document the prefix was cut from
    source_doc_ix: int | None = None  # prefix: its index in the corpus index
    true_continuation: str | None = None  # prefix: the document's next tokens, decoded
    true_continuation_ids: tuple[int, ...] | None = None  # prefix: those tokens (model tokenizer)


@dataclass(frozen=True)
class Generation:
    key: GenKey
    prompt: Prompt
    completion: str
    completion_ids: tuple[int, ...] = ()  # model tokenizer ids of the completion
    finish_reason: str = "length"  # length | eos


@dataclass(frozen=True)
class NVResult:
    """Near-verbatim recall of one (generation, document window) pair, with its raw blocks.

    ``blocks`` are difflib matching blocks (ref_start, cand_start, size), size > 0, so a change of
    thresholds re-scores without re-running the matcher.
    """

    recall: float
    matched: int
    reference: int
    candidate: int
    blocks: tuple[tuple[int, int, int], ...] = ()

    @property
    def missing(self) -> int:
        return self.reference - self.matched

    @property
    def additional(self) -> int:
        return self.candidate - self.matched


@dataclass(frozen=True)
class DocMatch:
    """One retrieved training document for a span."""

    doc_ix: int  # document index in the (possibly multi-shard) index
    doc_id: str  # corpus id from the document's metadata (str(doc_ix) when it has none)
    tier: str  # one of MATCH_TIERS
    window_text: str  # decoded window of window_factor * L tokens centred on the match
    match_char_start: int  # the matched span's characters inside window_text
    match_char_end: int
    nv: NVResult


@dataclass(frozen=True)
class Span:
    """A final verbatim span of a completion (index-tokenizer token offsets, end exclusive)."""

    start: int
    end: int
    text: str  # decoded span text
    char_start: int  # character offsets of the span in the completion text (for highlighting)
    char_end: int
    count: int  # occurrences of the span in the index
    docs: tuple[DocMatch, ...] = ()
    sample_seed: int | None = None  # seed given to index.occurrences for this span's docs (None: several queries)
    echo: bool = False  # the span's text occurs in the completion's own prompt (core.tracing.echo)

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class TraceResult:
    """Everything tracing found for one completion."""

    key: GenKey
    completion: str
    n_tokens: int  # completion length L in index tokens
    spans: tuple[Span, ...] = ()  # final spans, in position order
    full_doc_frequency: int = 0  # distinct documents holding the whole completion (capped)
    text_rule_removed: tuple[int, int] = (0, 0)  # (spans, tokens) the paper's text-mode rule rejects (admissibility.text_rule_loss)

    @property
    def longest_span(self) -> int:
        return max((s.length for s in self.spans), default=0)

    @property
    def docs(self) -> tuple[DocMatch, ...]:
        """All retrieved documents of all spans (a document may repeat across spans)."""
        return tuple(d for s in self.spans for d in s.docs)

    @property
    def full_match(self) -> bool:
        return any(d.tier == "exact_full_raw" for d in self.docs)

    @property
    def max_nv_recall(self) -> float:
        """Highest nv_recall of its retrieved documents (0.0 when none)."""
        return max((d.nv.recall for d in self.docs), default=0.0)
