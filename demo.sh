#!/usr/bin/env bash
# The README's main command: install what the simulated ward needs, then run it.
#   bash demo.sh [kmc demo options, e.g. --straps 6 --minutes 120]
#
# KMC Sense goes into a virtual environment of its own (.venv beside this file, or $KMC_VENV),
# made on the first run and reused after: a distribution's Python (Debian 12/13, Ubuntu 24.04)
# refuses `pip install` outside one (PEP 668, "externally-managed-environment"), and the
# system's packages stay as they were. Mosquitto and InfluxDB come from Debian's packages
# where apt-get is usable (root or sudo); without them `kmc demo` still runs, with an embedded
# broker and a samples file as the store.
set -euo pipefail
cd "$(dirname "$0")"
venv=${KMC_VENV:-.venv}
python=${PYTHON:-python3}

say() { echo "demo.sh: $*" >&2; }

apt_install() {  # apt_install PACKAGE...: quietly, when apt-get and root (or sudo) are there
    command -v apt-get >/dev/null || return 1
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || return 1
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq || true
    $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

command -v "$python" >/dev/null || {
    say "no $python found: install Python 3.11 or newer (Debian: apt-get install python3 python3-venv)"
    exit 1
}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    say "$("$python" --version 2>&1) is too old: KMC Sense needs Python 3.11 or newer"
    exit 1
}

# required: Debian and Ubuntu ship venv's pip bootstrap (ensurepip) in a package of its own
if [ ! -x "$venv/bin/python" ] && ! "$python" -c 'import ensurepip' 2>/dev/null; then
    say "installing python3-venv (Debian package)"
    apt_install python3-venv || {
        say "$python has no venv module: install it (Debian: apt-get install python3-venv)"
        exit 1
    }
fi
# optional, one at a time (a release without one of them still gets the other)
for pkg in mosquitto influxdb; do
    case $pkg in
        mosquitto) command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] && continue ;;
        influxdb) command -v influxd >/dev/null && continue ;;
    esac
    say "installing $pkg (Debian package)"
    apt_install "$pkg" || say "could not install $pkg; the demo falls back to an embedded part"
done

# the virtual environment: made once, repaired if its Python went away, reused after
if ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ]; then
        say "$venv exists and is not a virtual environment: move it away or set KMC_VENV"
        exit 1
    fi
    say "making a virtual environment in $venv"
    rm -rf "$venv"  # a virtual environment whose Python went away
    "$python" -m venv "$venv" || {
        say "$python -m venv failed: install the venv module (Debian: apt-get install python3-venv)"
        exit 1
    }
fi
# (re)install when the project's requirements changed; an editable install follows the code
stamp="$venv/.kmc-sense-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x "$venv/bin/kmc" ]; then
    say "installing KMC Sense and its libraries into $venv (a few minutes the first time)"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e .
    echo "$want" >"$stamp"
else
    say "using KMC Sense in $venv"
fi
kmc="$(cd "$venv" && pwd)/bin/kmc"
say "to run the demo again: $kmc demo [options] (or: . ${kmc%/kmc}/activate; kmc demo)"
exec "$kmc" demo "$@"
