# The course's Jupyter server (make lab, make slides, make present), beside the .json next to it.
import os

# Kernels talk to the server over local sockets in the runtime folder, not TCP ports: nobody
# else on the machine can connect, and ipykernel has no "running over TCP without encryption"
# warning to print for every kernel. (Windows has no such sockets: TCP there.)
if os.name != "nt":
    c.KernelManager.transport = "ipc"  # noqa: F821 (c: the config object Jupyter passes in)
