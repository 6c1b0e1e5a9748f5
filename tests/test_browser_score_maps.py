"""05_score_maps in JupyterLab: picking another cell moves the drawn window (the figure changes)."""

import pytest
from labharness import assert_no_error_text, notebook_in_lab, poll, screenshot

pytestmark = pytest.mark.browser


def test_picking_another_cell_moves_the_window(tmp_path):
    with notebook_in_lab(tmp_path, "05_score_maps.ipynb", timeout_s=240) as (_lab, page):
        box = page.locator(".widget-vbox:has(label:text-is('cell column'))").last
        img = box.locator(".widget-output img").first
        img.wait_for()
        before = img.get_attribute("src")
        assert "Cell (0, 0)" in box.inner_text()
        handle = box.locator(".widget-slider:has(label:text-is('cell column')) .noUi-handle")
        handle.focus()
        handle.press("ArrowRight")
        handle.press("ArrowRight")
        poll(lambda: "Cell (0, 2)" in box.inner_text(), 60, "the text names cell (0, 2)")
        poll(lambda: img.get_attribute("src") != before, 60, "the window was redrawn")
        assert_no_error_text(page, "05_score_maps_failure")
        img.scroll_into_view_if_needed()
        screenshot(page, "05_score_maps")
