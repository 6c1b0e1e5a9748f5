"""What the course's Jupyter server (``make lab``, ``make slides``: etc/jupyter) adds to JupyterLab.

``CourseContentsManager`` opens a walkthrough with the ``language_info`` its Python kernel is
about to report. The notebooks are committed with only ``{"name": "python"}`` there (the Python
version differs between machines); when the kernel connects, JupyterLab writes the kernel's
version into the notebook's metadata and marks it modified, before the learner did anything.
And a notebook without outputs has nothing to trust: it opens without the server's "Notebook ...
is not trusted" warning in the terminal (one with outputs is checked as before).

``LocalSocketKernelManager`` starts each kernel on local sockets (``fcconv.course.kernels``) in
a short private folder: jupyter_server would name them after the connection file in the runtime
folder, a path that can pass the 107 bytes a socket's path may hold (a hub's home folders).
An ipykernel kernel also loads the course's IPython extensions (``kernels.EXTENSIONS``).
"""

from __future__ import annotations

import logging
import os
import uuid

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupyter_server.services.kernels.kernelmanager import ServerKernelManager
from traitlets import default

from .kernels import kernel_arguments, socket_folder


def kernel_language_info() -> dict:
    """What the ``python3`` kernel (ipykernel, in this server's own Python) reports."""
    from ipykernel.ipkernel import IPythonKernel

    return dict(IPythonKernel.language_info)


class CourseContentsManager(AsyncLargeFileManager):
    """The default contents manager, with the kernel's ``language_info`` filled into a
    notebook that runs on this server's ``python3`` kernel and names no Python version."""

    async def get(self, path, content=True, type=None, format=None, **kwargs):
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        if content and model.get("type") == "notebook":
            meta = model["content"]["metadata"]
            info = meta.get("language_info", {})
            if meta.get("kernelspec", {}).get("name") == "python3" and \
                    info.get("name") == "python" and "version" not in info:
                meta["language_info"] = kernel_language_info()
        return model

    def mark_trusted_cells(self, nb, path=""):
        if any(c.get("outputs") for c in nb.cells):
            return super().mark_trusted_cells(nb, path)
        self.notary.mark_cells(nb, True)  # no output to render: nothing that trust would hide


class LocalSocketKernelManager(ServerKernelManager):
    """jupyter_server's kernel manager, its kernel on local sockets in this server's folder."""

    @default("transport")
    def _transport_default(self) -> str:
        return "ipc"

    def _ip_default(self) -> str:
        return os.path.join(socket_folder(longest_name=15), uuid.uuid4().hex[:12])

    def format_kernel_cmd(self, extra_arguments=None) -> list[str]:
        """The kernel's command, with ``kernels.kernel_arguments()`` for an ipykernel kernel."""
        if any("ipykernel" in arg for arg in self.kernel_spec.argv):
            extra_arguments = [*kernel_arguments(), *(extra_arguments or [])]
        return super().format_kernel_cmd(extra_arguments)


# Lines the course's servers print that no learner or instructor can act on:
# - Tornado 6.5 reads jupyter_server's websocket pings (milliseconds) as seconds and warns once
#   that the timeout is longer than the interval; jupyter_server's own pings work as meant
#   (upstream: jupyter-server/jupyter_server#1612);
# - Voila opens each notebook through a contents manager of its own, which warns that a notebook
#   without outputs is "not trusted": Voila runs it afresh, so there is nothing to trust.
NOISE = {"tornado.general": "websocket_ping_timeout", "Voila": "is not trusted"}


def filter_noise(loggers=tuple(NOISE)) -> None:
    """Leave the NOISE lines of these loggers out of the terminal (idempotent)."""
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) for f in logger.filters):
            logger.addFilter(_Drop(NOISE[name]))


class _Drop(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record) -> bool:
        return self.text not in record.getMessage()
