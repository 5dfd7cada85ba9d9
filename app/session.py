"""The run in view under this session's thresholds: the one view the pages read.

:func:`view` gives a :class:`RunView`: the run, the thresholds in force (tuned on the Thresholds page,
else the run's), its settings and chance floors, and, from the caches of :mod:`app.cached`, the traces
as scored (nv_recall under the session's block thresholds), the traces the metrics score (loops and
prompt echo out), the metrics, intervals and PM. Pages ask the view; they do not assemble scored traces
or cache keys themselves.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from app import cached, state
from core.config import MetricsConfig
from core.records import TraceResult
from core.reports.story import floor_settings


@dataclass(frozen=True)
class RunView:
    ident: str  # the run's identity (cached.run_id; a re-traced run's carries the trace config)
    run: object  # core.runs.results.RunResults
    cfg: MetricsConfig  # the thresholds in force for this run in this session
    tuned: bool  # whether they were tuned in this session (else the run's own)

    @cached_property
    def settings(self) -> tuple[str, ...]:
        return tuple(self.run.settings())

    @cached_property
    def floors(self) -> tuple[str, ...]:
        """The chance-floor settings (no PM for them)."""
        return floor_settings(self.run.manifest, self.settings)

    @cached_property
    def natural(self) -> tuple[str, ...]:
        """The settings compared against the attack (PM): every setting but the floors."""
        return tuple(s for s in self.settings if s not in self.floors)

    @property
    def traces(self) -> tuple[TraceResult, ...]:
        """Every trace, nv_recall under the session's block thresholds (what the exports list)."""
        return cached.rescored_traces(self.ident, self.cfg, self.run)

    @property
    def scored(self) -> tuple[TraceResult, ...]:
        """The traces the metrics score: degenerate loops and prompt-echo spans out, as the thresholds say."""
        return cached.kept_traces(self.ident, self.cfg, self.run)

    def metrics(self) -> dict[str, dict[str, float | None]]:
        """{setting: every metric} under the session's thresholds."""
        return {s: cached.setting_metrics(self.ident, s, self.cfg, self.run) for s in self.settings}

    def intervals(self, metrics: tuple[str, ...], settings: tuple[str, ...] | None = None) -> dict[str, dict]:
        """{setting: {metric: 95% interval}} of ``metrics``, for every setting or only ``settings``."""
        return {s: cached.setting_intervals(self.ident, s, self.cfg, tuple(metrics), self.run)
                for s in (self.settings if settings is None else settings)}

    def pm(self, metric: str, intervals: bool = True) -> dict:
        """{natural setting: PMResult} of ``metric`` against the attack ({} without one); point values only
        when ``intervals`` is False (cheap: tiles and sentences)."""
        get = cached.pm_intervals if intervals else cached.pm_values
        return get(self.ident, self.natural, metric, self.cfg, self.run)


def view() -> RunView:
    """The run in view under this session's thresholds (st.info + stop when no folder is open)."""
    ident, run = state.current_run()
    return of(ident, run)


def of(ident: str, run) -> RunView:
    """The view of a given run (a re-traced one, say) under this session's thresholds for it."""
    return RunView(ident, run, state.metrics_config(ident, run), state.thresholds_tuned(ident))
