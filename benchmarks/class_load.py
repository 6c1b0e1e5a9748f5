"""A class on one server, measured: a real JupyterHub, N learners, each running notebooks 02 and 05.

    .venv/bin/pip install -e '.[benchmark]'                  # jupyterhub
    npm install --prefix .cache/chp configurable-http-proxy@5  # the proxy JupyterHub needs
    .venv/bin/python benchmarks/class_load.py --learners 1 2 4 8 16 --write

For each N: a fresh JupyterHub on 127.0.0.1 (DummyAuthenticator with a shared password,
SimpleLocalProcessSpawner: each learner's server is a local process with its own home folder
holding a copy of notebooks/), set up as docs/instructor.md says: the course's Jupyter settings
(JUPYTER_CONFIG_PATH=etc/jupyter, as make lab: no instructor tooling in a learner's server), one
course cache for the whole class (FCCONV_CACHE_DIR), VGG16's weights built into it before the
class, so that every kernel maps the same file. N learners at once log in through the hub's
login form, ask the hub's REST API for a token, start their server through the REST API, and run
notebooks 02 and 05 top to bottom through kernels of their own server (the kernel websocket, as
JupyterLab does): 02's kernel is shut down after it (a learner moving on), 05's stays open until
the whole class is done. Each kernel reports its own peak memory and its server's (VmHWM in
/proc).

What the server needs is the sum over every process of the class (hub, proxy, servers, kernels)
of its proportional set size (PSS, /proc/PID/smaps_rollup): memory shared by k processes (the
mapped weights, the libraries' code) counts 1/k in each, so the sum counts it once, where the
sum of peak RSS would count it N times. The sum is sampled every --every seconds while the class
runs (its peak), and once more when every learner has 05 open and idle. The hub stops by itself
after each N, and the whole run is bounded by --timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ("02_shapes.ipynb", "05_score_maps.ipynb")
CHP = ROOT / ".cache" / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
PEAKS = ("import os, json\n"
         "def _hwm(pid):\n"
         "    for line in open(f'/proc/{pid}/status'):\n"
         "        if line.startswith('VmHWM'):\n"
         "            return int(line.split()[1]) / 1024\n"
         "print('PEAKS' + json.dumps({'kernel_mb': _hwm(os.getpid()), 'server_mb': _hwm(os.getppid()),"
         " 'server_pid': os.getppid()}))\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proxy_command() -> str:
    found = shutil.which("configurable-http-proxy") or (str(CHP) if CHP.exists() else None)
    if not found:
        raise SystemExit("configurable-http-proxy not found: npm install --prefix .cache/chp "
                         "configurable-http-proxy@5 (or put it on PATH)")
    return found


class Hub:
    """A JupyterHub on loopback ports in a temporary folder; ``stop`` ends it and its servers."""

    def __init__(self, learners: list[str], password: str, cache: pathlib.Path):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="fcconv-hub-"))
        self.port, self.token = free_port(), secrets.token_hex(16)
        for name in learners:  # each learner's home: a fresh copy of the notebooks
            shutil.copytree(ROOT / "notebooks", self.tmp / "home" / name / "notebooks",
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        bindir = pathlib.Path(sys.executable).parent
        config = f"""
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {self.port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {free_port()}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.ConfigurableHTTPProxy.command = [{proxy_command()!r}]
c.ConfigurableHTTPProxy.pid_file = {str(self.tmp / "proxy.pid")!r}
c.JupyterHub.db_url = "sqlite:///{self.tmp / "hub.sqlite"}"
c.JupyterHub.cookie_secret_file = {str(self.tmp / "cookie_secret")!r}
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {str(self.tmp / "home" / "{username}")!r}
c.Spawner.cmd = [{str(bindir / "jupyterhub-singleuser")!r}]
c.Spawner.environment = {{"FCCONV_COURSE_DIR": {str(ROOT)!r},  # homes hold notebooks/ only
                          "FCCONV_CACHE_DIR": {str(cache)!r},  # one cache for the class
                          "JUPYTER_CONFIG_PATH": {str(ROOT / "etc" / "jupyter")!r}}}  # make lab's
c.Spawner.args = {["--allow-root"] if os.getuid() == 0 else []!r}
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 300
c.JupyterHub.services = [{{"name": "class-load", "api_token": {self.token!r}}}]
c.JupyterHub.load_roles = [{{"name": "class-load", "services": ["class-load"],
                            "scopes": ["admin:users", "admin:servers", "list:users"]}}]
c.JupyterHub.cleanup_servers = True
"""
        (self.tmp / "jupyterhub_config.py").write_text(config)
        env = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '')}")
        self.log = open(self.tmp / "hub.log", "w")
        self.proc = subprocess.Popen([str(bindir / "jupyterhub"), "-f", "jupyterhub_config.py"],
                                     cwd=self.tmp, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"

    async def ready(self, client, timeout: float = 120) -> None:
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("jupyterhub exited:\n" + (self.tmp / "hub.log").read_text()[-3000:])
            with contextlib.suppress(Exception):
                r = await client.fetch(f"{self.url}/hub/api/", raise_error=False)
                if r.code == 200:
                    return
            await asyncio.sleep(0.5)
        raise RuntimeError("jupyterhub did not start in time")

    def peak_mb(self) -> float:
        """Peak memory of the hub and its proxy (shared by the whole class), in MB."""
        total = 0.0
        pids = [self.proc.pid]
        with contextlib.suppress(OSError, ValueError):
            pids.append(int((self.tmp / "proxy.pid").read_text()))
        for pid in pids:
            with contextlib.suppress(OSError):
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("VmHWM"):
                        total += int(line.split()[1]) / 1024
        return total

    def stop(self, servers: list[int]) -> None:
        """SIGTERM the hub (it stops the proxy and the servers); then anything left, by pid."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in servers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def descendants(roots: list[int]) -> list[int]:
    """``roots`` and every process below them (by parent pid), alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = open(f"/proc/{entry}/stat").read()
                ppid = int(stat[stat.rindex(")") + 2:].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        if os.path.exists(f"/proc/{pid}") and pid not in found:
            found.append(pid)
            todo += children.get(pid, [])
    return found


def role(pid: int) -> str:
    """hub, proxy, server or kernel, from the process's command line."""
    with contextlib.suppress(OSError):
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        for name, mark in (("kernel", "ipykernel"), ("server", "jupyterhub-singleuser"),
                           ("proxy", "configurable-http-proxy"), ("hub", "jupyterhub")):
            if mark in cmd:
                return name
    return "other"


def pss_mb(pid: int) -> float:
    """The process's proportional set size now, in MB (0 if it is gone)."""
    with contextlib.suppress(OSError, ValueError):
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


def class_pss(roots: list[int]) -> dict[str, float]:
    """PSS in MB summed over the class's processes now, per role and in all ("total")."""
    by_role: dict[str, float] = {}
    for pid in descendants(roots):
        by_role[role(pid)] = by_role.get(role(pid), 0.0) + pss_mb(pid)
    by_role["total"] = sum(by_role.values())
    return by_role


class PssSampler:
    """Samples ``class_pss`` every ``every`` seconds in a thread; keeps the peak."""

    def __init__(self, roots: list[int], every: float):
        import threading

        self.roots, self.every, self.peak = roots, every, {"total": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = class_pss(self.roots)
            if now["total"] > self.peak["total"]:
                self.peak = now
            self._stop.wait(self.every)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return self.peak


def cookie_header(cookies: dict) -> str:
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


async def login(client, hub: Hub, name: str, password: str) -> str:
    """Log in through the hub's form (cookies), then ask the REST API for a token of one's own."""
    from tornado.httpclient import HTTPRequest

    r = await client.fetch(f"{hub.url}/hub/login", raise_error=True)
    cookies = {}
    for header in r.headers.get_list("Set-Cookie"):
        k, v = header.split(";", 1)[0].split("=", 1)
        cookies[k] = v
    xsrf = cookies.get("_xsrf", "")
    body = f"username={name}&password={password}&_xsrf={xsrf}"
    r = await client.fetch(HTTPRequest(f"{hub.url}/hub/login", method="POST", body=body,
                                       headers={"Cookie": cookie_header(cookies)},
                                       follow_redirects=False), raise_error=False)
    if r.code != 302:
        raise RuntimeError(f"{name}: login answered {r.code}")
    for header in r.headers.get_list("Set-Cookie"):
        k, v = header.split(";", 1)[0].split("=", 1)
        cookies[k] = v
    r = await client.fetch(HTTPRequest(
        f"{hub.url}/hub/api/users/{name}/tokens", method="POST",
        body=json.dumps({"note": "class-load"}),
        headers={"Cookie": cookie_header(cookies), "X-XSRFToken": cookies.get("_xsrf", xsrf),
                 "Content-Type": "application/json"}), raise_error=False)
    if r.code != 201:
        raise RuntimeError(f"{name}: token request answered {r.code}: {r.body[:300]!r}")
    return json.loads(r.body)["token"]


async def start_server(client, hub: Hub, name: str, token: str) -> None:
    from tornado.httpclient import HTTPRequest

    auth = {"Authorization": f"token {token}"}
    await client.fetch(HTTPRequest(f"{hub.url}/hub/api/users/{name}/server", method="POST",
                                   body="{}", headers=auth), raise_error=False)
    while True:  # bounded by the run's timeout
        r = await client.fetch(HTTPRequest(f"{hub.url}/hub/api/users/{name}", headers=auth))
        server = json.loads(r.body).get("servers", {}).get("", {})
        if server.get("ready"):
            return
        if not server:
            raise RuntimeError(f"{name}: the server failed to start (see the hub log)")
        await asyncio.sleep(0.5)


async def run_notebook(client, hub: Hub, name: str, token: str, notebook: str,
                       keep_open: bool = False) -> dict:
    """Open a session for ``notebook`` on the learner's server, run every code cell through the
    kernel websocket, then the peak-memory cell; shut the kernel down unless ``keep_open`` (the
    notebook stays open, as in a class). Returns times and peaks."""
    import nbformat
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    base, auth = f"{hub.url}/user/{name}", {"Authorization": f"token {token}"}
    r = await client.fetch(HTTPRequest(
        f"{base}/api/sessions", method="POST", headers=auth,
        body=json.dumps({"path": f"notebooks/{notebook}", "type": "notebook",
                         "name": notebook, "kernel": {"name": "python3"}})))
    kernel = json.loads(r.body)["kernel"]["id"]
    session = uuid.uuid4().hex
    ws_url = base.replace("http://", "ws://") + f"/api/kernels/{kernel}/channels?session_id={session}"
    ws = await websocket_connect(HTTPRequest(ws_url, headers=auth))
    cells = [c.source for c in nbformat.read(ROOT / "notebooks" / notebook, as_version=4).cells
             if c.cell_type == "code"]
    t0, errors, peaks = time.perf_counter(), [], {}
    for code in [*cells, PEAKS]:
        msg_id = uuid.uuid4().hex
        ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": name, "session": session,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
        replied = idle = False
        while not (replied and idle):
            raw = await ws.read_message()
            if raw is None:
                raise RuntimeError(f"{name}: kernel websocket closed during {notebook}")
            if isinstance(raw, bytes):
                continue
            m = json.loads(raw)
            if m.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = m["header"]["msg_type"]
            if kind == "execute_reply":
                replied = True
            elif kind == "status" and m["content"]["execution_state"] == "idle":
                idle = True
            elif kind == "error":
                errors.append(f"{m['content']['ename']}: {m['content']['evalue']}")
            elif kind == "stream" and m["content"]["text"].startswith("PEAKS"):
                peaks = json.loads(m["content"]["text"][5:])
    seconds = time.perf_counter() - t0
    ws.close()
    if not keep_open:
        await client.fetch(HTTPRequest(f"{base}/api/kernels/{kernel}", method="DELETE",
                                       headers=auth), raise_error=False)
    if errors:
        raise RuntimeError(f"{name}: {notebook} raised {errors[0]}")
    return {"seconds": seconds, **peaks}


async def learner(client, hub: Hub, name: str, password: str) -> dict:
    t0 = time.perf_counter()
    token = await login(client, hub, name, password)
    t1 = time.perf_counter()
    await start_server(client, hub, name, token)
    t2 = time.perf_counter()
    print(f"  {name}: logged in, server up after {t2 - t0:.1f} s", file=sys.stderr, flush=True)
    runs = {}
    for nb in NOTEBOOKS:
        runs[nb] = await run_notebook(client, hub, name, token, nb, keep_open=nb == NOTEBOOKS[-1])
        print(f"  {name}: {nb} ran in {runs[nb]['seconds']:.1f} s", file=sys.stderr, flush=True)
    return {"name": name, "login_s": t1 - t0, "spawn_s": t2 - t1, "runs": runs,
            "total_s": time.perf_counter() - t0}


async def one_class(n: int, timeout: float, cache: pathlib.Path, every: float) -> dict:
    """Start a hub, run n learners at once, stop the hub; per-learner times and peaks, and the
    class's summed PSS: its peak while they ran, and with every learner's 05 open at the end."""
    from tornado.httpclient import AsyncHTTPClient

    AsyncHTTPClient.configure(None, max_clients=4 * n + 4)
    client = AsyncHTTPClient()
    password = secrets.token_hex(8)
    names = [f"learner{i + 1}" for i in range(n)]
    hub = Hub(names, password, cache)
    results, servers = [], []
    try:
        await hub.ready(client)
        sampler = PssSampler([hub.proc.pid], every)
        tasks = [asyncio.ensure_future(learner(client, hub, name, password)) for name in names]
        done, late = await asyncio.wait(tasks, timeout=timeout)
        for t in late:  # bounded: a class that does not finish in time is reported as such
            t.cancel()
        peak = sampler.stop()
        await asyncio.sleep(every)  # the last replies are out: every 05 open, idle
        open_now = class_pss([hub.proc.pid])
        results = [t.result() for t in done if t.exception() is None]
        failed = [repr(t.exception()) for t in done if t.exception() is not None]
        servers = [r["runs"][nb].get("server_pid") for r in results for nb in NOTEBOOKS]
        return {"n": n, "learners": results, "hub_mb": hub.peak_mb(), "late": len(late),
                "failed": failed, "timeout": timeout, "pss_peak": peak, "pss_open": open_now}
    finally:
        hub.stop([p for p in servers if p])


def summary_row(c: dict) -> dict | None:
    """One table row for a class of n: medians and worst cases over its learners (None if no
    learner finished)."""
    ls = c["learners"]
    if not ls:
        return None
    per = [max(r["runs"][nb]["kernel_mb"] for nb in NOTEBOOKS) + r["runs"][NOTEBOOKS[-1]]["server_mb"]
           for r in ls]
    return {"n": c["n"],
            "spawn": statistics.median(r["spawn_s"] for r in ls),
            "nb02": statistics.median(r["runs"][NOTEBOOKS[0]]["seconds"] for r in ls),
            "nb05": statistics.median(r["runs"][NOTEBOOKS[1]]["seconds"] for r in ls),
            "worst": max(r["total_s"] for r in ls),
            "k02": max(r["runs"][NOTEBOOKS[0]]["kernel_mb"] for r in ls),
            "k05": max(r["runs"][NOTEBOOKS[1]]["kernel_mb"] for r in ls),
            "server": max(r["runs"][NOTEBOOKS[-1]]["server_mb"] for r in ls),
            "learner": max(per), "hub": c["hub_mb"],
            "pss_peak": c["pss_peak"]["total"], "pss_open": c["pss_open"]["total"],
            "pss_hub": c["pss_open"].get("hub", 0.0) + c["pss_open"].get("proxy", 0.0),
            # what one more learner costs: the class's sum, hub and proxy left out, shared by n
            "pss_learner": (c["pss_peak"]["total"] - c["pss_peak"].get("hub", 0.0)
                            - c["pss_peak"].get("proxy", 0.0)) / c["n"]}


def table(classes: list[dict]) -> list[str]:
    lines = ["| learners | server start (s, median) | 02 run (s, median) | 05 run (s, median) | "
             "slowest learner, login to 05 done (s) | 02 kernel peak MB | 05 kernel peak MB | "
             "server peak MB | per learner MB (server + bigger kernel) | hub + proxy MB | "
             "class PSS peak MB | class PSS, 05 open MB | PSS per learner MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in classes:
        r = summary_row(c)
        note = "" if not (c["late"] or c["failed"]) else (
            f" ({len(c['learners'])} of {c['n']} finished within {c['timeout']:.0f} s"
            f"{'; failed: ' + c['failed'][0] if c['failed'] else ''})")
        if r is None:
            lines.append(f"| {c['n']}{note} | | | | | | | | | {c['hub_mb']:.0f} | | | |")
            continue
        lines.append(f"| {r['n']}{note} | {r['spawn']:.1f} | {r['nb02']:.1f} | {r['nb05']:.1f} | "
                     f"{r['worst']:.1f} | {r['k02']:.0f} | {r['k05']:.0f} | {r['server']:.0f} | "
                     f"{r['learner']:.0f} | {r['hub']:.0f} | {r['pss_peak']:.0f} | "
                     f"{r['pss_open']:.0f} | {r['pss_learner']:.0f} |")
    return lines


def main(argv=None) -> int:
    # A SIGTERM (a timeout, a Ctrl-C from a job runner) still stops the hub and its servers.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--learners", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--every", type=float, default=0.5, help="seconds between PSS samples")
    p.add_argument("--timeout", type=float, default=900,
                   help="seconds a class of N may take; learners not done by then are reported")
    p.add_argument("--memory-margin", type=float, default=0.8,
                   help="refuse a class whose expected memory passes this share of what is free")
    p.add_argument("--write", action="store_true", help="write the table into RESULTS.md")
    p.add_argument("--json", type=pathlib.Path, help="also save every learner's numbers here")
    p.add_argument("--sizing", action="store_true",
                   help="only rewrite the guide's sizing lines from the tables in RESULTS.md")
    args = p.parse_args(argv)
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from results import git_rev, machine, write_section

    if args.sizing:
        write_section("class_sizing", "\n".join(sizing_lines()), GUIDE)
        print("\n".join(sizing_lines()))
        return 0
    classes = []
    cache = pathlib.Path(tempfile.mkdtemp(prefix="fcconv-class-cache-"))
    try:
        build_cache(cache)
        for n in args.learners:
            done = [summary_row(c) for c in classes if summary_row(c)]
            if done:  # bounded: do not start a class the free memory cannot hold
                need = done[-1]["pss_learner"] * n + done[-1]["pss_hub"]
                free = available_mb()
                if need > args.memory_margin * free:
                    print(f"skipping {n} learners: about {need:.0f} MB needed, {free:.0f} MB "
                          "free", file=sys.stderr)
                    continue
            print(f"{n} learner(s) ...", file=sys.stderr, flush=True)
            classes.append(asyncio.run(one_class(n, args.timeout, cache, args.every)))
            print("\n".join(table(classes)[-1:]), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    lines = table(classes)
    body = ["## A class on one server: JupyterHub, N learners running notebooks 02 and 05", "",
            f"Machine: {machine()}. Commit {git_rev()}. Command: `.venv/bin/python "
            f"benchmarks/class_load.py --learners {' '.join(map(str, args.learners))} --write` "
            "(JupyterHub with DummyAuthenticator and SimpleLocalProcessSpawner on 127.0.0.1, one "
            "course cache for the class with VGG16's weights built before it; all learners at "
            "once; each logs in, starts a server, runs 02 then 05 top to bottom through its own "
            "kernels, and keeps 05 open; kernel and server peaks are each process's VmHWM; class "
            f"PSS is the sum of /proc/PID/smaps_rollup's Pss over hub, proxy, servers and kernels, "
            f"sampled every {args.every:g} s: its peak while the class ran, and once more with "
            "every 05 open and idle; PSS per learner is the peak, hub and proxy left out, "
            "divided by the learners).", "", *lines]
    print("\n".join(body))
    if args.json:
        args.json.write_text(json.dumps(classes, indent=1))
    if args.write:
        write_section("class_load", "\n".join(body))
        write_section("class_sizing", "\n".join(sizing_lines()), GUIDE)
        print("\n".join(sizing_lines()))
    return 0


def build_cache(cache: pathlib.Path) -> None:
    """Build VGG16's weights into the class's course cache, as the guide tells an instructor
    to (``python -m fcconv.course.weight_cache`` with FCCONV_CACHE_DIR set), before the class."""
    subprocess.run([sys.executable, "-m", "fcconv.course.weight_cache"], check=True,
                   env=dict(os.environ, FCCONV_CACHE_DIR=str(cache)), stdout=subprocess.DEVNULL)


GUIDE = ROOT / "docs" / "instructor.md"
SERVER_GB, SERVER_CORES, KEPT_GB = 16, 4, 2  # the server the guide sizes; kept: system and hub


def sizing_lines() -> list[str]:
    """The guide's class-sizing lines, derived from RESULTS.md's "class_load" table (the class's
    summed PSS per learner) and "notebook_times" table (each notebook's kernel CPU time and
    peak), so that a new measurement changes the guide by rerunning this, never by retyping."""
    from fcconv.course.results import read_table

    machine, classes = read_table("class_load")
    nb_machine, notebooks = read_table("notebook_times")
    measured = [r for r in classes if r["PSS per learner MB"]]
    # the largest class measured: its learners share the mapped weights most like a real class
    big = max(measured, key=lambda r: int(r["learners"].split()[0]))
    n_big = int(big["learners"].split()[0])
    per, hub = float(big["PSS per learner MB"]), float(big["hub + proxy MB"])
    rss = float(big["per learner MB (server + bigger kernel)"])
    peak, opened = float(big["class PSS peak MB"]), float(big["class PSS, 05 open MB"])
    nbs = {r["notebook"][:2]: r for r in notebooks if r["notebook"][:2].isdigit()}
    cpu = sum(float(nbs[k]["kernel CPU (s)"]) for k in ("02", "05"))
    # what a learner costs in a full class: the largest class's slowest learner, from login to
    # 05 done, times the measuring machine's cores, shared by N (server start and contention in)
    slowest = float(big["slowest learner, login to 05 done (s)"])
    cores = int(re.search(r"(\d+) cores", machine).group(1))
    core_s = slowest * cores / n_big
    top = max(nbs.values(), key=lambda r: float(r["kernel peak memory (MB)"]))
    fit = int(((SERVER_GB - KEPT_GB) * 1024 - hub) // per)
    return [
        f"- **Memory per learner: {per:,.0f} MB** in a class of {n_big} all running 02 and 05 "
        f"at once: the peak of the whole class's summed PSS ({peak:,.0f} MB; {opened:,.0f} MB "
        f"once every learner sat with 05 open), the hub and its proxy ({hub:.0f} MB) left out, "
        f"divided by {n_big}. PSS counts a page that k processes share 1/k in each: VGG16's "
        f"weights, mapped from one file in the class's course cache, and the libraries' code "
        f"count once for the class. (Adding up each learner's peak RSS counts them once per "
        f"learner: {rss:,.0f} MB.) The biggest kernel of any walkthrough: {top['notebook']}, "
        f"{float(top['kernel peak memory (MB)']):,.0f} MB at its peak.",
        f"- **CPU per learner: {core_s:.1f} core-seconds** in a full class to log in, start a "
        f"server and run 02 and 05 top to bottom: {n_big} learners starting together on "
        f"{cores} cores, the slowest done after {slowest:.0f} s ({slowest:.0f} x {cores} / "
        f"{n_big}). Alone, their kernels need {cpu:.1f} CPU-seconds (notebook table): a full "
        f"class costs more per learner (server starts, contention). N learners who start "
        f"together on C cores finish after about {core_s:.1f} x N / C seconds.",
        f"- **A {SERVER_GB} GB, {SERVER_CORES}-core server** ({KEPT_GB} GB kept for the system "
        f"and the page cache, the hub and proxy besides) holds **{fit} learners** running 02 and "
        f"05 at the same moment and keeping 05 open; {fit} of them starting together share the "
        f"{SERVER_CORES} cores for about {core_s * fit / SERVER_CORES:.0f} s.",
        f"- Measured on: {machine}"
        f"{'' if nb_machine == machine else '; the notebook table on: ' + nb_machine}"
        f" (benchmarks/RESULTS.md, \"A class on one server\" and "
        f"\"Notebook run time and peak memory\"; rewrite these lines with "
        f"`.venv/bin/python benchmarks/class_load.py --sizing` after a new run).",
    ]


def available_mb() -> float:
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable"):
            return int(line.split()[1]) / 1024
    return float("inf")


if __name__ == "__main__":
    sys.exit(main())
