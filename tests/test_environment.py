"""The conda and pip paths install the same packages."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _specs(lines):
    out = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(re.sub(r"\s+", "", line).lower())
    return out


def requirements():
    return _specs((ROOT / "requirements.txt").read_text().splitlines())


def environment_pip():
    lines, inside = [], False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if re.match(r"^\s*- pip:\s*$", line):
            inside = True
            continue
        if inside:
            m = re.match(r"^\s{4,}- (.+)$", line)
            if not m:
                break
            lines.append(m.group(1))
    return _specs(lines)


def test_environment_yml_pip_list_equals_requirements_txt():
    req, env = requirements(), environment_pip()
    assert len(req) >= 12, req
    assert sorted(env) == sorted(req), (
        f"environment.yml and requirements.txt drifted apart: only in requirements.txt: "
        f"{sorted(set(req) - set(env))}; only in environment.yml: {sorted(set(env) - set(req))}")


def test_every_package_is_pinned_compatibly():
    for spec in requirements():
        assert re.fullmatch(r"[a-z0-9_.-]+~=\d+\.\d+\.\d+", spec), f"{spec}: pin it as NAME~=X.Y.Z"


def test_owner_fixed_packages_are_listed():
    names = {re.split(r"[~=<>]", s)[0] for s in requirements()}
    assert {"jupyterlab", "tensorflow", "keras", "numpy", "matplotlib", "seaborn",
            "imbalanced-learn", "nbval"} <= names


def test_installed_versions_satisfy_the_pins():
    from importlib.metadata import version
    for spec in requirements():
        name, pin = spec.split("~=")
        major_minor = ".".join(pin.split(".")[:2])
        assert version(name).startswith(major_minor + "."), f"{name} {version(name)} vs ~={pin}"
