# The course's Voila (make present), as its Jupyter server (jupyter_server_config.py): kernels
# on local sockets where the system has them, and two lines nobody can act on left out of the
# terminal (fcconv.course.lab.NOISE says which).
try:
    from fcconv.course.kernels import socket_folder
    from fcconv.course.lab import filter_noise
except ImportError:
    pass
else:
    if socket_folder(longest_name=15):
        c.MappingKernelManager.kernel_manager_class = "fcconv.course.lab.LocalSocketKernelManager"  # noqa: F821
    filter_noise()
