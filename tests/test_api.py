"""`import autocomp`: the README's Python example runs as written, and the API's errors are one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import autocomp

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    [code] = re.findall(r"<!-- api-example -->\n```python\n(.*?)```", text, flags=re.S)
    return code


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(readme_example(), "README.md:api-example", "exec"), scope)
    study, best, manifest, result = scope["study"], scope["best"], scope["manifest"], scope["result"]
    assert isinstance(study, autocomp.Study) and study.outcome.trials_run == 3
    points = study.front()
    assert points and all(isinstance(p, autocomp.FrontPoint) for p in points)
    assert best.trial in [p.trial for p in points] and best.memory_bytes <= 1024 * 1024
    assert best.accuracy == max(p.accuracy for p in points if p.memory_bytes <= 1024 * 1024)
    assert (tmp_path / "best-export/manifest.json").is_file() and manifest["trial"] == best.trial
    assert result.measured_on == "local" and result.latency_ms > 0 and 0 < result.accuracy_compiled <= 1
    assert scope["again"].config()["study"] == "api-demo"
    assert "ms" in capsys.readouterr().out


def test_unknown_setting_is_one_line_listing_the_valid_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(autocomp.UserError) as err:
        autocomp.search(task="digits", max_acuracy_drop=0.05)
    assert "unknown SearchConfig setting 'max_acuracy_drop'" in str(err.value) and "max_accuracy_drop" in str(err.value)
    assert "\n" not in str(err.value) and not (tmp_path / "runs").exists()
    with pytest.raises(autocomp.UserError, match="unknown MeasureOptions setting 'trackr'"):
        autocomp.evaluate("w8a8", task="digits", trackr="x:1")


def test_open_study_says_what_is_missing(tmp_path):
    with pytest.raises(autocomp.UserError, match="empty.db does not exist; run 'autocomp search' first"):
        autocomp.open_study("nope", storage=str(tmp_path / "empty.db"))
