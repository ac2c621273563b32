"""The `autocomp` command line's grammar: every subcommand's flags, with their defaults and help.

Kept apart from cli.py (what each subcommand does) so either can grow; it imports nothing of autocomp's
commands, and cli.py dispatches on `args.command`."""

from __future__ import annotations

import argparse
from typing import Any, Mapping

from autocomp.plan import DEFAULT_FINETUNE_STEPS


def _add_measure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tune-trials", type=int, default=0,
                   help="conv tiles timed per new workload, recorded in the device's tuning database "
                        "(default 0: recorded and default tiles only)")
    p.add_argument("--tracker", help="HOST:PORT of a TVM RPC tracker: measure on a device registered there")
    p.add_argument("--rpc-key", help="device key at the tracker (default: the profile's rpc_key)")
    p.add_argument("--tracker-timeout", type=float, default=10.0,
                   help="seconds the tracker may take to accept a connection (default 10)")
    p.add_argument("--estimate", action="store_true",
                   help="no device: estimate latency from the profile's [estimate] rates (labelled 'estimate')")


def _add_storage(p: argparse.ArgumentParser, study_required: bool) -> None:
    p.add_argument("--study", required=study_required, help="study name (default for search: TASK@DEVICE)")
    p.add_argument("--storage", help="Optuna storage URL or SQLite file path (default: runs/autocomp.db)")


