"""The first hour: `make install` needs only Python 3 and make, and keeps what `make install-gpu` added.

- scripts/bootstrap-uv.sh, run for real with Debian's own system Python (PEP 668 "externally managed",
  where `pip install --user` is refused) in a HOME and PATH without any uv: the uv it prints runs;
- the Makefile's sync command lines (`make -n`) with and without the recorded GPU extra;
- no Makefile variable carries trailing spaces (an inline comment after a value keeps them in GNU make).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.stack import ROOT

SYSTEM_PYTHON = Path("/usr/bin/python3")
BOOTSTRAP = ROOT / "scripts" / "bootstrap-uv.sh"
# What the bootstrap script itself calls from PATH; uv is not among them.
SCRIPT_TOOLS = ("bash", "sh", "env", "dirname", "mkdir", "rm", "grep")


def clean_env(home: Path, path: Path) -> dict[str, str]:
    """The caller's environment (proxies, pip index settings) without any uv or venv in sight."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UV", "VIRTUAL_ENV", "PYTHON", "PIP_USER", "CONDA", "XDG_"))
    }
    env.update(HOME=str(home), PATH=str(path))
    env.pop("CARGO_HOME", None)
    return env


def tools_without_uv(folder: Path) -> Path:
    folder.mkdir()
    for tool in SCRIPT_TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run the bootstrap script"
        (folder / tool).symlink_to(found)
    return folder


@pytest.mark.timeout(120)
def test_bootstrap_installs_a_working_uv_with_the_system_python(tmp_path: Path) -> None:
    if not SYSTEM_PYTHON.exists():
        pytest.skip(f"no system Python at {SYSTEM_PYTHON} to bootstrap uv with")
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home, tools_without_uv(tmp_path / "bin"))
    env.update(PYTHON=str(SYSTEM_PYTHON), UV_TOOLS_DIR=str(tmp_path / "tools"))

    done = subprocess.run([str(BOOTSTRAP)], env=env, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    uv = Path(done.stdout.strip())
    assert uv.is_relative_to(tmp_path), f"{uv} is not the uv it installed: {done.stderr}"
    version = subprocess.run([str(uv), "--version"], capture_output=True, text=True, timeout=30, check=True)
    assert version.stdout.startswith("uv "), version.stdout

    # A second run finds the uv it installed instead of installing again.
    again = subprocess.run([str(BOOTSTRAP)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0 and again.stdout.strip() == str(uv), again.stderr
    assert "installing" not in again.stderr


def test_bootstrap_without_any_way_to_install_names_the_package(tmp_path: Path) -> None:
    # A Python with neither venv/ensurepip nor pip (Debian without python3-venv and python3-pip), no curl.
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\necho 'No module named ensurepip' >&2\nexit 1\n")
    fake.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home, tools_without_uv(tmp_path / "bin"))
    env.update(PYTHON=str(fake), UV_TOOLS_DIR=str(tmp_path / "tools"))
    done = subprocess.run([str(BOOTSTRAP)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and done.stdout == ""
    assert "has no venv/ensurepip module" in done.stderr and "has no pip" in done.stderr
    assert "neither curl nor wget" in done.stderr
    assert "apt-get install python3-venv" in done.stderr


# --- the Makefile ------------------------------------------------------------------------------------


def make(cwd: Path, *args: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("EXTRAS", "UV", "CHROMIUM", "MAKEFLAGS")}
    done = subprocess.run(
        ["make", "--no-print-directory", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what the install targets read, with a synced .venv (nothing is really installed)."""
    for name in ("Makefile", "pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".synced").touch()
    return tmp_path


def sync_lines(output: str) -> list[str]:
    return [line.split('"$uv" ', 1)[1] for line in output.splitlines() if '"$uv" sync' in line]


def test_install_gpu_is_kept_by_every_later_sync(project: Path) -> None:
    assert sync_lines(make(project, "-n", "install")) == []  # in sync: nothing to do
    gpu = make(project, "-n", "install-gpu")
    assert sync_lines(gpu) == ["sync --frozen --extra gpu"]
    assert 'echo "gpu" > .venv/.extras' in gpu

    (project / ".venv" / ".extras").write_text("gpu\n")  # what install-gpu recorded
    assert sync_lines(make(project, "-n", "install")) == []  # make install does not drop vLLM
    (project / "uv.lock").touch()  # a newer lock: make run re-syncs, with the extra
    assert sync_lines(make(project, "-n", "run")) == ["sync --frozen --extra gpu"]
    assert sync_lines(make(project, "-n", "install")) == ["sync --frozen --extra gpu"]
    # Dropping the extra is explicit.
    assert sync_lines(make(project, "-n", "install", "EXTRAS=")) == ["sync --frozen"]


def test_a_fresh_install_syncs_without_extras_through_the_bootstrap(project: Path) -> None:
    (project / ".venv" / ".synced").unlink()
    output = make(project, "-n", "install")
    assert 'uv="$(bash scripts/bootstrap-uv.sh)" && "$uv" sync --frozen' in output.splitlines()
    chosen = make(project, "-n", "install", "UV=/opt/uv/bin/uv")
    assert 'uv="/opt/uv/bin/uv" && "$uv" sync --frozen' in chosen.splitlines()


def test_no_makefile_variable_keeps_trailing_spaces() -> None:
    names = re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(?:\?=|:=|\+=|=)", (ROOT / "Makefile").read_text(), re.M)
    assert "CHROMIUM" in names
    probe = "__value-%: ; @: $(info <$($*)>)"
    for name in names:
        value = make(ROOT, "-s", "--eval", probe, f"__value-{name}")
        assert value.startswith("<") and value.endswith(">\n"), value
        assert value[1:-2] == value[1:-2].strip(), f"{name} = {value[1:-2]!r}"
    assert make(ROOT, "-s", "--eval", probe, "__value-CHROMIUM") == "</usr/bin/chromium>\n"
