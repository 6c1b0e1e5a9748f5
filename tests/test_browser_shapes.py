"""02_shapes in JupyterLab: type 384, convolutionalize VGG16, and read 6x6x1000 in the table."""

import pytest
from labharness import assert_no_error_text, notebook_in_lab, poll, screenshot

pytestmark = pytest.mark.browser


def test_shapes_explorer_shows_the_vgg16_score_map_at_384(tmp_path):
    with notebook_in_lab(tmp_path, "02_shapes.ipynb") as (_lab, page):
        table = page.locator(".widget-output table.fcconv-trace").last
        table.wait_for()
        assert "6x6x1000" not in table.inner_text()
        entry = page.locator(".widget-text:has(label:text-is('or type')) input").last
        entry.fill("384")
        entry.press("Enter")
        poll(lambda: "12x12x512" in table.inner_text(), 60, "the table shows 12x12x512 at 384")
        assert "6x6x1000" not in table.inner_text()
        page.locator("button:has-text('convolutionalized')").last.click()
        poll(lambda: "6x6x1000" in table.inner_text(), 60, "the convolutionalized table")
        table.locator("tfoot").scroll_into_view_if_needed()
        assert_no_error_text(page, "02_shapes_failure")
        screenshot(page, "02_shapes")
