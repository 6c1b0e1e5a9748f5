"""make present: Voila serves 02_shapes offline; a slider move updates the figure; nothing is
fetched from outside this machine. The index page links every walkthrough."""

import pytest
from labharness import ROOT, Voila, chromium_page, outside_requests, poll, require_chromium, screenshot
from speed import scaled

pytestmark = pytest.mark.browser


def test_voila_serves_02_shapes_offline_and_the_slider_works(tmp_path):
    require_chromium()
    server = Voila(ROOT / "notebooks" / "02_shapes.ipynb")
    try:
        with chromium_page(tmp_path) as page:
            page.goto(server.url(""), timeout=scaled(180) * 1000)
            box = page.locator(".widget-vbox:has(label:text-is('input W'))").first
            img = box.locator(".widget-output img").first
            img.wait_for(timeout=scaled(180) * 1000)
            before = img.get_attribute("src")
            handle = box.locator(".widget-slider:has(label:text-is('input W')) .noUi-handle")
            handle.focus()
            handle.press("ArrowRight")
            # the Output draws a new <img> each time: poll its src
            poll(lambda: box.locator(".widget-output img").first.get_attribute("src") != before,
                 60, "the figure was redrawn")
            assert "import fcconv" not in page.inner_text("body")           # code hidden
            assert not outside_requests(page), outside_requests(page)
            assert "Traceback" not in page.inner_text("body")
            screenshot(page, "present_02_shapes")
        log = (server.tmp / "voila.log").read_text()  # make present's terminal: nothing alarming
        assert "WARNING" not in log and "cannot be longer" not in log, log
    finally:
        server.stop()


def test_index_page_links_every_walkthrough(tmp_path):
    require_chromium()
    server = Voila(ROOT / "notebooks")
    try:
        with chromium_page(tmp_path) as page:
            page.goto(server.url(""), timeout=scaled(60) * 1000)
            names = [p.name for p in (ROOT / "notebooks").glob("0*.ipynb")]
            listed = lambda: all(n in page.inner_text("body") for n in names)  # noqa: E731
            # the listing is drawn by the page's script: on a busy machine, once more after a reload
            if not poll(listed, 30, "the index page lists every walkthrough", fail=False):
                page.reload(timeout=scaled(60) * 1000)
                poll(listed, 60, "the index page lists every walkthrough", fail=False)
            screenshot(page, "present_index")
            text = page.inner_text("body")
            missing = [n for n in names if n not in text]
            assert not missing, (missing, (server.tmp / "voila.log").read_text()[-3000:])
            assert not outside_requests(page), outside_requests(page)
    finally:
        server.stop()
