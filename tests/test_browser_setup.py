"""00_setup_check in a real JupyterLab, in headless Chromium: the slider redraws the figure."""

import pytest
from labharness import assert_no_error_text, notebook_in_lab, screenshot, wait_idle

pytestmark = pytest.mark.browser


def test_setup_check_slider_redraws_in_jupyterlab(tmp_path):
    with notebook_in_lab(tmp_path, "00_setup_check.ipynb") as (_lab, page):
        img = page.locator(".widget-output img").first
        img.wait_for(timeout=60_000)
        before = img.get_attribute("src")
        handle = page.locator(".widget-slider .noUi-handle").first
        handle.focus()
        for _ in range(4):
            handle.press("ArrowRight")
        wait_idle(page)
        assert img.get_attribute("src") != before
        readout = page.locator(".widget-slider .widget-readout").first.inner_text()
        assert readout.strip() == "4"
        assert "All checks passed" in page.inner_text("body")
        assert_no_error_text(page)
        screenshot(page, "00_setup_check")
