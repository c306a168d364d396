"""A class on one JupyterHub: N students run notebooks 01-04 at the same time, each through their
own server, and the test measures what each student's kernels take. Run by `make test-hub`
(HUB_TEST=1); `make test` skips it.

What it does, in order:
  1. a read-only copy of CIFAR-10 (from CIFAR10_PATH) and a read-only "teacher's model" (a short
     training written by helpers.BestModelCheckpoint, or HUB_TEACHER_MODEL) in a temporary folder;
  2. as root: one system user per student (hubtest-student-1..N, removed at the end), so that the
     read-only folders are read-only for them; not as root: every student runs as you;
  3. JupyterHub with classroom/jupyterhub_config.py on loopback, random ports, temporary state;
  4. per student, all at once: a user and a token (REST API, admin service token), a copy of the
     series in their home, their server, then notebooks 01, 02, 03, 04, each in a fresh kernel
     (cifar10-cnn) created through the hub's proxy, every code cell sent over the kernel's
     websocket. Odd-numbered students train into their own folder; even-numbered ones start with
     the teacher's read-only model: 03 must say where their model goes instead, 04 runs on the
     teacher's model, then on their own after they restart their server with "my own model";
  5. checks (the tests below) and a summary table, also written as JSON (HUB_RESULTS, default
     classroom/last-run.json).

Settings: HUB_STUDENTS (default 3), HUB_MODE (class, the default, or quick), HUB_RESULTS,
HUB_TEACHER_MODEL (a folder with <mode>/best_model.keras and history.json to share instead of the
stand-in), HUB_CELL_TIMEOUT (seconds, default 1800), HUB_KEEP=1 (keep the temporary folder),
HUB_EXPOSE=0 (as root: fail, rather than run the hub in a private mount namespace, when the .venv's
Python lies in a folder other users cannot enter, such as /root/.pyenv on this machine).
"""
from __future__ import annotations

import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("HUB_TEST") != "1",
                                reason="a class on JupyterHub, minutes long: run by `make test-hub`")

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv"
CONFIG = REPO / "classroom" / "jupyterhub_config.py"
PROXY = REPO / "classroom" / ".proxy" / "node_modules" / ".bin" / "configurable-http-proxy"
NOTEBOOKS = sorted((REPO / "notebooks").glob("0[1-4]_*.ipynb"))
N_STUDENTS = int(os.environ.get("HUB_STUDENTS") or 3)
MODE = (os.environ.get("HUB_MODE") or "class").strip()
RESULTS = Path(os.environ.get("HUB_RESULTS") or REPO / "classroom" / "last-run.json")
CELL_TIMEOUT = float(os.environ.get("HUB_CELL_TIMEOUT") or 1800)
AS_ROOT = os.geteuid() == 0
USER_PREFIX = "hubtest-student-"
SERIES = "cifar10-series"           # the copy of the series in each student's home
SAMPLE_S = 0.5                      # how often each kernel's RSS is sampled
PROBE = ("import os as _os, sys as _sys, helpers as _helpers\n"
         "print(_os.getcwd()); print(_helpers.__file__); print(_sys.executable)")


# ------------------------------------------------------------------------------- small helpers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256_tree(folder: Path) -> dict:
    out = {}
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        out[str(path.relative_to(folder))] = h.hexdigest()
    return out


def make_read_only(folder: Path):
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)


