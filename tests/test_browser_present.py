"""make present: Voila serves 02_shapes offline; a slider move updates the figure; nothing is
fetched from outside this machine. The index page links every walkthrough."""

import pytest
from labharness import ROOT, Voila, chromium_page, outside_requests, require_chromium, screenshot

pytestmark = pytest.mark.browser


def test_voila_serves_02_shapes_offline_and_the_slider_works(tmp_path):
    require_chromium()
    server = Voila(ROOT / "notebooks" / "02_shapes.ipynb")
    try:
        with chromium_page(tmp_path) as page:
            page.goto(server.url(""), timeout=180_000)
            box = page.locator(".widget-vbox:has(label:text-is('input W'))").first
            img = box.locator(".widget-output img").first
            img.wait_for(timeout=180_000)
            before = img.get_attribute("src")
            handle = box.locator(".widget-slider:has(label:text-is('input W')) .noUi-handle")
            handle.focus()
            handle.press("ArrowRight")
            for _ in range(120):  # the Output draws a new <img> each time: poll its src
                if box.locator(".widget-output img").first.get_attribute("src") != before:
                    break
                page.wait_for_timeout(500)
            assert box.locator(".widget-output img").first.get_attribute("src") != before
            assert "import fcconv" not in page.inner_text("body")           # code hidden
            assert not outside_requests(page), outside_requests(page)
            assert "Traceback" not in page.inner_text("body")
            screenshot(page, "present_02_shapes")
    finally:
        server.stop()


def test_index_page_links_every_walkthrough(tmp_path):
    require_chromium()
    server = Voila(ROOT / "notebooks")
    try:
        with chromium_page(tmp_path) as page:
            page.goto(server.url(""), timeout=60_000)
            page.wait_for_timeout(3000)
            screenshot(page, "present_index")
            text = page.inner_text("body")
            missing = [p.name for p in (ROOT / "notebooks").glob("0*.ipynb") if p.name not in text]
            assert not missing, missing
            assert not outside_requests(page), outside_requests(page)
    finally:
        server.stop()
