#!/usr/bin/env bash
# Prints the path of a usable uv (stdout: the path only; progress and errors on stderr), installing one
# when none is found, so that `make install` needs nothing but Python 3 and make.
#
# Order: uv on PATH; the known install locations (~/.local/bin, ~/.cargo/bin, Python's user base bin,
# where `pip install --user` puts it on macOS); this repo's own tool venv (.tools/uv-venv, made with
# `python3 -m venv`, which works on PEP 668 "externally managed" system Pythons such as Debian 12 and
# Ubuntu 24.04); when the venv module is missing (Debian without python3-venv), `pip install --user
# --break-system-packages uv` if pip exists, else the official standalone installer into .tools/uv-bin;
# otherwise a clear error naming the package to install.
#
# PYTHON picks the interpreter (default python3); UV_TOOLS_DIR the private install folder (default
# <repo>/.tools). Written for bash 3.2 too (macOS).
set -euo pipefail

PYTHON="${PYTHON:-python3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${UV_TOOLS_DIR:-$ROOT/.tools}"
INSTALLER_URL="https://astral.sh/uv/install.sh"

say() { echo "bootstrap-uv: $*" >&2; }

TRIED=() # what did not work, for the final message

usable() { [ -n "$1" ] && [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

found() {
  echo "$1"
  exit 0
}

user_base_bin() { # where `pip install --user` puts scripts (~/.local/bin on Linux, elsewhere on macOS)
  local base
  base="$("$PYTHON" -m site --user-base 2>/dev/null)" && [ -n "$base" ] && echo "$base/bin"
}

try_known_locations() {
  local candidate base_bin
  candidate="$(command -v uv 2>/dev/null || true)"
  if usable "$candidate"; then found "$candidate"; fi
  base_bin="$(user_base_bin || true)"
  for candidate in \
    "$TOOLS/uv-venv/bin/uv" \
    "$TOOLS/uv-bin/uv" \
    "${XDG_BIN_HOME:-$HOME/.local/bin}/uv" \
    "$HOME/.local/bin/uv" \
    "${CARGO_HOME:-$HOME/.cargo}/bin/uv" \
    "${base_bin:-/nonexistent}/uv"; do
    if usable "$candidate"; then found "$candidate"; fi
  done
}

install_in_tool_venv() { # a venv of our own: pip may install there even on an externally managed Python
  local venv="$TOOLS/uv-venv"
  if ! "$PYTHON" -c "import venv, ensurepip" >/dev/null 2>&1; then
    TRIED+=("$PYTHON has no venv/ensurepip module")
    return 1
  fi
  say "installing uv from PyPI into $venv"
  rm -rf "$venv"
  mkdir -p "$TOOLS"
  if "$PYTHON" -m venv "$venv" >&2 \
    && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check uv >&2 \
    && usable "$venv/bin/uv"; then
    found "$venv/bin/uv"
  fi
  TRIED+=("a tool venv at $venv (python -m venv or pip install uv failed: is PyPI reachable?)")
  rm -rf "$venv"
  return 1
}

install_with_user_pip() { # no venv module: the user site, past PEP 668's guard (uv is self-contained)
  local flags=(--user --quiet --disable-pip-version-check) base_bin
  if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    TRIED+=("$PYTHON has no pip")
    return 1
  fi
  if "$PYTHON" -m pip install --help 2>/dev/null | grep -q -- --break-system-packages; then
    flags+=(--break-system-packages) # pip >= 23.0.1 enforces PEP 668; older pips neither know nor need it
  fi
  say "no venv module in $PYTHON: installing uv with pip install ${flags[*]} uv"
  if "$PYTHON" -m pip install "${flags[@]}" uv >&2; then
    base_bin="$(user_base_bin || true)"
    if usable "${base_bin:-/nonexistent}/uv"; then found "$base_bin/uv"; fi
  fi
  TRIED+=("pip install --user uv")
  return 1
}

install_standalone() { # no pip either: Astral's installer, into our own folder, shell profiles untouched
  local dir="$TOOLS/uv-bin" fetch
  if command -v curl >/dev/null 2>&1; then
    fetch=(curl -LsSf "$INSTALLER_URL")
  elif command -v wget >/dev/null 2>&1; then
    fetch=(wget -qO- "$INSTALLER_URL")
  else
    TRIED+=("the standalone installer (neither curl nor wget exists)")
    return 1
  fi
  say "installing uv with the standalone installer ($INSTALLER_URL) into $dir"
  mkdir -p "$dir"
  if "${fetch[@]}" | env UV_UNMANAGED_INSTALL="$dir" sh >&2 && usable "$dir/uv"; then found "$dir/uv"; fi
  TRIED+=("the standalone installer from $INSTALLER_URL")
  rm -rf "$dir"
  return 1
}

try_known_locations
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  say "no uv found, and no $PYTHON to install it with: install Python 3.11+ (or uv), or set PYTHON=/path"
  exit 1
fi
install_in_tool_venv || install_with_user_pip || install_standalone || true
say "could not install uv. Tried:"
for attempt in ${TRIED[@]+"${TRIED[@]}"}; do say "  - $attempt"; done
say "Install the venv module (Debian/Ubuntu: sudo apt-get install python3-venv) and run make again,"
say "or install uv yourself (https://docs.astral.sh/uv/getting-started/installation/)."
exit 1
