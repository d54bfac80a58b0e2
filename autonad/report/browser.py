"""Open a report in a real headless browser (Playwright driving an installed Chromium: nothing is
downloaded) to check that it renders offline, and to take a screenshot of it."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from autonad.errors import AutoNADError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


@dataclass
class BrowserCheck:
    """What the browser saw: console errors, requests other than the page itself and inline data, the
    sections it laid out (id -> visible) and the images it decoded (alt -> decoded)."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    sections: dict[str, bool] = field(default_factory=dict)
    images: dict[str, bool] = field(default_factory=dict)


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def check_browser() -> str:
    """The Chromium to drive, or one line saying what is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        raise AutoNADError("a browser check needs Playwright: pip install playwright (no browser download)") from None
    chromium = find_chromium()
    if chromium is None:
        raise AutoNADError("a browser check needs an installed Chromium (Debian: apt install chromium)")
    return chromium


def open_in_browser(html: Path, screenshot: Path | None = None, width: int = 1200) -> BrowserCheck:
    """Load `html` from disk in headless Chromium; write a full-page PNG to `screenshot` if given."""
    from playwright.sync_api import sync_playwright

    chromium = check_browser()
    url = html.resolve().as_uri()
    check = BrowserCheck()
    with sync_playwright() as p:
        sandbox = [] if os.geteuid() else ["--no-sandbox"]  # Chromium refuses its sandbox to root
        browser = p.chromium.launch(executable_path=chromium, args=sandbox)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m: check.errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: check.errors.append(str(e)))
            page.on(
                "request", lambda r: None if r.url == url or r.url.startswith("data:") else check.requests.append(r.url)
            )
            page.goto(url, wait_until="load")
            check.sections = {s.get_attribute("id"): s.is_visible() for s in page.locator("section").all()}
            decoded = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])")
            check.images = dict(decoded)
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return check
