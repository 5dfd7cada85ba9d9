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
from collections.abc import Sequence
from pathlib import Path

from core.cli_index import add_index_commands
from core.cli_output import SafeFormatter, TextProgress, say
from core.errors import PropMeError
from core.progress import Cancelled

log = logging.getLogger(__name__)


# -- commands ----------------------------------------------------------------------------------------
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

    add_index_commands(sub)

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
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
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
