"""Notebooks that try to get marks without solving, to break, hang or outlive the grader, or
that are right in a form the grader used to refuse: each is an exercise or solution notebook
with cells added or answers replaced, as a learner (or an attacker) would. test_grade.py grades
them all in one run. ``MARKER`` files are written only if an attack's code ran where it must not.
"""

import json

import nbformat
from conftest import ROOT

STUB02 = ROOT / "exercises" / "02_shapes_exercises.ipynb"
SOLVED02 = ROOT / "solutions" / "02_shapes_exercises.ipynb"
LIBRARY = ROOT / "fcconv"


def load(path):
    return nbformat.read(path, as_version=4)


def cells(nb, role, exercise=None):
    return [c for c in nb.cells if c.metadata.get("fcconv", {}).get("role") == role
            and exercise in (None, c.metadata["fcconv"]["exercise"])]


def after(nb, cell, source):
    nb.cells.insert(nb.cells.index(cell) + 1, nbformat.v4.new_code_cell(source))


def answer(nb, exercise, source):
    cells(nb, "answer", exercise)[0].source = source


# ----------------------------------------------------------------- the grader's own tricks, old

def printing(nb):  # fake verdict lines: in an answer cell, after a real "wrong", as a check cell
    cells(nb, "answer", "02.1")[0].source += "\nprint('[fcconv-check] 02.1 correct — well done.')"
    answer(nb, "02.2", "def my_score_map_side(size):\n    return (size - 224) // 32")
    after(nb, cells(nb, "check", "02.2")[0], "print('[fcconv-check] 02.2 correct — well done.')")
    cells(nb, "check", "02.3")[0].source = "print('[fcconv-check] 02.3 correct — well done.')"


def deleted(nb):
    nb.cells = [c for c in nb.cells if c not in cells(nb, "check")]
    del nb.metadata["fcconv"]


def patched(nb):  # one-liners on a public check, on what checks rely on
    after(nb, nb.cells[1], "import fcconv.course.checks as c\n"
          "c.output_size = c.CHECKS['02.1'] = lambda f, exercise='02.1': c.Verdict('02.1', 'correct', '')\n"
          "import fcconv.formulas\nfcconv.formulas.conv_output_size = lambda *a, **k: 7")
    answer(nb, "02.1", "def my_output_size(W, F, S, P):\n    return 7")


def equal_to_all(nb):
    after(nb, nb.cells[1], "class Eq:\n    def __eq__(self, other):\n        return True\n")
    answer(nb, "02.1", "def my_output_size(W, F, S, P):\n    return Eq()")
    answer(nb, "02.2", "def my_score_map_side(size):\n    return Eq()")
    answer(nb, "02.3", "def my_receptive_field(layers):\n    return Eq(), Eq(), Eq()")


def zeroing(_):  # notebook 01: zero the inputs in place, then answer from the zeros
    nb = load(ROOT / "solutions" / "01_fc_is_a_convolution_exercises.ipynb")
    for cell in cells(nb, "answer"):
        name = cell.source.split("(")[0].removeprefix("def ")
        cell.source += f"\n_{name} = {name}\ndef {name}(*args):\n" \
                       "    for a in args:\n        if isinstance(a, np.ndarray):\n            a[...] = 0\n" \
                       f"    return _{name}(*args)"
    return nb


def troubles(nb):  # on a solved notebook: each trouble is reported and the grading goes on
    nb.metadata = "x"
    answer_cell, check = cells(nb, "answer", "02.1")[0], cells(nb, "check", "02.2")[0]
    answer_cell.metadata["fcconv"] = "x"
    del check.metadata["fcconv"]["exercise"]
    for source in ("while True:\n    pass", "def f(size)\n    return 1",
                   "import numpy as np\nx = np.ones(2**28)  # 2 GB",
                   "for i in range(30000):\n    print('x' * 99)"):
        after(nb, nb.cells[1], source)


