"""A learner's JupyterLab and an instructor's slides, as `make lab` and `make slides` start them
(the course's settings, headless Chromium, nothing reachable outside this machine):

- opening a walkthrough does not mark it modified; a learner sees no instructor tooling; the
  server says nothing alarming in the terminal;
- a saved notebook reopened after its kernel is gone says how to bring the explorer back, never
  "model not found" (the words notebook 00 gives for a broken install);
- `make slides`: one notebook, one kernel; after Run All the deck starts at the first slide, and
  stepping forward to the end and back visits every heading and every explorer.
"""

import re

import nbformat
import pytest
from labharness import (
    ROOT,
    Lab,
    _get_json,
    chromium_page,
    open_and_run_all,
    outside_requests,
    poll,
    require_chromium,
    screenshot,
    shutdown_kernels,
)
from speed import scaled

from fcconv.course import slides

pytestmark = pytest.mark.browser
NOTEBOOK = "00_setup_check.ipynb"  # the shortest walkthrough with an explorer


def ms(seconds: float) -> float:
    return scaled(seconds) * 1000


def current(page, expression: str):
    return page.evaluate(f"() => window.jupyterapp.shell.currentWidget.{expression}")


@pytest.fixture
def lab():
    require_chromium()
    server = Lab(ROOT / "notebooks")
    yield server
    server.stop()


def test_a_learners_lab_opens_notebooks_unmodified_and_shows_no_instructor_tooling(lab, tmp_path):
    with chromium_page(tmp_path) as page:
        page.goto(lab.url(f"lab/tree/{NOTEBOOK}?reset"), timeout=ms(120))
        page.wait_for_selector(".jp-Notebook", timeout=ms(120))
        lab.wait_kernel_connected()
        # the kernel has told the page its language_info (what used to mark the notebook dirty)
        poll(lambda: current(page, "context.model.getMetadata('language_info').version"), 60,
             "the kernel's language_info reached the notebook")
        assert current(page, "context.model.dirty") is False
        assert not page.locator(".lm-TabBar-tab.jp-mod-dirty").count()
        menus = page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
        assert "Run" in menus and "Nbgrader" not in menus, menus
        body = page.inner_text("body")
        assert "Create Assignment" not in body and "Validate" not in body
        config = page.evaluate("() => JSON.parse(document.getElementById('jupyter-config-data')"
                               ".textContent)")
        assert "@jupyter/nbgrader" in config["disabledExtensions"]
        assert not outside_requests(page), outside_requests(page)
    log = (lab.tmp / "server.log").read_text()
    noise = [line for line in log.splitlines()
             if re.match(r"\[[WE] ", line) or "WARNING" in line or "Warning" in line]
    assert not noise, "\n".join(noise)  # (nbgrader's config warning, unencrypted TCP, ...)


def test_a_reopened_notebook_says_how_to_bring_the_explorer_back(lab, tmp_path):
    with chromium_page(tmp_path) as page:
        open_and_run_all(lab, page, NOTEBOOK)
        page.wait_for_selector(".widget-slider", timeout=ms(120))
        assert not page.locator(".fcconv-reopen").first.is_visible()  # a live explorer: no note
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        poll(lambda: current(page, "context.model.dirty") is False, 30, "the notebook was saved")
        shutdown_kernels(lab)  # a new day: the kernel that held the explorer is gone
        page.goto("about:blank")
        page.goto(lab.url(f"lab/tree/{NOTEBOOK}?reset"), timeout=ms(120))
        page.wait_for_selector(".jp-Notebook", timeout=ms(120))
        lab.wait_kernel_connected()
        note = page.locator(".fcconv-reopen").first
        note.wait_for(state="visible", timeout=ms(60))  # shown once the widget manager gave up
        assert "run this cell" in note.inner_text()
        assert not page.locator(".widget-slider").count()
        shown = "\n".join(page.locator(".jp-OutputArea").all_inner_texts())
        assert "model not found" not in shown and "Error displaying widget" not in shown
        screenshot(page, "reopened_00_setup_check")
        # run the explorer's cell: it comes back, and the note goes
        cell = page.locator(".jp-CodeCell", has=note)
        cell.locator(".jp-InputArea").click()
        page.keyboard.press("Shift+Enter")
        page.wait_for_selector(".widget-slider", timeout=ms(120))
        poll(lambda: not page.locator(".fcconv-reopen").first.is_visible(), 30,
             "the note went when the explorer came back")
        assert not outside_requests(page), outside_requests(page)


def onscreen(page) -> tuple[int, ...]:
    """The indices of the cells the deck shows now."""
    return tuple(page.evaluate("""() => {
        const cells = [...window.jupyterapp.shell.currentWidget.content.widgets];
        return cells.map((c, i) => c.node.classList.contains('jp-deck-mod-onscreen') ? i : -1)
                    .filter(i => i >= 0); }"""))


def position(page) -> int:
    """Where the deck is: the active cell (a fragment shows on its slide, with the cells before)."""
    return current(page, "content.activeCellIndex")


def walk(page, key: str, most: int) -> list[tuple[int, ...]]:
    """Press ``key`` until the deck goes no further (its end): what it showed at each step."""
    path = [onscreen(page)]
    for _ in range(most + 1):
        before = position(page)
        page.keyboard.press(key)
        if not poll(lambda b=before: position(page) != b, 5, key, fail=False):
            return path
        path.append(onscreen(page))
    raise AssertionError(f"{most + 1} presses of {key} never reached the deck's end: {path}")


def test_make_slides_opens_one_notebook_and_its_deck_steps_both_ways(tmp_path):
    require_chromium()
    # what `make slides NB=00` starts: a fresh workspace of its own, the notebook as default_url
    lab = Lab(ROOT / "notebooks", (f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
                                   f"--LabApp.default_url=/lab/tree/{NOTEBOOK}"))
    try:
        with chromium_page(tmp_path) as page:
            page.goto(lab.url(""), timeout=ms(120))
            page.wait_for_selector(".jp-Notebook", timeout=ms(120))
            lab.wait_kernel_connected()
            tabs = page.locator("#jp-main-dock-panel .lm-TabBar-tab").all_inner_texts()
            assert [t for t in tabs if t.strip()] == [NOTEBOOK], tabs
            assert len(_get_json(lab.url("api/kernels"))) == 1
            open_and_run_all(lab, page, NOTEBOOK)
            page.evaluate("() => window.jupyterapp.commands.execute('deck:start')")
            poll(lambda: onscreen(page), 30, "the deck shows a slide")
            assert onscreen(page)[0] == 0, f"the deck started at cell {onscreen(page)}, not 0"
            poll(lambda: page.evaluate("() => !!document.activeElement.closest('.jp-Deck "
                                       ".jp-Notebook')"), 10, "the deck has the keyboard")
            nb = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
            must = {i for i, c in enumerate(nb.cells)
                    if slides.is_explorer(c) or c.source.startswith(("# ", "## "))}
            forward = walk(page, "ArrowRight", len(nb.cells))
            assert set().union(*forward) >= must, f"forward missed cells: {forward}"
            back = walk(page, "ArrowLeft", len(nb.cells))
            assert set().union(*back) >= must, f"back missed cells: {back}"
            assert 0 in back[-1], f"back did not reach the first slide: {back}"
            screenshot(page, "deck_00_setup_check")
            page.evaluate("() => window.jupyterapp.commands.execute('deck:stop')")
            assert not outside_requests(page), outside_requests(page)
    finally:
        lab.stop()
