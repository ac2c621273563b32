"""`autocomp report`: the HTML opens offline in headless Chromium and its plots render; the PNG is a PNG;
bad output paths are one line and write nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

import autocomp


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 3-trial digits study with its sensitivity step (the report shows it)."""
    where = tmp_path_factory.mktemp("report")
    db = str(where / "r.db")
    return autocomp.search(task="digits", device="host", trials=3, max_accuracy_drop=0.05, storage=db, study="r",
                           retime=False)


def report(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autocomp", "report", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_report_renders_in_headless_chromium(study, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "Chromium is missing: `make chromium` installs it (Debian's chromium package)"
    r = report("--study", "r", "--storage", study.storage, "--out", "r.html", "--png", "front.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "r.html").read_text()
    assert not re.search(r"<script[^>]+src=", text)  # plotly's JS inlined: it opens offline
    assert "Per-layer sensitivity" in text and "features.1.0" in text and "measured now on this host" in text
    assert (tmp_path / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                          "--virtual-time-budget=10000", "--dump-dom", (tmp_path / "r.html").as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # plotly draws each figure as <svg class="main-svg"> once its script has run: front, progress, kernels
    for name in ("front", "progress", "kernels"):
        plot = re.search(rf'<div id="plot-{name}".*?</div>\s*</div>', dom.stdout, flags=re.S)
        assert plot and 'class="main-svg"' in plot.group(0), f"plot {name} did not render"
    assert len(re.findall(r'class="scatterlayer', dom.stdout)) >= 2  # the traces themselves
    for build in ("fp32", "int8"):  # onnxruntime's own builds, drawn as marks on the front
        assert re.search(rf'class="annotation-text"[^>]*>onnxruntime {build}<', dom.stdout), build
    assert "measured now on this host" in text.split("Orange dashed lines", 1)[1].split("</p>", 1)[0]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console


def test_report_from_the_api_without_measuring(study, tmp_path):
    out = study.report(tmp_path / "a.html", measure=False)
    text = out.read_text()
    assert "not measured (autocomp report --no-measure)" in text and "plot-kernels" not in text
    assert "onnxruntime fp32" not in text  # nothing timed, so no onnxruntime mark
    assert "command" in text and "test" in text  # how the creator was started (here: pytest)


def test_bad_output_paths_are_one_line_and_write_nothing(study, tmp_path):
    r = report("--study", "r", "--storage", study.storage, "--out", "nowhere/r.html", "--no-measure", cwd=tmp_path)
    assert r.returncode == 2 and "the directory of nowhere/r.html does not exist" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "keep.html").write_text("mine")
    r = report("--study", "r", "--storage", study.storage, "--out", "keep.html", "--no-measure", cwd=tmp_path)
    assert r.returncode == 2 and "already exists; pass --force" in r.stderr
    assert (tmp_path / "keep.html").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.html"]  # no temporary leftovers
