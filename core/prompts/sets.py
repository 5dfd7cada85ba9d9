"""User prompt sets: JSONL files with ``text`` (required), optional ``domain`` and optional ``id``.

Rows are read with the corpus JSONL reader (:func:`core.corpus.load.iter_jsonl`), so a bad line is
reported as a :class:`~core.corpus.load.RowProblem` with its line number instead of costing the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.corpus.load import (
    LISTED_PROBLEMS,
    RowProblem,
    check_on_bad_rows,
    describe_problems,
    iter_jsonl,
    kind,
    text_problem,
)
from core.errors import CorpusError, PromptSetError
from core.records import Prompt


@dataclass(frozen=True)
class PromptSetLoad:
    prompts: tuple[Prompt, ...]  # in file order
    problems: tuple[RowProblem, ...]


def _to_prompt(obj: dict, line: int, setting: str) -> Prompt | str:
    if "text" not in obj:
        return f"missing field 'text' (fields present: {sorted(obj)[:10]})"
    if reason := text_problem(obj["text"], "field 'text'"):
        return reason
    domain = obj.get("domain")
    if domain is not None and (reason := text_problem(domain, "field 'domain'")):
        return reason
    raw_id = obj.get("id")
    if raw_id is None:
        prompt_id = f"{setting}-{line:04d}"
    elif isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        return f"field 'id' is {kind(raw_id)}, expected a string or integer"
    elif reason := text_problem(str(raw_id), "field 'id'"):
        return reason
    else:
        prompt_id = str(raw_id)
    return Prompt(setting=setting, prompt_id=prompt_id, text=obj["text"], domain=domain)


def load_prompt_set(path: str | Path, setting: str, on_bad_rows: str = "skip") -> PromptSetLoad:
    """Prompts of a JSONL prompt set, for ``setting``; ids default to ``f"{setting}-{line:04d}"``.

    Bad rows (not JSON, no non-empty string ``text``, a non-string ``domain``, a duplicate id) are
    returned as problems (``on_bad_rows="skip"``) or raise PromptSetError listing them
    (``"stop"``). A missing, empty or binary file, or one with no valid prompt, raises
    PromptSetError naming the file.
    """
    check_on_bad_rows(on_bad_rows)
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise PromptSetError(f"prompt set {path}: the file is empty; write one JSON object per line with a "
                             "non-empty 'text' field, or point prompts_path at another file")
    prompts: list[Prompt] = []
    problems: list[RowProblem] = []
    first_line: dict[str, int] = {}
    try:
        for line, obj, reason in iter_jsonl(path):
            prompt = _to_prompt(obj, line, setting) if reason is None else reason
            if isinstance(prompt, Prompt) and first_line.setdefault(prompt.prompt_id, line) != line:
                prompt = f"duplicate id {prompt.prompt_id[:80]!r} (first seen at line {first_line[prompt.prompt_id]})"
            if isinstance(prompt, str):
                problems.append(RowProblem(str(path), line, prompt))
                if on_bad_rows == "stop" and len(problems) >= LISTED_PROBLEMS:
                    break
            else:
                prompts.append(prompt)
    except CorpusError as e:
        raise PromptSetError(f"prompt set {path}: {e}") from e
    if problems and on_bad_rows == "stop":
        raise PromptSetError(f"{len(problems)} bad row(s) in prompt set {path}:\n{describe_problems(problems)}\n"
                             "Fix these rows, or use on_bad_rows='skip' to skip them and get them reported.")
    if not prompts:
        detail = f"; first problems:\n{describe_problems(problems)}" if problems else " (only blank lines)"
        raise PromptSetError(f"prompt set {path} holds no valid prompt{detail}\n"
                             "Each line must be a JSON object with a non-empty string 'text'.")
    return PromptSetLoad(tuple(prompts), tuple(problems))
