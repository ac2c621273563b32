"""A study as optuna-dashboard shows it: its objectives by name, its user attributes as JSON.

The dashboard is served here from its own WSGI app on 127.0.0.1 (what `optuna-dashboard URL` runs) and
read through its HTTP API, so this checks what its storage-reading and serializing code makes of a
real autocomp study, not what we hope it makes of it."""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import optuna_dashboard  # in the test extra: a missing install fails here, it is not skipped
import pytest

from autocomp.study.config import CONFIG_ATTR, METRIC_NAMES
from autocomp.study.search import SearchConfig, prepare_search

MAX_ATTR_LENGTH = 1024  # optuna_dashboard/_serializer.py: longer attribute JSON is cut to this


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        """No line per request on stderr: a failing assertion says what went wrong."""


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> str:
    """The storage of a 1-trial digits study made by autocomp."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'autocomp.db'}"
    cfg = SearchConfig(task="digits", trials=1, sensitivity=False, storage=url, max_accuracy_drop=0.05, study="d")
    outcome = prepare_search(cfg).run()
    assert outcome.trials_run == 1 and outcome.failed == 0
    return url


@pytest.fixture(scope="module")
def stored(url):
    """The study as Optuna reads it: what the dashboard should show."""
    import optuna

    return optuna.load_study(study_name="d", storage=url)


@pytest.fixture(scope="module")
def dashboard(url):
    """The base URL of optuna-dashboard's HTTP API, serving that storage on loopback."""
    server = make_server("127.0.0.1", 0, optuna_dashboard.wsgi(url), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def study_detail(base: str) -> dict[str, Any]:
    [summary] = get(f"{base}/api/studies")["study_summaries"]
    assert summary["study_name"] == "d" and summary["directions"] == ["minimize", "minimize", "maximize"]
    return get(f"{base}/api/studies/{summary['study_id']}")


def test_the_dashboard_names_the_objectives(dashboard):
    detail = study_detail(dashboard)
    assert detail["objective_names"] == list(METRIC_NAMES) == ["latency_ms", "memory_bytes", "accuracy"]


def test_user_attributes_come_back_as_json(dashboard, stored):
    """Every attribute but a string is shown as JSON; the dashboard cuts one whose JSON is longer than
    its MAX_ATTR_LENGTH (1,024 characters: a trial's `result`, with its kernels and timings) and then
    shows that prefix. A string (the study's `command`) is shown as itself."""
    detail = study_detail(dashboard)
    [trial] = [t for t in detail["trials"] if t["state"] == "Complete"]
    pairs = ((detail["user_attrs"], stored.user_attrs), (trial["user_attrs"], stored.trials[trial["number"]].user_attrs))
    for shown, attrs in pairs:
        assert {a["key"] for a in shown} == set(attrs)
        for a in shown:
            full = json.dumps(attrs[a["key"]])
            if isinstance(attrs[a["key"]], str):
                assert a["value"] == attrs[a["key"]], a["key"]
            elif len(full) <= MAX_ATTR_LENGTH:
                assert json.loads(a["value"]) == attrs[a["key"]], a["key"]
            else:
                assert a["value"] == full[:MAX_ATTR_LENGTH], a["key"]
    values = {a["key"]: json.loads(a["value"]) for a in trial["user_attrs"] if a["key"] != "result"}
    assert values["plan"]["layers"] and "accuracy_drop" in values["constraints"]
    config = json.loads({a["key"]: a["value"] for a in detail["user_attrs"]}[CONFIG_ATTR])
    assert config["task"] == "digits" and config["trials"] == 1 and config["sensitivity"] is False
