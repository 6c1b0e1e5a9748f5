"""Kernels the course starts itself (the grader, the handouts, the benchmarks): how they talk,
and what a walkthrough's kernel loads.

    NotebookClient(nb, kernel_name="python3", config=kernels.local_sockets())
    NotebookClient(nb, kernel_name="python3", config=kernels.course_kernel())   # as make lab's

Local (IPC) sockets, not TCP ports: no port another user of the machine could reach (a socket
file takes its owner's write permission to connect), and no ipykernel warning "Kernel is running
over TCP without encryption" in the terminal for every kernel. A socket's path holds at most 107
bytes (103 on macOS), so the sockets go to the temporary folder under short random names; where
there are no such sockets (Windows) or even that path is too long, kernels use TCP.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid

SOCKET_PATH_MAX = 103  # sizeof(sockaddr_un.sun_path) - 1: 107 on Linux, 103 on macOS
_folder: list[str] = []


def fits(path: str) -> bool:
    """Can a socket have this path (on every Unix the course runs on)?"""
    return os.name != "nt" and len(path) <= SOCKET_PATH_MAX


def local_sockets():
    """Jupyter config for one kernel on local sockets (TCP where there are none): call it once
    per kernel, the sockets' names are its own. The kernel manager removes them at shutdown."""
    from traitlets.config import Config

    # An absolute path: the kernel runs in the notebook's folder, the client in ours.
    ip = os.path.join(tempfile.gettempdir(), f"fcconv-{uuid.uuid4().hex[:12]}")
    return Config({"KernelManager": {"transport": "ipc", "ip": ip}}) if fits(ip + "-5") \
        else Config()


# IPython extensions of a kernel that runs the walkthroughs (make lab's server loads them too:
# fcconv.course.lab.LocalSocketKernelManager): the cycle collector paused during PyTorch's
# imports, and their objects frozen after (fcconv.course.import_gc).
EXTENSIONS = ("fcconv.course.import_gc",)


def kernel_arguments() -> list[str]:
    """ipykernel's command-line arguments that load EXTENSIONS."""
    return [f"--ext={name}" for name in EXTENSIONS]


def course_kernel():
    """Jupyter config for a kernel like the ones make lab's server starts: local sockets
    (``local_sockets``) and the EXTENSIONS loaded (for ``nbclient.NotebookClient``)."""
    config = local_sockets()
    config.NotebookClient.extra_arguments = kernel_arguments()
    return config


def socket_folder(longest_name: int) -> str | None:
    """For a Jupyter server: this process's private folder for its kernels' connection files
    and sockets (made on first use, only its owner can enter it, removed at exit), or None where
    names of ``longest_name`` characters in it could not be sockets."""
    if os.name == "nt":
        return None
    if not _folder:
        folder = tempfile.mkdtemp(prefix="fcconv-k")
        atexit.register(shutil.rmtree, folder, True)
        _folder.append(folder)
    return _folder[0] if fits(os.path.join(_folder[0], "x" * longest_name)) else None
