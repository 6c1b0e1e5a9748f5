"""Static HTML handouts of the walkthroughs: executed, with figures, and with each widget's
last view embedded. They render offline: require.js, the widget renderer and MathJax come from
the npm registry once (``make handouts`` needs npm for that step only) and sit beside the pages.
Serve the folder (``python -m http.server -d handouts``) or copy it whole to a USB stick.

A handout is a snapshot: no kernel runs behind it, so its explorers cannot recompute. It says
so at the top and beside each explorer, with the command that brings the live version, and the
explorers' controls are shown disabled (they would move, and nothing would follow).

    python -m tools.handouts [NN ...]     # writes handouts/NN_name.html and handouts/index.html
"""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from html import escape
from pathlib import Path

import nbformat

from fcconv.course import kernels
from fcconv.course.folders import course_dir

# npm package, version, files to copy (from the package folder) -> name in handouts/static
PACKAGES = [
    # package.json carries each package's licence (MIT, BSD-3-Clause): kept beside the code.
    ("requirejs", "2.3.7", {"require.js": "require.min.js", "package.json": "requirejs.package.json"}),
    ("@jupyter-widgets/html-manager", "1.0.15",
     {"dist/": "", "package.json": "html-manager.package.json"}),
    ("mathjax", "2.7.9", {".": "mathjax"}),  # the version nbconvert's template is written for
]
MATHJAX = "static/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
# embed-amd.js asks for its icon fonts under these paths, relative to the page
FONT_DIRS = ("@jupyter-widgets", "@jupyter-widgets/html-manager/dist")


def fetch_npm(packages, dest: Path) -> None:
    """Copy files out of npm packages into ``dest``: (name, version, {path in package: path in
    dest}); a folder is copied whole, "dist/" copies the files directly inside dist."""
    if shutil.which("npm") is None:
        raise SystemExit("this step needs npm (Node.js) once, to fetch JavaScript from the npm "
                         f"registry; install Node.js, or put the files into {dest} by hand")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, version, files in packages:
            out = subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=tmp,
                                 capture_output=True, text=True, check=True).stdout.split()[-1]
            with tarfile.open(Path(tmp) / out) as tar:
                tar.extractall(Path(tmp) / name.replace("/", "_"), filter="data")
            package = Path(tmp) / name.replace("/", "_") / "package"
            for src, dst in files.items():
                if src.endswith("/"):
                    for f in (package / src).iterdir():
                        if f.is_file() and not f.name.endswith(".map"):
                            shutil.copy(f, dest / f.name)
                elif (package / src).is_dir():
                    shutil.copytree(package / src, dest / dst, dirs_exist_ok=True)
                else:
                    shutil.copy(package / src, dest / dst)


def fetch_js(static: Path) -> None:
    """Put require.js, the widget renderer (embed-amd.js) and MathJax into ``static``."""
    if all((static / f).exists() for f in ("require.min.js", "embed-amd.js", "mathjax")):
        return
    fetch_npm(PACKAGES, static)
    for folder in FONT_DIRS:
        target = static.parent / folder
        target.mkdir(parents=True, exist_ok=True)
        for pattern in ("*.woff*", "*.ttf", "*.eot", "*.svg"):
            for font in static.glob(pattern):
                shutil.copy(font, target / font.name)


def executed(path: Path, timeout: int = 600):
    """Run a notebook top to bottom in a fresh kernel, keeping the widgets' state."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                   config=kernels.course_kernel(),
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


# Bold the command; everything else plain. Where the course lives is the reader's own copy.
LIVE = ("in the course folder run <code>make lab</code> and open <code>notebooks/{name}.ipynb</code>"
        " (or <code>make present NB={number}</code> for the explorers alone)")
BANNER = ("<div class='fcconv-snapshot fcconv-snapshot-top' role='note'><b>A snapshot.</b> This page "
          "is {name}.ipynb run once, on {made}, saved with its figures. Its explorers show what "
          "they showed then and cannot change here: no Python runs behind this page. For the "
          "live version, " + LIVE + ".</div>")
BESIDE = ("<div class='fcconv-snapshot' role='note'><b>A snapshot of this explorer:</b> its "
          "controls are switched off here. To move them, " + LIVE + " and run this cell.</div>")
STYLE = """<style>
.fcconv-snapshot { border-left: 4px solid #e69f00; background: #fff7e6; color: #222;
  padding: 0.5em 0.8em; margin: 0.4em 0; font-size: 0.95em; }