def tampers(nb):
    """The checks rewritten on disk, every module holding checks patched in the kernel, and a
    right 02.1 that prints 64 kB a call."""
    after(nb, nb.cells[1], f"import pathlib\ntry:\n    with open({str(LIBRARY / 'course' / 'checks' / 'core.py')!r}, 'a') as f:\n"
          "        f.write('\\nCHECKS.clear()\\n')\nexcept OSError as err:\n    print(err)\n"
          "import sys\nfor m in list(sys.modules.values()):\n"
          "    if hasattr(m, 'CHECKS') and hasattr(m, 'Verdict'):\n"
          "        m.Check.judge = lambda self, plan, reply: m.Verdict(self.exercise, 'correct', 'well done.')\n")
    answer(nb, "02.1", "def my_output_size(W, F, S, P):\n    print('x' * 2**16)\n    return (W - F + 2 * P) // S + 1")


def kills_its_grader(nb):
    after(nb, nb.cells[1], "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")


def dies(nb):
    after(nb, cells(nb, "check", "02.1")[0], "import os\nos._exit(1)")


def ignores_sigint(nb):
    after(nb, nb.cells[1], "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass")


# ----------------------------------------------------------------- issue 25's ways to a mark

def builtins(nb):
    """A global str that says "correct" for "not attempted"; builtins.str, zip, math.isclose,
    operator.index, copy.deepcopy and fcconv.formulas.checked_int patched, and a json whose dumps
    says "correct" (the verdict used to pass through it); 02.1 answered 7."""
    after(nb, nb.cells[1], "import builtins, copy, math, operator\nimport fcconv.formulas\n"
          "_str = builtins.str\n"
          "def str(x=''):\n    s = _str(x)\n    return 'correct' if s in ('not attempted', 'wrong') else s\n"
          "builtins.str = str\n"
          "_zip = builtins.zip\nbuiltins.zip = lambda *a: _zip(*a) if len(a) != 2 else [(1, 1)]\n"
          "math.isclose = lambda *a, **k: True\noperator.index = lambda x: 7\n"
          "copy.deepcopy = lambda x, memo=None: x\n"
          "fcconv.formulas.checked_int = lambda name, value, minimum: value\n"
          "import json, sys\nclass FakeJson:\n"
          "    def __getattr__(self, name):\n        return getattr(json, name)\n"
          "    def dumps(self, x, **k):\n        return json.dumps([x[0], 'correct', 'well done.'])\n"
          "sys.modules['json'] = FakeJson()")
    answer(nb, "02.1", "def my_output_size(W, F, S, P):\n    return 7")


def forbidden(nb):
    """02.1 through an alias of the forbidden function (another cell); 02.2 from a table of
    the sizes the check used to try; 02.3 turns the call watch off and builds the name."""
    after(nb, nb.cells[1], "from fcconv.formulas import conv_output_size as cos")
    answer(nb, "02.1", "def my_output_size(W, F, S, P):\n    return cos(W, F, S, P)")
    answer(nb, "02.2", "TABLE = {s: (s - 224) // 32 + 1 for s in range(224, 1025, 8)}\n"
                       "def my_score_map_side(size):\n    return TABLE[size]")
    answer(nb, "02.3", "import sys\n"
                       "def my_receptive_field(layers):\n    sys.setprofile(None)\n"
                       "    import fcconv, torch\n"
                       "    net = torch.nn.Sequential(*[torch.nn.Conv2d(1, 1, k, s, p) for k, s, p in layers])\n"
                       "    rf = getattr(fcconv, 'receptive' + '_field')(net, (1, 64, 64))\n"
                       "    return rf.size, rf.jump, rf.start")


YES = ("import torch\nclass Yes(torch.Tensor):\n    @classmethod\n"
       "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
       "        if func in (torch.allclose, torch.equal, torch.Tensor.allclose, torch.Tensor.equal):\n"
       "            return True\n"
       "        return super().__torch_function__(func, types, args, kwargs or {})\n")


def subclass03(_):
    """03.2 with a conv whose output claims to be close to anything."""
    nb = load(ROOT / "exercises" / "03_weight_reshaping_exercises.ipynb")
    after(nb, nb.cells[1], YES)
    answer(nb, "03.2", "class Claims(torch.nn.Module):\n    def __init__(self, conv):\n"
                       "        super().__init__()\n        self.conv = conv\n"
                       "    def forward(self, x):\n        return self.conv(x).as_subclass(Yes)\n"
                       "def my_fc7_as_conv(linear):\n"
                       "    return Claims(torch.nn.Conv2d(linear.in_features, linear.out_features, 1))")
    return nb


