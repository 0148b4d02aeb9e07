"""The architecture, checked: the product never imports the testbed, the host never imports the
researchers' package, each layer adds its own commands, and the firmware is loaded without
touching the process's modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "kmc_host": ROOT / "host" / "kmc_host",
    "kmc_analysis": ROOT / "analysis" / "kmc_analysis",
    "kmc_testbed": ROOT / "testbed" / "kmc_testbed",
}
# what each package may import of the others: the product below, the testbed on top
ALLOWED = {
    "kmc_host": set(),
    "kmc_analysis": {"kmc_host"},
    "kmc_testbed": {"kmc_host", "kmc_analysis"},
}


def _imported(path: Path) -> set[str]:
    """The top-level names of every module `path` imports (at any depth of its code)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_each_package_imports_only_the_layers_below_it(package):
    others = set(PACKAGES) - {package}
    wrong = {
        str(path.relative_to(ROOT)): sorted((_imported(path) & others) - ALLOWED[package])
        for path in sorted(PACKAGES[package].rglob("*.py"))
    }
    assert {k: v for k, v in wrong.items() if v} == {}
    assert len(wrong) >= 5  # the walk found the package's modules


def test_the_check_sees_an_import_of_the_testbed(tmp_path):
    """The check above can fail: an import inside a function is found too."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from kmc_testbed.servers import free_port\n")
    assert _imported(module) == {"kmc_testbed"}


GATEWAY_TOML = """\
[gateway]
site = "s"
ward = "w"
data_dir = "{data}"

[mqtt]
port = 1883

[ble]
hci = "usb:0"

[[straps]]
id = "KMC-0001"
passkey = 123456
"""


def test_the_gateway_runs_without_the_analysis_package_or_the_testbed(tmp_path):
    """`python -m kmc_host gateway` with kmc_analysis and kmc_testbed unimportable: the host's
    commands work, the missing layers are named on stderr, nothing of theirs is loaded."""
    config = tmp_path / "gateway.toml"
    config.write_text(GATEWAY_TOML.format(data=tmp_path / "data"))
    script = (
        "import sys\n"
        "sys.modules['kmc_analysis'] = None\n"  # `import kmc_analysis` now raises ImportError
        "sys.modules['kmc_testbed'] = None\n"
        "from kmc_host.cli import main\n"
        f"status = main(['gateway', '--config', {str(config)!r}, '--check'])\n"
        "assert sys.modules['kmc_analysis'] is None and sys.modules['kmc_testbed'] is None\n"
        "sys.exit(status)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "ok: 1 straps" in run.stdout
    assert "the commands of kmc_analysis.cli:add_commands are not available" in run.stderr
    assert "the commands of kmc_testbed.cli:add_commands are not available" in run.stderr


def test_a_gateway_loads_of_the_other_layers_only_their_command_lists(tmp_path):
    """In a full install `kmc gateway` imports the layers' `cli` modules (to list their
    commands) and nothing else of theirs: no emulated strap, radio, servers or demo, no pyarrow,
    matplotlib or bumble."""
    config = tmp_path / "gateway.toml"
    config.write_text(GATEWAY_TOML.format(data=tmp_path / "data"))
    script = (
        "import sys\n"
        "from kmc_host.cli import main\n"
        f"assert main(['gateway', '--config', {str(config)!r}, '--check']) == 0\n"
        "heavy = ('kmc_testbed', 'kmc_analysis', 'bumble', 'pyarrow', 'matplotlib')\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    loaded = run.stdout.strip().splitlines()[-1].split()
    assert sorted(loaded) == ["kmc_analysis", "kmc_analysis.cli", "kmc_testbed", "kmc_testbed.cli"]


def _extra(sub):
    sub.add_parser("extra").set_defaults(run=lambda args: 7)


def _broken(sub):
    sub.add_parser("half")  # added, then the layer fails: nothing of it may stay
    raise RuntimeError("this layer is broken")


def _taken(sub):
    sub.add_parser("gateway")


def test_a_broken_layer_or_a_taken_command_leaves_the_rest_working(tmp_path, capsys):
    from kmc_host.cli import build_parser, main

    config = tmp_path / "gateway.toml"
    config.write_text(GATEWAY_TOML.format(data=tmp_path / "data"))
    layers = [_broken, _taken, _extra]
    assert main(["gateway", "--config", str(config), "--check"], layers=layers) == 0
    err = capsys.readouterr().err
    assert "test_layers:_broken are not available: this layer is broken" in err
    assert "test_layers:_taken are not available: it names commands that are taken: gateway" in err
    assert main(["extra"], layers=layers) == 7
    with pytest.raises(SystemExit):
        build_parser(layers).parse_args(["half"])


def test_kmc_has_every_layers_commands():
    run = subprocess.run(
        [sys.executable, "-m", "kmc_host", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("gateway", "sink", "ward", "firmware", "analyze", "report", "export"):
        assert command in run.stdout
    for command in ("validate", "simulate", "demo"):
        assert command in run.stdout
    assert run.stderr == ""


def test_the_firmware_is_loaded_under_its_package_only():
    """The emulated straps' firmware neither edits sys.modules for its bare names (protocol,
    bluetooth, micropython...) nor puts firmware/ on sys.path."""
    script = (
        "import sys\n"
        "from kmc_testbed.firmware import load_firmware\n"
        "fw = load_firmware()\n"
        "names = set(fw) | {'micropython', 'bluetooth'}\n"
        "assert not names & set(sys.modules), names & set(sys.modules)\n"
        "assert not [p for p in sys.path if p.endswith('firmware')], sys.path\n"
        "assert fw['app'].__name__ == 'kmc_firmware.app'\n"
        "assert fw['app'].SampleStore is fw['store'].SampleStore, 'siblings: one module each'\n"
        "assert fw['ble_service'].bluetooth.BLE.__module__ == 'kmc_testbed.bluetooth'\n"
        "assert load_firmware()['store'] is fw['store'], 'loaded once'\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
