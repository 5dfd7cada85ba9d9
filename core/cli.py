"""Command line: ``python -m core {index build|verify, run, report, cache show|clear, serve, demo}``.

Every :class:`PropMeError` becomes one line ``error: ...`` on stderr and exit code 2 (never a
traceback); Ctrl-C exits 130 and keeps what the cache already holds. Progress goes to stderr.
Everything printed (results, names, paths, error and log messages) goes through
:func:`core.reports.text.terminal_text`, so control and bidi characters from results, configs or
corpora are shown, not obeyed. A closed output pipe (``report --json | head``) ends quietly.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from core.errors import PropMeError
from core.jsonio import read_json
from core.progress import Cancelled, ProgressEvent
from core.reports.text import terminal_text

log = logging.getLogger(__name__)


def say(*parts: object, file: TextIO | None = None, end: str = "\n") -> None:
    """``print`` for every CLI output: the text is made safe for a terminal first."""
    print(terminal_text(" ".join(str(p) for p in parts)), file=file or sys.stdout, end=end)


class _SafeFormatter(logging.Formatter):
    """Log lines on stderr are terminal-safe too (they carry paths, names and messages from files)."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_text(super().format(record))


class TextProgress:
    """Renders progress events as a one-line text bar on a stream (redrawn in place on a terminal)."""

    def __init__(self, stream: TextIO | None = None, width: int = 30, min_interval_s: float = 0.2):
        self.stream = stream or sys.stderr
        self.width, self.min_interval_s = width, min_interval_s
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._stage, self._last = None, 0.0

    def line(self, e: ProgressEvent) -> str:
        """The bar for one event.

        >>> TextProgress(width=10).line(ProgressEvent("trace", 5, 10, "completions", 2.5, 2.0))
        'trace        [#####.....]  5/10 completions  2.5/s  eta 2s'
        """
        bar = "#" * round(e.fraction * self.width) if e.total else ""
        text = f"{e.stage:<12} [{bar.ljust(self.width, '.')}]  {e.done}/{e.total or '?'} {e.unit}"
        if e.rate:
            text += f"  {e.rate:.3g}/s"
        if e.eta_s is not None:
            text += f"  eta {e.eta_s:.0f}s"
        return text + (f"  {e.message}" if e.message else "")

    def __call__(self, e: ProgressEvent) -> None:
        now = time.monotonic()
        finished = bool(e.total) and e.done >= e.total
        if e.stage == self._stage and not finished and now - self._last < self.min_interval_s:
            return
        if self._stage is not None and e.stage != self._stage and self.tty:
            self.stream.write("\n")
        self._stage, self._last = e.stage, now
        line = terminal_text(self.line(e))
        if self.tty:
            self.stream.write("\r" + line + ("\n" if finished else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


# -- commands ----------------------------------------------------------------------------------------
def cmd_index_build(args: argparse.Namespace) -> int:
    from core.config import CorpusConfig
    from core.config.file import looks_like_local_path
    from core.corpus.load import load_corpus
    from core.corpus.report import describe_load
    from core.index.build import build_index
    from core.index.sharded import build_sharded_index
    from core.index.tokenizer import load_tokenizer

    if args.shard_tokens is not None and args.shard_tokens < 1:
        raise PropMeError(f"--shard-tokens must be at least 1, got {args.shard_tokens}")
    if args.memory_mb is not None and args.memory_mb < 64:
        raise PropMeError(f"--memory-mb must be at least 64, got {args.memory_mb}")
    if args.ray:  # before the corpus loads: without Ray installed, say at once how to get it
        from core.cluster import require_ray

        require_ray()
    if args.trust_remote_code:
        log.warning("--trust-remote-code is on: the tokenizer %s may run its own Python code on this machine",
                    args.tokenizer)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise PropMeError(f"--out {args.out} is a file; give a new or existing index folder")
    if looks_like_local_path(args.tokenizer) and not Path(args.tokenizer).expanduser().exists():
        raise PropMeError(f"--tokenizer {args.tokenizer}: no such folder; give the folder that holds "
                          "tokenizer.json (normally the evaluated model's folder) or a hub id (org/name)")
    cfg = CorpusConfig(path=args.corpus, format=args.format, text_field=args.text_field,
                       id_field=None if args.id_field == "" else args.id_field, sample_size=args.sample,
                       seed=args.seed, on_bad_rows=args.on_bad_rows)
    from core.corpus.limits import InputLimits

    limits = InputLimits.from_env(**{k: getattr(args, k) for k in ("max_unpacked_bytes", "max_line_bytes",
                                                                   "max_doc_bytes", "max_csv_columns")})
    progress = TextProgress()
    load = load_corpus(cfg, progress, limits)
    if load.problems or load.renamed:
        say(describe_load(load, args.out), file=sys.stderr)
    tok = load_tokenizer(args.tokenizer, trust_remote_code=args.trust_remote_code)
    memory = {} if args.memory_mb is None else {"max_memory_bytes": args.memory_mb << 20}
    from core.index.holdout import HoldoutConfig

    holdout = HoldoutConfig(docs=max(0, args.holdout_docs), seed=args.holdout_seed)
    if args.ray:
        from core.cluster.build import build_sharded_on_ray

        if args.holdout_docs:
            log.info("--ray: no documents are held out (a sharded index has no chance floor of its own yet)")

        index = build_sharded_on_ray(load.documents, tok, args.out, address=args.ray, shard_tokens=args.shard_tokens,
                                     storage=args.ray_storage, progress=progress, load=load, open_index=False,
                                     **memory)
        info = read_json(index)
        nodes = len(info["placement"]["nodes"])
        say(f"index {args.out}: {info['num_docs']} documents, {info['num_tokens']} tokens in {len(info['shards'])} "
            f"shards on {nodes} Ray node{'s' * (nodes != 1)} ({args.ray_storage} storage)")
        return 0
    if args.sharded or args.shard_tokens:
        if args.holdout_docs:
            log.info("--sharded: no documents are held out (a sharded index has no chance floor of its own yet)")
        index = build_sharded_index(load.documents, tok, args.out, shard_tokens=args.shard_tokens, parallel=args.cpus,
                                    progress=progress, load=load, **memory)
        layout = f" in {len(index.dirs)} shards"
    else:
        index = build_index(load.documents, tok, args.out, progress=progress, cpus=args.cpus, load=load,
                            holdout=holdout, **memory)
        held = index.manifest.get("holdout") or {}
        layout = f", {held.get('docs', 0)} held out as the chance floor" if held else ""
    say(f"index {args.out}: {index.num_docs} documents, {index.num_tokens} tokens{layout}, "
        f"fingerprint {index.fingerprint[:16]}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import dataclasses

    from core.config.file import load_experiment
    from core.reports.text import format_report
    from core.runs.cache import ResultCache
    from core.runs.demo import ensure_demo_index_for
    from core.runs.experiment import run_experiment

    cfg = load_experiment(args.config)
    print(f"loading {args.config} ...", file=sys.stderr, flush=True)  # at once: the model's imports take seconds
    if args.output_dir:
        cfg = dataclasses.replace(cfg, output_dir=args.output_dir)
    ensure_demo_index_for(cfg.index_dirs, TextProgress())  # the demo index is built on first use
    cache = ResultCache(args.cache_dir or cfg.cache_dir)
    run = run_experiment(cfg, progress=TextProgress(), cache=cache,
                         config_text=Path(args.config).read_text(encoding="utf-8"))
    c = run.manifest.counts
    say(f"results: {run.path}  ({c.generated} generated, {c.generations_from_cache} from "
        f"cache; {c.traced} traced, {c.traces_from_cache} from cache)")
    say(format_report(run))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from core.reports.text import format_report, report_dict, terminal_json
    from core.runs.results import load_results

    run = load_results(args.results_dir)
    if args.json:
        print(terminal_json(report_dict(run)))  # JSON-escaped, so it parses back to the same values
    else:
        say(format_report(run), end="")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from core.runs.cache import ResultCache, default_cache_path

    where = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_path()
    db = where if where.suffix in (".sqlite", ".db") or where.is_file() else where / "cache.sqlite"
    if not db.exists():  # show and clear never create a cache (or its folder)
        if args.cache_dir and not db.parent.is_dir():
            raise PropMeError(f"--cache-dir {args.cache_dir}: no such folder; give the cache folder a run used "
                              "(its cache_dir, or $PROPME_CACHE_DIR / ~/.cache/propme by default)")
        say(f"cache {db}: empty (nothing cached yet)" if args.action == "show" else f"nothing to clear: no cache at {db}")
        return 0
    cache = ResultCache(db)
    if args.action == "clear":
        before = cache.size_report()
        cache.clear(args.table)
        n = sum(t["entries"] for name, t in before["tables"].items() if args.table in (None, name))
        say(f"cleared {n} entries from {cache.path}")
        return 0
    rep = cache.size_report()
    say(f"cache {rep['path']}  ({rep['disk_bytes'] / 1e6:.2f} MB on disk)")
    for name, t in rep["tables"].items():
        say(f"  {name:<12} {t['entries']:>8} entries  {t['bytes'] / 1e6:10.2f} MB")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import importlib

    try:
        server = importlib.import_module("core.generation.server")
    except ModuleNotFoundError as e:
        if e.name != "core.generation.server":
            raise
        raise PropMeError("the model server (core/generation/server.py) is not part of this install") from None
    return int(server.main(list(args.server_args)) or 0)


def cmd_demo(args: argparse.Namespace) -> int:
    from core.runs import demo

    index = demo.ensure_demo_index(TextProgress(), rebuild=args.rebuild)
    say(f"demo index {demo.demo_index_dir()}: {index.num_docs} documents, {index.num_tokens} tokens")
    say(f"demo results: {demo.demo_results_dir()}  (re-run with: python -m core run {demo.demo_experiment_path()})")
    return 0


def cmd_index_verify(args: argparse.Namespace) -> int:
    """Every index file against its checksum, and the structural checks (core/index/verify.py)."""
    from core.index.verify import verify_full

    for r in verify_full(args.path):
        how = (f"{r.files} files ({r.bytes / 1e6:.1f} MB) match their checksums" if r.checksums else
               "no checksums recorded (a prebuilt index, or built before checksums were recorded): structural "
               "checks only; rebuild it to add them")
        say(f"ok {r.folder}: {how}; structure checked ({r.seconds:.2f} s)")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from core.config.reference import example_toml

    print(example_toml(), end="")
    return 0


# -- parser ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from core.runs.cache import TABLES

    p = argparse.ArgumentParser(prog="python -m core", description="PropMe Explorer: memorization audits of "
                                "language models (capability via prefix attacks vs propensity via natural prompts).")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details (INFO level) to stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    idx = sub.add_parser("index", help="build or verify corpus indexes",
                         description="Build infini-gram corpus indexes, or verify one.")
    isub = idx.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    b = isub.add_parser("build", help="tokenize a corpus and build its suffix-array index",
                        description="Tokenize a corpus with a tokenizer and build its suffix-array index.")
    b.add_argument("--corpus", required=True, help="corpus file or folder (JSONL[.gz/.zst], Parquet, CSV, .txt "
                   "folder, saved HF dataset) or hf:NAME")
    b.add_argument("--format", default="auto", choices=["auto", "jsonl", "parquet", "csv", "txt", "hf"],
                   help="corpus format (default: guessed from the path)")
    b.add_argument("--text-field", default="text", help="column/key holding the document text (default: text)")
    b.add_argument("--id-field", default="id", help="column/key holding the document id; '' for row numbers "
                   "(default: id)")
    b.add_argument("--sample", type=int, default=None, metavar="N", help="index a seeded sample of N documents "
                   "(default: all)")
    b.add_argument("--seed", type=int, default=42, help="seed of the sample (default: 42)")
    b.add_argument("--on-bad-rows", default="skip", choices=["skip", "stop"],
                   help="skip bad rows and list them (default), or stop at the first")
    b.add_argument("--tokenizer", required=True, help="tokenizer folder or hub id (normally the evaluated model's)")
    b.add_argument("--trust-remote-code", action="store_true", help="allow the tokenizer folder to run its own "
                   "code (only for tokenizers you trust)")
    b.add_argument("--cpus", type=int, default=None, help="parallel jobs of the suffix-array builder (default: "
                   "chosen from the corpus size; with --sharded: shards sorted at once, default every core)")
    b.add_argument("--sharded", action="store_true", help="build independent shards side by side (no global merge; "
                   "queries stay exact): for corpora whose one suffix array would not fit in --memory-mb")
    b.add_argument("--shard-tokens", type=int, default=None, metavar="N", help="tokens per shard (implies --sharded; "
                   "default: what keeps --cpus concurrent sorts within --memory-mb)")
    b.add_argument("--memory-mb", type=int, default=None, metavar="MB", help="RAM budget of suffix-array sorting "
                   "(default: 2048 for one index, 4096 for all shards sorted at once)")
    b.add_argument("--holdout-docs", type=int, default=20, metavar="N", help="hold N corpus documents (a seeded "
                   "sample, at most 20%% of the corpus) out of the index and write them beside it as the chance floor "
                   "every run on this index traces (experiment key [floor] holdout); 0: none (default: 20; not with "
                   "--sharded)")
    b.add_argument("--holdout-seed", type=int, default=42, help="seed of the held-out sample (default: 42)")
    for flag, default, what in (("--max-unpacked-bytes", "1 GiB", "bytes read from a corpus file after unpacking"),
                                ("--max-line-bytes", "16 MiB", "bytes of one JSONL line or CSV header"),
                                ("--max-doc-bytes", "16 MiB", "UTF-8 bytes of one document"),
                                ("--max-csv-columns", "10000", "columns of a CSV file")):
        b.add_argument(flag, type=int, default=None, metavar="N", help=f"stop reading past this many {what} "
                       f"(default {default}, or its PROPME_ environment variable; see core/corpus/limits.py)")
    b.add_argument("--ray", default=None, metavar="ADDRESS", help="build the shards as Ray tasks (implies --sharded): "
                   "'local' starts Ray on this machine (127.0.0.1), 'auto' joins this machine's cluster, or a cluster "
                   "address; --memory-mb is then each shard task's budget (needs requirements-cluster.txt)")
    b.add_argument("--ray-storage", default="shared", choices=["shared", "node-local"],
                   help="with --ray: --out is on a filesystem every node sees (shared), or on each node's own disk")
    b.add_argument("--out", required=True, help="output index folder")
    b.set_defaults(func=cmd_index_build)
    v = isub.add_parser("verify", help="check every file of an index against its checksum (and its structure)",
                        description="Hash every index file again and compare it with the checksum its build "
                        "recorded; check document offsets and a sample of the suffix array. Exit 2 on damage.")
    v.add_argument("path", metavar="PATH", help="index folder (or a folder of shard folders)")
    v.set_defaults(func=cmd_index_verify)

    r = sub.add_parser("run", help="run an experiment: generate, trace, score, write a results folder",
                       description="Run an experiment TOML: generate what the cache misses, trace, score, and "
                       "write the results folder output_dir/name.")
    r.add_argument("config", metavar="CONFIG.toml", help="experiment config: every key, its default and allowed "
                   "values are printed by `python -m core config --example`; demo/experiment.toml is a real one")
    r.add_argument("--cache-dir", default=None, help="cache folder (default: the config's cache_dir, else "
                   "$PROPME_CACHE_DIR or ~/.cache/propme)")
    r.add_argument("--output-dir", default=None, help="write the results folder here instead of the config's "
                   "output_dir")
    r.set_defaults(func=cmd_run)

    rep = sub.add_parser("report", help="print the metrics and PM table of a results folder",
                         description="Print metrics per setting with intervals, and the PM table.")
    rep.add_argument("results_dir", metavar="RESULTS_DIR", help="a results folder written by `run`")
    rep.add_argument("--json", action="store_true", help="print JSON instead of text tables")
    rep.set_defaults(func=cmd_report)

    c = sub.add_parser("cache", help="show or clear the persistent result cache",
                       description="Show the size of the persistent result cache, or clear it.")
    c.add_argument("action", choices=["show", "clear"], help="show: entries and bytes per table; clear: delete "
                   "entries")
    c.add_argument("--cache-dir", default=None, help="cache folder (default: $PROPME_CACHE_DIR or ~/.cache/propme)")
    c.add_argument("--table", default=None, choices=TABLES,
                   help="clear only this table (default: all)")
    c.set_defaults(func=cmd_cache)

    s = sub.add_parser("serve", help="serve a model over an OpenAI-compatible HTTP API (see core/generation/server.py)",
                       description="Serve a model over an OpenAI-compatible HTTP API; arguments go to core.generation.server.",
                       add_help=False)
    s.add_argument("server_args", nargs=argparse.REMAINDER, help="arguments of core.generation.server (try: serve --help)")
    s.set_defaults(func=cmd_serve)

    cf = sub.add_parser("config", help="print a complete, commented experiment file (every key and default)",
                        description="Print the experiment file reference: every key with its default and allowed "
                        "values, generated from the config dataclasses. Save it and edit: "
                        "python -m core config --example > experiment.toml")
    cf.add_argument("--example", action="store_true", required=True, help="print the commented example file")
    cf.set_defaults(func=cmd_config)

    d = sub.add_parser("demo", help="build the demo corpus index (first use) and show where the demo run is",
                       description="Prepare the shipped demo (toy model, corpus, prompt sets): build its index.")
    d.add_argument("--rebuild", action="store_true", help="rebuild the demo index even if it is up to date")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 user error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv[:1] == ["serve"]:  # everything after `serve` belongs to core.generation.server, --help included
        args = argparse.Namespace(verbose=False, func=cmd_serve, server_args=argv[1:])
    else:
        args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _reader_went_away()
    except PropMeError as e:
        say(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the file system refused (permissions, disk full, a file where a folder goes)
        where = f" {e.filename}" if e.filename else ""
        say(f"error: cannot read or write{where}: {e.strerror or e}; check the path, its permissions and free "
            "disk space", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Cancelled):
        say("interrupted: finished batches are in the cache; run the same command again to resume",
            file=sys.stderr)
        return 130


def _reader_went_away() -> int:
    """stdout's reader closed the pipe (``report --json | head``): nothing is wrong, stop quietly. stdout is
    pointed at /dev/null so Python's final flush does not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError) as e:  # no real stdout (e.g. a test's capture): nothing to redirect
        log.debug("stdout not redirected after a closed pipe: %s", e)
    return 0