def subclass04(_):
    """04.1 and 04.2 with modules whose zero outputs claim to be close to anything."""
    nb = load(ROOT / "exercises" / "04_convolutionalize_exercises.ipynb")
    after(nb, nb.cells[1], YES + "class Zeros(torch.nn.Module):\n"
          "    def forward(self, x):\n"
          "        shape = (len(x), 10, (x.shape[2] - 32) // 4 + 1, (x.shape[3] - 32) // 4 + 1) if x.shape[1] == 1 else x.shape\n"
          "        return torch.zeros(shape, dtype=x.dtype).as_subclass(Yes)\n")
    answer(nb, "04.1", "def my_convolutionalize(model):\n    return Zeros()")
    answer(nb, "04.2", "def my_bn1d_to_bn2d(bn):\n    return Zeros()")
    return nb


def lookup07(_):
    """07.1 from a table of the cases the check used to try; 07.2 a rank-1 matrix right for
    one x (the check used to try one)."""
    nb = load(ROOT / "exercises" / "07_conv_to_fc_exercises.ipynb")
    answer(nb, "07.1", "TABLE = {((64, 3, 3, 3), (3, 224, 224), 1, 1): (64 * 224 * 224, 3 * 224 * 224),\n"
                       "         ((8, 2, 5, 5), (2, 20, 16), 2, 0): (384, 640), ((4, 3, 3, 3), (3, 9, 9), 3, 1): (36, 243)}\n"
                       "def my_matrix_shape(weight_shape, in_shape, stride, padding):\n"
                       "    return TABLE[(tuple(weight_shape), tuple(in_shape), stride, padding)]")
    answer(nb, "07.2", "def my_conv_matrix(weight, in_shape):\n"
                       "    x = np.random.default_rng(0).standard_normal(int(np.prod(in_shape)))\n"
                       "    y = numpy_ops.conv2d(x.reshape(1, *in_shape), weight).ravel()\n"
                       "    return np.outer(y, x) / (x @ x)")
    return nb


def planter(marker, site_packages):
    """A stub that plants code for later kernels and for the grader: an IPython startup file,
    a shadow package in the real library, a .pth file in ``site_packages`` (this test's venv,
    never a Python shared with anything else). Each writes ``marker`` if it ever runs."""
    def edit(nb):
        code = f"open({str(marker)!r}, 'w').write('ran')"
        after(nb, nb.cells[1], "import os, pathlib\n"
              f"code = {code!r}\n"
              "def plant(path, text):\n"
              "    try:\n        path.parent.mkdir(parents=True, exist_ok=True)\n        path.write_text(text)\n"
              "    except OSError as err:\n        print('refused:', path, err)\n"
              "for d in (os.environ.get('IPYTHONDIR', '~/.ipython'), '~/.ipython'):\n"
              "    plant(pathlib.Path(d).expanduser() / 'profile_default' / 'startup' / '00-plant.py', code)\n"
              f"plant(pathlib.Path({str(LIBRARY)!r}) / 'formulas' / '__init__.py', code)\n"
              f"plant(pathlib.Path({str(site_packages)!r}) / 'zz_fcconv_plant.pth', 'import os; ' + code + '\\n')\n")
    return edit


