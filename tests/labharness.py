"""Start JupyterLab on a free port with a random token, and drive it with headless Chromium.

Follows shared/TESTING-NOTES.md: wait for the kernel's websocket before Run All, then check the
first prompt changed (retry the click if not). Used by every browser test.

No wait here is a fixed number of seconds: each is generous (what a learner would also wait on
a busy classroom server) and scaled by how busy this machine is now (tests/speed.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest
from speed import scaled

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = pathlib.Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "screenshots"
COURSE_CONFIG = ROOT / "etc" / "jupyter"  # what `make lab` puts on JUPYTER_CONFIG_PATH
FAIL_TEXTS = ("Error displaying widget", "model not found", "Traceback")


def require_chromium() -> None:
    """Skip (one line, how to enable) outside CI; fail in CI, where the browser test is a must."""
    if os.path.exists(CHROMIUM):
        return
    msg = (f"no Chromium at {CHROMIUM}: browser tests skipped "
           "(enable them with `sudo apt-get install chromium`)")
    if os.environ.get("CI") == "true":
        pytest.fail(msg.replace("skipped", "are required when CI=true"))
    pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


class _Server:
    """A server process started by a test; ``stop`` ends it by its process id."""

    proc: subprocess.Popen
    tmp: pathlib.Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Lab(_Server):
    """A running JupyterLab server rooted at ``root_dir``."""

    def __init__(self, root_dir: pathlib.Path, extra_args: tuple[str, ...] = ()):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="fcconv-lab-"))
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        # Serve a copy, so that an autosave can never write outputs into the committed notebooks.
        self.root = self.tmp / "root"
        shutil.copytree(root_dir, self.root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        # The course's own settings (no news, no update check), as `make lab` uses them.
        env = dict(os.environ, JUPYTER_CONFIG_PATH=str(COURSE_CONFIG),
                   JUPYTER_CONFIG_DIR=str(self.tmp / "config"),
                   JUPYTER_RUNTIME_DIR=str(self.tmp / "runtime"), IPYTHONDIR=str(self.tmp / "ipy"),
                   MPLCONFIGDIR=str(self.tmp / "mpl"))
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip", "127.0.0.1",
               "--port", str(self.port), f"--IdentityProvider.token={self.token}", "--allow-root",
               f"--ServerApp.root_dir={self.root}", "--ServerApp.port_retries=0",
               "--LabApp.expose_app_in_browser=True", *extra_args]
        self.log = open(self.tmp / "server.log", "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path}{sep}token={self.token}"

    def _wait_ready(self, timeout: float = 120) -> None:
        end = time.time() + scaled(timeout)
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("jupyter lab exited: " + (self.tmp / "server.log").read_text())
            with contextlib.suppress(OSError):
                _get_json(self.url("api/status"))
                return
            time.sleep(0.3)
        raise RuntimeError("jupyter lab did not start in time")

    def wait_kernel_connected(self, timeout: float = 300) -> None:
        end = time.time() + scaled(timeout)
        while time.time() < end:
            kernels = []
            with contextlib.suppress(OSError):  # a busy server may answer late: ask again
                kernels = _get_json(self.url("api/kernels"))
            if any(k.get("connections", 0) > 0 and k.get("execution_state") == "idle"
                   for k in kernels):
                return
            time.sleep(0.3)
        raise RuntimeError("no kernel connected to the notebook in time")



@contextlib.contextmanager
def chromium_page(tmp_path: pathlib.Path):
    """A Playwright page in Debian's headless Chromium that cannot reach beyond this machine:
    every request goes through a proxy at a closed local port (Chromium sends 127.0.0.1 and
    localhost direct), so an outside request fails at once. ``page.requests_seen`` records every
    request's URL; ``outside_requests(page)`` lists the ones that tried to leave."""
    from playwright.sync_api import sync_playwright

    # A proxy, not page.route: route handlers run only while Python waits in a Playwright call,
    # and the harness also waits in plain HTTP polls.
    blocked = [f"--proxy-server=http://127.0.0.1:{_free_port()}"]  # free: nothing listens there
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS + blocked, viewport={"width": 1400, "height": 1000})
        try:
            page = ctx.new_page()
            page.set_default_timeout(scaled(120) * 1000)  # any wait without its own timeout
            page.requests_seen = []
            page.on("request", lambda r: page.requests_seen.append(r.url))
            yield page
        finally:
            ctx.close()


