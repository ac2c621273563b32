"""The kernel driver: every PrimFunc of a legalized, fused module gets the first schedule rule that
takes it; a function no rule takes keeps TVM's default schedule. Adding a template is adding a rule.

A rule answers two questions: does this PrimFunc match (``match``: None when not, else whatever the
rule wants to keep from matching), and how is it scheduled (``schedule``: a :class:`Scheduled`, or
None when the template turns it down after all, e.g. a dot product on the wrong data type). The
order is the order of preference:

1. Winograd kernels (made by passes/winograd.py) get their own schedule;
2. convs the target's int8 dot product can run (VNNI, SDOT, vpmaddwd: dot.py);
3. dense convs, grouped ones included (a tile's channels within one group), with a tile from the
   tuning database when there is one (dense.py, tuning.py);
4. depthwise convs (depthwise.py);
5. other conv2d kernels (grouped with fewer than 4 input channels per group; grouped int8 has no
   dot-product variant and takes the dense template) are left to TVM's default, and the report says why;
6. matmuls, row-wise normalisations (softmax, LayerNorm), then elementwise chains and other
   reductions (generic.py).

A conv rule that raises leaves the kernel on TVM's default schedule, with the error in the report:
a failed schedule never takes the search down. The generic rules are tried on any kernel, so one
that raises only means "not this template".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import tvm
from tvm import s_tir, tirx

from autocomp.build.kernels import winograd
from autocomp.build.kernels.conv import ConvInfo, find_conv, find_depthwise
from autocomp.build.kernels.dense import pick_tile, schedule_conv
from autocomp.build.kernels.depthwise import schedule_depthwise
from autocomp.build.kernels.dot import DotKind, dot_kind, schedule_conv_vnni
from autocomp.build.kernels.generic import schedule_elementwise, schedule_matmul, schedule_rows
from autocomp.build.kernels.tuning import tune, workload_key
from autocomp.build.passes.prepack import Packing, packable_weights, weight_param_index


@dataclass(frozen=True)
class Scheduled:
    """What a rule made of one kernel: the new function (None: TVM's default, for the reason in `how`),
    how it was scheduled (the build report's words) and, when the kernel now reads a weight parameter
    in its packed layout, how passes/prepack.py must pack that parameter."""

    func: tirx.PrimFunc | None
    how: str
    packing: Packing | None = None


@dataclass
class Kernel:
    """One PrimFunc of the module and what the rules need to know about it."""

    name: str
    func: tirx.PrimFunc
    target: tvm.target.Target
    dot: DotKind | None  # the target's int8 dot product (a feature query: asked once per module)
    packable: set[int]  # parameters of the function main feeds a once-used weight: packable at build time
    db: Any = None  # tuning.TuningDB
    tune_trials: int = 0

    @cached_property
    def conv(self) -> ConvInfo | None:
        """The dense conv block, found once for the rules that ask."""
        return find_conv(s_tir.Schedule(self.func))

    def prepacked_weight(self) -> tuple[int, bool]:
        """(index of the conv's weight parameter, whether main lets it be packed at build time)."""
        info = self.conv
        index = weight_param_index(self.func, info) if info is not None else -1
        return index, index in self.packable


@dataclass(frozen=True)
class Rule:
    """``match(kernel)`` -> anything but None when the rule applies; ``schedule(kernel, matched)``."""

    name: str
    match: Callable[[Kernel], Any]
    schedule: Callable[[Kernel, Any], Scheduled | None]
    errors_fall_through: bool = False  # an exception means "try the next rule" (else: keep the default)


def _winograd(k: Kernel, how: str) -> Scheduled:
    return Scheduled(winograd.schedule(k.func, k.target), how)


def _dot(k: Kernel, info: ConvInfo) -> Scheduled | None:
    index, pre = k.prepacked_weight()
    for kind in k.dot.chain():  # e.g. the A72's 16-channel form, else its 4-channel one
        new = schedule_conv_vnni(k.func, k.target, prepacked_weight=pre, kind=kind)  # one fixed tile
        if new is not None:
            packing = Packing(index, "dot", kind.lanes, kind.group, info.nhwc) if pre else None
            return Scheduled(new, kind.label, packing)
    return None


def _dense(k: Kernel, info: ConvInfo) -> Scheduled | None:
    tile, how = None, "default tile"
    if k.db is not None:
        key = workload_key(k.func, k.target)
        record = k.db.lookup(key)
        if record is None and k.tune_trials > 0:
            best, record = tune(k.func, k.target, k.tune_trials)
            if best is not None:
                k.db.store(key, record)
            how = f"tuned now ({record['tried']} tiles)"
        elif record is not None:
            how = "tile from the tuning database"
        if record is not None and record.get("tile"):
            tile = tuple(record["tile"])
    index, pre = k.prepacked_weight()
    new = schedule_conv(k.func, k.target, tile, prepacked_weight=pre)
    if new is None:
        return None
    packing = None
    if pre:
        packing = Packing(index, "dense", tile[0] if tile else pick_tile(info, k.target)[0], ohwi=info.nhwc)
    return Scheduled(new, how, packing)


def _depthwise(k: Kernel, _info: ConvInfo) -> Scheduled | None:
    new = schedule_depthwise(k.func, k.target)
    return Scheduled(new, "depthwise template") if new is not None else None


def _template(template: Callable[[tirx.PrimFunc, Any], tirx.PrimFunc | None], how: str):  # type: ignore[no-untyped-def]
    def schedule(k: Kernel, _matched: Any) -> Scheduled | None:
        new = template(k.func, k.target)
        return Scheduled(new, how) if new is not None else None

    return schedule


RULES: tuple[Rule, ...] = (
    Rule("winograd", lambda k: winograd.describe(k.func), _winograd),
    Rule("dot product", lambda k: k.conv if k.dot and k.conv is not None and not k.conv.group_out else None, _dot),
    Rule("dense conv", lambda k: k.conv, _dense),
    Rule("depthwise conv", lambda k: find_depthwise(s_tir.Schedule(k.func)), _depthwise),
    Rule("other conv2d", lambda k: "conv2d" in k.name or None,
         lambda k, _: Scheduled(None, "default schedule (grouped conv2d: no template)")),
    Rule("matmul", lambda k: True, _template(schedule_matmul, "matmul template"), errors_fall_through=True),
    Rule("rows", lambda k: True, _template(schedule_rows, "row template"), errors_fall_through=True),
    Rule("elementwise", lambda k: True, _template(schedule_elementwise, "elementwise template"),
         errors_fall_through=True),
)


def schedule_kernel(kernel: Kernel, rules: tuple[Rule, ...] = RULES) -> Scheduled | None:
    """The first rule's schedule of one kernel, or None when no rule takes it."""
    for rule in rules:
        try:
            matched = rule.match(kernel)
            result = None if matched is None else rule.schedule(kernel, matched)
        except Exception as exc:  # noqa: BLE001 - a failed schedule keeps the default, never the search down
            if rule.errors_fall_through:
                continue
            return Scheduled(None, f"default schedule ({type(exc).__name__}: {str(exc).splitlines()[-1][:200]})")
        if result is not None:
            return result
    return None


def schedule_and_pack(mod: tvm.IRModule, target: Any, db: Any = None, tune_trials: int = 0,
                      prepack: bool = True) -> tuple[tvm.IRModule, dict[str, str], dict[str, Packing]]:
    """Every PrimFunc of ``mod`` through the rules.

    With a tuning database (``tuning.TuningDB``), a dense conv's recorded tile is used; a new workload
    is tuned first when ``tune_trials`` > 0, else it gets the default tile. Returns the new module
    (``mod`` is untouched: IRModule item assignment mutates in place), the report (per kernel a rule
    took: how it was scheduled, or why it kept the default) and, with ``prepack``, the kernels that now
    read a once-used weight parameter of ``main`` in its packed layout (passes/prepack.apply then packs
    the arrays and re-declares the parameters).
    """
    target = tvm.target.Target(target) if not isinstance(target, tvm.target.Target) else target
    out = tvm.IRModule(dict(mod.functions_items()), attrs=mod.attrs, global_infos=mod.global_infos)
    report: dict[str, str] = {}
    packed: dict[str, Packing] = {}
    packable = packable_weights(mod) if prepack else {}
    dot = dot_kind(target)
    for gv, func in list(mod.functions_items()):
        if not isinstance(func, tirx.PrimFunc):
            continue
        kernel = Kernel(gv.name_hint, func, target, dot, packable.get(gv.name_hint, set()), db, tune_trials)
        result = schedule_kernel(kernel)
        if result is None:
            continue
        report[gv.name_hint] = result.how if result.func is None else f"scheduled ({result.how})"
        if result.func is None:
            continue
        new = result.func
        if func.attrs and "global_symbol" in func.attrs:
            new = new.with_attr("global_symbol", func.attrs["global_symbol"])
        out[gv] = new
        if result.packing is not None:
            packed[gv.name_hint] = result.packing
    return out, report, packed


def schedule_module(mod: tvm.IRModule, target: Any, db: Any = None,
                    tune_trials: int = 0) -> tuple[tvm.IRModule, dict[str, str]]:
    """The scheduled module and its report, every weight repacked inside its kernel (no prepacking)."""
    out, report, _ = schedule_and_pack(mod, target, db, tune_trials, prepack=False)
    return out, report
