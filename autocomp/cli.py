"""The `autocomp` command: parses, calls the API, prints. One function per subcommand."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

from autocomp import interrupt
from autocomp.cli_parser import build_parser
from autocomp.errors import CandidateError, UserError


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
                        max_memory_mb=args.max_memory_mb, screen=not args.no_screen)


def cmd_search(args: argparse.Namespace) -> int:
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    from autocomp.reports.progress import SearchStatus, trial_line
    from autocomp.study import pareto
    from autocomp.study import search as study_mod
    from autocomp.study.storage import redact

    from autocomp.paths import runs_dir
    from autocomp.quiet import log_other_warnings, logged_since

    cfg = _search_config(args)  # prepare_search validates it
    warnings_log = runs_dir() / "warnings.log"
    log_start = log_other_warnings(warnings_log)
    console = _console()
    progress = Progress(TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.description}"),
                        console=console, disable=args.quiet)

    def on_trial(done: int, total: int, trial) -> None:
        if args.quiet:
            return
        progress.update(bar, completed=done, description=SearchStatus.of(prepared.study).describe())
        progress.console.print(trial_line(trial, pareto.feasible(trial), args.verbose), highlight=False, markup=False)

    with console.status("preparing: device, storage, task, fp32 baseline ...", spinner="dots"):
        prepared = study_mod.prepare_search(cfg)
    with progress:
        bar = progress.add_task("", total=cfg.trials)
        outcome = prepared.run(on_trial)
    screened = f"; {outcome.screened} more screened out by the simulation" if outcome.screened else ""
    print(f"this worker ran {outcome.trials_run} trials in {outcome.elapsed_s:.0f} s (sampler seed {outcome.seed}"
          f"{screened}); study '{outcome.study}' in {redact(outcome.storage)} has {outcome.trials_total} in all, "
          f"{outcome.failed} failed")
    if n := logged_since(warnings_log, log_start):
        print(f"{n} warning{'s' * (n > 1)} from the libraries autocomp uses went to {warnings_log} "
              "(search --verbose prints them)")
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
    estimated = settings.get("measure") == "estimate"
    console.print(table.timing_line(pareto.retimed(study), settings.get("reference"), estimated), highlight=False)
    if not points:
        console.print("no feasible trial yet: run more trials or relax --max-accuracy-drop")


def cmd_front(args: argparse.Namespace) -> int:
    from autocomp.study import search as study_mod

    if args.config and (args.remeasure or args.pick):
        raise UserError("--config prints the study's stored config only; run --remeasure or --pick without it")
    study = study_mod.load_study(args.study, args.storage)
    if args.config:
        return _print_config(study, as_json=args.json)
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


def _print_config(study, as_json: bool) -> int:
    from autocomp.study.config import CONFIG_ATTR
    from autocomp.study.config_file import to_toml

    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        raise UserError(f"study '{study.study_name}' has no stored config: it was created before autocomp stored one "
                        f"(its task, device and limits are in the title of 'autocomp front --study {study.study_name}')")
    print(json.dumps(stored, indent=2) if as_json else to_toml(stored).rstrip("\n"))
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
    print(f"  accuracy of model.onnx under onnxruntime: {checks['onnx_accuracy']:.4f} "
          f"(its unfused reference kernels: {checks['onnx_accuracy_unfused']:.4f})")
    if checks["onnx_accuracy_unfused"] - checks["onnx_accuracy"] > 0.005:
        print("  onnxruntime's fused int8 kernels lose accuracy on this CPU (no VNNI: their int16 pair sums "
              "saturate); the file is exact, a CPU with VNNI or an ARM board runs it as the reference does")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from autocomp.reports import html
    from autocomp.reports.report_data import gather
    from autocomp.study import search as study_mod

    study = study_mod.load_study(args.study, args.storage)
    with _console().status("gathering the report (compiling the chosen point to time its kernels) ...", spinner="dots"):
        data = gather(study, args.trial, measure=not args.no_measure)
    html.write(data, Path(args.out), Path(args.png) if args.png else None, force=args.force)
    print(f"wrote {args.out}" + (f" and {args.png}" if args.png else "") +
          f": {len(data.points)} trials, {len(data.front)} on the front, trial {data.chosen.trial} per layer")
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
    from autocomp.candidate import evaluate_plan, prepare
    from autocomp.plan_spec import resolve_plan
    from autocomp.measure.flags import check_candidate_flags
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
    from autocomp.measure.base import is_estimate

    data = result.to_dict() | {"plan": plan.to_dict(), "task": ctx.task.name, "estimated": is_estimate(result.measured_on)}
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
    space = SearchSpace.for_context(ctx)
    sens = sensitivity.measure(ctx, space)
    if args.json:
        print(json.dumps(sens.to_dict(), indent=2))
        return 0
    from autocomp.reports.table import sensitivity_lines

    print("\n".join(sensitivity_lines(sens, ctx.task.name, profile.name)))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "devices": cmd_devices, "search": cmd_search, "evaluate": cmd_evaluate, "sensitivity": cmd_sensitivity,
    "front": cmd_front, "export": cmd_export, "report": cmd_report, "verify": cmd_verify,
}


def _with_config_file(argv: list[str] | None, path: str) -> argparse.Namespace:
    """`search --config FILE`: parse again with the file's values as the defaults, so a flag given
    on the command line overrides the file and the file overrides the built-in defaults."""
    from autocomp.study.config_file import as_flags, load

    return build_parser(search_defaults=as_flags(load(Path(path)))).parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from autocomp.quiet import show_all, silence_known_noise

    args = build_parser().parse_args(argv)
    if getattr(args, "verbose", False):
        show_all()
    silence_known_noise()
    interrupt.install()
    try:
        if args.command == "search" and args.config:
            args = _with_config_file(argv, args.config)
        return COMMANDS[args.command](args)
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
