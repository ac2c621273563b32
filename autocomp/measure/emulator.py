"""An aarch64 device you can run here: a TVM RPC server under qemu user-mode emulation.

`make emulator` (scripts/emulated_aarch64/setup.sh) fills a directory with an aarch64 Python, the
aarch64 TVM runtime wheels and a launcher. Servers started from it register at a tracker under the key
`<key>-emulated` (e.g. `rpi4-emulated`), and results measured on them say `emulated:...`: their outputs
are real aarch64 outputs, their timings are qemu's, never a board's.
"""

from __future__ import annotations

import os
from pathlib import Path

from autocomp.errors import UserError
from autocomp.paths import cache_dir

SUFFIX = "-emulated"


def emulator_dir() -> Path:
    return Path(os.environ.get("AUTOCOMP_EMULATOR_DIR", cache_dir() / "emulated-aarch64"))


def server_command(directory: Path | None = None) -> list[str]:
    """The command prefix that runs an RPC server on the emulated aarch64 Python."""
    d = directory or emulator_dir()
    wrapper, launcher = d / "python-aarch64", d / "start_server.py"
    if not (wrapper.is_file() and launcher.is_file()):
        raise UserError(f"no emulated aarch64 environment in {d}; run 'make emulator' (or "
                        f"scripts/emulated_aarch64/setup.sh {d}) first")
    return [str(wrapper), str(launcher)]


def server_env() -> dict[str, str]:
    """The x86 virtualenv's paths must not leak into the aarch64 Python."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["TVM_USE_RUNTIME_LIB"] = "1"
    return env


def is_emulated_key(key: str) -> bool:
    return key.endswith(SUFFIX)
