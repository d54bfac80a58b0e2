"""Run reports: a self-contained report.html per run folder and the test evaluation it shows."""

from autonad.report.build import (
    REPORT_NAME,
    reevaluate_run,
    report_run,
    report_search_run,
    run_split_file,
    write_report,
)
from autonad.report.evaluation import evaluate_for_report, load_evaluation

__all__ = ["REPORT_NAME", "evaluate_for_report", "load_evaluation", "reevaluate_run", "report_run",
           "report_search_run", "run_split_file", "write_report"]  # fmt: skip
