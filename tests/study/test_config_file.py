"""`search --config FILE`: keys spelled as the flags, one-line errors that name the key and the file."""

from __future__ import annotations

import dataclasses

import pytest

from autocomp.cli_parser import build_parser
from autocomp.errors import UserError
from autocomp.study import config_file
from autocomp.study.config import SearchConfig


def write(tmp_path, text: str):
    path = tmp_path / "search.toml"
    path.write_text(text)
    return path


def test_flat_keys_with_dashes_or_underscores_map_onto_the_fields(tmp_path):
    path = write(tmp_path, 'task = "digits"\ntrials = 3\nmax-accuracy-drop = 0.05\nmax_latency_ms = 2\n'
                           'timeout = 60\ntracker-timeout = 5\nno-sensitivity = true\n')
    values = config_file.load(path)
    assert values == {"task": "digits", "trials": 3, "max_accuracy_drop": 0.05, "max_latency_ms": 2.0,
                      "timeout_s": 60.0, "tracker_timeout_s": 5.0, "sensitivity": False}
    assert isinstance(values["max_latency_ms"], float)  # an integer where a number goes is that number
    SearchConfig(**values)  # field names, every one


def test_sensitivity_false_is_no_sensitivity_and_tables_only_group(tmp_path):
    path = write(tmp_path, 'sensitivity = false\n[budget]\ntrials = 2\njobs = 1\n[constraints]\nmax-memory-mb = 8\n')
    assert config_file.load(path) == {"sensitivity": False, "trials": 2, "jobs": 1, "max_memory_mb": 8.0}


def test_unknown_key_is_one_line_naming_key_file_and_valid_keys(tmp_path):
    path = write(tmp_path, 'task = "digits"\nmax-acuracy-drop = 0.05\n')
    with pytest.raises(UserError) as err:
        config_file.load(path)
    message = str(err.value)
    assert "\n" not in message and "'max-acuracy-drop'" in message and str(path) in message
    assert "valid keys:" in message and "max-accuracy-drop" in message and "no-sensitivity" in message
    with pytest.raises(UserError, match=r"unknown key 'serach'"):  # a table that is not a group
        config_file.load(write(tmp_path, "[serach]\ntrials = 2\n"))
    with pytest.raises(UserError, match=r"unknown key 'quiet' in \[search\]"):  # output, not a setting
        config_file.load(write(tmp_path, "[search]\nquiet = true\n"))


@pytest.mark.parametrize("text, message", [
    ('trials = "many"', "'trials' must be an integer, got \"many\""),
    ("trials = 2.5", "'trials' must be an integer, got 2.5"),
    ("trials = true", "'trials' must be an integer, got true"),
    ("max-accuracy-drop = \"1%\"", "'max-accuracy-drop' must be a number"),
    ("estimate = 1", "'estimate' must be true or false, got 1"),
    ("device = [\"host\"]", "'device' must be a string, got list"),
    ("no-sensitivity = \"yes\"", "'no-sensitivity' must be true or false"),
])
def test_wrong_type_names_key_and_expected_type(tmp_path, text, message):
    with pytest.raises(UserError) as err:
        config_file.load(write(tmp_path, text + "\n"))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_one_field_set_twice_is_refused(tmp_path):
    with pytest.raises(UserError, match="sets sensitivity again"):
        config_file.load(write(tmp_path, "sensitivity = true\nno-sensitivity = true\n"))
    with pytest.raises(UserError, match="sets trials again"):
        config_file.load(write(tmp_path, "trials = 2\n[budget]\ntrials = 3\n"))


def test_missing_or_broken_file_names_the_file_and_where(tmp_path):
    with pytest.raises(UserError, match="config file .*nope.toml does not exist"):
        config_file.load(tmp_path / "nope.toml")
    path = write(tmp_path, 'task = "digits"\ntrials 3\n')
    with pytest.raises(UserError) as err:
        config_file.load(path)
    message = str(err.value)
    assert str(path) in message and "is not valid TOML" in message and "line 2" in message and "\n" not in message


def test_flags_override_the_file_which_overrides_the_defaults(tmp_path):
    values = config_file.load(write(tmp_path, "trials = 1\nmax-accuracy-drop = 0.05\ntimeout = 30\nno-sensitivity = true\n"))
    parser = build_parser(search_defaults=config_file.as_flags(values))
    args = parser.parse_args(["search", "--trials", "2"])
    assert (args.trials, args.max_accuracy_drop, args.timeout, args.no_sensitivity) == (2, 0.05, 30.0, True)
    assert args.seed == 0 and args.device == "host"  # not in the file: the built-in defaults
    assert build_parser().parse_args(["search"]).trials == 24


def test_a_stored_config_prints_as_a_file_that_reads_back(tmp_path):
    cfg = SearchConfig(task="digits", trials=2, max_accuracy_drop=0.05, timeout_s=30.0, sensitivity=False,
                       storage="sqlite:///x.db", study="s")
    text = config_file.to_toml(dataclasses.asdict(cfg))
    assert 'task = "digits"' in text and "trials = 2" in text and "timeout = 30.0" in text
    assert "# not set:" in text and "max-latency-ms" in text.splitlines()[-1]
    assert SearchConfig(**config_file.load(write(tmp_path, text))) == cfg
