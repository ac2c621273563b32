"""`autocomp verify DIR`: an exported directory's files against its manifest's sha256 and sizes.

Why: an artifact travels (copied to a board, stored in CI, handed to another team); whoever deploys it
can check that what they hold is what was measured, with nothing but this command.
"""

from __future__ import annotations

import json
from pathlib import Path

from autocomp.artifacts.export import sha256
from autocomp.errors import UserError


def verify(directory: Path) -> tuple[int, list[str]]:
    """(files checked, one line per problem: missing, changed, or not in the manifest)."""
    manifest = directory / "manifest.json"
    if not manifest.is_file():
        raise UserError(f"{directory} has no manifest.json; give a directory written by 'autocomp export'")
    try:
        files = json.loads(manifest.read_text())["files"]
        expected = {str(name): (str(f["sha256"]), int(f["bytes"])) for name, f in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{manifest} is not an autocomp manifest (no readable 'files' table: {exc})") from exc
    problems = []
    for name, (digest, size) in sorted(expected.items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != size or sha256(path) != digest:
            problems.append(f"{name}: differs from the manifest (sha256 {sha256(path)[:16]}, expected {digest[:16]})")
    for path in sorted(directory.iterdir()):
        if path.name not in expected and path.name != "manifest.json":
            problems.append(f"{path.name}: not in the manifest")
    return len(expected), problems
