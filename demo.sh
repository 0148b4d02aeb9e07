#!/usr/bin/env bash
# The README's main command: install what the simulated ward needs, then run it.
#   bash demo.sh [kmc demo options, e.g. --straps 6 --minutes 120]
# Mosquitto and InfluxDB come from Debian's packages where apt-get is usable (root or sudo);
# without them `kmc demo` still runs, with an embedded broker and a samples file as the store.
set -euo pipefail
cd "$(dirname "$0")"

if command -v apt-get >/dev/null; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    need=()
    command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
    command -v influxd >/dev/null || need+=(influxdb)
    if [ ${#need[@]} -gt 0 ] && { [ -z "$sudo" ] || command -v sudo >/dev/null; }; then
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get update -qq || true
        $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
            echo "demo.sh: could not install ${need[*]}; the demo falls back to embedded parts"
    fi
fi

python3 -m pip install --quiet .
exec kmc demo "$@"
