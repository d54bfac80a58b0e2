"""Run reports: a self-contained report.html per run folder and the test evaluation it shows."""

from autonad.report.build import REPORT_NAME, report_run, run_split_file, write_report
from autonad.report.evaluation import evaluate_for_report, load_evaluation

__all__ = ["REPORT_NAME", "evaluate_for_report", "load_evaluation", "report_run", "run_split_file", "write_report"]