.fcconv-snapshot-top { margin: 1em 0 1.5em; }
</style>"""


def as_snapshot(nb, name: str, made: str):
    """Mark an executed notebook as a snapshot (in place): a banner first, a note beside each
    explorer (each sends the course's page note), and every control of the saved widgets
    disabled. Returns ``nb``."""
    number = name[:2]
    top = nbformat.v4.new_markdown_cell(STYLE + BANNER.format(name=name, made=made,
                                                              number=number))
    for cell in nb.cells:
        if cell.cell_type == "code" and any("fcconv-reopen" in str(o.get("data", {}))
                                            for o in cell.get("outputs", [])):
            note = nbformat.v4.new_output("display_data", {
                "text/html": BESIDE.format(name=name, number=number),
                "text/plain": "A snapshot of this explorer."})
            cell.outputs.insert(0, note)
    nb.cells.insert(0, top)
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    for model in state.get("state", {}).values():
        if "disabled" in model.get("state", {}):
            model["state"]["disabled"] = True
    return nb


def to_html(nb) -> str:
    """The lab-styled HTML page, pointing at the local JavaScript instead of CDNs."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.require_js_url = "static/require.min.js"
    exporter.widget_renderer_url = "static/embed-amd.js"
    exporter.mathjax_url = MATHJAX
    body, _ = exporter.from_notebook_node(nb)
    return body


def build(numbers: list[str] | None = None, out: Path | None = None) -> list[Path]:
    """Write one handout per walkthrough (or per number given) and an index page, in ``out``
    (default: handouts/ of the course folder)."""
    root = course_dir()
    out = out or root / "handouts"
    fetch_js(out / "static")
    written = []
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        if numbers and path.name[:2] not in numbers:
            continue
        target = out / f"{path.stem}.html"
        made = datetime.date.today().isoformat()
        target.write_text(to_html(as_snapshot(executed(path), path.stem, made)))
        written.append(target)
        print(f"wrote {target}")
    (out / "index.html").write_text(index_html(root / "notebooks", out))
    return written


def title_and_goals(path: Path) -> tuple[str, list[str]]:
    """A walkthrough's title (its first heading) and its "What you will learn" bullets."""
    first = nbformat.read(path, as_version=4).cells[0].source
    lines = first.splitlines()
    title = next((line.lstrip("# ").strip() for line in lines if line.startswith("# ")), path.stem)
    goals: list[str] = []
    for line in lines:  # the first list: bullets, and their indented continuation lines
        if line.startswith("- "):
            goals.append(line[2:].strip())
        elif goals and line.startswith("  ") and line.strip():
            goals[-1] += " " + line.strip()
        elif goals and not line.strip():
            break
    return title, goals


INDEX_STYLE = """<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 52em;
  margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.5; }
h1 { font-size: 1.8em; margin-bottom: 0.2em; }
.lead { color: #555; margin-top: 0; }
ol { padding-left: 0; list-style: none; counter-reset: none; }
li.handout { border: 1px solid #ddd; border-radius: 6px; padding: 0.7em 1em; margin: 0.8em 0; }
li.handout a { font-size: 1.15em; font-weight: 600; color: #0072b2; text-decoration: none; }
li.handout a:hover, li.handout a:focus { text-decoration: underline; }
li.handout ul { margin: 0.4em 0 0; padding-left: 1.2em; color: #444; font-size: 0.95em; }
code { background: #f3f3f3; padding: 0 0.25em; border-radius: 3px; }
.fcconv-snapshot { border-left: 4px solid #e69f00; background: #fff7e6; padding: 0.5em 0.8em; }
</style>"""


def index_html(notebooks: Path, out: Path) -> str:
    """The handouts' front page: each walkthrough written, with its title and what it teaches."""
    import mistune  # nbconvert's Markdown renderer

    items = []
    for page in sorted(out.glob("[0-9][0-9]_*.html")):
        source = notebooks / f"{page.stem}.ipynb"
        title, goals = title_and_goals(source) if source.exists() else (page.stem, [])
        goals = [re.sub(r"\$(.+?)\$", r"<i>\1</i>", g) for g in goals]  # no MathJax here
        learn = "".join(f"<li>{mistune.html(g).strip().removeprefix('<p>').removesuffix('</p>')}"
                        "</li>" for g in goals)
        items.append(f"<li class='handout'><a href='{escape(page.name)}'>{escape(title)}</a>"
                     f"{f'<ul>{learn}</ul>' if learn else ''}</li>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>fcconv handouts</title>{INDEX_STYLE}</head><body><main>"
            "<h1>fcconv: a fully connected layer is a convolution</h1>"
            "<p class='lead'>The walkthroughs of the course, run once and saved as pages to read "
            "offline.</p><p class='fcconv-snapshot' role='note'><b>Snapshots.</b> Each page shows "
            "its figures and explorers as they were when it was made; nothing recomputes here. "
            "For the live course, run <code>make lab</code> in the course folder (or "
            "<code>make present NB=05</code> for one walkthrough's explorers).</p>"
            f"<ol>{''.join(items)}</ol></main></body></html>")


if __name__ == "__main__":
    build(sys.argv[1:] or None)
