# A tiny test runner for MicroPython (no unittest there): runs every test_* function of a
# module, prints one line per test and a closing "N passed, N failed" line, exits 1 on failure.
import gc
import sys


def run(namespace):
    names = sorted(k for k in namespace if k.startswith("test_"))
    passed = failed = 0
    for name in names:
        gc.collect()  # each test starts as after a boot: what the last one left is garbage
        try:
            namespace[name]()
            passed += 1
            print("ok", name)
        except Exception as exc:  # noqa: BLE001
            failed += 1
            print("FAIL", name)
            sys.print_exception(exc)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


def raises(exc_type, fn, *args):
    try:
        fn(*args)
    except exc_type:
        return True
    raise AssertionError("expected %s" % exc_type.__name__)


def tmpdir(name, keep=False):
    """A folder for one test, emptied unless `keep` (a reboot finds what was there)."""
    import os

    base = os.getenv("KMC_FW_TMP") or "/tmp/kmc-fw-tests"
    for d in (base, base + "/" + name):
        try:
            os.mkdir(d)
        except OSError:
            pass
    path = base + "/" + name
    for f in [] if keep else os.listdir(path):
        os.remove(path + "/" + f)
    return path