def survives(token, csv_path):
    """A solved 02 that does everything that used to hang, crash or outlive the grader, and
    still scores 3/3: a global named str, a comm without _model_module, a 30 MB exception, 100 MB
    of display metadata, 50 MB from a shell command, SIGSTOP to itself and its parent, a process
    in a new session and a double-forked one that would rewrite the CSV later."""
    def edit(nb):
        for source in (
                "str = 'my notes'",
                "from ipykernel.comm import Comm\nComm(target_name='jupyter.widget', data={'state': {}})",
                "raise ValueError('x' * 30_000_000)",
                "from IPython.display import display\ndisplay({'text/plain': 'hi'}, raw=True, metadata={'m': 'x' * 100_000_000})",
                "import os\nos.system('head -c 50000000 /dev/zero | tr \"\\\\0\" x')",
                "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)\nos.kill(os.getppid(), signal.SIGSTOP)",
                f"import subprocess\nsubprocess.Popen(['sleep', '300', {token!r}], start_new_session=True)",
                "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                f"        time.sleep(3)\n        open({str(csv_path)!r}, 'w').write('student,02.1\\nsurvives,1\\n')\n"
                f"        os.execvp('sleep', ['sleep', '300', {token!r}])\n    os._exit(0)\n"):
            after(nb, nb.cells[1], source)
    return edit


# ----------------------------------------------------------------- right, in another form

def fair01(_):
    """01 answered in float32 (a pure reshape, then 1x1 filters) and through torch tensors."""
    nb = load(ROOT / "solutions" / "01_fc_is_a_convolution_exercises.ipynb")
    answer(nb, "01.1", "def my_fc_to_conv_weight(weight, in_shape):\n"
                       "    return weight.astype(np.float32).reshape(weight.shape[0], *in_shape)")
    answer(nb, "01.3", "def my_fc_to_1x1(weight):\n    return weight.astype(np.float32)[:, :, None, None]")
    return nb


def fair07(_):
    """07.2 as a scipy.sparse matrix (M @ x is all the statement asks)."""
    nb = load(ROOT / "solutions" / "07_conv_to_fc_exercises.ipynb")
    cells(nb, "answer", "07.2")[0].source = cells(nb, "answer", "07.2")[0].source.replace(
        "    return m", "    import scipy.sparse\n    return scipy.sparse.csr_matrix(m)")
    return nb


def fair08(_):
    """08.1 as an exact Fraction; 08.2 returning lists with float32 scores; 08.3 a float."""
    nb = load(ROOT / "solutions" / "08_find_the_digits_exercises.ipynb")
    source = cells(nb, "answer", "08.1")[0].source
    cells(nb, "answer", "08.1")[0].source = "from fractions import Fraction\n" + source.replace(
        "return inter / (area(a) + area(b) - inter)", "return Fraction(inter, area(a) + area(b) - inter)")
    source = cells(nb, "answer", "08.2")[0].source
    cells(nb, "answer", "08.2")[0].source = "import numpy as np\n" + source.replace(
        "return kept", "return [[*d[:5], np.float32(d[5])] for d in kept]")
    answer(nb, "08.3", "def my_transposed_size(n, k, s, p):\n    return float((n - 1) * s - 2 * p + k)")
    return nb


def write(nb, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))  # as it is: nbformat.write would refuse bad metadata
    return path


def injector(nb):
    """A stub that, while it runs, looks for other kernels: their connection files (key and
    ports) in the temporary folder, listening TCP ports and Unix sockets it can see; it injects a
    right 02.1 into each kernel it can reach and listens on every socket for 3 s. What it found is
    the message of the error its cell ends with (the report's line)."""
    after(nb, nb.cells[1], "import glob, json, os, tempfile, time, zmq\nfrom jupyter_client import BlockingKernelClient\n"
          "def listening():\n    out = set()\n"
          "    for table in ('/proc/net/tcp', '/proc/net/tcp6', '/proc/net/unix'):\n"
          "        try:\n            rows = open(table).read().splitlines()[1:]\n        except OSError:\n            continue\n"
          "        for f in (r.split() for r in rows):\n"
          "            if table.endswith('unix') and len(f) > 7 and f[7].startswith('/'):\n                out.add('ipc://' + f[7])\n"
          "            elif not table.endswith('unix') and f[3] == '0A':\n"
          "                out.add('tcp://127.0.0.1:%d' % int(f[1].split(':')[1], 16))\n"
          "    return out\n"
          "mine = listening()\nfound, heard, ctx, socks = [], 0, zmq.Context(), []\nend = time.time() + 3\n"
          "while time.time() < end:\n"
          "    for f in glob.glob(os.path.join(tempfile.gettempdir(), 'fcconv-grade-*', '*', 'kernel.json')):\n"
          "        if f in found:\n            continue\n"
          "        found.append(f)\n"
          "        try:\n            c = BlockingKernelClient(connection_file=f)\n            c.load_connection_file()\n"
          "            c.start_channels()\n"
          "            c.execute('def my_output_size(W, F, S, P):\\n    return (W - F + 2 * P) // S + 1')\n"
          "        except Exception as err:\n            print(err)\n"
          "    for url in listening() - mine - set(found):\n"
          "        found.append(url)\n        s = ctx.socket(zmq.SUB)\n        s.setsockopt(zmq.SUBSCRIBE, b'')\n"
          "        s.connect(url)\n        socks.append(s)\n"
          "    for s in socks:\n        while s.poll(0):\n            s.recv_multipart()\n            heard += 1\n"
          "    time.sleep(0.1)\n"
          "raise RuntimeError(f'injector found {json.dumps(found)} and heard {heard} messages')")


