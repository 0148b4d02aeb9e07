# Writes tests/golden/protocol_v1.json from golden_cases.py (run under MicroPython).
import json

from golden_cases import cases

out = {name: "".join("%02x" % b for b in data) for name, data in cases()}
with open("../golden/protocol_v1.json", "w") as f:
    f.write(json.dumps(out))
print("wrote %d vectors" % len(out))
