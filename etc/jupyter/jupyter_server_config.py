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

# Two lines nobody can act on stay out of the terminal (fcconv.course.lab.NOISE says which).
try:
    from fcconv.course.lab import filter_noise
except ImportError:
    pass
else:
    filter_noise()
