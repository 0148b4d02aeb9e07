"""deploy/README.md's install steps, run as they are written, on this machine, without changing it.

The block marked `<!-- install: ... -->` is taken from the README and run as root from a copy of
the checkout in a private mount namespace (`unshare --mount`) where /etc, /opt, /usr and /var are
overlays: apt-get, useradd, /etc/kmc and the units land in throw-away upper layers. Afterwards
the test looks at what a ward's server would hold: the three service users, each configuration
passing `--check` as the user that runs it (done by the block itself), secrets readable by their
service only, and the units accepted by `systemd-analyze verify` without a single warning.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import checkout_copy

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "deploy" / "README.md"
OVERLAID = ("etc", "opt", "usr", "var")
SERVICES = ("gateway", "sink", "ward")


def install_block() -> str:
    text = README.read_text()
    found = re.findall(r"<!-- install: [^\n]*-->\n```sh\n(.*?)```", text, re.S)
    assert len(found) == 1, "deploy/README.md must mark exactly one install block"
    return found[0]


def test_the_readme_install_steps_work_as_written(tmp_path):
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to run the install steps in a namespace")
    repo = checkout_copy(tmp_path / "kmc-sense")
    layers = tmp_path / "layers"
    mounts = []
    for d in OVERLAID:
        (layers / d / "upper").mkdir(parents=True)
        (layers / d / "work").mkdir()
        mounts.append(
            f"mount -t overlay overlay -o lowerdir=/{d},upperdir={layers / d / 'upper'},"
            f"workdir={layers / d / 'work'} /{d}"
        )
    checks = "\n".join(
        [
            "set +e",
            "echo '== after the steps =='",
            *(f"id kmc-{s}" for s in SERVICES),
            "stat -c '%n %a %U:%G' /etc/kmc/*.pw /etc/kmc/ward.pin /etc/kmc/*.toml",
            "runuser -u kmc-sink -- cat /etc/kmc/mqtt-gateway.pw >/dev/null 2>&1 "
            "&& echo 'LEAK: kmc-sink reads the gateway secret'",
            "runuser -u kmc-ward -- cat /etc/kmc/ward.pin >/dev/null && echo 'ward reads its PIN'",
            "systemd-analyze verify /etc/systemd/system/kmc-*.service > verify.log 2>&1;"
            " echo verify rc $?; cat verify.log",
            "/usr/bin/python3 -c 'import kmc_analysis' 2>/dev/null && echo 'LEAK: system python'",
            "true",
        ]
    )
    script = "\n".join(["set -e", *mounts, f"cd {repo}", install_block(), checks])
    (tmp_path / "install.sh").write_text(script)
    r = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", str(tmp_path / "install.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(Path.home()), "LANG": "C.UTF-8"},
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    after = r.stdout.split("== after the steps ==", 1)[1]
    for s in SERVICES:
        assert f"(kmc-{s})" in after, after
        assert f"/etc/kmc/{s}.toml: ok" in r.stdout  # --check, run by the service's own user
    for secret, owner in [
        ("mqtt-gateway.pw", "gateway"),
        ("mqtt-sink.pw", "sink"),
        ("influx-sink.pw", "sink"),
        ("mqtt-ward.pw", "ward"),
        ("ward.pin", "ward"),
    ]:
        assert f"/etc/kmc/{secret} 640 root:kmc-{owner}" in after, after
    assert "LEAK" not in after, after
    assert "ward reads its PIN" in after
    assert "verify rc 0" in after, after
    verify_output = after.split("verify rc 0", 1)[1].strip()
    assert verify_output == "", f"systemd-analyze verify warned:\n{verify_output}"
    assert re.search(r"ward PIN \(for acknowledging alerts\): \d{6}", r.stdout)
    # nothing reached the machine outside the namespace
    assert not Path("/etc/kmc").exists() and not Path("/opt/kmc-sense").exists()
