"""report.html in a real headless browser (Debian's chromium driven by Playwright; skipped without them)."""

from __future__ import annotations

import pytest

from autonad.report import REPORT_NAME
from autonad.report.browser import find_chromium, open_in_browser

pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
if find_chromium() is None:
    pytest.skip("no Chromium installed (Debian: apt install chromium; .ci/run installs it)", allow_module_level=True)

SECTIONS = ("dataset", "recipe", "device", "curves", "search", "pareto", "prior", "arch", "metrics", "confusion",
            "failures", "files")  # fmt: skip


def test_report_renders_offline_with_every_section_and_image(search_run, tmp_path):
    run, _ = search_run
    shot = tmp_path / "report.png"
    check = open_in_browser(run / REPORT_NAME, shot)
    assert check.errors == [] and check.requests == []
    assert all(check.sections.get(s) for s in SECTIONS), check.sections
    assert len(check.images) >= 7 and all(check.images.values()), check.images
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_broken_page_is_caught(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<html><body><section id="x"><img alt="gone" src="missing.png"></section>'
                    "<script>undefined_function()</script></body></html>")  # fmt: skip
    check = open_in_browser(page)
    assert check.images == {"gone": False} and any("undefined_function" in e for e in check.errors)
    assert any(r.endswith("missing.png") for r in check.requests)
