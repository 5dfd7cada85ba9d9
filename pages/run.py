"""Run: choose model, corpus, settings and decoding; run in the background with per-stage progress; open a results folder."""
from pathlib import Path

import streamlit as st

from app import form_store, paths, render, run_worker, runner, setting_form, state, widgets
from core.config import ExperimentConfig
from core.errors import PropMeError
from core.progress import ProgressEvent
from core.runs import form_checks
from core.runs.experiment_file import experiment_toml

OVERVIEW = Path(__file__).resolve().parent / "overview.py"
GOTO_OVERVIEW = "propme_run_goto_overview"  # session state: "Open these results" was pressed
CONFIRM = "propme_run_cancel_confirm"  # session state: Cancel was pressed once, waiting for the confirmation
START = "propme_run_start"  # session state: Run was pressed (the run starts once the form's values are read)
SEEN_ACTIVE = "propme_run_seen_active"  # session state: the job was running at the last poll
JOB_PARAM = "job"  # the page's URL names the job in view, so a reload (a new session) finds it again
FORM_PARAM = "form"  # ... and the form's values saved on the server (app/form_store.py): a reload finds them too
PRESET_SAVED = "__preset"  # the form's defaults (demo or cli), kept with its saved values


def _job_in_view() -> run_worker.JobStatus | None:
    """This session's job; after a browser reload (a new session), the job the page's URL names, if this server
    runs or ran it (its id is a random 128-bit token: only a URL it was shown in finds it)."""
    job_id = st.session_state.get(run_worker.JOB_KEY)
    named = st.query_params.get(JOB_PARAM, "")
    if job_id is None and run_worker.is_job_id(named) and run_worker.job_status(named) is not None:
        st.session_state[run_worker.JOB_KEY] = job_id = named
    job = run_worker.job_status(job_id)
    if job is not None and named != job.job_id:
        st.query_params[JOB_PARAM] = job.job_id
    return job


def _request_start() -> None:
    st.session_state[START] = True
    # sent before the page is drawn again: a status within a moment of the click, wherever the page is scrolled
    st.toast("Starting the run: checking the form, then loading the corpus index and the model ...")


def _open_new(path: str) -> None:
    state.open_results(path)
    st.session_state[GOTO_OVERVIEW] = True


def _status_panel() -> None:
    """Progress of this session's job: the latest event of each stage, polled every second while it runs."""
    job = run_worker.job_status(st.session_state.get(run_worker.JOB_KEY))
    if job is None:
        return
    if not job.active:
        if st.session_state.pop(SEEN_ACTIVE, False):
            st.rerun(scope="app")  # finished while this panel polled: redraw the page (Run button, results)
        return
    st.session_state[SEEN_ACTIVE] = True
    if job.state == run_worker.CANCELLING:
        st.markdown("**Cancelling** ...")
    else:
        st.markdown("**Running ...**")
    st.caption(render.md_literal(f"{job.elapsed_s:.0f} s so far"))
    for fraction, text in runner.stage_lines(job.job_id, job.stages, job.active):
        st.progress(fraction, text=render.md_literal(text))
    run_worker.shown(job.job_id)  # the status is out: the work may start
    if job.state != run_worker.RUNNING:
        return
    if not st.session_state.get(CONFIRM):
        st.button("Cancel", key="run_cancel", on_click=_confirm, args=(True,))
        return
    st.warning("Stop this run? Work finished so far stays in the result cache; pressing Run again with the same "
               "choices resumes from there.")
    c1, c2 = st.columns(2)
    c1.button("Yes, stop the run", key="run_cancel_yes", on_click=_cancel, args=(job.job_id,))
    c2.button("Keep running", key="run_cancel_no", on_click=_confirm, args=(False,))


def _confirm(asking: bool) -> None:
    st.session_state[CONFIRM] = asking


def _cancel(job_id: str) -> None:
    run_worker.cancel(job_id)
    st.session_state[CONFIRM] = False


def _finished(job: run_worker.JobStatus) -> None:
    if job.state == run_worker.DONE:
        st.success(render.md_literal(job.message))
        for w in job.result.warnings:
            st.warning(render.md_literal(w))
        st.button("Open these results", key="run_open_new", on_click=_open_new, args=(job.result.path,),
                  help="Show this run on the Overview page (and every other page).")
    elif job.state == run_worker.CANCELLED:
        st.warning(render.md_literal(job.message))
    else:
        st.error(render.md_literal(f"The run failed: {job.message}"))