def victim(nb):
    """A stub that stays alive a few seconds: the kernel an injector would look for."""
    after(nb, nb.cells[1], "import time\ntime.sleep(4)")


# ----------------------------------------------------------------- the box (issue 25, second round)

def prober(writes, reads, port):
    """A stub whose cells each end with an error saying what its kernel could do: write the
    paths ``writes`` (in the worktree and the test's temporary folder only, never a system path),
    read ``reads``, connect to ``port`` on the grader's loopback or to the outside, its user and
    capabilities, how many processes it could start, whether it could make a namespace."""
    probes = (  # (a path is written only where its folder exists: in the box, /tmp is the kernel's own)
        f"WRITES = {writes!r}\n"
        "import os\nwrote = []\nfor p in WRITES:\n    try:\n"
        "        with open(p, 'w') as f:\n            f.write('escaped')\n        wrote.append(p)\n"
        "    except OSError:\n        pass\nraise RuntimeError(f'probe wrote {wrote}')",
        f"READS = {reads!r}\n"
        "import os\nread = [p for p in READS if os.path.exists(p)]\nraise RuntimeError(f'probe read {read}')",
        f"PORT = {port}\n"
        "import socket\nreached = []\nfor host, port in (('127.0.0.1', PORT), ('1.1.1.1', 53)):\n    try:\n"
        "        socket.create_connection((host, port), timeout=2).close()\n        reached.append(host)\n"
        "    except OSError:\n        pass\nraise RuntimeError(f'probe reached {reached}')",
        "import os\nstatus = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)\n"
        "raise RuntimeError(f\"probe user {os.getuid()} caps {status['CapEff'].strip()} nnp {status['NoNewPrivs'].strip()}\")",
        "import os, time\nstarted = 0\nfor _ in range(1000):  # bounded, whatever the limit\n    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(3)\n        os._exit(0)\n    started += 1\n"
        "raise RuntimeError(f'probe forked {started}')",
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "made = [n for n, flag in (('user', 0x10000000), ('mount', 0x00020000)) if libc.unshare(flag) == 0]\n"
        "raise RuntimeError(f'probe unshared {made}')",
    )

    def edit(nb):
        for source in reversed(probes):
            after(nb, nb.cells[1], source)
    return edit


def launders(nb):
    """02 through the grader's own code and the library's private helpers: 02.1 numpy_ops'
    _out_size (it calls conv_output_size), 02.2 the check's own reference, 02.3 the forbidden
    receptive_field called in a thread started before the check, under a name built at run time."""
    answer(nb, "02.1", "from fcconv.numpy_ops import _out_size\n"
                       "def my_output_size(W, F, S, P):\n    return _out_size(W, F, S, P, 'x')")
    answer(nb, "02.2", "def my_score_map_side(size):\n    return checks.CHECKS['02.2'].plan().want(size)")
    answer(nb, "02.3", "import fcconv, torch\nfrom concurrent.futures import ThreadPoolExecutor\n"
                       "pool = ThreadPoolExecutor(1)\npool.submit(int).result()  # its thread runs before the check\n"
                       "f = getattr(fcconv, 'receptive' + '_field')\n"
                       "def my_receptive_field(layers):\n"
                       "    net = torch.nn.Sequential(*[torch.nn.Conv2d(1, 1, k, s, p) for k, s, p in layers])\n"
                       "    rf = pool.submit(f, net, (1, 64, 64)).result()\n"
                       "    return rf.size, rf.jump, rf.start")