@contextlib.contextmanager
def notebook_in_lab(tmp_path: pathlib.Path, notebook: str, timeout_s: float = 180):
    """JupyterLab on a copy of notebooks/, ``notebook`` open and run in Chromium: (lab, page).
    ``timeout_s``: how long Run All may take on an idle machine (scaled to this one now)."""
    require_chromium()
    lab = Lab(ROOT / "notebooks")
    try:
        with chromium_page(tmp_path) as page:
            open_and_run_all(lab, page, notebook, timeout_s)
            yield lab, page
            assert not outside_requests(page), outside_requests(page)
    finally:
        lab.stop()


def open_and_run_all(lab: Lab, page, notebook: str, timeout_s: float = 180) -> None:
    """Open ``notebook`` in JupyterLab, wait for its kernel, Run All, wait until idle."""
    timeout_ms = scaled(timeout_s) * 1000
    page.goto(lab.url(f"lab/tree/{notebook}?reset"), timeout=timeout_ms)
    page.wait_for_selector(".jp-Notebook", timeout=timeout_ms)
    lab.wait_kernel_connected()
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout_ms)

    def first_cell_started() -> bool:
        prompt = page.locator(".jp-CodeCell .jp-InputPrompt").first.inner_text()
        return "*" in prompt or any(ch.isdigit() for ch in prompt)

    for _ in range(3):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        if poll(first_cell_started, 10, "", fail=False):
            break
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
        ".every(p => /\\[\\d+\\]/.test(p.textContent))", timeout=timeout_ms)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout_ms)


def poll(condition, timeout_s: float, what: str, fail: bool = True):
    """Call ``condition()`` until it is true, for up to ``timeout_s`` idle-machine seconds
    (scaled to this machine now); then fail with ``what`` (or return False if not ``fail``)."""
    end = time.time() + scaled(timeout_s)
    while True:
        value = condition()
        if value or time.time() > end:
            break
        time.sleep(0.25)
    if not value and fail:
        raise AssertionError(f"waited {scaled(timeout_s, 1):.0f}+ s (scaled to this machine): {what}")
    return value


def open_and_run_until(lab: Lab, page, notebook: str, marker: str, timeout_ms: int = 300_000):
    """Open ``notebook``, run every cell up to and including the first whose source holds
    ``marker`` (an explorer), leave that cell active; the cells after it are not run (time).
    Needs the server's ``expose_app_in_browser`` (``Lab`` sets it)."""
    page.goto(lab.url(f"lab/tree/{notebook}?reset"), timeout=timeout_ms)
    page.wait_for_selector(".jp-Notebook", timeout=timeout_ms)
    lab.wait_kernel_connected()
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout_ms)
    index = page.evaluate("""(marker) => {
        const nb = window.jupyterapp.shell.currentWidget.content;
        const i = nb.widgets.findIndex(c => c.model.sharedModel.getSource().includes(marker));
        if (i >= 0) nb.activeCellIndex = i;
        return i; }""", marker)
    assert index >= 0, f"no cell of {notebook} holds {marker!r}"
    done = f"() => window.jupyterapp.shell.currentWidget.content.widgets[{index}].model" \
           ".executionCount !== null"
    for _ in range(3):  # the click can come before the kernel listens: then nothing runs
        page.evaluate("""async () => { const c = window.jupyterapp.commands;
            await c.execute('notebook:run-all-above'); await c.execute('notebook:run-cell'); }""")
        first = page.locator(".jp-CodeCell .jp-InputPrompt").first.inner_text()
        if "*" in first or any(ch.isdigit() for ch in first) or page.evaluate(done):
            break
        page.wait_for_timeout(1000)
    page.wait_for_function(done, timeout=timeout_ms)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout_ms)


