"""Static HTML handouts of the walkthroughs: executed, with figures, and with each widget's
last view embedded. They render offline: require.js, the widget renderer and MathJax come from
the npm registry once (``make handouts`` needs npm for that step only) and sit beside the pages.
Serve the folder (``python -m http.server -d handouts``) or copy it whole to a USB stick.

    python -m tools.handouts [NN ...]     # writes handouts/NN_name.html and handouts/index.html
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from html import escape
from pathlib import Path

import nbformat

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
                   resources={"metadata": {"path": str(path.parent)}}).execute()
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
        target.write_text(to_html(executed(path)))
        written.append(target)
        print(f"wrote {target}")
    pages = sorted(out.glob("[0-9][0-9]_*.html"))
    links = "".join(f"<li><a href='{p.name}'>{escape(p.stem)}</a></li>" for p in pages)
    (out / "index.html").write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
                                    f"<title>fcconv handouts</title></head><body><h1>fcconv "
                                    f"handouts</h1><ul>{links}</ul></body></html>")
    return written


if __name__ == "__main__":
    build(sys.argv[1:] or None)
