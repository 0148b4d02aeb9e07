#!/bin/sh
# Run one firmware test under the MicroPython unix port: stand-ins first, then the firmware.
# The heap stands for the ESP32's: 140K on a 64-bit port is ~100 KB on the board (the factor,
# 1.4, and where it comes from: firmware/README.md, Memory budget). A test whose own
# bookkeeping needs more says so in a "# heap: SIZE (why)" line; KMC_FW_HEAP overrides both,
# KMC_FW_DIR runs another copy of the firmware (the .mpy files `kmc firmware deploy` copies).
here=$(cd "$(dirname "$0")" && pwd)
heap=$(sed -n 's/^# heap: \([0-9]*[KM]\).*/\1/p' "$1" 2>/dev/null | head -n 1)
heap=${KMC_FW_HEAP:-${heap:-140K}}
MICROPYPATH="$here/stubs:$here:${KMC_FW_DIR:-$here/../../../firmware}:.frozen" exec micropython -X heapsize="$heap" "$@"
