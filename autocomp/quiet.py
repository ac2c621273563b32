"""Third-party warnings a user can do nothing about, kept off the terminal between trials.

Each entry is a warning a library raises about its own internals on every model (torch.export's
pytree on every export and every unpickled spec; Torch-Pruning on a model's free parameters, such as a
transformer's position embedding, which it then prunes as intended). Installed by the CLI, the API
and every compile worker (spawned processes start with fresh filters). Anything else still shows;
`search --verbose` shows these too (SHOW_ENV, inherited by the workers).
"""

from __future__ import annotations

import os
import warnings

SHOW_ENV = "AUTOCOMP_SHOW_WARNINGS"  # "1": leave every warning on (search --verbose)

KNOWN_NOISE: tuple[tuple[type[Warning], str], ...] = (
    (FutureWarning, r".*LeafSpec.*"),
    (UserWarning, r"Unwrapped parameters detected"),
)


def silence_known_noise() -> None:
    if os.environ.get(SHOW_ENV) == "1":
        return
    for category, message in KNOWN_NOISE:
        warnings.filterwarnings("ignore", message=message, category=category)


def show_all() -> None:
    """Every warning shown, here and in the compile workers this process starts."""
    os.environ[SHOW_ENV] = "1"
