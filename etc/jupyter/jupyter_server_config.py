# The course's Jupyter server (make lab, make slides, make present), beside the .json next to it.
#
# Kernels talk to the server over local sockets in a private folder, not TCP ports: nobody else
# on the machine can connect, and ipykernel has no "running over TCP without encryption"
# warning to print for every kernel (fcconv.course.lab.LocalSocketKernelManager). Where that
# cannot be (Windows, a temporary folder with a very long path, or fcconv not installed in
# this Python), kernels use TCP as usual.
try:
    from fcconv.course.kernels import socket_folder
except ImportError:
    socket_folder = None

if socket_folder is not None and socket_folder(longest_name=15):
    c.MappingKernelManager.kernel_manager_class = "fcconv.course.lab.LocalSocketKernelManager"  # noqa: F821

# jupyter_server gives Tornado its websocket pings in milliseconds (30000, timeout 90000) where
# Tornado 6.5 reads seconds, and Tornado warns once per server that the timeout is longer than
# the interval; jupyter_server's own keep-alive pings (in milliseconds) work as meant.
# Upstream: jupyter-server/jupyter_server#1612. That one line is left out of the terminal.
import logging  # noqa: E402


def _not_the_ping_units(record) -> bool:
    return "websocket_ping_timeout" not in record.getMessage()


logging.getLogger("tornado.general").addFilter(_not_the_ping_units)
