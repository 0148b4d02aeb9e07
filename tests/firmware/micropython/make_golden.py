# Writes tests/golden/protocol_v1.json from golden_cases.py (run under MicroPython): one vector
# a line, in the order of cases(), so that a regenerated file diffs line by line (a dict's own
# order would reshuffle it on every change).
import json

from golden_cases import cases

lines = [
    "  %s: %s" % (json.dumps(name), json.dumps("".join("%02x" % b for b in data)))
    for name, data in cases()
]
with open("../../golden/protocol_v1.json", "w") as f:
    f.write("{\n" + ",\n".join(lines) + "\n}\n")
print("wrote %d vectors" % len(lines))