def _export(corpus_kind, model, settings, decoding, trace, name, out_dir, index_path, corpus_path, root,
            problems, floor) -> None:
    """"Export the experiment file": the TOML `python -m core run` runs for the form's choices."""
    if problems:
        return
    note = ""
    if corpus_kind == "demo corpus":
        index_dirs = (str(runner.demo_index_dir()),)
    elif corpus_kind == "existing index folder":
        index_dirs = (str(paths.confine(index_path or "", root, what="index folder")),)
    elif corpus_kind == "corpus file path" and (corpus_path or "").strip():
        folder = f"{str(paths.confine(corpus_path, root, what='corpus file')).rstrip('/')}.index"
        index_dirs = (folder,)
        note = (f"# Build the corpus's index first:\n#   python -m core index build --corpus {corpus_path.strip()} "
                f"--tokenizer {model.name_or_path} --out {folder}\n")
    else:
        return  # an upload: the file is on the server only
    try:
        cfg = runner.checked_config(ExperimentConfig(name=name, model=model, index_dirs=index_dirs, settings=settings,
                                                     decoding=decoding, trace=trace, output_dir=out_dir, floor=floor),
                                    root)
    except PropMeError as e:
        render.caption(f"The experiment file cannot be exported yet: {e}")
        return
    st.download_button("Export the experiment file", note + experiment_toml(cfg), f"{cfg.name}.toml",
                       "application/toml", key="run_export_toml",
                       help="The TOML file `python -m core run FILE` runs for these choices (headless, e.g. on a GPU server).")


def _jobs_panel() -> None:
    """Every run this server started from the Run page (any tab or session): state, progress, Cancel, open."""
    listed = runner.jobs()
    if not listed:
        st.caption("No runs on this server yet.")
        return
    for entry, job in listed:
        with st.container(border=True, key=f"run_job_{entry.job_id[:12]}"):
            state_word = {"done": "finished"}.get(job.state, job.state)
            st.markdown(render.md_literal(f"{entry.name}: {state_word}, {job.elapsed_s:.0f} s") )
            render.caption(f"results folder: {entry.folder}")
            if job.active:
                for fraction, text in runner.stage_lines(job.job_id, job.stages, job.active)[-2:]:
                    st.progress(fraction, text=render.md_literal(text))
                st.button("Cancel", key=f"run_job_cancel_{entry.job_id[:12]}", on_click=run_worker.cancel,
                          args=(job.job_id,), disabled=job.state != run_worker.RUNNING,
                          help="Stop this run now; finished work stays in the result cache.")
            elif job.state == run_worker.DONE:
                st.button("Open these results", key=f"run_job_open_{entry.job_id[:12]}", on_click=_open_new,
                          args=(job.result.path,))
            elif job.message:
                render.caption(job.message)


if st.session_state.pop(GOTO_OVERVIEW, False):
    st.switch_page(OVERVIEW)

