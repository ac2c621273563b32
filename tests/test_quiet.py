"""Warnings during a search: known noise dropped, any other warning logged to a file (from the workers
too), none printed; --verbose (SHOW_ENV) prints them all."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import multiprocessing as mp
    import sys
    import warnings
    from pathlib import Path

    from autocomp.quiet import log_other_warnings, logged_since, silence_known_noise


    def worker() -> None:  # what a spawned compile worker does first
        silence_known_noise()
        warnings.warn("a warning in a worker", RuntimeWarning)


    if __name__ == "__main__":
        silence_known_noise()
        log = Path(sys.argv[1])
        start = log_other_warnings(log)
        warnings.warn("a library's own warning", UserWarning)
        warnings.warn("Unwrapped parameters detected: ['pos']", UserWarning)
        p = mp.get_context("spawn").Process(target=worker)
        p.start()
        p.join()
        print(logged_since(log, start))
""")


def _run(tmp_path, **env):
    script = tmp_path / "search_like.py"
    script.write_text(SCRIPT)
    log = tmp_path / "runs" / "warnings.log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AUTOCOMP_")} | env
    r = subprocess.run([sys.executable, str(script), str(log)], capture_output=True, text=True, env=environ,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    return r, log


def test_other_warnings_go_to_the_log_from_every_process_and_none_is_printed(tmp_path):
    r, log = _run(tmp_path)
    assert r.stdout.strip() == "2" and "warning" not in r.stderr.lower(), r.stderr
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    assert any("UserWarning: a library's own warning" in line for line in lines)
    assert any("RuntimeWarning: a warning in a worker" in line for line in lines)
    assert "Unwrapped" not in log.read_text()  # known noise is dropped, not logged


def test_verbose_prints_every_warning_and_logs_none(tmp_path):
    r, log = _run(tmp_path, AUTOCOMP_SHOW_WARNINGS="1")
    assert r.stdout.strip() == "0" and not log.exists()
    for text in ("a library's own warning", "Unwrapped parameters detected", "a warning in a worker"):
        assert text in r.stderr