def shutdown_kernels(lab: Lab) -> None:
    """Shut down every kernel (between notebooks that share one server: memory is scarce)."""
    kernels = []
    for _ in range(10):  # a busy server may answer 500 for a moment
        with contextlib.suppress(OSError):
            kernels = _get_json(lab.url("api/kernels"))
            break
        time.sleep(1)
    for k in kernels:
        req = urllib.request.Request(lab.url(f"api/kernels/{k['id']}"), method="DELETE")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(req, timeout=30).close()


def assert_no_error_text(page, name: str = "failure") -> None:
    """No widget error or traceback in any cell output (markdown may mention them)."""
    body = "\n".join(page.locator(".jp-OutputArea").all_inner_texts())
    if any(text in body for text in FAIL_TEXTS):
        screenshot(page, name)
    for text in FAIL_TEXTS:
        assert text not in body, f"the page shows {text!r}"


def wait_idle(page, timeout_ms: int = 60_000) -> None:
    """Wait until the kernel has finished what the last widget change asked of it (``timeout_ms``
    on an idle machine, scaled to this one). Prefer ``poll`` on what the change should show: an
    idle indicator may not have turned busy yet."""
    time.sleep(0.5)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=scaled(timeout_ms / 1000) * 1000)


def screenshot(page, name: str) -> pathlib.Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


class Voila(_Server):
    """``make present``'s server: Voila with the course's offline template, on a free port."""

    def __init__(self, target: pathlib.Path):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="fcconv-voila-"))
        self.port = _free_port()
        env = dict(os.environ, JUPYTER_PATH=str(ROOT / "share" / "jupyter"),
                   JUPYTER_CONFIG_PATH=str(COURSE_CONFIG),
                   JUPYTER_CONFIG_DIR=str(self.tmp / "config"),
                   JUPYTER_RUNTIME_DIR=str(self.tmp / "runtime"), IPYTHONDIR=str(self.tmp / "ipy"),
                   MPLCONFIGDIR=str(self.tmp / "mpl"))
        cmd = [sys.executable, "-m", "voila", "--template=fcconv", "--no-browser",
               f"--port={self.port}", "--Voila.ip=127.0.0.1", str(target)]
        self.log = open(self.tmp / "voila.log", "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=str(target.parent if target.is_file() else target))
        end = time.time() + scaled(120)
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("voila exited: " + (self.tmp / "voila.log").read_text())
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.url(""), timeout=2)
                return
            time.sleep(0.3)
        raise RuntimeError("voila did not start in time")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"



def outside_requests(page) -> list[str]:
    """Every request the page made that did not stay on this machine."""
    local = ("http://127.0.0.1", "http://localhost", "data:", "blob:", "file:", "about:")
    return [u for u in page.requests_seen if not u.startswith(local)]


# --------------------------------------------------------------------------- explorer controls
# Every control of an explorer, as a learner reaches it by keyboard: what takes the focus, the
# keys that move it (forward, back), what it shows and what a screen reader is told it shows.
# Used by the keyboard tests and by benchmarks/browser_latency.py.
CONTROLS_JS = """(box) => {
  const kinds = [
    ["slider", ".widget-slider"], ["dropdown", ".widget-dropdown"],
    ["toggles", ".widget-toggle-buttons"], ["toggle", ".widget-toggle-button"],
    ["number", ".widget-text"], ["button", ".widget-button"]];
  const found = [];
  for (const el of box.querySelectorAll(kinds.map(k => k[1]).join(","))) {
    if (el.matches(".widget-toggle-buttons *")) continue;  // a button of a group: the group is one
    const kind = kinds.find(k => el.matches(k[1]))[0];
    const label = el.querySelector(".widget-label");
    const name = kind === "toggle" || kind === "button" ? el.textContent.trim()
               : (label ? label.textContent.trim() : "");
    found.push({kind, name, disabled: !!el.querySelector(":disabled") || el.disabled === true});
  }
  return found;
}"""

# (kind -> CSS of the element inside the control that takes the focus)
FOCUS = {"slider": ".noUi-handle", "dropdown": "select", "toggles": "button[aria-checked='true']",
         "toggle": "", "number": "input", "button": ""}
