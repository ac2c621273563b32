"""The `autocomp` command: parses, calls the API, prints. One function per subcommand."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

from autocomp import interrupt
from autocomp.errors import CandidateError, UserError
from autocomp.plan import DEFAULT_FINETUNE_STEPS


def _console():
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # logs and pipes: wide enough for the front table
        console = Console(width=160)
    return console


def cmd_devices(args: argparse.Namespace) -> int:
    from rich.table import Table

    from autocomp.device import profiles

    rows, broken = profiles.load_all()
    for line in broken:
        print(f"autocomp: skipped {line}", file=sys.stderr)
    farm: dict[str, dict[str, int]] = {}
    if args.tracker:
        from autocomp.measure.rpc import tracker_summary

        farm = tracker_summary(args.tracker)
    empty = {"total": 0, "free": 0, "pending": 0, "busy": 0}
    if args.json:
        out = [{"name": p.name, "kind": p.kind, "measure": p.measure, "rpc_key": p.rpc_key,
                "target": p.resolved_target(), "host": p.host, "winograd": p.winograd, "description": p.description,
                "source": p.source}
               | ({"tracker": farm.get(p.rpc_key, empty)} if args.tracker and p.rpc_key else {})
               for p in rows]
        print(json.dumps(out, indent=2))
        return 0
    table = Table(title="device profiles", title_justify="left")
    for col in ("name", "kind", "target", "measured", "description"):
        table.add_column(col)
    if args.tracker:
        table.add_column(f"at {args.tracker}: total / free / busy / queued")
    for p in rows:
        where = "locally, on this machine" if p.measure == "local" else f"RPC tracker, key '{p.rpc_key}'"
        cells = [p.name, p.kind, json.dumps(p.resolved_target()), where, p.description]
        if args.tracker:
            f = farm.get(p.rpc_key, empty) if p.rpc_key else None
            cells.append(f"{f['total']} / {f['free']} / {f['busy']} / {f['pending']}" if f else "-")
        table.add_row(*cells)
    _console().print(table)
    other = sorted(set(farm) - {p.rpc_key for p in rows})
    if other:
        print("keys at the tracker without a profile: " + ", ".join(f"{k} ({farm[k]['total']})" for k in other))
    host = next((p for p in rows if p.is_host()), None)
    if host is not None:
        from autocomp.device import hostcpu

        print(f"host CPU: {hostcpu.detect().describe()}")
    return 0


def _search_config(args: argparse.Namespace):
    from autocomp.study.search import SearchConfig

    return SearchConfig(device=args.device, task=args.task, trials=args.trials,
                        max_accuracy_drop=args.max_accuracy_drop, study=args.study, storage=args.storage,
                        seed=args.seed, timeout_s=args.timeout, tracker=args.tracker, rpc_key=args.rpc_key,
                        estimate=args.estimate, finetune_steps=args.finetune_steps, tune_trials=args.tune_trials,
                        jobs=args.jobs, tracker_timeout_s=args.tracker_timeout, sampler=args.sampler,
                        sensitivity=not args.no_sensitivity, max_latency_ms=args.max_latency_ms,
                        max_memory_mb=args.max_memory_mb)


def cmd_search(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from autocomp.reports import table
    from autocomp.study import pareto
    from autocomp.study import search as study_mod
    from autocomp.study.storage import redact

    cfg = _search_config(args)  # prepare_search validates it
    console = _console()
    progress = Progress(TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("{task.description}"), console=console, disable=args.quiet)

    def on_trial(done: int, total: int, trial) -> None:
        r = trial.user_attrs.get("result")
        if r:
            ok = "feasible" if pareto.feasible(trial) else "infeasible"
            if "reused_from_trial" in trial.user_attrs:
                ok += f", same plan as trial {trial.user_attrs['reused_from_trial']}"
            text = (f"trial {trial.number}: {r['plan_label']} {r['latency_ms']:.2f} ms "
                    f"{table.kib(r['memory_bytes'])} KiB acc {r['accuracy_compiled']:.4f} ({ok})")
        else:
            text = f"trial {trial.number}: failed: {trial.user_attrs.get('error', trial.state.name)}"
        progress.update(bar, completed=done, description=text)
        if not args.quiet:
            progress.console.print(text, highlight=False)

    with console.status("preparing: device, storage, task, fp32 baseline ...", spinner="dots"):
        prepared = study_mod.prepare_search(cfg)
    with progress:
        bar = progress.add_task("", total=cfg.trials)
        outcome = prepared.run(on_trial)
    print(f"this worker ran {outcome.trials_run} trials in {outcome.elapsed_s:.0f} s (sampler seed {outcome.seed}); "
          f"study '{outcome.study}' in {redact(outcome.storage)} has {outcome.trials_total} in all, "
          f"{outcome.failed} failed")
    if outcome.trials_run and len(outcome.errors) == outcome.trials_run:
        print(f"autocomp: every trial of this run failed; the first: {outcome.errors[0]}", file=sys.stderr)
        return 1
    study = study_mod.load_study(outcome.study, outcome.storage)
    from autocomp.study.remeasure import retime_if_local

    with console.status("re-timing the front and the baselines together ...", spinner="dots"):
        retime_if_local(study, prepared.ctx)  # remote / estimated trials were each timed beside the reference
    _print_front(study, as_json=False)
    return 0


def _print_front(study, as_json: bool) -> None:
    from autocomp.reports import table
    from autocomp.study import pareto

    points, base = pareto.front(study), pareto.baseline(study)
    if as_json:
        print(json.dumps([p.to_json(base) for p in points], indent=2))
        return
    console = _console()
    settings = study.user_attrs.get("autocomp", {})
    title = (f"feasible Pareto front of '{study.study_name}' ({settings.get('task')} on {settings.get('device')}, "
             f"max accuracy drop {settings.get('max_accuracy_drop')})")
    console.print(table.front_table(points, base, title))
    console.print(table.baseline_line(base), highlight=False)
    console.print(table.timing_line(pareto.retimed(study), settings.get("reference")), highlight=False)
    if not points:
        console.print("no feasible trial yet: run more trials or relax --max-accuracy-drop")


def cmd_front(args: argparse.Namespace) -> int:
    from autocomp.study import search as study_mod

    study = study_mod.load_study(args.study, args.storage)
    if args.remeasure:
        from autocomp.measure.base import MeasureOptions
        from autocomp.study.remeasure import context_of, retime

        with _console().status("re-timing the front and the baselines together ...", spinner="dots"):
            retime(study, context_of(study, MeasureOptions()))
    if args.pick:
        return _pick(study, args)
    if args.max_latency_ms is not None or args.max_memory_mb is not None:
        raise UserError("--max-latency-ms and --max-memory-mb go with --pick (the limits of the point to pick)")
    _print_front(study, as_json=args.json)
    return 0


def _pick(study, args: argparse.Namespace) -> int:
    from autocomp.study import pareto

    points, base = pareto.front(study), pareto.baseline(study)
    chosen = pareto.pick(points, args.max_latency_ms, args.max_memory_mb)
    if chosen is None:
        limits = ", ".join(f"{k} {v:g}" for k, v in (("latency ms", args.max_latency_ms),
                                                        ("memory MiB", args.max_memory_mb)) if v is not None)
        raise UserError(f"no feasible point of study '{study.study_name}' is within {limits or 'the limits'}; "
                        f"the front has {len(points)} points (see 'autocomp front --study {study.study_name}')")
    if args.json:
        print(json.dumps(chosen.to_json(base), indent=2))
        return 0
    from autocomp.reports.table import pick_line

    print(pick_line(chosen, study.study_name))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from autocomp.artifacts.export import export_trial

    manifest = export_trial(args.study, args.storage, args.trial, Path(args.out), force=args.force)
    checks = manifest["artifact"]["checks"]
    print(f"exported trial {manifest['trial']} ({manifest['plan_label']}) to {args.out}:")
    for name, f in manifest["files"].items():
        print(f"  {name:16s} {f['bytes']:>10,d} bytes  sha256 {f['sha256'][:16]}")
    print(f"  measured: {manifest['measured']['latency_ms']:.3f} ms on {manifest['measured_on']}, "
          f"accuracy {manifest['measured']['accuracy_compiled']:.4f}")
    if "artifact_accuracy" in checks:
        print(f"  accuracy of the written TVM library: {checks['artifact_accuracy']:.4f}")
    print(f"  accuracy of model.onnx under onnxruntime: {checks['onnx_accuracy']:.4f}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from autocomp.artifacts.verify import verify

    checked, problems = verify(Path(args.dir))
    for line in problems:
        print(f"{args.dir}: {line}")
    if problems:
        print(f"autocomp: {args.dir} does not match its manifest ({len(problems)} problems)", file=sys.stderr)
        return 1
    print(f"{args.dir}: all {checked} files match manifest.json")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from autocomp.candidate import check_candidate_flags, evaluate_plan, prepare, resolve_plan
    from autocomp.device.profiles import load_profile
    from autocomp.measure.runners import runner_for
    from autocomp.tasks import load_task

    profile = load_profile(args.device)
    profile.tvm_target()  # a target TVM rejects fails now, before a model is trained
    if args.compile_only:
        if not args.out:
            raise UserError("--compile-only needs --out DIR for the compiled library")
        from autocomp.artifacts.export import compile_only

        ctx = prepare(load_task(args.task), profile, finetune_steps=args.finetune_steps)  # no timing: no tuning
        manifest = compile_only(ctx, resolve_plan(args.plan, ctx), Path(args.out), force=args.force)
        if args.json:
            print(json.dumps(manifest, indent=2))
        else:
            art = manifest["artifact"]
            print(f"compiled {manifest['plan_label']} for {profile.name} (modules: {', '.join(art['modules'])}) "
                  f"into {args.out}: {art['library']}, {art['params']}, manifest.json; nothing was measured")
        return 0
    if args.out:
        raise UserError("--out is only for --compile-only; use 'autocomp export' for a searched trial")
    from autocomp.measure.base import MeasureOptions

    check_candidate_flags(args.tracker, args.estimate, args.tune_trials, args.finetune_steps, args.tracker_timeout)
    options = MeasureOptions(tracker=args.tracker, rpc_key=args.rpc_key, estimate=args.estimate,
                             tracker_timeout_s=args.tracker_timeout)
    runner_for(profile, options)
    ctx = prepare(load_task(args.task), profile, options, args.finetune_steps, args.tune_trials)
    plan = resolve_plan(args.plan, ctx)
    result, _model, _built = evaluate_plan(ctx, plan)
    data = result.to_dict() | {"plan": plan.to_dict(), "task": ctx.task.name, "estimated": result.measured_on == "estimate"}
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    from autocomp.reports import table

    print("\n".join(table.evaluate_lines(result, plan.summary(), profile.name, ctx.task.name)))
    return 0


def cmd_sensitivity(args: argparse.Namespace) -> int:
    from autocomp.candidate import prepare
    from autocomp.device.profiles import load_profile
    from autocomp.study import sensitivity
    from autocomp.study.space import SearchSpace
    from autocomp.tasks import load_task

    profile = load_profile(args.device)
    profile.tvm_target()
    ctx = prepare(load_task(args.task), profile, None, args.finetune_steps)  # latency shares: local devices only
    space = SearchSpace.for_profile(tuple(ctx.layers), tuple(ctx.prunable), profile)
    sens = sensitivity.measure(ctx, space)
    if args.json:
        print(json.dumps(sens.to_dict(), indent=2))
        return 0
    from autocomp.reports.table import sensitivity_lines

    print("\n".join(sensitivity_lines(sens, ctx.task.name, profile.name)))
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autocomp", description="Hardware-aware compression search for PyTorch models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("devices", help="list device profiles", description="List the device profiles and where each is measured.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--tracker", help="HOST:PORT of a TVM RPC tracker: also show its devices per key")
    p.set_defaults(func=cmd_devices)

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
    p.add_argument("--sampler", default="tpe", choices=["tpe", "nsga2", "gp", "random"],
                   help="Optuna sampler (default tpe: many categorical choices, few trials; random: the control)")
    p.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--finetune-steps", type=int, default=DEFAULT_FINETUNE_STEPS,
                   help=f"distillation steps that recover a pruned candidate's accuracy (default {DEFAULT_FINETUNE_STEPS}; 0: none)")
    _add_measure(p)
    _add_storage(p, study_required=False)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("evaluate", help="compress, compile, measure and evaluate one plan",
                       description="Run one plan through every stage, without a search.")
    p.add_argument("--device", default="host", help="device profile name (default host)")
    p.add_argument("--task", help="built-in task name or package.module:function (default fashion-mnist)")
    p.add_argument("--plan", required=True, help="fp32, w8a8, w4a8, w16 (fp16 weights; fp16 arithmetic where the target has it), w16a16, w8, w4 (uniform), or a plan JSON file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_measure(p)
    p.add_argument("--finetune-steps", type=int, default=DEFAULT_FINETUNE_STEPS, help="distillation steps after pruning")
    p.add_argument("--compile-only", action="store_true", help="only compile for the device; write the library to --out")
    p.add_argument("--out", help="output directory for --compile-only (must be new or empty)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sensitivity", help="per-layer accuracy and latency sensitivity of a task",
                       description="Each layer's accuracy drop when only it is quantized or pruned, and its share of "
                                   "the measured kernel time; a search does the same first and stores it.")
    p.add_argument("--device", default="host", help="device profile name (default host)")
    p.add_argument("--task", help="built-in task name or package.module:function (default fashion-mnist)")
    p.add_argument("--finetune-steps", type=int, default=DEFAULT_FINETUNE_STEPS, help="0: pruning without recovery")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_sensitivity)

    p = sub.add_parser("front", help="print a study's feasible Pareto front", description="Print the feasible non-dominated trials of a study.")
    _add_storage(p, study_required=True)
    p.add_argument("--json", action="store_true", help="print a JSON array, one object per front point")
    p.add_argument("--remeasure", action="store_true",
                   help="first re-time the front and the uniform baselines together on this host (compiles them again)")
    p.add_argument("--pick", action="store_true",
                   help="print only the most accurate feasible point within --max-latency-ms / --max-memory-mb")
    p.add_argument("--max-latency-ms", type=float, help="with --pick: the latency limit (re-timed, else drift-corrected)")
    p.add_argument("--max-memory-mb", type=float, help="with --pick: the memory limit (weights + arena), MiB")
    p.set_defaults(func=cmd_front)

    p = sub.add_parser("export", help="write one trial's deployable artifacts", description="Rebuild a trial and write its TVM library, ONNX model, torch state and manifest.json.")
    _add_storage(p, study_required=True)
    p.add_argument("--trial", type=int, required=True, help="trial number (see 'autocomp front')")
    p.add_argument("--out", required=True, help="output directory (must be new or empty)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("verify", help="check an exported directory against its manifest",
                       description="Check every file of an 'autocomp export' directory against the sha256 and size "
                                   "in its manifest.json; exit 1 on any difference.")
    p.add_argument("dir", help="the exported directory")
    p.set_defaults(func=cmd_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings

    # torch.export's pytree warns about its own internals on every export; nothing a user can act on
    warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    interrupt.install()
    try:
        return func(args)
    except UserError as exc:
        print(f"autocomp: error: {exc}", file=sys.stderr)
        return 2
    except CandidateError as exc:
        print(f"autocomp: candidate failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("autocomp: interrupted; completed trials are saved, rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