def build_parser(search_defaults: Mapping[str, Any] | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand; `args.command` names the one given (cli.COMMANDS runs it).

    Args:
        search_defaults: argparse defaults for `search` by dest (from a --config file): they replace the
            built-in defaults, and a flag given on the command line still replaces them.
    """
    parser = argparse.ArgumentParser(prog="autocomp", description="Hardware-aware compression search for PyTorch models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("devices", help="list device profiles", description="List the device profiles and where each is measured.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--tracker", help="HOST:PORT of a TVM RPC tracker: also show its devices per key")

    p = sub.add_parser("search", help="search compression plans for a device",
                       description="Search per-layer bit widths and prune ratios; measure each candidate on the device.")
    p.add_argument("--device", default="host", help="device profile name (see 'autocomp devices'); default host")
    p.add_argument("--task", help="built-in task name or package.module:function (default fashion-mnist)")
    p.add_argument("--trials", type=int, default=24, help="trials to run now (default 24)")
    p.add_argument("--max-accuracy-drop", type=float, default=0.01, help="largest allowed accuracy drop vs fp32, as a fraction (default 0.01)")
    p.add_argument("--max-latency-ms", type=float, help="a further constraint: the drift-corrected latency, ms")
    p.add_argument("--max-memory-mb", type=float, help="a further constraint: weights + activation arena, MiB")
    p.add_argument("--jobs", type=int, default=0,
                   help="candidates compiled in parallel (default 0: one per core); local timing waits "
                        "until no compile runs")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    p.add_argument("--no-sensitivity", action="store_true",
                   help="skip the per-layer sensitivity step (space pruning, knapsack plans after the baselines)")
    p.add_argument("--no-screen", action="store_true",
                   help="compile and time every candidate, also one whose simulated accuracy already breaks the "
                        "budget (by default such a trial is pruned and does not count towards --trials)")
    p.add_argument("--sampler", default="tpe", choices=["tpe", "nsga2", "gp", "random"],
                   help="Optuna sampler (default tpe: many categorical choices, few trials; random: the control)")
    p.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--quiet", action="store_true", help="no progress output")
    shown.add_argument("--verbose", action="store_true",
                       help="each trial's stage times, and the third-party warnings otherwise silenced")
    p.add_argument("--finetune-steps", type=int, default=DEFAULT_FINETUNE_STEPS,
                   help=f"distillation steps that recover a pruned candidate's accuracy (default {DEFAULT_FINETUNE_STEPS}; 0: none)")
    _add_measure(p)
    _add_storage(p, study_required=False)
    p.add_argument("--config", metavar="FILE",
                   help="a TOML file of these flags' values (key = flag name); flags given here override it")
    p.set_defaults(**(search_defaults or {}))

    p = sub.add_parser("evaluate", help="compress, compile, measure and evaluate one plan",
                       description="Run one plan through every stage, without a search.")
    p.add_argument("--device", default="host", help="device profile name (default host)")
    p.add_argument("--task", help="built-in task name or package.module:function (default fashion-mnist)")
    p.add_argument("--plan", required=True, help="fp32, w8a8, w4a8, w16 (fp16 weights; fp16 arithmetic where the target has it), w16a16, w8, w4, w2a8, k4a8 and k2a8 (shared weights: 4- or 2-bit codebook indices), all uniform, or a plan JSON file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_measure(p)
    p.add_argument("--finetune-steps", type=int, default=DEFAULT_FINETUNE_STEPS, help="distillation steps after pruning")
    p.add_argument("--compile-only", action="store_true", help="only compile for the device; write the library to --out")
    p.add_argument("--out", help="output directory for --compile-only (must be new or empty)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")

    p = sub.add_parser("sensitivity", help="per-layer accuracy and latency sensitivity of a task",
                       description="Each layer's accuracy drop when only it is quantized or pruned, and its share of "
                                   "the measured kernel time; a search does the same first and stores it.")
    p.add_argument("--device", default="host", help="device profile name (default host)")
    p.add_argument("--task", help="built-in task name or package.module:function (default fashion-mnist)")
    p.add_argument("--finetune-steps", type=int, default=DEFAULT_FINETUNE_STEPS, help="0: pruning without recovery")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("front", help="print a study's feasible Pareto front", description="Print the feasible non-dominated trials of a study.")
    _add_storage(p, study_required=True)
    p.add_argument("--json", action="store_true", help="print a JSON array, one object per front point")
    p.add_argument("--remeasure", action="store_true",
                   help="first re-time the front and the uniform baselines together on this host (compiles them again)")
    p.add_argument("--pick", action="store_true",
                   help="print only the most accurate feasible point within --max-latency-ms / --max-memory-mb")
    p.add_argument("--max-latency-ms", type=float, help="with --pick: the latency limit (re-timed, else drift-corrected)")
    p.add_argument("--max-memory-mb", type=float, help="with --pick: the memory limit (weights + arena), MiB")
    p.add_argument("--config", action="store_true",
                   help="print the config the study was created with (TOML; JSON with --json)")

    p = sub.add_parser("export", help="write one trial's deployable artifacts", description="Rebuild a trial and write its TVM library, ONNX model, torch state and manifest.json.")
    _add_storage(p, study_required=True)
    p.add_argument("--trial", type=int, required=True, help="trial number (see 'autocomp front')")
    p.add_argument("--out", required=True, help="output directory (must be new or empty)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")

    p = sub.add_parser("report", help="write a study's HTML report (and a PNG of its front)",
                       description="One self-contained HTML file: the front, search progress, the chosen point per "
                                   "layer with its measured kernel times, sensitivity, and where the numbers come from.")
    _add_storage(p, study_required=True)
    p.add_argument("--out", required=True, help="the HTML file to write (its directory must exist)")
    p.add_argument("--trial", type=int, help="the point the per-layer part is about (default: the fastest feasible)")
    p.add_argument("--png", help="also write the front as a PNG here")
    p.add_argument("--no-measure", action="store_true",
                   help="only what the study stores: no recompiling of the chosen point to time its kernels")
    p.add_argument("--force", action="store_true", help="replace existing files")

    p = sub.add_parser("verify", help="check an exported directory against its manifest",
                       description="Check every file of an 'autocomp export' directory against the sha256 and size "
                                   "in its manifest.json; exit 1 on any difference.")
    p.add_argument("dir", help="the exported directory")
    return parser
