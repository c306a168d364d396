# JupyterHub configuration for a class that runs the CIFAR-10 series on one server.
#
#     sudo .venv/bin/jupyterhub -f classroom/jupyterhub_config.py
#
# What it sets up (docs/classroom-server.md explains each choice):
#   - every student logs in with their own system account (PAM: the server's users and
#     passwords) and gets their own JupyterLab, started as that user (LocalProcessSpawner);
#   - JupyterLab and the kernels come from this repository's .venv (`make install`), so every
#     student gets the kernel "CIFAR-10 CNN (.venv)" (kernelspec cifar10-cnn) that the notebooks ask for;
#   - one read-only copy of CIFAR-10 for the whole class (CIFAR10_PATH);
#   - optionally, one read-only model trained by the teacher (CIFAR10_ARTIFACTS), which
#     notebook 04 reads; each student's own models go to ~/cifar10-artifacts;
#   - class mode by default (CIFAR10_CLASS=1: one epoch, so that notebook 03 fits a lesson).
#
# A teacher edits the block "Change these for your server" below, or sets the CLASSROOM_*
# environment variables named there before starting the hub. `make test-hub` starts this
# same file with test values (loopback, random ports, throw-away users and state).
#
# The hub runs as root here: LocalProcessSpawner needs root to start each student's server as
# that student. Students must be able to read and execute the repository and its .venv.
import os
import secrets
from pathlib import Path

c = get_config()  # noqa: F821  (JupyterHub defines get_config when it reads this file)

REPO = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("CLASSROOM_VENV") or REPO / ".venv")


def env(name, default=""):
    """A CLASSROOM_* setting from the environment, or its default."""
    return os.environ.get(f"CLASSROOM_{name}", default).strip()


# ---------------------------------------------------------------- Change these for your server
# The shared, read-only CIFAR-10 copy: the unpacked cifar-10-batches-py/ folder, or the
# official cifar-10-python.tar.gz. Owned by the teacher, readable by all (chmod -R a+rX,go-w).
SHARED_DATA = env("DATA", "/srv/cifar10/cifar-10-batches-py")
# Optional: a folder holding a model the teacher trained, shared read-only, so that students can
# run notebook 04 without training (CIFAR10_ARTIFACTS=/srv/cifar10/artifacts make run CLASS=1
# writes it to /srv/cifar10/artifacts/class/). Empty: no shared model, every student trains their own.
SHARED_MODEL = env("MODEL", "")
# Where each student's own models go ("~" is the student's home).
OWN_ARTIFACTS = env("OWN_ARTIFACTS", "~/cifar10-artifacts")
# "class" (one epoch, the default for a lesson), "quick" (a smoke test) or "full" (the article's 10 epochs).
MODE = env("MODE", "class")
# Who may log in. Comma-separated system user names; empty: nobody but the admins below.
STUDENTS = {name for name in env("STUDENTS").split(",") if name}
TEACHERS = {name for name in env("TEACHERS").split(",") if name}
# Where the hub listens. Put it behind HTTPS (a reverse proxy, or c.JupyterHub.ssl_cert/ssl_key)
# before students log in over a network: passwords travel with every login.
IP = env("IP", "")                          # "" = all interfaces; 127.0.0.1 = this machine only
PORT = int(env("PORT", "8000"))
# The hub's database, cookie secret and proxy pid file. Keep it across restarts.
STATE = Path(env("STATE", "/srv/jupyterhub"))
# ----------------------------------------------------------------------------------------------

if MODE not in ("class", "quick", "full"):
    raise ValueError(f"CLASSROOM_MODE={MODE!r}: use class, quick or full")

# The hub, its database and the proxy.
c.JupyterHub.ip = IP
c.JupyterHub.port = PORT
c.JupyterHub.hub_ip = "127.0.0.1"          # the hub's own API: only the proxy and servers talk to it
c.JupyterHub.hub_port = int(env("HUB_PORT", "8081"))
STATE.mkdir(parents=True, exist_ok=True, mode=0o700)
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(env('PROXY_API_PORT', '8001'))}"
# configurable-http-proxy, from npm: the copy `make test-hub` installs into classroom/.proxy,
# else the one on PATH (npm install -g configurable-http-proxy).
_local_proxy = REPO / "classroom/.proxy/node_modules/.bin/configurable-http-proxy"
c.ConfigurableHTTPProxy.command = [env("PROXY") or (str(_local_proxy) if _local_proxy.exists()
                                                    else "configurable-http-proxy")]
# On shutdown (SIGTERM, Ctrl-C) stop every student's server and the proxy too.
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True

