"""``python -m core index build`` and ``python -m core index verify``: the command line's index commands
(:mod:`core.cli` adds them to its parser with :func:`add_index_commands`)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from core.cli_output import TextProgress, say
from core.errors import PropMeError
from core.jsonio import read_json

log = logging.getLogger(__name__)


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


def cmd_index_verify(args: argparse.Namespace) -> int:
    """Every index file against its checksum, and the structural checks (core/index/verify.py)."""
    from core.index.verify import verify_full

    for r in verify_full(args.path):
        how = (f"{r.files} files ({r.bytes / 1e6:.1f} MB) match their checksums" if r.checksums else
               "no checksums recorded (a prebuilt index, or built before checksums were recorded): structural "
               "checks only; rebuild it to add them")
        say(f"ok {r.folder}: {how}; structure checked ({r.seconds:.2f} s)")
    return 0


def add_index_commands(sub) -> None:
    """The ``index`` command and its ``build`` and ``verify`` actions on the CLI's subparsers ``sub``."""
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
