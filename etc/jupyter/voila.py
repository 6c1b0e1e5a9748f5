# The course's Voila (make present), as its Jupyter server (jupyter_server_config.py): kernels
# on local sockets where the system has them (Voila keeps their connection files in a short
# folder of its own in the temporary folder), and two lines nobody can act on left out of the
# terminal (fcconv.course.lab.NOISE says which).
import os

if os.name != "nt":
    c.KernelManager.transport = "ipc"  # noqa: F821 (c: the config object Jupyter passes in)
try:
    from fcconv.course.lab import filter_noise
except ImportError:
    pass
else:
    filter_noise()
