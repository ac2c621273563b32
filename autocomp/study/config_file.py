"""`autocomp search --config FILE`: a search's settings in one TOML file, spelled as its flags.

A file's key is a `search` flag without its dashes (`max-accuracy-drop = 0.05`, or with underscores),
so `--help` documents the file too; `sensitivity = false` is the same as `no-sensitivity = true`. Keys
may sit at the top level or in the tables of GROUPS, which only group them. The file replaces the
built-in defaults and a flag replaces the file (cli.py). Every mistake is one line naming the key and
the file, because a typo that silently fell back to a default would waste a whole search.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from pathlib import Path
from typing import Any

from autocomp.errors import UserError, first_line
from autocomp.study.config import SearchConfig

RENAMED = {"timeout": "timeout_s", "tracker_timeout": "tracker_timeout_s"}  # flag dest -> SearchConfig field
NEGATED = {"no_sensitivity": "sensitivity", "no_screen": "screen"}  # flag dest -> the field it sets to False
GROUPS = ("search", "constraints", "budget", "measure", "study")  # optional tables; they only group keys
_FLAG_OF = {field: dest for dest, field in RENAMED.items()}  # field -> flag dest, where they differ
_NEGATED_BY = {field: dest for dest, field in NEGATED.items()}
_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _fields() -> dict[str, type]:
    """SearchConfig's fields and the type a file's value must have (None is not a TOML value)."""
    hints = typing.get_type_hints(SearchConfig)
    out = {}
    for f in dataclasses.fields(SearchConfig):
        args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
        out[f.name] = args[0] if args else hints[f.name]
    return out


def _key_fields() -> dict[str, tuple[str, bool]]:
    """Every key a file may use (underscore spelling) -> (SearchConfig field, whether the value is negated)."""
    keys = {_FLAG_OF.get(field, field): (field, False) for field in _fields()}
    keys.update({dest: (field, True) for dest, field in NEGATED.items()})
    return keys


def valid_keys() -> list[str]:
    return [key.replace("_", "-") for key in _key_fields()]


def _value(key: str, value: Any, want: type, path: Path) -> Any:
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, want) and not (want is not bool and isinstance(value, bool)):
        return value
    shown = json.dumps(value) if isinstance(value, (str, bool, int, float)) else type(value).__name__
    raise UserError(f"{path}: '{key}' must be {_TYPE_WORDS.get(want, want.__name__)}, got {shown}")


def _entries(doc: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(key, value, where) for the top level and the GROUPS tables, in file order."""
    out = []
    for key, value in doc.items():
        if isinstance(value, dict) and key in GROUPS:
            out += [(k, v, f" in [{key}]") for k, v in value.items()]
        else:
            out.append((key, value, ""))
    return out


def parse(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    """A parsed TOML document's values by SearchConfig field; `path` is for the messages."""
    keys, types = _key_fields(), _fields()
    values: dict[str, Any] = {}
    given: dict[str, str] = {}  # field -> the key that set it
    for key, value, where in _entries(doc):
        name = key.replace("-", "_")
        if name not in keys:
            raise UserError(f"{path}: unknown key '{key}'{where}; valid keys: {', '.join(valid_keys())} "
                            f"(optionally in tables {', '.join(f'[{g}]' for g in GROUPS)})")
        field, negated = keys[name]
        if field in given:
            raise UserError(f"{path}: '{key}'{where} sets {field} again (already set by '{given[field]}'); keep one")
        value = _value(key, value, types[field], path)
        values[field], given[field] = (not value) if negated else value, key
    return values


def load(path: Path) -> dict[str, Any]:
    """A config file's values by SearchConfig field (only the keys it has)."""
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path} is not valid TOML: {first_line(exc)}") from exc
    return parse(doc, path)


def as_flags(values: dict[str, Any]) -> dict[str, Any]:
    """Field values as the `search` parser's dests, to become its defaults (cli_parser.build_parser)."""
    out = {}
    for field, value in values.items():
        if field in _NEGATED_BY:
            out[_NEGATED_BY[field]] = not value
        else:
            out[_FLAG_OF.get(field, field)] = value
    return out


def to_toml(config: dict[str, Any]) -> str:
    """A stored config (SearchConfig fields) as a file `search --config` reads back; unset values as a comment."""
    lines, unset = [], []
    for field, value in config.items():
        key = _FLAG_OF.get(field, field).replace("_", "-")
        if value is None:
            unset.append(key)
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    if unset:
        lines.append(f"# not set: {', '.join(unset)}")
    return "\n".join(lines) + "\n"
