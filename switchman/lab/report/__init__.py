"""The demo's report: time series, plots (PNG) and an HTML page under ``runs/demo-STAMP/``."""

from __future__ import annotations

from switchman.lab.report.model import DemoRun, Phase, StepResult
from switchman.lab.report.series import Bin, bin_samples, requested_at
from switchman.lab.report.writer import FIGURES, write_report

__all__ = ["FIGURES", "Bin", "DemoRun", "Phase", "StepResult", "bin_samples", "requested_at", "write_report"]