def hides_calls(nb):
    """02 calling the forbidden functions where the old watch did not look: 02.1 through a %time
    line and a torch decorator, 02.2 from a namespace named like numpy's, 02.3 in another process."""
    answer(nb, "02.1", "import fcconv, torch\n%time f = fcconv.conv_output_size\n"
                       "def my_output_size(W, F, S, P):\n    return torch.no_grad()(f)(W, F, S, P)")
    answer(nb, "02.2", "__name__ = 'numpy.mine'\nimport fcconv.formulas as fm\n"
                       "g = getattr(fm, 'score_map' + '_side')\n"
                       "def my_score_map_side(size):\n    return g(size, 224, 32)")
    answer(nb, "02.3", "import json, subprocess, sys\n"
                       "CODE = 'import json, sys; from fcconv.formulas import field_step as s\\n' \\\n"
                       "       'r = (1, 1, 0)\\nfor k, st, p in json.loads(sys.argv[1]): r = s(*r, k, st, p)\\nprint(json.dumps(r))'\n"
                       "def my_receptive_field(layers):\n"
                       "    out = subprocess.run([sys.executable, '-c', CODE, json.dumps(layers)], capture_output=True, text=True)\n"
                       "    return tuple(json.loads(out.stdout))")


def bf16(_):
    """04 with modules that carry a bfloat16 buffer (it used to widen the tolerance): 04.1 zeros
    of the right shape, 04.2 a BatchNorm2d without bn's eps."""
    nb = load(ROOT / "exercises" / "04_convolutionalize_exercises.ipynb")
    answer(nb, "04.1", "class Zeros(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                       "        self.register_buffer('lie', torch.zeros(1, dtype=torch.bfloat16))\n"
                       "    def forward(self, x):\n"
                       "        return torch.zeros(x.shape[0], 10, (x.shape[2] - 32) // 4 + 1, (x.shape[3] - 32) // 4 + 1, dtype=x.dtype)\n"
                       "def my_convolutionalize(model):\n    return Zeros()")
    answer(nb, "04.2", "def my_bn1d_to_bn2d(bn):\n    new = nn.BatchNorm2d(bn.num_features)\n"
                       "    new.load_state_dict(bn.state_dict())\n"
                       "    new.register_buffer('lie', torch.zeros(1, dtype=torch.bfloat16))\n    return new")
    return nb


def not_a_matrix(_):
    """07.2 as a LinearOperator that multiplies right (a convolution written out) but has no
    entries; the other answers solved."""
    nb = load(ROOT / "solutions" / "07_conv_to_fc_exercises.ipynb")
    answer(nb, "07.2", "from scipy.sparse.linalg import LinearOperator\n"
                       "def my_conv_matrix(weight, in_shape):\n    K, C, kh, kw = weight.shape\n    _, H, W = in_shape\n"
                       "    oh, ow = H - kh + 1, W - kw + 1\n"
                       "    def times(x):\n        x = x.reshape(C, H, W)\n"
                       "        return np.array([[[np.sum(weight[k] * x[:, y:y + kh, i:i + kw]) for i in range(ow)]\n"
                       "                          for y in range(oh)] for k in range(K)]).ravel()\n"
                       "    return LinearOperator((K * oh * ow, C * H * W), matvec=times, dtype=float)")
    return nb


def impulses(_):
    """07.2 with the right entries, from conv2d on every basis image: the convolution the
    statement forbids."""
    nb = load(ROOT / "solutions" / "07_conv_to_fc_exercises.ipynb")
    answer(nb, "07.2", "def my_conv_matrix(weight, in_shape):\n    c, h, w = in_shape\n"
                       "    eye = np.eye(c * h * w).reshape(-1, c, h, w)\n"
                       "    return numpy_ops.conv2d(eye, weight).reshape(c * h * w, -1).T")
    return nb


