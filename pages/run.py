"""Run: choose model, corpus, settings and decoding; run with per-stage progress; open a results folder."""
import streamlit as st

from app import cached, paths, render, runner, state, widgets
from core.config import ExperimentConfig, TraceConfig
from core.progress import Cancelled
from core.runs.experiment import run_experiment

st.title("Run an experiment")
with render.page_boundary():
    st.subheader("Open a results folder written by the CLI")
    st.text_input("Results folder path", key="run_open_path")
    st.button("Open", key="run_open", on_click=state.open_results_from, args=("run_open_path",))

    demo = runner.demo_info()
    st.subheader("1. Model")
    model = widgets.model_picker(demo.get("model"))
    st.subheader("2. Corpus")
    kinds = (["demo corpus"] if demo else []) + ["existing index folder", "corpus file path", "upload a corpus file"]
    corpus_kind = st.radio("Corpus", kinds, horizontal=True, key="run_corpus_kind")
    corpus_path = index_path = upload = None
    if corpus_kind == "existing index folder":
        index_path = st.text_input("Index folder", key="run_index_path")
    elif corpus_kind == "corpus file path":
        corpus_path = st.text_input("Corpus file or folder (jsonl, parquet, csv, txt)", key="run_corpus_path")
    elif corpus_kind == "upload a corpus file":
        upload = st.file_uploader("Corpus file", type=["jsonl", "json", "parquet", "csv", "txt", "zst"],
                                  key="run_upload")
    st.subheader("3. Settings, decoding, tracing")
    settings = widgets.settings_picker(prompt_paths=demo.get("prompts", {}))
    decoding = widgets.decoding_controls()
    trace = widgets.trace_controls(TraceConfig(), key="run_trace")
    name = st.text_input("Run name", "app-run", key="run_name", help="One folder name: letters, digits, spaces, "
                         "- _ . and the like; no / \\ or leading '.'")
    root = paths.data_root()
    out_dir = st.text_input("Output folder (results go to OUTPUT/NAME)",
                            str(root / "results") if root else "results/local", key="run_out")

    c1, c2 = st.columns(2)
    start = c1.button("Run", type="primary", key="run_start")
    c2.button("Cancel", key="run_cancel", on_click=state.cancel_event().set)
    if not start:
        st.caption("Runs resume from the result cache: a cancelled or repeated run skips finished work.")
        st.stop()

    cancel = state.cancel_event()
    cancel.clear()
    box = st.container()
    bars = {}

    def show(e):
        if e.stage not in bars:
            bars[e.stage] = box.progress(0.0)
        bars[e.stage].progress(e.fraction, text=render.md_literal(runner.describe(e)))

    progress = runner.progress_callback(cancel, show)
    runner.check_output(name, out_dir, root)  # a bad run name or output folder fails before any work
    if corpus_kind == "demo corpus":
        index_dirs = (str(cached.demo_index().dirs[0]),)
    elif index_path is not None:
        index_dirs = (str(paths.confine(index_path, root)),)
    else:
        if upload is not None:
            source = runner.save_upload(upload.name, upload.getvalue(), paths.work_dir(root) / "uploads")
        elif corpus_path:
            source = paths.confine(corpus_path, root)
        else:
            st.info("Choose a corpus file (path or upload) first.")
            st.stop()
        folder, load = runner.index_for_corpus(str(source), model.name_or_path, progress,
                                               paths.work_dir(root) / "app-indexes")
        if load.problems or load.renamed:
            st.warning(render.md_literal(
                f"{len(load.problems)} corpus row(s) skipped and {len(load.renamed)} repeated id(s) kept under a new "
                "id: the first are listed below, all of them in the files beside the index."))
            render.plain(runner.corpus_report_text(load, folder))
        index_dirs = (str(folder),)
    exempt = (demo.get("model"), *demo.get("prompts", {}).values(), *(index_dirs if corpus_kind == "demo corpus" else ()))
    cfg = runner.checked_config(ExperimentConfig(name=name, model=model, index_dirs=index_dirs, settings=settings,
                                                 decoding=decoding, trace=trace, output_dir=out_dir),
                                root, exempt=tuple(p for p in exempt if p))
    try:
        result = run_experiment(cfg, progress=progress)
    except Cancelled as e:
        st.warning(render.md_literal(f"Run {e}. Finished work is cached: press Run again to resume."))
        st.stop()
    st.success(render.md_literal(f"Done: {len(result.generations)} completions in {result.path}."))
    for setting, skip in result.manifest.skipped_rows.items():
        st.warning(render.md_literal(f"{setting}: {skip.count} prompt row(s) skipped in {skip.file}; "
                                      f"first: {skip.first}"))
    st.button("Open these results", key="run_open_new", on_click=state.open_results, args=(result.path,))
