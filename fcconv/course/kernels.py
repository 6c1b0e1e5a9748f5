"""Kernels the course starts itself (the grader, the handouts, the benchmarks): how they talk.

    NotebookClient(nb, kernel_name="python3", config=kernels.local_sockets())
"""

from __future__ import annotations

import os
import uuid


def local_sockets():
    """Jupyter config for one kernel that talks over local (IPC) sockets in the runtime folder,
    where the system has them (not Windows): no TCP port another user of the machine could
    reach, and no ipykernel warning "Kernel is running over TCP without encryption" in the
    terminal for every kernel started. Call it once per kernel (the sockets' names are its own)."""
    from jupyter_core.paths import jupyter_runtime_dir
    from traitlets.config import Config

    if os.name == "nt":
        return Config()
    folder = jupyter_runtime_dir()
    os.makedirs(folder, mode=0o700, exist_ok=True)
    # An absolute path: the kernel runs in the notebook's folder, the client in ours.
    ip = os.path.join(folder, f"kernel-{uuid.uuid4().hex[:12]}-ipc")
    return Config({"KernelManager": {"transport": "ipc", "ip": ip}})
