"""The classroom in a real JupyterLab (headless Chromium, dark theme, nothing reachable outside
this machine): every walkthrough runs; one explorer per notebook is driven by keyboard only and
its picture and alt text change; a walkthrough presented as slides has a live slider; no news
pop-up, no request leaves localhost. One server and one browser for the whole module.
"""

import functools
import json

import pytest
from labharness import (
    COURSE_CONFIG,
    ROOT,
    Lab,
    _get_json,
    assert_no_error_text,
    chromium_page,
    open_and_run_until,
    outside_requests,
    require_chromium,
    screenshot,
    shutdown_kernels,
    tab_to,
    wait_idle,
)
from speed import speed_factor


@functools.cache
def _factor() -> float:
    return speed_factor()


def waited(seconds: int) -> int:
    """A browser wait in ms: ``seconds`` on the idle machine, scaled by how busy it is now."""
    return int(seconds * 1000 * _factor())

pytestmark = pytest.mark.browser

# notebook -> (the cell that shows the explorer, the label of the control to Tab to, the key)
KEYBOARD = {
    "00_setup_check.ipynb": ("SetupExplorer(", "kernel at", "ArrowRight"),
    "01_fc_is_a_convolution.ipynb": ("FCvsConvExplorer(", "neurons K", "ArrowLeft"),
    "02_shapes.ipynb": ("ShapesExplorer(", "output #", "ArrowRight"),  # after Slide1D
    "03_weight_reshaping.ipynb": ("WeightRowExplorer(", "channel c", "ArrowRight"),
    "04_convolutionalize.ipynb": ("ScoreMapExplorer(", "input size", "ArrowLeft"),
    "05_score_maps.ipynb": ("Explorer(", "cell column", "ArrowRight"),
    "06_efficiency.ipynb": ("EfficiencyExplorer(", "image size", "ArrowRight"),
    "07_conv_to_fc.ipynb": ("ConvMatrixExplorer(", "kernel", "ArrowRight"),
    "08_find_the_digits.ipynb": ("DigitDetectorExplorer(", "digits", "ArrowLeft"),
    "09_mtcnn.ipynb": ("CascadeExplorer(", "scale", "ArrowRight"),
}
DARK = "JupyterLab Dark"


@pytest.fixture(scope="module")
def lab_page(tmp_path_factory):
    """One JupyterLab (the course's settings) and one dark-themed Chromium page for the module."""
    require_chromium()
    lab = Lab(ROOT / "notebooks")
    try:
        with chromium_page(tmp_path_factory.mktemp("chromium")) as page:
            page.goto(lab.url("lab?reset"), timeout=waited(180))
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands"
                                   ".hasCommand('apputils:change-theme')", timeout=waited(180))
            page.evaluate(f"() => window.jupyterapp.commands.execute('apputils:change-theme', "
                          f"{{theme: '{DARK}'}})")
            page.wait_for_selector("body[data-jp-theme-light='false']", state="attached",
                                   timeout=waited(60))
            yield lab, page
    finally:
        lab.stop()


def open_notebook(lab, page, notebook: str) -> None:
    """Run ``notebook`` up to its explorer (the cells after it cost time and show nothing new)."""
    shutdown_kernels(lab)  # the notebook before this one is done: free its memory
    open_and_run_until(lab, page, notebook, KEYBOARD[notebook][0], timeout_ms=waited(600))
    assert page.get_attribute("body", "data-jp-theme-name") == DARK
    assert "Jupyter news" not in page.inner_text("body")      # the course's settings: no pop-up
    assert_no_error_text(page, notebook.replace(".ipynb", "_failure"))


def explorer_of(page, name: str):
    """The slider labelled ``name`` (exactly one in the notebook) and its explorer's box."""
    handles = page.locator(f".noUi-handle[aria-label='{name}']")
    assert handles.count() == 1, f"{handles.count()} sliders labelled {name!r}"
    return handles, page.locator(".widget-vbox", has=handles).filter(
        has=page.locator(".widget-output")).last


def picture(box) -> dict:
    """What the explorer shows now: its image's source and alt text, or its output's text."""
    img = box.locator(".widget-output img")
    if img.count():
        return {"src": img.first.get_attribute("src"), "alt": img.first.get_attribute("alt")}
    return {"text": box.locator(".widget-output").first.inner_text()}


def wait_changed(page, box, before: dict) -> dict:
    """Poll until the explorer shows something else (generous: a loaded machine is slow)."""
    wait_idle(page, timeout_ms=180_000)  # wait_idle scales it itself
    for _ in range(600):
        now = picture(box)
        if now != before:
            return now
        page.wait_for_timeout(300)
    raise AssertionError("the explorer did not change")


