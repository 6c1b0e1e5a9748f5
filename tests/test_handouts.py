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
    assert "02_shapes.html" in (built / "index.html").read_text()


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
        page.locator(".widget-output img").first.scroll_into_view_if_needed()
        screenshot(page, "handout_02_shapes")
