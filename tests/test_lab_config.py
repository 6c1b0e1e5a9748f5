"""The course's Jupyter server settings (etc/jupyter) and what every explorer sends to the page,
checked without a browser (tests/test_browser_lab.py drives them in one)."""

import asyncio
import json
import logging

import nbformat
import pytest
from conftest import NOTEBOOKS, ROOT

from fcconv.course import lab
from fcconv.widgets import base


def test_the_language_info_filled_in_is_what_the_kernel_reports():
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3", transport="ipc")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        reply = kc.kernel_info(reply=True)["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert reply["language_info"] == lab.kernel_language_info()


@pytest.fixture
def manager(tmp_path):
    return lab.CourseContentsManager(root_dir=str(tmp_path))


def test_a_walkthrough_opens_with_the_kernels_language_info_and_no_trust_warning(
        manager, tmp_path, caplog):
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    assert nb.metadata["language_info"] == {"name": "python"}  # as committed
    nbformat.write(nb, tmp_path / "a.ipynb")
    with caplog.at_level(logging.WARNING):
        model = asyncio.run(manager.get("a.ipynb"))
    assert model["content"]["metadata"]["language_info"] == lab.kernel_language_info()
    assert not [r for r in caplog.records if "trusted" in r.getMessage()]


def test_a_notebook_with_outputs_is_still_checked_for_trust(manager, tmp_path, caplog):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "1", outputs=[nbformat.v4.new_output("execute_result", {"text/html": "<b>1</b>"},
                                             execution_count=1)])])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.0.0"}  # another machine's
    nbformat.write(nb, tmp_path / "b.ipynb")
    with caplog.at_level(logging.WARNING):
        model = asyncio.run(manager.get("b.ipynb"))
    assert model["content"]["metadata"]["language_info"]["version"] == "3.0.0"  # left as it was
    assert model["content"]["cells"][0]["metadata"]["trusted"] is False      # unsigned outputs
    assert [r for r in caplog.records if "not trusted" in r.getMessage()]


def test_notebook_00_quotes_the_note_a_reopened_explorer_shows():
    nb = nbformat.read(ROOT / "notebooks" / "00_setup_check.ipynb", as_version=4)
    prose = " ".join(" ".join(c.source.split()) for c in nb.cells if c.cell_type == "markdown")
    assert base.REOPEN_NOTE in prose


def test_an_explorer_sends_its_widget_the_note_and_the_page_script(capsys):
    from IPython.core.interactiveshell import InteractiveShell
    from ipywidgets import IntSlider

    class One(base.Explorer):
        def __init__(self):
            self.box = IntSlider(description="x")

    shell = InteractiveShell.instance()
    published = []
    shell.display_pub.publish = lambda data, metadata=None, **kw: published.append(data)
    try:
        shell.display_formatter.format(One())  # what IPython does with a cell's result
        base.Explorer._ipython_display_(One())
    finally:
        InteractiveShell.clear_instance()
    widget, page = published[-2:]
    assert "application/vnd.jupyter.widget-view+json" in widget
    assert widget["text/plain"] == base.REOPEN_NOTE      # what a view without widgets shows
    html = page["text/html"]
    assert base.REOPEN_NOTE in html and "fcconv-reopen" in html
    assert "data-lm-suppress-shortcuts" in html and "aria-valuetext" in html


def test_the_course_settings_keep_nbgrader_from_learners_and_give_it_to_instructors():
    learner = json.loads((ROOT / "etc/jupyter/labconfig/page_config.json").read_text())
    instructor = json.loads((ROOT / "etc/jupyter-instructor/labconfig/page_config.json").read_text())
    assert learner["disabledExtensions"]["@jupyter/nbgrader"] is True
    assert instructor["disabledExtensions"]["@jupyter/nbgrader"] is False
    off = json.loads((ROOT / "etc/jupyter/jupyter_server_config.json").read_text())
    on = json.loads((ROOT / "etc/jupyter-instructor/jupyter_server_config.json").read_text())
    nbgrader = {k for k in off["ServerApp"]["jpserver_extensions"] if k.startswith("nbgrader")}
    assert nbgrader and not any(off["ServerApp"]["jpserver_extensions"][k] for k in nbgrader)
    assert all(on["ServerApp"]["jpserver_extensions"][k] for k in nbgrader)
    overrides = json.loads((ROOT / "etc/jupyter/labconfig/default_setting_overrides.json")
                           .read_text())
    assert overrides["@jupyter-widgets/jupyterlab-manager:plugin"]["saveState"] is False


def test_a_kernel_the_course_starts_runs_in_another_folder_and_warns_nothing(tmp_path, capfd):
    from nbclient import NotebookClient

    from fcconv.course import kernels

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os; print(os.getcwd())")])
    NotebookClient(nb, kernel_name="python3", timeout=120, config=kernels.local_sockets(),
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert nb.cells[0].outputs[0]["text"].strip() == str(tmp_path)
    assert "without encryption" not in capfd.readouterr().err  # the kernel's own stderr


def test_the_course_server_starts_kernels_on_local_sockets_whose_paths_fit():
    from traitlets.config import Config

    from fcconv.course.kernels import SOCKET_PATH_MAX

    c = Config()
    exec((ROOT / "etc/jupyter/jupyter_server_config.py").read_text(), {"c": c})  # as Jupyter does
    assert c.MappingKernelManager.kernel_manager_class == "fcconv.course.lab.LocalSocketKernelManager"
    km = lab.LocalSocketKernelManager(kernel_name="python3")
    # jupyter_server would have named them after the connection file: a hub home's runtime folder
    # made that longer than a socket's path may be
    assert km.transport == "ipc" and km.ip.startswith("/") and len(km.ip + "-5") <= SOCKET_PATH_MAX
    assert lab.LocalSocketKernelManager(kernel_name="python3").ip != km.ip  # each kernel its own