st.title("Run an experiment")
with render.page_boundary():
    job = _job_in_view()
    if job is not None and job.active:
        st.info("A run is in progress: its progress is shown below the form, and it keeps running while you "
                "visit other pages.")
    st.subheader("Open a results folder written by the CLI")
    st.text_input("Results folder path", key="run_open_path")
    st.button("Open", key="run_open", on_click=state.open_results_from, args=("run_open_path",))

    demo = runner.demo_info()
    presets = {"demo": runner.demo_defaults, "cli": runner.cli_defaults}
    demo_cfg = runner.demo_defaults() if demo else None
    preset = st.session_state.setdefault(widgets.RUN_PRESET, "demo" if demo else "cli")
    defaults = demo_cfg if preset == "demo" else runner.cli_defaults()
    kinds = (["demo corpus"] if demo else []) + ["existing index folder", "corpus file path", "upload a corpus file"]
    root = paths.data_root()
    form = {**runner.form_values(defaults), "run_corpus_kind": kinds[0], "run_name": "app-run",
            "run_out": str(root / "results") if root else "results/local", "run_index_path": "",
            "run_corpus_path": "", "run_model_path": "", "run_model_hub": "", "run_model_rev": "", "run_trust": False,
            "run_model_kind": "demo model" if demo else "local folder"}
    token = st.query_params.get(FORM_PARAM, "")
    if not form_store.is_token(token):
        token = form_store.new_token()
        st.query_params[FORM_PARAM] = token
    if not st.session_state.get(widgets.RUN_FORM):  # a new session (a reload): the form as this URL left it
        saved = form_store.load(token) or form_store.load(st.query_params.get(JOB_PARAM, ""))
        if saved:
            st.session_state[widgets.RUN_PRESET] = saved.pop(PRESET_SAVED, preset)
            st.session_state[widgets.RUN_FORM] = saved
            preset = st.session_state[widgets.RUN_PRESET]
            defaults = demo_cfg if preset == "demo" else runner.cli_defaults()
    widgets.seed_form(form)

    def _corpus_changed() -> None:  # picking the demo corpus loads the demo experiment's choices, others the CLI's
        new = "demo" if st.session_state.get("run_corpus_kind") == "demo corpus" else "cli"
        old = st.session_state.get(widgets.RUN_PRESET, "cli")
        if new != old:
            widgets.switch_defaults(runner.form_values(presets[old]()), runner.form_values(presets[new]()))
            st.session_state[widgets.RUN_PRESET] = new

    problems: list[str] = []

    def _check(problem: str | None) -> None:
        if problem:
            st.error(render.md_literal(problem))
            problems.append(problem)

    st.subheader("1. Model")
    model = widgets.model_picker(demo_cfg.model if demo_cfg else None)
    if st.session_state.get("run_model_kind") == "local folder":
        _check(form_checks.missing_path(st.session_state.get("run_model_path", ""), "model folder") or (
            None if st.session_state.get("run_model_path", "").strip() else "type the model folder"))
    st.subheader("2. Corpus")
    corpus_kind = st.radio("Corpus", kinds, horizontal=True, key="run_corpus_kind", on_change=_corpus_changed,
                           **widgets.seeded_kw("run_corpus_kind", kinds))
    corpus_path = index_path = upload = None
    if corpus_kind == "existing index folder":
        index_path = st.text_input("Index folder", key="run_index_path", **widgets.seeded_kw("run_index_path"))
        _check(form_checks.missing_path(index_path, "index folder"))
    elif corpus_kind == "corpus file path":
        corpus_path = st.text_input("Corpus file or folder (jsonl, parquet, csv, txt)", key="run_corpus_path", **widgets.seeded_kw("run_corpus_path"))
        _check(form_checks.missing_path(corpus_path, "corpus file"))
    elif corpus_kind == "upload a corpus file":
        upload = st.file_uploader("Corpus file", type=["jsonl", "json", "parquet", "csv", "txt", "zst"],
                                  key="run_upload")
    st.subheader("3. Settings, decoding, tracing")
    known_index = ((str(runner.demo_index_dir()),) if corpus_kind == "demo corpus" else
                   (index_path.strip(),) if corpus_kind == "existing index folder" and (index_path or "").strip() else None)
    choice = setting_form.settings_form(defaults.settings, demo.get("prompts", {}),
                                        st.session_state.get(widgets.RUN_FORM, {}), known_index)
    settings = choice.settings
    problems += choice.problems
    decoding = widgets.decoding_controls(defaults.decoding)
    trace = widgets.trace_controls(defaults.trace, key="run_trace", is_seeded=True)
    name = st.text_input("Run name", key="run_name", **widgets.seeded_kw("run_name"), help="One folder name: letters, digits, spaces, "
                         "- _ . and the like; no / \\ or leading '.'")
    _check(form_checks.run_name_problem(name))  # the folder-name rule, as typed (the run checks it again)
    out_dir = st.text_input("Output folder (results go to OUTPUT/NAME)", key="run_out", **widgets.seeded_kw("run_out"))
    widgets.keep_form([*form, *choice.keys])
    form_store.save(token, {**st.session_state[widgets.RUN_FORM], PRESET_SAVED: st.session_state[widgets.RUN_PRESET]})
    st.caption(render.md_literal(f"Defaults: {defaults.source}. Runs resume from the result cache: a cancelled "
                                 "or repeated run skips finished work."))

    def _start_if_asked(job):
        """Start the run when Run was pressed (and no run of this session is going); returns the job in view."""
        if not st.session_state.pop(START, False) or (job is not None and job.active):
            return job
        if problems:
            st.error(render.md_literal(f"Fix the form first: {'; '.join(problems)}"))
            return job
        upload_data = (upload.name, upload.getvalue()) if upload is not None else None
        chosen = runner.corpus_choice(corpus_kind, index_path, corpus_path, upload_data, root)
        if chosen is None:
            st.info("Choose a corpus file (path or upload) first.")
            return job
        corpus, index_dirs = chosen
        exempt = (demo.get("model"), *demo.get("prompts", {}).values(),
                  *(index_dirs if corpus_kind == "demo corpus" else ()))
        runner.check_output(name, out_dir, root)  # a bad run name or output folder: named by the path policy first
        checked = ExperimentConfig(name=name, model=model, index_dirs=index_dirs, settings=settings,
                                   decoding=decoding, trace=trace, output_dir=out_dir, floor=choice.floor)
        work = runner.plan(checked, corpus, root, exempt=tuple(p for p in exempt if p))
        st.session_state[run_worker.JOB_KEY] = job_id = runner.start_job(
            checked, work, ProgressEvent("starting", 0, 0, "steps",
                                         message="starting a worker process, then loading the corpus index and the model"))
        form_store.save(job_id, {**st.session_state[widgets.RUN_FORM], PRESET_SAVED: st.session_state[widgets.RUN_PRESET]})
        st.session_state[CONFIRM] = False
        st.query_params[JOB_PARAM] = st.session_state[run_worker.JOB_KEY]
        return run_worker.job_status(st.session_state[run_worker.JOB_KEY])

    run_slot = st.empty()  # the Run button: drawn after a start below (disabled at once), or after its error
    try:
        job = _start_if_asked(job)
    finally:
        run_slot.button("Run", type="primary", key="run_start", disabled=(job is not None and job.active) or bool(problems),
                        on_click=_request_start, help="Fix the fields marked in red first." if problems else None)
    if problems:
        st.warning(render.md_literal(f"Before Run: {'; '.join(problems)}"))
    _export(corpus_kind, model, settings, decoding, trace, name, out_dir, index_path, corpus_path, root, problems,
            choice.floor)

    if job is not None and job.active:
        st.fragment(_status_panel, run_every=1.0)()
    elif job is not None:
        _finished(job)

    st.subheader("Runs on this server")
    st.fragment(_jobs_panel, run_every=1.0)()
