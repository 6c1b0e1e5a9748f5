"""The course kernel's import_gc extension: PyTorch's objects frozen after its import, nothing
frozen mid-call, the collector back on, and garbage made later still collected. Each case runs in
a fresh interpreter (the extension changes its process for good)."""

import subprocess
import sys

import nbformat
from conftest import ROOT

from fcconv.course import kernels, lab


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


INSTALL = "import gc, weakref\nfrom fcconv.course import import_gc\nimport_gc.install()\n"


def test_torch_import_freezes_its_objects_and_the_collector_stays_on():
    before, after, on = run(INSTALL + "n = gc.get_freeze_count()\nimport torch\n"
                            "print(n, gc.get_freeze_count(), gc.isenabled())")
    assert int(before) == 0 and int(after) > 100_000 and on == "True"


def test_a_first_meta_op_pauses_the_collector_for_its_imports_but_freezes_nothing():
    """sympy and torch._dynamo are imported inside a model's forward on the meta device
    (PyTorch's first meta-device op), where half a forward pass is alive: frozen, it would
    never be freed."""
    freezes, paused, lazy, on = run(
        INSTALL + "import torch, fcconv\n"
        "calls, states = [], []\n"
        "freeze, disable = gc.freeze, gc.disable\n"
        "gc.freeze = lambda: calls.append(1) or freeze()\n"
        "gc.disable = lambda: states.append(1) or disable()\n"
        "fcconv.tiny_vgg(device='meta')(torch.empty(1, 3, 64, 64, device='meta'))\n"
        "import sys\n"
        "print(len(calls), len(states), 'torch._dynamo' in sys.modules, gc.isenabled())")
    assert lazy == "True" and on == "True"
    assert freezes == "0" and int(paused) >= 2   # symbolic_shapes (sympy), then torch._dynamo


def test_garbage_made_after_the_freeze_is_collected_and_a_freed_model_is_gone():
    cycle, model = run(
        INSTALL + "import torch\n"
        "class Node: pass\n"
        "a, b = Node(), Node(); a.other, b.other = b, a; ref = weakref.ref(a); del a, b\n"
        "gc.collect(); cycle = ref() is None\n"
        "net = torch.nn.Linear(4000, 4000); ref = weakref.ref(net.weight); del net\n"
        "print(cycle, ref() is None)")
    assert cycle == "True" and model == "True"


def test_a_course_kernel_loads_the_extension_and_so_does_make_labs():
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import gc, sys, torch\nprint(gc.get_freeze_count() > 100_000, "
        "'fcconv.course.import_gc' in sys.modules)")])
    NotebookClient(nb, kernel_name="python3", timeout=120, config=kernels.course_kernel()).execute()
    assert nb.cells[0].outputs[0]["text"].split() == ["True", "True"]
    km = lab.LocalSocketKernelManager(kernel_name="python3")
    cmd = km.format_kernel_cmd()
    assert all(arg in cmd for arg in kernels.kernel_arguments())
    assert cmd.index("-m") < cmd.index(kernels.kernel_arguments()[0])   # ipykernel's argument


def test_garbage_from_before_the_import_is_freed_not_frozen():
    (freed,) = run(INSTALL + "class Node: pass\n"
                   "a, b = Node(), Node(); a.other, b.other = b, a; ref = weakref.ref(a)\n"
                   "gc.disable(); del a, b; gc.enable()\n"   # a cycle left for the collector
                   "import torch\nprint(ref() is None)")
    assert freed == "True"
