"""benchmarks/class_load.py's memory arithmetic, without a hub: the PSS it sums over a class's
processes, and the guide's sizing lines it derives from a table (the real run is the benchmark)."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import class_load  # noqa: E402


def status_mb(pid: int, key: str) -> float:
    return next(int(line.split()[1]) for line in open(f"/proc/{pid}/status")
                if line.startswith(key)) / 1024


def test_pss_of_a_class_counts_every_process_below_its_root_and_shared_pages_once():
    # two children of this process map the same 64 MB file: PSS counts it 32 MB in each, the
    # sum once, where their RSS would count it twice
    code = ("import mmap, sys, time; f = open(sys.argv[1], 'rb'); "
            "m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ); sum(m[::4096]); "
            "print('ready', flush=True); time.sleep(60)")
    data = ROOT / ".pytest_cache" / "class_load_shared.bin"
    data.parent.mkdir(exist_ok=True)
    data.write_bytes(os.urandom(64 * 2**20))
    kids = [subprocess.Popen([sys.executable, "-c", code, str(data)], stdout=subprocess.PIPE,
                             text=True) for _ in range(2)]
    try:
        for k in kids:
            assert k.stdout.readline().strip() == "ready"
        found = class_load.descendants([os.getpid()])
        assert {os.getpid(), *(k.pid for k in kids)} <= set(found)
        rss = sum(status_mb(k.pid, "VmRSS") for k in kids)
        pss = sum(class_load.pss_mb(k.pid) for k in kids)
        assert rss - pss > 0.8 * 64          # the shared file counted once, not twice
        assert class_load.class_pss([k.pid for k in kids])["total"] == pytest.approx(pss, rel=0.05)
    finally:
        for k in kids:
            k.kill()
            k.wait()
        data.unlink()
    assert class_load.pss_mb(kids[0].pid) == 0.0   # a process that is gone counts nothing


def test_the_guide_sizes_a_server_from_the_largest_class_pss_per_learner(monkeypatch):
    head = ("| learners | server start (s, median) | 02 run (s, median) | 05 run (s, median) | "
            "slowest learner, login to 05 done (s) | 02 kernel peak MB | 05 kernel peak MB | "
            "server peak MB | per learner MB (server + bigger kernel) | hub + proxy MB | "
            "class PSS peak MB | class PSS, 05 open MB | PSS per learner MB |")
    keys = [k.strip() for k in head.strip("|").split("|")]
    rows = [dict(zip(keys, r)) for r in (
        ["2", "9", "8", "33", "55", "366", "1018", "139", "1157", "186", "1709", "1258", "775"],
        ["16", "30", "20", "90", "160", "366", "1000", "139", "1139", "190", "8790", "7000", "537"])]
    notebooks = [{"notebook": f"0{i}_x.ipynb", "kernel CPU (s)": "5.0",
                  "kernel peak memory (MB)": str(900 + i)} for i in range(9)]
    machine = "Some CPU, 2 cores, Python 3"
    tables = {"class_load": (machine, rows), "notebook_times": (machine, notebooks)}
    monkeypatch.setattr("fcconv.course.results.read_table", lambda name: tables[name])
    lines = "\n".join(class_load.sizing_lines())
    fit = int(((16 - 2) * 1024 - 190) // 537)
    assert "**Memory per learner: 537 MB** in a class of 16" in lines
    assert f"holds **{fit} learners**" in lines and fit == 26
    assert "08_x.ipynb, 908 MB" in lines and "1,139 MB" in lines