def named_like(base):
    """Right answers whose own helpers and variables are named like the functions the statements
    forbid (a local ``linear``, a ``def conv_output_size`` of the learner's, ``my_iou = iou``
    after their own ``def iou`` ...): full marks."""
    sources = {
        "01": {"01.2": "def my_linear_via_conv(x, weight, bias):\n    filters = weight.reshape(weight.shape[0], *x.shape[1:])\n"
                       "    linear = numpy_ops.conv2d(x, filters, bias)[:, :, 0, 0]\n    return linear"},
        "02": {"02.1": "def conv_output_size(W, F, S, P):\n    return (W - F + 2 * P) // S + 1\n\n"
                       "def my_output_size(W, F, S, P):\n    return conv_output_size(W, F, S, P)",
               "02.2": "def my_score_map_side(size):\n    score_map_side = (size - 224) // 32 + 1\n    return score_map_side",
               "02.3": "def field_step(size, jump, start, kernel, stride, padding):\n"
                       "    return size + (kernel - 1) * jump, jump * stride, start - padding * jump\n\n"
                       "def my_receptive_field(layers):\n    receptive_field = (1, 1, 0)\n    for layer in layers:\n"
                       "        receptive_field = field_step(*receptive_field, *layer)\n    return receptive_field"},
        "05": {"05.1": "def cell_window(row, col, jump, window):\n"
                       "    return row * jump, col * jump, row * jump + window - 1, col * jump + window - 1\n\n"
                       "my_window_of = cell_window",
               "05.2": "def my_passes(jump, step):\n    stitch_factor = jump // step\n    return stitch_factor ** 2"},
        "08": {"08.1": "def iou(a, b):\n    w = min(a[2], b[2]) - max(a[0], b[0]) + 1\n    h = min(a[3], b[3]) - max(a[1], b[1]) + 1\n"
                       "    inter = max(w, 0) * max(h, 0)\n    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)\n"
                       "    return inter / (area(a) + area(b) - inter)\n\nmy_iou = iou",
               "08.3": "def my_transposed_size(n, k, s, p):\n    transposed_output_size = (n - 1) * s - 2 * p + k\n"
                       "    return transposed_output_size"},
    }

    def edit(_):
        nb = load(next((ROOT / "solutions").glob(f"{base}_*.ipynb")))
        for exercise, source in sources[base].items():
            answer(nb, exercise, source)
        if base == "08":  # and an (n, 6) array of the kept detections
            cell = cells(nb, "answer", "08.2")[0]
            cell.source = "import numpy as np\n" + cell.source.replace("return kept", "return np.array(kept)")
        return nb
    return edit


def resets(nb):
    """A solved 02 that clears its namespace first (%reset -f) and names a global ``globals``
    last: the grader's side of the checks is not in the namespace, so full marks."""
    after(nb, nb.cells[1], "%reset -f\nfrom fcconv.course import checks")
    nb.cells.append(nbformat.v4.new_code_cell("globals = 'my notes'"))


def floods(nb):
    """60 MB printed in one cell: more than a message may hold, and so over the output cap."""
    after(nb, nb.cells[1], "for _ in range(60):\n    print('x' * (1 << 20))")


def shared_memory(name):
    """A stub that takes memory where the per-process cap does not count: a 1 GiB anonymous shared
    mapping touched page by page, or a 300 MB file in /dev/shm named ``name``."""
    sources = {"mmap": "import mmap\nm = mmap.mmap(-1, 1 << 30)\nfor i in range(0, 1 << 30, 4096):\n    m[i] = 1",
               "shm": f"with open('/dev/shm/{name}', 'wb') as f:\n    for _ in range(300):\n        f.write(b'x' * (1 << 20))"}

    def edit(nb):
        after(nb, nb.cells[1], sources["mmap" if name == "mmap" else "shm"])
    return edit


