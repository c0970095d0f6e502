"""Headless Chromium opens the demo run's reports offline: no network request, no missing resource,
and a screenshot that is not blank (Debian's ``chromium``; skipped, with the reason, when absent)."""

from __future__ import annotations

import io
from html.parser import HTMLParser

import numpy as np
import pytest

from .chromium import Chromium, find_chromium

pytestmark = pytest.mark.integration
CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")


class _Resources(HTMLParser):
    """Every URL an HTML document would load (src/href of loading tags, url() in styles)."""

    LOADING = {"img", "script", "iframe", "source", "video", "audio", "embed", "object", "link", "input", "track"}

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in self.LOADING:
            self.urls += [attrs[k] for k in ("src", "href", "data", "poster") if attrs.get(k)]
        if "url(" in (attrs.get("style") or ""):
            self.urls.append(attrs["style"])


def loaded_urls(html: str) -> list[str]:
    parser = _Resources()
    parser.feed(html)
    return parser.urls


def check_page(browser, path):
    """Open ``path``; assert offline-clean; return the screenshot as an RGB array."""
    from PIL import Image

    page = path.resolve().as_uri()
    result = browser.open(page)
    external = [u for u in result["requests"] if not (u == page or u.startswith(("data:", "about:")))]
    assert not external, f"{path.name}: requests outside the file: {external}"
    assert not result["failed"], f"{path.name}: failed loads: {result['failed']}"
    assert not result["errors"], f"{path.name}: console errors: {result['errors']}"
    return np.asarray(Image.open(io.BytesIO(result["png"])).convert("RGB"))


def not_blank(pixels) -> tuple[float, int]:
    """Fraction of non-white pixels and number of distinct colours of a screenshot."""
    nonwhite = float((pixels.min(axis=2) < 240).mean())
    colours = len(np.unique(pixels.reshape(-1, 3)[::7], axis=0))
    return nonwhite, colours


@needs_chromium
def test_reports_open_offline_and_render(demo_run):
    out = demo_run["out"]
    pages = sorted(out.glob("sub-*.html")) + [out / "group" / "group.html"]
    assert len(pages) == 7
    with Chromium(CHROMIUM) as browser:
        for path in pages:
            html = path.read_text()
            assert all(u.startswith(("data:", "#")) for u in loaded_urls(html)), path
            pixels = check_page(browser, path)
            nonwhite, colours = not_blank(pixels)
            assert nonwhite > 0.02 and colours > 8, f"{path.name}: screenshot looks blank ({nonwhite:.3f}, {colours})"
    group_html = (out / "group" / "group.html").read_text()
    assert group_html.count("data:image/svg+xml;base64,") >= 5  # models, ROC, confusion, reliability, learning


@needs_chromium
def test_checker_catches_missing_and_remote_resources(tmp_path):
    """The same checks fail on a page with a missing file and a remote image (they can fail)."""
    page = tmp_path / "bad.html"
    page.write_text('<html><body><p>x</p><img src="missing.png"><img src="https://example.invalid/a.png"></body></html>')
    assert loaded_urls(page.read_text()) == ["missing.png", "https://example.invalid/a.png"]
    with Chromium(CHROMIUM) as browser:
        with pytest.raises(AssertionError, match="requests outside the file"):
            check_page(browser, page)
        blank = tmp_path / "blank.html"
        blank.write_text("<html><body></body></html>")
        assert not_blank(check_page(browser, blank)) == (0.0, 1)