def http(method, url, token=None, body=None, timeout=60):
    """(status, parsed JSON or text) of one request; HTTP errors are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"token {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def kernel_pid(kernel_id: str, timeout=60):
    """The pid of the kernel process: the one whose command line names its connection file."""
    import psutil
    needle = f"kernel-{kernel_id}.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if any(needle in part for part in (proc.info["cmdline"] or [])):
                return proc.info["pid"]
        time.sleep(0.2)
    raise AssertionError(f"no process found for kernel {kernel_id}")


def vm_hwm_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


class Sampler(threading.Thread):
    """Samples the RSS of every kernel being watched every SAMPLE_S seconds, and the sum over
    all of them (the class's total at that moment)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.watch, self.samples, self.totals = {}, {}, []
        self.lock, self.stopping = threading.Lock(), threading.Event()

    def add(self, key, pid):
        with self.lock:
            self.watch[key] = pid
            self.samples[key] = []

    def remove(self, key):
        with self.lock:
            self.watch.pop(key, None)

    def run(self):
        import psutil
        while not self.stopping.wait(SAMPLE_S):
            with self.lock:
                watch = dict(self.watch)
            total = 0
            for key, pid in watch.items():
                try:
                    rss = psutil.Process(pid).memory_info().rss / 2**20
                except psutil.Error:
                    continue
                total += rss
                with self.lock:
                    self.samples.setdefault(key, []).append(rss)
            if watch:
                self.totals.append((time.time(), len(watch), total))


# ---------------------------------------------------------------------------------- a kernel
class Kernel:
    """A kernel of one student's server, created and driven through the hub's proxy."""

    def __init__(self, base, user, token, path):
        self.base, self.user, self.token = base, user, token
        status, model = http("POST", f"{base}/user/{user}/api/kernels", token,
                             {"name": "cifar10-cnn", "path": path}, timeout=180)
        assert status == 201, f"{user}: creating a kernel gave HTTP {status}: {model}"
        self.id = model["id"]
        self.session = uuid.uuid4().hex
        import websocket
        ws_url = (base.replace("http://", "ws://") +
                  f"/user/{user}/api/kernels/{self.id}/channels?session_id={self.session}")
        self.ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"],
                                              timeout=CELL_TIMEOUT)
        self.request("kernel_info_request", {}, timeout=120)

    def request(self, msg_type, content, timeout=CELL_TIMEOUT):
        """Send one shell request; return (reply content, outputs) once the reply has come and
        the kernel is idle again. Outputs: [(kind, text)], kind stdout/stderr/result/error."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": self.user, "session": self.session,
                       "msg_type": msg_type, "version": "5.3"},
            "parent_header": {}, "metadata": {}, "content": content,
            "channel": "shell", "buffers": []}))
        reply, idle, outputs = None, False, []
        deadline = time.monotonic() + timeout
        while reply is None or not idle:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.user}: no reply to {msg_type} within {timeout:.0f} s")
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, c = msg["msg_type"], msg["content"]
            if msg["channel"] == "shell" and kind.endswith("_reply"):
                reply = c
            elif kind == "status" and c.get("execution_state") == "idle":
                idle = True
            elif kind == "stream":
                outputs.append((c["name"], c["text"]))
            elif kind in ("execute_result", "display_data"):
                outputs.append(("result", c.get("data", {}).get("text/plain", "")))
            elif kind == "error":
                outputs.append(("error", f"{c['ename']}: {c['evalue']}\n" +
                                "\n".join(c.get("traceback", []))))
        return reply, outputs

    def execute(self, code):
        return self.request("execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True})

    def shutdown(self):
        try:
            self.ws.close()
        finally:
            status, _ = http("DELETE", f"{self.base}/user/{self.user}/api/kernels/{self.id}",
                             self.token, timeout=120)
            assert status == 204, f"{self.user}: shutting down kernel {self.id} gave HTTP {status}"


def run_notebook(base, student, notebook: Path, sampler: Sampler, label: str) -> dict:
    """Run every code cell of `notebook` (the student's copy) in a fresh kernel of their server."""
    import nbformat
    nb = nbformat.read(notebook, as_version=4)
    rel = f"{SERIES}/notebooks/{notebook.name}"
    t0 = time.monotonic()
    kernel = Kernel(base, student["name"], student["token"], rel)
    started = time.monotonic()
    pid = kernel_pid(kernel.id)
    key = f"{student['name']}/{label}"
    sampler.add(key, pid)
    record = {"notebook": label, "kernel_id": kernel.id, "pid": pid, "cells": 0, "errors": [],
              "stdout": ""}
    try:
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            reply, outputs = kernel.execute(cell.source)
            record["cells"] += 1
            record["stdout"] += "".join(text for kind, text in outputs if kind == "stdout")
            errors = [text for kind, text in outputs if kind == "error"]
            if reply.get("status") != "ok" or errors:
                record["errors"].append({"cell": index, "status": reply.get("status"),
                                         "error": (errors or [f"{reply.get('ename')}: {reply.get('evalue')}"])[0][:3000]})
                break                                 # as nbclient does: later cells depend on it
        record["wall_s"] = time.monotonic() - t0
        record["start_s"] = started - t0
        _, probe = kernel.execute(PROBE)
        record["cwd"], record["helpers"], record["python"] = (
            "".join(t for k, t in probe if k == "stdout").splitlines() + ["?", "?", "?"])[:3]
        import psutil
        proc = psutil.Process(pid)
        cpu = proc.cpu_times()
        record["cpu_s"] = cpu.user + cpu.system + cpu.children_user + cpu.children_system
        record["peak_mib"] = vm_hwm_mib(pid)
        record["kernel_user"] = proc.username()
    finally:
        sampler.remove(key)
        kernel.shutdown()
    samples = sampler.samples.get(key, [])
    record["median_mib"] = statistics.median(samples) if samples else None
    record["samples"] = len(samples)
    return record


# ------------------------------------------------------------------------------- the class
class Classroom:
    """Everything the run sets up, and takes down again in close()."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="hubtest-"))
        self.tmp.chmod(0o755)
        self.users, self.hub, self.log = [], None, None
        self.proxy_pid = None
        self.server_pids = set()
        self.kernel_pids = set()

    # -- set-up
    def check_environment(self):
        if not (VENV / "bin" / "jupyterhub-singleuser").exists():
            pytest.fail(f"{VENV}/bin/jupyterhub-singleuser is missing: run `make install`, then "
                        "`make test-hub` (it installs classroom/requirements-hub.txt).")
        if not PROXY.exists():
            pytest.fail(f"{PROXY} is missing: `make test-hub` installs it with npm "
                        "(npm install --prefix classroom/.proxy configurable-http-proxy).")
        self.expose = []
        if AS_ROOT:    # students, other users, must reach the repository and the .venv's Python
            blocked = closed_ancestor(REPO)
            if blocked:
                pytest.fail(f"{blocked} is not world-executable (mode {blocked.stat().st_mode & 0o777:o}), "
                            f"so the students' servers, which run as other users, cannot reach {REPO}. "
                            "Clone the repository where every user can read it, or `chmod o+x` that folder.")
            python = Path(sys.base_prefix)          # the interpreter the .venv is built on
            blocked = closed_ancestor(python)
            if blocked and os.environ.get("HUB_EXPOSE", "1") != "1":
                pytest.fail(f"The .venv's Python, {python}, lies in {blocked} (mode "
                            f"{blocked.stat().st_mode & 0o777:o}), which other users cannot enter: "
                            "students cannot start it. Build the .venv on a Python that every user can "
                            "run (e.g. /usr/bin/python3 -m venv .venv), or allow HUB_EXPOSE=1.")
            if blocked:
                if not shutil.which("unshare"):
                    pytest.fail(f"{python} lies in {blocked}, which other users cannot enter, and "
                                "`unshare` (util-linux) is missing to show it to them.")
                # The hub then runs in a private mount namespace where `blocked` is an empty
                # world-readable folder with only the interpreter bound back in: nothing changes
                # outside it, and it goes away with the hub.
                self.expose = [(blocked, python)]
                print(f"\nNote: the .venv's Python, {python}, lies in {blocked} (mode "
                      f"{blocked.stat().st_mode & 0o777:o}), which the students cannot enter; the hub "
                      f"runs in a private mount namespace that shows them {python} alone.", flush=True)

    def shared_data(self) -> Path:
        """A read-only copy of CIFAR-10 that every student can read (CIFAR10_PATH may sit in a
        folder only root can enter, such as /root)."""
        source = os.environ.get("CIFAR10_PATH")
        if not source:
            pytest.fail("The hub test needs a local copy of CIFAR-10: set CIFAR10_PATH to a "
                        "cifar-10-batches-py folder or to cifar-10-python.tar.gz (`make data`).")
        source = local_copy(source)
        shared = self.tmp / "shared"
        shared.mkdir()
        if source.is_file():
            target = shared / source.name
            shutil.copyfile(source, target)
        else:
            target = shared / "cifar-10-batches-py"
            shutil.copytree(source, target, symlinks=False)
        make_read_only(target)
        shared.chmod(0o555)
        return target

    def teacher_model(self, data: Path) -> Path:
        """A read-only folder with a model where a teacher's notebook 03 leaves it (<mode>/best_model.keras
        and history.json): HUB_TEACHER_MODEL's, or a short training (2,000 images, one epoch)
        saved by helpers.BestModelCheckpoint, as the series' own notebook 03 does."""
        folder = self.tmp / "teacher-artifacts"
        given = os.environ.get("HUB_TEACHER_MODEL")
        if given:
            shutil.copytree(Path(given).expanduser(), folder)
        else:
            script = (
                "import helpers\n"
                "s = helpers.get_settings()\n"
                "(x, y), _ = helpers.load_cifar10()\n"
                "x, y = helpers.convert_data_format(x, y)\n"
                "(xt, yt), (xv, yv) = helpers.split_train_val(x, y, s)\n"
                "model = helpers.build_article_model(seed=s.seed)\n"
                "cb = helpers.BestModelCheckpoint(s.model_path, s.history_path, verbose=0)\n"
                "model.fit(xt[:2000], yt[:2000], validation_data=(xv[:1000], yv[:1000]), epochs=1,\n"
                "          batch_size=32, callbacks=[cb], verbose=0)\n"
                "print(s.model_path)\n")
            result = subprocess.run([str(VENV / "bin" / "python"), "-c", script],
                                    env={**self.base_env(), **mode_env(), "CIFAR10_PATH": str(data),
                                         "CIFAR10_ARTIFACTS": str(folder), "TF_CPP_MIN_LOG_LEVEL": "3"},
                                    capture_output=True, text=True, timeout=900)
            assert result.returncode == 0, f"training the teacher's model failed:\n{result.stderr[-3000:]}"
        assert (folder / MODE / "best_model.keras").is_file(), f"no {MODE}/best_model.keras in {folder}"
        make_read_only(folder)
        return folder

    @staticmethod
    def base_env():
        keep = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR")
        return {k: os.environ[k] for k in keep if k in os.environ}

    def create_students(self):
        homes = self.tmp / "homes"
        homes.mkdir(mode=0o755)
        for i in range(1, N_STUDENTS + 1):
            name = f"{USER_PREFIX}{i}"
            home = homes / name
            if AS_ROOT:
                try:
                    pwd.getpwnam(name)               # left over from an interrupted run
                    subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
                except KeyError:
                    pass
                subprocess.run(["useradd", "--create-home", "--home-dir", str(home), "--user-group",
                                "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True)
                self.users.append(name)
                entry = pwd.getpwnam(name)
                uid, gid = entry.pw_uid, entry.pw_gid
            else:
                home.mkdir()
                uid, gid = os.getuid(), os.getgid()
            self.copy_series(home, uid, gid)
            yield {"index": i, "name": name, "home": home, "uid": uid,
                   "scenario": "teacher-model" if i % 2 == 0 else "own"}

    @staticmethod
    def copy_series(home: Path, uid, gid):
        """What nbgitpuller (or `git clone`) gives a student: the series in their home, theirs
        to change. notebooks/ with docs/ and README.md beside it, so that relative links work."""
        target = home / SERIES
        target.mkdir()
        ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
        shutil.copytree(REPO / "notebooks", target / "notebooks", ignore=ignore)
        shutil.copytree(REPO / "docs", target / "docs", ignore=ignore)
        shutil.copy2(REPO / "README.md", target / "README.md")
        for path in [target, *target.rglob("*")]:
            os.chown(path, uid, gid, follow_symlinks=False)

    def start_hub(self, data: Path, model: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_hex(32)
        self.password = secrets.token_hex(8)
        state = self.tmp / "hub-state"
        env = {**self.base_env(),
               "CLASSROOM_IP": "127.0.0.1", "CLASSROOM_PORT": str(self.port),
               "CLASSROOM_HUB_PORT": str(free_port()), "CLASSROOM_PROXY_API_PORT": str(free_port()),
               "CLASSROOM_STATE": str(state), "CLASSROOM_ADMIN_TOKEN": self.admin_token,
               "CLASSROOM_AUTH": "shared-password", "CLASSROOM_PASSWORD": self.password,
               "CLASSROOM_DATA": str(data), "CLASSROOM_MODEL": str(model), "CLASSROOM_MODE": MODE,
               "CLASSROOM_HOMES": str(self.tmp / "homes"),
               "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(32)}
        self.log_path = self.tmp / "jupyterhub.log"
        self.log = open(self.log_path, "w")
        state.mkdir(mode=0o700)
        self.hub = subprocess.Popen(self.hub_command(), cwd=state, env=env, stdout=self.log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.hub.poll() is not None:
                pytest.fail(f"JupyterHub exited with {self.hub.returncode}:\n{self.log_tail()}")
            try:
                status, _ = http("GET", f"{self.base}/hub/api/", timeout=5)
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"JupyterHub did not answer within 120 s:\n{self.log_tail()}")
        pid_file = state / "jupyterhub-proxy.pid"
        if pid_file.exists():
            self.proxy_pid = int(pid_file.read_text().strip())

    def hub_command(self):
        """jupyterhub -f classroom/jupyterhub_config.py; as root, first a check that every student
        can start the .venv's Python, in the mount namespace of self.expose if there is one."""
        hub = [str(VENV / "bin" / "jupyterhub"), "-f", str(CONFIG)]
        if not AS_ROOT:
            return hub
        lines = ["set -e"]
        for i, (blocked, inner) in enumerate(self.expose):
            stage = self.tmp / f"expose-{i}"
            stage.mkdir(mode=0o700)
            rel = inner.relative_to(blocked)
            lines += [f"mount --bind '{blocked}' '{stage}'",
                      f"mount -t tmpfs -o mode=0755,size=1m classroom-expose '{blocked}'",
                      f"mkdir -p '{blocked / rel}'",
                      f"mount --bind '{stage / rel}' '{blocked / rel}'",
                      f"umount -l '{stage}'"]
        check = "import sys, jupyterhub, jupyter_server, ipykernel"
        for name in self.users:
            lines.append(f"runuser -u {name} -- '{VENV}/bin/python' -c '{check}' || "
                         f"{{ echo 'CHECK FAILED: {name} cannot run {VENV}/bin/python with the hub'; exit 3; }}")
        lines.append('exec "$@"')
        script = self.tmp / "start-hub.sh"
        script.write_text("\n".join(lines) + "\n")
        wrapper = ["unshare", "--mount", "--propagation", "private"] if self.expose else []
        return [*wrapper, "sh", str(script), *hub]

    def log_tail(self, n=60):
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def api(self, method, path, body=None, token=None, timeout=120):
        return http(method, f"{self.base}/hub/api{path}", token or self.admin_token, body, timeout)

    def login_with_password(self, name) -> dict:
        """Log in through the hub's login form (SharedPasswordAuthenticator) with the right password and
        a wrong one, as a browser does: a redirect and a login cookie, then a refusal."""
        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None
        out = {}
        for label, password in (("right", self.password), ("wrong", "not-" + self.password)):
            jar = CookieJar()
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
            opener.open(f"{self.base}/hub/login", timeout=60).read()
            xsrf = next((c.value for c in jar if c.name == "_xsrf"), "")
            form = urllib.parse.urlencode({"username": name, "password": password, "_xsrf": xsrf}).encode()
            try:
                status = opener.open(f"{self.base}/hub/login", form, timeout=60).status
            except urllib.error.HTTPError as err:
                status = err.code
            out[label] = {"status": status, "cookies": sorted(c.name for c in jar)}
        return out

    def start_server(self, student, options):
        status, body = self.api("POST", f"/users/{student['name']}/server", options)
        assert status in (201, 202), f"{student['name']}: starting the server gave HTTP {status}: {body}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            status, model = self.api("GET", f"/users/{student['name']}")
            server = (model.get("servers") or {}).get("") if status == 200 else None
            if server and server.get("ready"):
                self.note_server_pid(student)
                return
            time.sleep(1)
        raise AssertionError(f"{student['name']}'s server was not ready within 300 s:\n{self.log_tail()}")

    def stop_server(self, student):
        status, body = self.api("DELETE", f"/users/{student['name']}/server")
        assert status in (202, 204), f"{student['name']}: stopping the server gave HTTP {status}: {body}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            _, model = self.api("GET", f"/users/{student['name']}")
            if not (model.get("servers") or {}):
                return
            time.sleep(1)
        raise AssertionError(f"{student['name']}'s server did not stop within 120 s")

    def note_server_pid(self, student):
        import psutil
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if "jupyterhub-singleuser" in cmd:
                try:
                    if proc.environ().get("JUPYTERHUB_USER") == student["name"]:
                        self.server_pids.add(proc.info["pid"])
                        student["server_pid"] = proc.info["pid"]
                except psutil.Error:
                    pass

    # -- take-down
    def stop_hub(self) -> dict:
        """SIGTERM to the hub; it must exit, and take every server, kernel and the proxy with it."""
        import psutil
        if self.hub is None:
            return {}
        t0 = time.monotonic()
        self.hub.send_signal(signal.SIGTERM)
        try:
            code = self.hub.wait(timeout=120)
        except subprocess.TimeoutExpired:
            code = None
        stopped_s = time.monotonic() - t0
        time.sleep(2)
        watched = self.server_pids | self.kernel_pids | ({self.proxy_pid} if self.proxy_pid else set())
        left = []
        for proc in psutil.process_iter(["pid", "username", "cmdline"]):
            if proc.info["pid"] in watched or (AS_ROOT and proc.info["username"] in self.users):
                left.append({"pid": proc.info["pid"], "user": proc.info["username"],
                             "cmdline": " ".join(proc.info["cmdline"] or [])[:200]})
        for entry in left:                                     # take down what the hub left
            try:
                psutil.Process(entry["pid"]).kill()
            except psutil.Error:
                pass
        if code is None:
            os.killpg(self.hub.pid, signal.SIGKILL)
            self.hub.wait()
        self.hub = None
        return {"exit_code": code, "stop_s": stopped_s, "leftover_processes": left}

    def close(self):
        """Take everything down, also after a failure: the hub (SIGTERM, then SIGKILL), the proxy,
        anything still running as a student, the students, the temporary folder."""
        if self.hub is not None:
            self.hub.send_signal(signal.SIGTERM)
            try:
                self.hub.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.hub.pid, signal.SIGKILL)
                self.hub.wait()
        if self.proxy_pid:
            try:
                os.kill(self.proxy_pid, signal.SIGTERM)
            except OSError:
                pass
        if self.users:                                   # anything still running as a student
            import psutil
            for proc in psutil.process_iter(["pid", "username"]):
                if proc.info["username"] in self.users:
                    try:
                        proc.kill()
                    except psutil.Error:
                        pass
            time.sleep(1)
        for name in self.users:
            subprocess.run(["userdel", "-r", "-f", name], capture_output=True)
        if self.log:
            self.log.close()
        if os.environ.get("HUB_KEEP") == "1":
            print(f"kept {self.tmp}")
            return
        for path in [self.tmp, *self.tmp.rglob("*")]:            # read-only folders, as non-root
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(self.tmp, ignore_errors=True)


def closed_ancestor(path: Path):
    """The first folder on the way to `path` (itself included) that other users cannot enter."""
    path = Path(path).resolve()
    for folder in [*reversed(path.parents), path]:
        if folder.is_dir() and not folder.stat().st_mode & 0o001:
            return folder
    return None


def local_copy(path) -> Path:
    """The batch folder or archive CIFAR10_PATH names (as helpers.data.resolve_local_copy finds
    it; without importing helpers, which would start TensorFlow in this process)."""
    path = Path(path).expanduser().resolve()
    if path.is_file():
        return path
    if (path / "cifar-10-batches-py").is_dir():
        return path / "cifar-10-batches-py"
    if (path / "data_batch_1").is_file():
        return path
    if (path / "cifar-10-python.tar.gz").is_file():
        return path / "cifar-10-python.tar.gz"
    pytest.fail(f"CIFAR10_PATH={path} holds no CIFAR-10 copy: point it at the unpacked "
                "cifar-10-batches-py folder or at cifar-10-python.tar.gz (`make data` checks it).")


def mode_env():
    if MODE not in ("class", "quick"):
        raise ValueError(f"HUB_MODE={MODE!r}: use class or quick")
    return {"CIFAR10_CLASS": "1" if MODE == "class" else "0",
            "CIFAR10_QUICK": "1" if MODE == "quick" else "0"}


def student_lesson(room: Classroom, student, sampler, results, copies):
    """One student: user and token, server, notebooks 01-04 (and for a student who started with
    the teacher's model, 04 again on their own model after a restart)."""
    name = student["name"]
    out = results[name] = {"scenario": student["scenario"], "notebooks": [], "problems": []}
    try:
        status, body = room.api("POST", f"/users/{name}")
        assert status == 201, f"creating user {name} gave HTTP {status}: {body}"
        status, body = room.api("POST", f"/users/{name}/tokens", {"note": "hub test"})
        assert status == 201, f"a token for {name} gave HTTP {status}: {body}"
        student["token"] = body["token"]
        t0 = time.monotonic()
        options = {"model": "own"} if student["scenario"] == "own" else {}
        room.start_server(student, options)
        out["server_start_s"] = time.monotonic() - t0
        status, specs = http("GET", f"{room.base}/user/{name}/api/kernelspecs", student["token"])
        out["kernelspecs"] = {"status": status, "default": (specs or {}).get("default"),
                              "names": sorted((specs or {}).get("kernelspecs", {}))}
        copies[name] = student["home"] / SERIES / "notebooks"
        plan = [(nb, nb.name[:2]) for nb in NOTEBOOKS]
        for notebook, label in plan:
            record = run_notebook(room.base, student, copies[name] / notebook.name, sampler, label)
            room.kernel_pids.add(record["pid"])
            out["notebooks"].append(record)
        if student["scenario"] == "teacher-model":          # follows 03's note: restart, "my own model"
            room.stop_server(student)
            room.start_server(student, {"model": "own"})
            record = run_notebook(room.base, student, copies[name] / NOTEBOOKS[-1].name, sampler,
                                  "04-own")
            room.kernel_pids.add(record["pid"])
            out["notebooks"].append(record)
        out["wall_s"] = time.monotonic() - t0
        import psutil
        out["server_rss_mib"] = psutil.Process(student["server_pid"]).memory_info().rss / 2**20
    except Exception as err:                                # reported by the tests below
        out["problems"].append(f"{type(err).__name__}: {err}")


# ------------------------------------------------------------------------------- the fixture
@pytest.fixture(scope="module")
def lesson():
    import psutil
    room = Classroom()
    run = {"n_students": N_STUDENTS, "mode": MODE, "as_root": AS_ROOT, "cpu_count": os.cpu_count(),
           "nice": os.nice(0), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    try:
        room.check_environment()
        data = room.shared_data()
        model = room.teacher_model(data)
        run["shared_before"] = {"data": sha256_tree(data), "model": sha256_tree(model)}
        run["shared_paths"] = {"data": str(data), "model": str(model)}
        students = list(room.create_students())
        room.start_hub(data, model)
        sampler = Sampler()
        sampler.start()
        results, copies = {}, {}
        t0 = time.monotonic()
        threads = [threading.Thread(target=student_lesson, args=(room, s, sampler, results, copies))
                   for s in students]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        run["class_wall_s"] = time.monotonic() - t0
        sampler.stopping.set()
        sampler.join()
        run["class_kernels_peak_total_mib"] = max((t for _, _, t in sampler.totals), default=None)
        run["students"] = results
        # a student's token at another student's server, and at their own
        cross = []
        for a, b in zip(students, students[1:] + students[:1]):
            if "token" not in a:
                continue
            own, _ = http("GET", f"{room.base}/user/{a['name']}/api/status", a["token"])
            other, _ = http("GET", f"{room.base}/user/{b['name']}/api/status", a["token"])
            other_k, _ = http("GET", f"{room.base}/user/{b['name']}/api/kernels", a["token"])
            cross.append({"token_of": a["name"], "server_of": b["name"], "own_status": own,
                          "other_status": other, "other_kernels_status": other_k})
        run["cross_tokens"] = cross
        run["login"] = room.login_with_password(students[0]["name"])
        hub_proc = psutil.Process(room.hub.pid)
        run["hub_rss_mib"] = hub_proc.memory_info().rss / 2**20
        if room.proxy_pid:
            run["proxy_rss_mib"] = psutil.Process(room.proxy_pid).memory_info().rss / 2**20
        run["students_meta"] = {s["name"]: {"home": str(s["home"]), "uid": s["uid"],
                                            "scenario": s["scenario"]} for s in students}
        run["stop"] = room.stop_hub()
        run["shared_after"] = {"data": sha256_tree(data), "model": sha256_tree(model)}
        run["models"] = {}
        for s in students:
            path = s["home"] / "cifar10-artifacts" / MODE / "best_model.keras"
            run["models"][s["name"]] = {"path": str(path), "exists": path.is_file(),
                                        "owner_uid": path.stat().st_uid if path.is_file() else None,
                                        "size": path.stat().st_size if path.is_file() else None}
        run["links"] = broken_links(copies)
        run["hub_log_tail"] = room.log_tail(40)
        summarise(run)
        yield run
    finally:
        room.close()


def broken_links(copies) -> list:
    """Relative links in the markdown of the students' copies that lead nowhere."""
    import re

    import nbformat
    broken = []
    for folder in list(copies.values())[:1]:
        for notebook in sorted(folder.glob("0[1-4]_*.ipynb")):
            for cell in nbformat.read(notebook, as_version=4).cells:
                if cell.cell_type != "markdown":
                    continue
                for link in re.findall(r"\]\(([^)#\s]+)", cell.source):
                    if "://" not in link and not link.startswith("mailto:") and not (folder / link).exists():
                        broken.append(f"{notebook.name}: {link}")
    return broken


def summarise(run):
    """Print the table and write the JSON (without the notebooks' printed text)."""
    lines = [f"\nA class of {run['n_students']} on JupyterHub, {run['mode']} mode, "
             f"{run['cpu_count']} CPUs, niceness {run['nice']}, {run['date']}",
             f"{'student':20} {'scenario':14} {'nb':7} {'wall s':>7} {'start s':>7} {'CPU s':>7} "
             f"{'peak MiB':>9} {'typical':>8}  errors"]
    for name, out in run["students"].items():
        for r in out["notebooks"]:
            lines.append(f"{name:20} {out['scenario']:14} {r['notebook']:7} {r.get('wall_s', 0):7.1f} "
                         f"{r.get('start_s', 0):7.1f} {r.get('cpu_s', 0):7.1f} {r.get('peak_mib') or 0:9.0f} "
                         f"{r.get('median_mib') or 0:8.0f}  {len(r['errors'])}")
        nbs = out["notebooks"]
        out["total"] = {
            "wall_s": out.get("wall_s"),
            "cpu_s": sum(r.get("cpu_s", 0) for r in nbs),
            "peak_mib": max((r.get("peak_mib") or 0 for r in nbs), default=None),
            "typical_mib": (statistics.median([r["median_mib"] for r in nbs if r.get("median_mib")])
                            if nbs else None)}
        t = out["total"]
        lines.append(f"{name:20} {'':14} {'all':7} {t['wall_s'] or 0:7.1f} {'':7} {t['cpu_s']:7.1f} "
                     f"{t['peak_mib'] or 0:9.0f} {t['typical_mib'] or 0:8.0f}  "
                     f"server {out.get('server_rss_mib', 0):.0f} MiB, start {out.get('server_start_s', 0):.1f} s"
                     + (f"  PROBLEMS: {out['problems']}" if out["problems"] else ""))
    lines.append(f"whole class: {run['class_wall_s']:.1f} s wall; all kernels together peaked at "
                 f"{run['class_kernels_peak_total_mib'] or 0:,.0f} MiB (sampled every {SAMPLE_S} s); "
                 f"hub {run.get('hub_rss_mib', 0):.0f} MiB, proxy {run.get('proxy_rss_mib', 0):.0f} MiB; "
                 f"hub stopped in {run['stop'].get('stop_s', 0):.1f} s, exit {run['stop'].get('exit_code')}")
    table = "\n".join(lines)
    print(table, flush=True)
    slim = json.loads(json.dumps(run, default=str))
    for out in slim["students"].values():
        for r in out["notebooks"]:
            r.pop("stdout", None)
    slim["table"] = table
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(slim, indent=1))
    print(f"written to {RESULTS}", flush=True)


# ------------------------------------------------------------------------------------ the tests
def records(run):
    return [(name, r) for name, out in run["students"].items() for r in out["notebooks"]]


def test_every_student_ran_every_cell(lesson):
    problems = {n: o["problems"] for n, o in lesson["students"].items() if o["problems"]}
    assert not problems, f"{problems}\n--- hub log:\n{lesson['hub_log_tail']}"
    errors = [(n, r["notebook"], r["errors"]) for n, r in records(lesson) if r["errors"]]
    assert not errors, errors
    for name, out in lesson["students"].items():
        ran = [r["notebook"] for r in out["notebooks"]]
        expected = ["01", "02", "03", "04"] + (["04-own"] if out["scenario"] == "teacher-model" else [])
        assert ran == expected, f"{name} ran {ran}"


def test_kernels_ran_as_the_student_in_their_copy(lesson):
    for name, r in records(lesson):
        home = Path(lesson["students_meta"][name]["home"])
        assert Path(r["cwd"]) == home / SERIES / "notebooks", (name, r["notebook"], r["cwd"])
        assert Path(r["helpers"]).resolve().is_relative_to(REPO), (name, r["helpers"])
        assert Path(r["python"]).parent == VENV / "bin", (name, r["python"])
        if AS_ROOT:
            assert r["kernel_user"] == name, (name, r["notebook"], r["kernel_user"])
    assert not lesson["links"], f"relative links broken in the students' copies: {lesson['links']}"


def test_every_student_is_offered_the_series_kernel_only(lesson):
    for name, out in lesson["students"].items():
        assert out["kernelspecs"] == {"status": 200, "default": "cifar10-cnn",
                                      "names": ["cifar10-cnn"]}, (name, out["kernelspecs"])


def test_each_model_landed_in_the_students_own_folder(lesson):
    for name, model in lesson["models"].items():
        assert model["exists"], f"{name}: no model at {model['path']}"
        if AS_ROOT:
            assert model["owner_uid"] == lesson["students_meta"][name]["uid"], (name, model)


def test_a_read_only_teachers_model_sends_the_students_model_home(lesson):
    shared = [n for n, o in lesson["students"].items() if o["scenario"] == "teacher-model"]
    assert shared, "no student started with the teacher's model (HUB_STUDENTS >= 2)"
    for name in shared:
        by_label = {r["notebook"]: r for r in lesson["students"][name]["notebooks"]}
        said = " ".join(by_label["03"]["stdout"].split())
        assert "is read-only" in said and f"~/cifar10-artifacts/{MODE}/best_model.keras" in said, said[-1500:]
        assert "Nothing is lost" in said and "CIFAR10_ARTIFACTS=~/cifar10-artifacts" in said, said[-1500:]
        assert "Traceback" not in said
        # 04 first read the teacher's model, then (after "my own model") the student's
        assert f"model: ~/cifar10-artifacts/{MODE}/best_model.keras" not in by_label["04"]["stdout"]
        assert f"model: ~/cifar10-artifacts/{MODE}/best_model.keras" in by_label["04-own"]["stdout"], \
            by_label["04-own"]["stdout"][:1500]
    for out in lesson["students"].values():
        if out["scenario"] == "own":
            by_label = {r["notebook"]: r for r in out["notebooks"]}
            assert "is read-only" not in by_label["03"]["stdout"]
            assert f"model: ~/cifar10-artifacts/{MODE}/best_model.keras" in by_label["04"]["stdout"]


def test_shared_data_and_model_unchanged(lesson):
    assert lesson["shared_after"] == lesson["shared_before"]
    assert len(lesson["shared_before"]["data"]) >= 1 and len(lesson["shared_before"]["model"]) >= 2


def test_a_students_token_opens_only_their_own_server(lesson):
    assert len(lesson["cross_tokens"]) == N_STUDENTS
    for check in lesson["cross_tokens"]:
        assert check["own_status"] == 200, check
        assert check["other_status"] in (403, 404) and check["other_kernels_status"] in (403, 404), check


def test_login_form_accepts_the_password_only(lesson):
    right, wrong = lesson["login"]["right"], lesson["login"]["wrong"]
    assert right["status"] == 302 and "jupyterhub-hub-login" in right["cookies"], right
    assert wrong["status"] == 403 and "jupyterhub-hub-login" not in wrong["cookies"], wrong


def test_hub_stops_cleanly(lesson):
    stop = lesson["stop"]
    assert stop["exit_code"] == 0, stop
    assert not stop["leftover_processes"], stop


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-s", "-v"]))
