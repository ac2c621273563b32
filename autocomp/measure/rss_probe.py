"""Subprocess body for measure/memory.py: python -m autocomp.measure.rss_probe LIB PARAMS SHAPE."""

import json
import sys


def status_bytes(key: str) -> int:
    """VmHWM (high-water mark) or VmRSS (now) of this process. Unlike getrusage's ru_maxrss, VmHWM is
    not inherited from the parent across fork + exec, so it counts only what this process touched."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def main() -> None:
    lib_path, params_path, shape = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    # tvm_ffi imports torch whenever it is installed; a deployed TVM runtime carries no torch, so the
    # probe blocks it: ~200 MiB of torch would be counted as the runtime's, and its import costs ~2 s a
    # candidate
    sys.modules["torch"] = None  # type: ignore[assignment]
    import numpy as np
    import tvm
    from tvm.runtime.vm import VirtualMachine  # the runtime's VM: no compiler is loaded

    runtime, before = status_bytes("VmHWM"), status_bytes("VmRSS")
    dev = tvm.cpu()
    vm = VirtualMachine(tvm.runtime.load_module(lib_path), dev)
    params = tvm.runtime.load_param_dict_from_file(params_path)
    args = [tvm.runtime.tensor(np.zeros(shape, dtype="float32"), dev)] + [params[k] for k in sorted(params)]
    vm["main"](*args)
    peak, after = status_bytes("VmHWM"), status_bytes("VmRSS")
    with open("/proc/self/maps", encoding="ascii", errors="replace") as f:
        torch_mapped = "libtorch" in f.read()
    print(json.dumps({"peak_rss_bytes": peak, "runtime_rss_bytes": runtime, "model_rss_bytes": max(after - before, 0),
                      "torch_mapped": torch_mapped}))


if __name__ == "__main__":
    main()
