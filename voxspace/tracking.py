"""Experiment tracking with trackio: one trackio run per training run, local unless the user opts in.

    tracker = TrackioTracker(run_name="alice-1", trackio_dir=settings.data_dir / "trackio")
    Trainer(..., tracker=tracker)          # the trainer calls start/log/finish once per slice
    url = dashboard(settings.data_dir / "trackio")

Metrics land in SQLite at <trackio_dir>/voxspace.db with no network connection. Only when
`sync_space_id` is given (the user asked for it) does trackio sync to that Space of theirs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PROJECT = "voxspace"


def _trackio(trackio_dir: str | Path) -> Any:
    """Import trackio with its storage folder set (trackio reads TRACKIO_DIR once, at import)."""
    import sys

    if "trackio" not in sys.modules:
        os.environ.setdefault("TRACKIO_DIR", str(trackio_dir))  # an explicit TRACKIO_DIR wins
    import trackio

    from voxspace.quiet import prints_to_log

    prints_to_log("trackio")  # its banner would print on every init/finish (4x a run): log it once
    return trackio


def trackio_dir_in_use() -> Path:
    """The folder trackio actually writes to in this process (fixed at its first import)."""
    from trackio.utils import TRACKIO_DIR

    return Path(TRACKIO_DIR)


class TrackioTracker:
    """Logs a run's config and per-step metrics; resumes the same trackio run in every slice."""

    def __init__(
        self,
        run_name: str,
        *,
        trackio_dir: str | Path,
        project: str = PROJECT,
        sync_space_id: str | None = None,
    ) -> None:
        self.run_name = run_name
        self.trackio_dir = Path(trackio_dir)
        self.project = project
        self.sync_space_id = sync_space_id
        self._run: Any = None

    def start(self, config: dict[str, Any]) -> None:
        self.trackio_dir.mkdir(parents=True, exist_ok=True)
        trackio = _trackio(self.trackio_dir)
        self._run = trackio.init(
            project=self.project,
            name=self.run_name,
            config=config,
            resume="allow",
            space_id=self.sync_space_id,
            embed=False,
            auto_log_gpu=False,
            auto_log_cpu=False,
        )

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self._run is not None:
            self._run.log(metrics, step=step)

    def finish(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None

    def log_eval(self, report: Any, step: int) -> None:
        """WER/CER before and after, as one more logged point of this run."""
        self.start({})
        metrics = {"eval/wer_before": report.wer_before, "eval/cer_before": report.cer_before}
        if report.wer_after is not None:
            metrics.update({"eval/wer_after": report.wer_after, "eval/cer_after": report.cer_after})
        self.log(metrics, step=step)
        self.finish()


_DASHBOARD: dict[str, Any] = {}


def dashboard(trackio_dir: str | Path, *, port: int | None = None) -> str:
    """Start trackio's dashboard for the voxspace project (once per process); returns its local URL."""
    if "url" not in _DASHBOARD:
        trackio = _trackio(trackio_dir)
        server, url, *_ = trackio.show(
            project=PROJECT, open_browser=False, block_thread=False, server_port=port
        )
        _DASHBOARD.update(server=server, url=str(url))
    return _DASHBOARD["url"]


def close_dashboard() -> None:
    if (server := _DASHBOARD.pop("server", None)) is not None:
        server.close()
    _DASHBOARD.clear()
