"""Launcher for a TVM RPC server on the emulated aarch64 python (TVM 0.27).

Run it with the wrapper:
    DEST/python-aarch64 start_server.py --host 127.0.0.1 --port P --port-end P2 \
        --tracker 127.0.0.1:TPORT --key rpi4 [--silent] [--no-fork]
Same flags as `python -m tvm.exec.rpc_server`.

Environment:
  AUTOCOMP_AARCH64_PYTHON  path of the wrapper script (default: python-aarch64 next to this file).
  TVM_USE_RUNTIME_LIB      set to 1 here unless already set: import only libtvm_runtime
                           (faster start, ~128 MB instead of ~342 MB under emulation).
  AUTOCOMP_RPC_ROBUST      1 (default): start rpc.Server with a patch that keeps the server listening
                           after a session worker dies (stock 0.27: the listener thread dies with
                           "RuntimeError: Child process N exited unsuccessfully with error code -9",
                           the process stays alive but leaves the tracker for good).
                           0: plain `runpy` of tvm.exec.rpc_server, no patch.

Why sys.executable: without binfmt_misc, the server's PopenWorker re-executes sys.executable, which is
the aarch64 ELF, and fails with "Exec format error"; pointing it at the qemu wrapper makes it work.
"""
import os
import runpy
import sys

here = os.path.dirname(os.path.abspath(__file__))
wrapper = os.environ.get("AUTOCOMP_AARCH64_PYTHON") or os.path.join(here, "python-aarch64")
if not os.path.exists(wrapper):
    sys.exit(f"start_server.py: wrapper {wrapper} not found (set AUTOCOMP_AARCH64_PYTHON)")
sys.executable = wrapper
os.environ.setdefault("TVM_USE_RUNTIME_LIB", "1")


def _survive_session_crash():
    """Runs inside the server's worker process: keep listening after a failed session."""
    import logging
    import os as _os

    from tvm.rpc import server as _srv

    orig = _srv._serving
    if getattr(orig, "_autocomp_patched", False):
        return
    log = logging.getLogger("RPCServer")

    def _serving(sock, addr, opts, load_library):
        cwd = _os.getcwd()
        try:
            return orig(sock, addr, opts, load_library)
        except RuntimeError as err:  # child died (crash, kill, OOM): report, clean up, go on
            log.warning("session from %s failed: %s; still serving", addr, err)
            try:
                _os.chdir(cwd)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass
            return None

    _serving._autocomp_patched = True
    _srv._serving = _serving


def main_robust(argv):
    import argparse
    import logging

    p = argparse.ArgumentParser("start_server.py")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9090)
    p.add_argument("--port-end", type=int, default=9199)
    p.add_argument("--tracker", default=None)
    p.add_argument("--key", default="")
    p.add_argument("--silent", action="store_true")
    p.add_argument("--load-library", default=None)
    p.add_argument("--custom-addr", default=None)
    p.add_argument("--no-fork", dest="fork", action="store_false")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    tracker = None
    if a.tracker:
        h, port = a.tracker.rsplit(":", 1)
        tracker = (h, int(port))
        if not a.key:
            sys.exit("start_server.py: --key is required with --tracker")
    from tvm import rpc

    server = rpc.Server(a.host, a.port, a.port_end, key=a.key, tracker_addr=tracker,
                        load_library=a.load_library, custom_addr=a.custom_addr, silent=a.silent,
                        no_fork=not a.fork, server_init_callback=_survive_session_crash)
    logging.info("autocomp launcher: RPC server (robust mode) on %s:%s key=%s", a.host, server.port, a.key)
    server.proc.join()


if os.environ.get("AUTOCOMP_RPC_ROBUST", "1") != "0":
    main_robust(sys.argv[1:])
else:
    sys.argv = ["tvm.exec.rpc_server"] + sys.argv[1:]
    runpy.run_module("tvm.exec.rpc_server", run_name="__main__", alter_sys=True)