KEYS = {"slider": ("ArrowRight", "ArrowLeft"), "dropdown": ("ArrowDown", "ArrowUp"),
        "toggles": ("ArrowRight", "ArrowLeft"), "toggle": ("ArrowRight", "ArrowLeft"),
        "number": ("ArrowUp", "ArrowDown"), "button": ("Enter", "Enter")}

# What the control shows, and what it tells a screen reader (its accessible value).
SHOWN_JS = """([el, kind]) => {
  const text = e => e ? e.textContent.trim() : null;
  if (kind === "slider") {
    const h = el.querySelector(".noUi-handle");
    return {shown: text(el.querySelector(".widget-readout")), spoken: h.getAttribute("aria-valuetext"),
            name: h.getAttribute("aria-label")};
  }
  if (kind === "dropdown") {
    const s = el.querySelector("select");
    const o = s.options[s.selectedIndex];
    return {shown: text(o), spoken: text(o), name: s.labels.length ? text(s.labels[0]) : null};
  }
  if (kind === "toggles") {
    return {shown: text(el.querySelector("button.mod-active")),
            spoken: text(el.querySelector("button[aria-checked='true']")),
            name: el.closest("[role='radiogroup']") ? el.closest("[role='radiogroup']")
                    .getAttribute("aria-label") : el.querySelector("[role='radiogroup']")
                    .getAttribute("aria-label")};
  }
  if (kind === "toggle") {
    return {shown: el.classList.contains("mod-active") ? "on" : "off",
            spoken: el.getAttribute("aria-pressed") === "true" ? "on" : "off", name: text(el)};
  }
  if (kind === "number") {
    const i = el.querySelector("input");
    return {shown: i.value, spoken: i.value, name: i.labels.length ? text(i.labels[0]) : null};
  }
  return {shown: text(el), spoken: text(el), name: text(el)};
}"""


def explorer_boxes(page):
    """Each explorer on the page: the widget box shown by a cell that also holds the course's
    page note (every explorer sends one)."""
    return page.locator(".jp-OutputArea:has(.fcconv-reopen) .jp-OutputArea-output > .widget-box")


def controls(box) -> list:
    """The controls of an explorer's ``box`` (a locator), in the order shown: each a dict with
    ``kind``, ``name`` (its label), ``element`` (a locator) and ``focus`` (what takes the focus)."""
    found = []
    counts: dict = {}
    selectors = {"slider": ".widget-slider", "dropdown": ".widget-dropdown",
                 "toggles": ".widget-toggle-buttons",
                 "toggle": ".widget-toggle-button:not(.widget-toggle-buttons *)",
                 "number": ".widget-text", "button": ".widget-button"}
    for c in box.evaluate(CONTROLS_JS):
        k = c["kind"]
        element = box.locator(selectors[k]).nth(counts.get(k, 0))
        counts[k] = counts.get(k, 0) + 1
        focus = element.locator(FOCUS[k]) if FOCUS[k] else element
        found.append({**c, "element": element, "focus": focus})
    return found


def shown(control) -> dict:
    """What ``control`` shows now, and what it tells a screen reader (``spoken``)."""
    return control["element"].evaluate(f"(el) => ({SHOWN_JS})([el, {control['kind']!r}])")


def tab_to_control(page, start, control, presses: int = 40):
    """Keyboard only: focus ``start`` (an element before the control), then press Tab until the
    control's focusable element has the focus."""
    start.evaluate("e => { e.tabIndex = -1; e.focus(); }")
    target = control["focus"].element_handle()
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("(t) => document.activeElement === t", target):
            return
    raise AssertionError(f"{presses} Tab presses never reached the {control['kind']} "
                         f"{control['name']!r}")


def explorer_outputs(box) -> list:
    """Everything the explorer's outputs show now: each picture's source and alt text, and the
    text of each output (what must change when a control moves)."""
    return box.evaluate("""(box) => [...box.querySelectorAll('.widget-output')].map(o =>
        [o.innerText, ...[...o.querySelectorAll('img')].map(i => i.getAttribute('src').length
                                                                 + ':' + i.getAttribute('alt'))])""")
