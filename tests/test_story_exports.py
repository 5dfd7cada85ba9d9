"""Exports a script can rely on (issue 22): summary column names that do not change with the thresholds
(the data dictionary names the thresholds), R_N with its bootstrap interval like ALS, FMR and NVR, a
distinct file name per download, and a ``config.toml`` in every results folder the app writes
(``core/runs/experiment_file.py``: read back by ``load_experiment`` to the same config)."""
from __future__ import annotations

import ast
from pathlib import Path

from core.config import (
    DecodingConfig,
    ExperimentConfig,
    FloorConfig,
    MetricsConfig,
    ModelConfig,
    SettingConfig,
    TraceConfig,
)
from core.config.file import load_experiment
from core.reports import exports
from core.runs.experiment_file import experiment_toml
from core.scoring import registry
from core.scoring.bootstrap import bootstrap_intervals
from tests.fixtures_app import make_run
from tests.test_exports import scored

ROOT = Path(__file__).resolve().parents[1]


def test_summary_columns_do_not_change_with_the_thresholds():
    run = make_run()
    frames = []
    for cfg in (MetricsConfig(span_threshold=30, nv_threshold=0.3, bootstrap_samples=300),
                MetricsConfig(span_threshold=50, nv_threshold=0.6, discoverable_tokens=20, bootstrap_samples=300)):
        values, intervals, _, by_setting, floors = scored(run, cfg)
        r_n = {s: bootstrap_intervals(run.by_setting(s)[1], cfg, run.by_setting(s)[0], metrics=("r_n",))
               for s in run.settings()}
        both = {s: {**intervals[s], **r_n[s]} for s in run.settings()}
        frame = exports.summary_frame(values, both, by_setting, cfg, floors)
        frames.append(frame)
        rows = frame.set_index("Setting")
        r_col = registry.column("r_n")
        for s in run.settings():  # R_N with its interval, each number the bootstrap's own
            assert rows.loc[s, r_col] == round(values[s]["r_n"], 6)
            assert rows.loc[s, r_col + exports.LOW] == round(r_n[s]["r_n"].lo, 6)
            assert rows.loc[s, r_col + exports.HIGH] == round(r_n[s]["r_n"].hi, 6)
        meaning = exports.data_dictionary(frame, cfg).set_index("column")["meaning"]  # the thresholds are named there
        assert meaning[r_col].endswith(f"span_threshold = {cfg.span_threshold}")
        assert "upper end" in meaning[r_col + exports.HIGH]
    assert list(frames[0].columns) == list(frames[1].columns)
    assert not [c for c in frames[0].columns if any(str(n) in c for n in (30, 50, 0.3, 0.6, 20))]


def test_every_download_of_the_export_page_has_its_own_file_name():
    """The file names the Export page gives its download buttons (read from its source) are all different."""
    tree = ast.parse((ROOT / "pages" / "export.py").read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "download_button":
            arg = node.args[2]
            assert isinstance(arg, ast.Call) and arg.func.id == "fname", ast.unparse(arg)
            names.append(tuple(a.value for a in arg.args))
    assert len(names) == 9 and len(set(names)) == len(names), names
    files = {exports.download_name("demo", what, ext) for what, ext in names}
    assert len(files) == len(names) and all(f.startswith("propme-demo-") for f in files)


def test_config_toml_of_a_run_from_the_app_reads_back_to_the_same_config(tmp_path):
    cfg = ExperimentConfig(
        "app run", ModelConfig(str(tmp_path / "model"), device="cpu", dtype="float32"),
        (str(tmp_path / "ix1"), str(tmp_path / "ix2")),
        (SettingConfig("prefix", n_prompts=7, prefix_tokens=20), SettingConfig("minimal-cue", cue_words=("The", "A")),
         SettingConfig("generic", prompts_path=str(tmp_path / "g.jsonl"), prompt_format="chat",
                       system_prompt='Be "brief", ünïcode ok'),
         SettingConfig("held", prompts_path=str(tmp_path / "f.jsonl"), kind="floor")),
        DecodingConfig(temperature=0.7, top_p=0.95, num_samples=3, max_new_tokens=64),
        TraceConfig(mode="text", workers=2), MetricsConfig(span_threshold=30, k_values=(1, 3)),
        output_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"), floor=FloorConfig(holdout=False))
    (tmp_path / "model").mkdir()
    path = tmp_path / "config.toml"
    path.write_text(experiment_toml(cfg), encoding="utf-8")
    assert load_experiment(path) == cfg
    assert load_experiment(path).metrics.nv_blocks == cfg.metrics.nv_blocks


def test_a_run_from_the_app_writes_config_toml(tmp_path, monkeypatch):
    """app/runner.execute (what the Run page's worker runs) leaves config.toml in the results folder."""
    import dataclasses

    from app import runner
    from tests.fixtures_runs import make_tiny_experiment

    cfg = load_experiment(make_tiny_experiment(tmp_path))
    cfg = dataclasses.replace(cfg, output_dir=str(tmp_path / "out"))
    result = runner.execute(cfg, runner.CorpusChoice("index", cfg.index_dirs[0]), None, None)
    folder = Path(result.path)
    assert load_experiment(folder / "config.toml") == cfg
