"""Start a local device farm (a TVM RPC tracker and servers, all on 127.0.0.1) and keep it up until Ctrl-C.

    python scripts/farm.py --servers host-rpc:2 [--emulated rpi4:1] [--port 9190]

`--servers KEY:N` starts N servers on this machine's CPU under KEY; `--emulated KEY:N` starts N
emulated aarch64 servers under KEY-emulated (run `make emulator` once first). Then, in another shell:

    autocomp devices --tracker 127.0.0.1:9190
    autocomp search --device rpi4 --tracker 127.0.0.1:9190 --rpc-key rpi4-emulated --task digits

Real boards join the same tracker with `python -m tvm.exec.rpc_server --tracker HOST:9190 --key rpi4`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path


def parse(spec: str) -> tuple[str, int]:
    key, _, n = spec.partition(":")
    if not key or not (n or "1").isdigit():
        raise SystemExit(f"farm.py: expected KEY:N, got {spec!r}")
    return key, int(n or 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", action="append", default=[], help="KEY:N servers on this CPU")
    parser.add_argument("--emulated", action="append", default=[], help="KEY:N emulated aarch64 servers")
    parser.add_argument("--port", type=int, default=9190, help="tracker port (default 9190)")
    parser.add_argument("--logs", default=None, help="log directory (default: a temporary one)")
    args = parser.parse_args()
    if not args.servers and not args.emulated:
        parser.error("give at least one --servers or --emulated")

    from autocomp.measure.farm import start_farm

    logs = Path(args.logs or tempfile.mkdtemp(prefix="autocomp-farm-"))
    farm = start_farm(logs, port=args.port)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        wanted: dict[str, int] = {}
        for spec, emulated in [(s, False) for s in args.servers] + [(s, True) for s in args.emulated]:
            key, n = parse(spec)
            key = f"{key}-emulated" if emulated else key
            for i in range(n):
                farm.add_server(f"{key}-{i}", key, emulated=emulated)
            wanted[key] = wanted.get(key, 0) + n
        for key, n in wanted.items():
            farm.wait_for(key, n, timeout_s=300)
        print(f"farm up: tracker {farm.address}; keys: " + ", ".join(f"{k} x{n}" for k, n in wanted.items()))
        print(f"logs in {logs}; Ctrl-C stops everything", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        farm.stop()
        print("farm down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