def test_the_course_settings_switch_off_news_and_update_checks(lab_page):
    """What `make lab` ships (etc/jupyter): the page is told there is no news feed, and the
    notification settings neither fetch news nor check for updates (so nothing asks)."""
    lab, page = lab_page
    config = page.evaluate("() => JSON.parse(document.getElementById('jupyter-config-data')"
                           ".textContent)")
    assert config["news"] == {"disabled": True}
    settings = _get_json(lab.url("lab/api/settings/@jupyterlab/apputils-extension:notification"))
    defaults = settings["schema"]["properties"]  # the course's overrides become the defaults
    assert defaults["fetchNews"]["default"] == "false"
    assert defaults["checkForUpdates"]["default"] is False
    # news_url (disabled above) comes from the same file as the update checker: that file names
    # the checker that never asks
    from jupyterlab import NeverCheckForUpdate
    from jupyterlab.labapp import LabApp
    from traitlets.config import Config

    app = LabApp(config=Config(json.loads((COURSE_CONFIG / "jupyter_server_config.json").read_text())))
    assert app.check_for_updates_class is NeverCheckForUpdate and app.news_url is None


@pytest.mark.parametrize("notebook", sorted(KEYBOARD))
def test_keyboard_drives_one_explorer_per_notebook(lab_page, notebook):
    lab, page = lab_page
    open_notebook(lab, page, notebook)
    _, name, key = KEYBOARD[notebook]
    _, box = explorer_of(page, name)
    before = picture(box)
    handle = tab_to(page, box, name)
    before_value = handle.get_attribute("aria-valuenow")
    handle.press(key)
    after = wait_changed(page, box, before)
    box.scroll_into_view_if_needed()
    screenshot(page, "dark_" + notebook.replace(".ipynb", ""))
    assert handle.get_attribute("aria-valuenow") != before_value
    if "alt" in before:
        # (an empty alt reaches the page as "Image": seen for an explorer that passed none)
        assert before["alt"] not in ("", "Image"), "the explorer's picture has no alt text"
    if "alt" in before:
        assert after["src"] != before["src"] and after["alt"] != before["alt"], (before["alt"],
                                                                                after["alt"])
        assert after["alt"].strip()
    assert not outside_requests(page), outside_requests(page)
    if notebook in MORE:  # what else this notebook's page can show, while it is open
        MORE[notebook](page)


def digits_class_shows_all_digits(page):
    """A control shows its value: 08's class picker reads "all digits", not a blank."""
    shown = page.locator(".widget-dropdown:has(label:text-is('class')) select").first \
        .evaluate("s => s.options[s.selectedIndex].text")
    assert shown.replace("\xa0", " ") == "all digits"  # ipywidgets keeps label spaces as nbsp


def shapes_explorer_shows_the_vgg16_score_map_at_384(page):
    table = page.locator(".widget-output table.fcconv-trace").last
    table.wait_for(timeout=waited(60))
    assert "6x6x1000" not in table.inner_text()
    assert page.get_by_role("spinbutton", name="or type").count() == 1    # labelled for readers
    assert page.get_by_role("combobox", name="network").count() == 1
    entry = page.locator(".widget-text:has(label:text-is('or type')) input").last
    entry.fill("384")
    entry.press("Enter")
    wait_idle(page)
    assert "12x12x512" in table.inner_text() and "6x6x1000" not in table.inner_text()
    page.locator("button:has-text('convolutionalized')").last.click()
    wait_idle(page)
    table.locator("tfoot").scroll_into_view_if_needed()
    assert "6x6x1000" in table.inner_text()
    assert "384x384" in page.locator(".widget-output img[alt*='vgg16']").first.get_attribute("alt")
    assert not outside_requests(page), outside_requests(page)


def the_walkthrough_as_slides_has_a_live_slider(page):
    """jupyterlab-slideshow presents the notebook inside JupyterLab: go back to the explorer's
    slide, move its slider, and the figure changes."""
    assert "All checks passed" in page.inner_text("body")
    run = "(c) => window.jupyterapp.commands.execute(c)"
    page.evaluate(run, "deck:start")
    page.wait_for_selector(".jp-Deck .jp-deck-mod-onscreen", timeout=waited(60))
    onscreen_slider = ".jp-deck-mod-onscreen .noUi-handle[aria-label='kernel at']"
    for _ in range(30):                                  # back through the slides to the explorer
        if page.locator(onscreen_slider).count():
            break
        page.evaluate(run, "deck:back")
        page.wait_for_timeout(300)
    handle = page.locator(onscreen_slider)
    assert handle.is_visible()
    box = page.locator(".jp-deck-mod-onscreen .widget-vbox",
                       has=page.locator(".noUi-handle[aria-label='kernel at']")).last
    before = picture(box)
    handle.focus()
    handle.press("ArrowRight")
    handle.press("ArrowRight")
    after = wait_changed(page, box, before)
    at = int(float(handle.get_attribute("aria-valuenow")))
    assert f"positions {at}-{at + 2}" in after["alt"], after["alt"]
    screenshot(page, "slides_00_setup_check")
    assert not outside_requests(page), outside_requests(page)
    page.evaluate(run, "deck:stop")


MORE = {"00_setup_check.ipynb": the_walkthrough_as_slides_has_a_live_slider,
        "02_shapes.ipynb": shapes_explorer_shows_the_vgg16_score_map_at_384,
        "08_find_the_digits.ipynb": digits_class_shows_all_digits}
