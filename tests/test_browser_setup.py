"""00_setup_check in a real JupyterLab, in headless Chromium: the slider redraws the figure."""

import pytest
from labharness import assert_no_error_text, notebook_in_lab, poll, screenshot

pytestmark = pytest.mark.browser


def test_setup_check_slider_redraws_in_jupyterlab(tmp_path):
    with notebook_in_lab(tmp_path, "00_setup_check.ipynb") as (_lab, page):
        img = page.locator(".widget-output img").first
        img.wait_for()
        before = img.get_attribute("src")
        handle = page.locator(".widget-slider .noUi-handle").first
        handle.focus()
        for _ in range(4):
            handle.press("ArrowRight")
        readout = page.locator(".widget-slider .widget-readout").first
        poll(lambda: readout.inner_text().strip() == "4", 30, "the slider reads 4")
        poll(lambda: img.get_attribute("src") != before, 60, "the figure was redrawn")
        assert "All checks passed" in page.inner_text("body")
        assert_no_error_text(page)
        screenshot(page, "00_setup_check")