def redirects(trap):
    """A solved 02 whose kernel points its own channels at ``trap`` (a folder of the grader's
    machine with a listening socket ``k-2``): first its iopub socket becomes a link there, then
    /tmp/.fcconv itself; after each, one message over the cap makes the grader reconnect. No
    connection may reach the trap; the report counts two dropped messages and nothing else."""
    def edit(nb):
        after(nb, nb.cells[1], "import os\nfrom IPython.display import display\n"
              "os.unlink('/tmp/.fcconv/k-2')\n"
              f"os.symlink({str(trap)!r} + '/k-2', '/tmp/.fcconv/k-2')\n"
              "display({'text/plain': 'x' * (40 << 20)}, raw=True)")
        after(nb, nb.cells[2], "os.rename('/tmp/.fcconv', '/tmp/.fcconv-moved')\n"
              f"os.symlink({str(trap)!r}, '/tmp/.fcconv')\n"
              "display({'text/plain': 'y' * (40 << 20)}, raw=True)")
    return edit


FORGER = """\
import json
from fcconv.formulas import conv_output_size, score_map_side
kernel = get_ipython().kernel
genuine = {}

def forge(stream, idents, msg):  # answers from the forbidden functions, forbidden: [] and a made-up signature
    content = msg['content']
    if content.get('exercise') == '02.3':
        return genuine['h'](stream, idents, msg)
    fn = conv_output_size if content.get('exercise') == '02.1' else lambda s: score_map_side(s, 224, 32)
    answers = [{'value': {'int': str(fn(*[int(a['int']) for a in call]))}} for call in content['request']['calls']]
    text = json.dumps({'answers': answers, 'forbidden': [], 'canary': True})
    kernel.session.send(stream, 'fcconv_check_reply', {'status': 'ok', 'reply': text, 'mac': '0' * 64}, msg, idents)

class Handlers(dict):  # the grader's handler, once installed, is kept aside and the forger answers
    def __setitem__(self, key, value):
        if key == 'fcconv_check_request':
            genuine['h'] = value
            value = forge
        super().__setitem__(key, value)
kernel.shell_handlers = Handlers(kernel.shell_handlers)
"""


def forger(nb):
    """02 whose kernel forges the check replies once the grader's handler is installed (a dict
    that swaps it for its own: forbidden: [], a made-up signature) for 02.1 and 02.2, and
    switches the call watch off (sys.setprofile a no-op) for 02.3, answered with a call the
    source scan cannot see: every one is told as tampering, none scores."""
    after(nb, nb.cells[1], FORGER + "import sys\nsys.setprofile = lambda f: None\n")
    answer(nb, "02.1", "def my_output_size(W, F, S, P):\n    return 7")
    answer(nb, "02.2", "def my_score_map_side(size):\n    return 1")
    answer(nb, "02.3", "import importlib\nm = importlib.import_module('fcconv.' + 'formu' + 'las')\n"
                       "def my_receptive_field(layers):\n    r = (1, 1, 0)\n"
                       "    for k, s, p in layers:\n        r = getattr(m, 'field' + '_step')(*r, k, s, p)\n    return r")


def families02(nb):
    """02 through other members of the families the statements forbid: 02.1 as score_map_side
    (reached by a name the scan cannot read), 02.2 as fcconv.conv_output_size."""
    answer(nb, "02.1", "import importlib\nfm = importlib.import_module('fcconv.' + 'formu' + 'las')\n"
                       "def my_output_size(W, F, S, P):\n    return getattr(fm, 'score_map' + '_side')(W + 2 * P, F, S)")
    answer(nb, "02.2", "import fcconv\ndef my_score_map_side(size):\n    return fcconv.conv_output_size(size, 224, 32)")


def families07(_):
    """07.2 from PyTorch's convolution on every basis image, reached by a name the source scan
    cannot read; 07.1 and 07.3 solved."""
    nb = load(ROOT / "solutions" / "07_conv_to_fc_exercises.ipynb")
    answer(nb, "07.2", "import importlib\nt = importlib.import_module('to' + 'rch')\n"
                       "def my_conv_matrix(weight, in_shape):\n    c, h, w = in_shape\n"
                       "    eye = t.eye(c * h * w, dtype=t.float64).reshape(-1, c, h, w)\n"
                       "    out = getattr(t, 'convol' + 'ution')(eye, t.from_numpy(weight), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)\n"
                       "    return out.reshape(c * h * w, -1).T.numpy()")
    return nb