# Logging in. PAM: the server's own accounts (create them with `useradd -m`, set passwords with
# `passwd`). The test uses JupyterHub's SharedPasswordAuthenticator instead (JupyterHub 5.3 or
# later): one password, at least 8 characters, lets anyone in under any student's name, so
# never on a real server.
if env("AUTH", "pam") == "shared-password":
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = env("PASSWORD") or secrets.token_hex(16)
    c.Authenticator.allow_all = True
else:
    c.JupyterHub.authenticator_class = "pam"
    c.Authenticator.allowed_users = STUDENTS | TEACHERS
c.Authenticator.admin_users = TEACHERS       # teachers can see, start and stop every student's server

# An API token for scripts (the test, or a teacher's own): create users, their tokens and
# servers through the REST API. Leave CLASSROOM_ADMIN_TOKEN unset to have none.
if env("ADMIN_TOKEN"):
    c.JupyterHub.services = [{"name": "classroom-admin", "api_token": env("ADMIN_TOKEN")}]
    c.JupyterHub.load_roles = [{
        "name": "classroom-admin",
        "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users"],
        "services": ["classroom-admin"],
    }]

# Each student's JupyterLab: started as that student, in their home folder, from the .venv.
# As root: LocalProcessSpawner (a real system user per student, so file permissions hold).
# Not as root (a try-out): SimpleLocalProcessSpawner, every "student" runs as you, in
# CLASSROOM_HOMES/<name> (default /tmp/<name>), and permissions protect nothing between them.
if os.geteuid() == 0 and env("SPAWNER", "local") == "local":
    c.JupyterHub.spawner_class = "localprocess"
else:
    c.JupyterHub.spawner_class = "simple"
    c.SimpleLocalProcessSpawner.home_dir_template = str(Path(env("HOMES", "/tmp")) / "{username}")
c.Spawner.cmd = [str(VENV / "bin/jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
# The kernel the notebooks ask for (cifar10-cnn), also for a new notebook; no other kernels.
c.Spawner.args = ["--MultiKernelManager.default_kernel_name=cifar10-cnn",
                  "--KernelSpecManager.allowed_kernelspecs=cifar10-cnn"]
# Kernels of a student who closed the tab without shutting them down: stop them after an hour
# idle, so that they give back their memory (2-3 GiB each in class mode).
c.Spawner.args += ["--MappingKernelManager.cull_idle_timeout=3600",
                   "--MappingKernelManager.cull_interval=300"]
# Start-up can take a while when thirty students log in at once.
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 120
# Resource limits: LocalProcessSpawner does NOT enforce c.Spawner.mem_limit or cpu_limit (it
# only passes them on as MEM_LIMIT and CPU_LIMIT). Enforce them with systemd (The Littlest
# JupyterHub's `limits.memory`), or a container spawner: see docs/classroom-server.md.


# The series' settings, for every kernel of every student (helpers/settings.py reads them).
def _artifacts(spawner):
    """Notebook 04 reads the teacher's model when there is one, unless the student chose
    "my own model" when starting their server; notebook 03 then saves into the student's
    own folder and says so (helpers/artifacts.py)."""
    if SHARED_MODEL and spawner.user_options.get("model", "teacher") != "own":
        return SHARED_MODEL
    return OWN_ARTIFACTS


c.Spawner.environment = {
    "CIFAR10_PATH": SHARED_DATA,
    "CIFAR10_ARTIFACTS": _artifacts,
    "CIFAR10_OWN_ARTIFACTS": OWN_ARTIFACTS,
    "CIFAR10_CLASS": "1" if MODE == "class" else "0",
    "CIFAR10_QUICK": "1" if MODE == "quick" else "0",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    # the .venv first, so that `!pip` and `!python` in a cell are the kernel's own
    "PATH": f"{VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
}

# With a shared model, the hub's start page asks which model notebook 04 reads. A student who
# trained in notebook 03 (saved into ~/cifar10-artifacts, as 03's note says) stops their server
# (File > Hub Control Panel > Stop My Server) and starts it again with "my own model".
if SHARED_MODEL:
    c.Spawner.options_form = """
<label for="model">Notebook 04 reads</label>
<select name="model" id="model" class="form-control">
  <option value="teacher" selected>the teacher's model (shared, read-only)</option>
  <option value="own">my own model (~/cifar10-artifacts, trained in notebook 03)</option>
</select>
"""

    def _options_from_form(formdata):
        return {"model": "own" if formdata.get("model", ["teacher"])[0] == "own" else "teacher"}

    c.Spawner.options_from_form = _options_from_form
