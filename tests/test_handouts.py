"""make handouts: executed static pages with embedded widgets that render with no network."""

import functools
import http.server
import os
import shutil
import threading

import pytest
from labharness import chromium_page, outside_requests, require_chromium, screenshot

from tools import handouts

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which("npm") is None and os.environ.get("CI") != "true":
        pytest.skip("no npm: the handouts test is skipped (install Node.js to enable it)")
    out = tmp_path_factory.mktemp("handouts")
    handouts.build(["00", "02"], out=out)
    return out


@pytest.fixture
def served(built):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(built))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_handouts_are_written_with_local_javascript(built):
    page = (built / "02_shapes.html").read_text()
    assert "static/require.min.js" in page and "static/embed-amd.js" in page
    assert "cdn.jsdelivr" not in page and "cdnjs.cloudflare.com/ajax/libs/require" not in page
    assert "application/vnd.jupyter.widget-state+json" in page          # widget state embedded
    index = (built / "index.html").read_text()
    assert "02_shapes.html" in index and "00_setup_check.html" in index
    assert "<style>" in index and "02 · Shapes: from 224 to a score map" in index  # titles
    assert "Snapshots." in index and "make lab" in index


def test_a_handout_renders_figures_and_widgets_with_the_network_blocked(served, tmp_path):
    require_chromium()
    with chromium_page(tmp_path) as page:
        page.goto(f"{served}/02_shapes.html")
        page.wait_for_selector(".widget-slider")
        page.wait_for_selector(".widget-output img")
        page.wait_for_selector("mjx-container, .MathJax, .MathJax_CHTML")
        assert page.locator(".widget-output table.fcconv-trace").count() == 1
        assert page.locator(".jp-OutputArea-output img").count() >= 1          # static figures
        assert "Error displaying widget" not in page.inner_text("body")
        assert not outside_requests(page), outside_requests(page)
        # a snapshot, and it says so: at the top, and beside each of the two explorers, whose
        # controls are switched off (they would move, and nothing would follow)
        top = page.locator(".fcconv-snapshot-top")
        assert top.count() == 1 and "make lab" in top.inner_text()
        assert "notebooks/02_shapes.ipynb" in top.inner_text()
        beside = page.locator(".jp-OutputArea:has(.widget-slider) .fcconv-snapshot")
        assert beside.count() == 2 and all(b.is_visible() for b in beside.all())
        assert not page.locator(".fcconv-reopen:visible").count()
        handles = page.locator(".widget-slider .noUi-target")
        assert handles.count() >= 5
        assert all(h.get_attribute("disabled") is not None for h in handles.all())
        assert page.locator(".widget-dropdown select").first.is_disabled()
        page.locator(".widget-output img").first.scroll_into_view_if_needed()
        screenshot(page, "handout_02_shapes")


def test_the_handouts_index_page_renders_styled(served, tmp_path):
    require_chromium()
    with chromium_page(tmp_path) as page:
        page.goto(f"{served}/index.html")
        links = page.locator("li.handout a")
        assert links.all_inner_texts() == ["00 · Setup check", "02 · Shapes: from 224 to a score map"]
        assert page.evaluate("() => getComputedStyle(document.body).fontFamily") != "Times New Roman"
        assert not outside_requests(page), outside_requests(page)
        screenshot(page, "handouts_index")
