#!/bin/sh
# Run one firmware test under the MicroPython unix port: stand-ins first, then the firmware.
here=$(cd "$(dirname "$0")" && pwd)
MICROPYPATH="$here/stubs:$here:$here/../../../firmware:.frozen" exec micropython -X heapsize=16M "$@"
