"""Conv weights packed once, at build time, into the layout the kernels read.

The conv templates read weights as ``[O/VF, I, KH, KW, VF]`` (dense; ``[O/VF, KH, KW, I, VF]`` for
NHWC convs) or ``[O/L, I/4, KH, KW, L, 4]`` (VNNI / SDOT dot products). Repacking inside the kernel costs a pass over the weights on every call:
for a 1024x1024 1x1 conv at 7x7 it was 1.7 of 2.7 ms. When a conv's weight is a parameter of `main`
used by that call only, the kernel instead takes the packed layout and the parameter array is packed
here, in numpy: same bytes, another order, so param_bytes and the artifact size do not change.
Weights computed in the graph (unpacked int4, dequantized for fp16 compute) keep the in-kernel repack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from autocomp.build.passes.relax_main import num_inputs


@dataclass(frozen=True)
class Packing:
    """How one conv kernel reads its weight: `kind` "dense" (lanes = VF) or "dot" (lanes = L)."""

    param_index: int  # position of the weight among the PrimFunc's parameters (= call_tir argument)
    kind: str
    lanes: int
    group: int = 4  # "dot": input channels per lane per instruction (4: VNNI / SDOT, 2: vpmaddwd)
    ohwi: bool = False  # the weight as stored is OHWI (channels-last convs), else OIHW

    def pack(self, w: np.ndarray) -> np.ndarray:
        if self.ohwi and self.kind == "dense":  # [O/VF, KH, KW, I, VF] (schedule.packed_weight_map)
            o, kh, kw, i = w.shape
            return np.ascontiguousarray(w.reshape(o // self.lanes, self.lanes, kh, kw, i).transpose(0, 2, 3, 4, 1))
        if self.ohwi:
            w = w.transpose(0, 3, 1, 2)
        o, i, kh, kw = w.shape
        if self.kind == "dense":
            return np.ascontiguousarray(w.reshape(o // self.lanes, self.lanes, i, kh, kw).transpose(0, 2, 3, 4, 1))
        return np.ascontiguousarray(
            w.reshape(o // self.lanes, self.lanes, i // self.group, self.group, kh, kw).transpose(0, 2, 4, 5, 1, 3))


def packable_weights(mod: Any) -> dict[str, set[int]]:
    """Per PrimFunc name, the argument positions that are, at every call site, a weight parameter of
    `main` used by that one call (so its layout is ours to choose)."""
    import tvm

    main = mod["main"]
    num_input = num_inputs(main)
    weights = list(main.params[num_input:])
    call_tir = tvm.ir.Op.get("relax.call_tir")
    uses: dict[Any, int] = {}
    sites: list[tuple[str, list[Any]]] = []
    for block in main.body.blocks:  # after legalization every binding is a call_tir or a tuple
        for binding in block.bindings:
            call = binding.value
            if getattr(call, "op", None) is not None and call.op.same_as(call_tir):
                args = list(call.args[1].fields)
                sites.append((call.args[0].name_hint, args))
            else:
                args = list(getattr(call, "fields", ()))
            for w in weights:
                uses[w] = uses.get(w, 0) + sum(a.same_as(w) for a in args)
    once = [w for w in weights if uses.get(w, 0) == 1]
    out: dict[str, set[int]] = {}
    for name, args in sites:
        ok = {j for j, a in enumerate(args) if any(a.same_as(w) for w in once)}
        out[name] = ok if name not in out else out[name] & ok
    return out


def param_buffer(func: Any, j: int) -> Any:
    """The buffer of a PrimFunc's parameter `j` (TVM 0.27 gives buffers directly; older, a buffer_map)."""
    p = func.params[j]
    return p if hasattr(p, "shape") else func.buffer_map[p]


def weight_param_index(func: Any, info: Any) -> int:
    """Which PrimFunc parameter is the conv's weight buffer."""
    from tvm import s_tir

    sch = s_tir.Schedule(func)
    weight = sch.get(sch.get_sblock(info.block)).reads[info.weight_read].source
    for j in range(len(func.params)):
        buf = param_buffer(func, j)
        if buf.same_as(weight) or buf.data.same_as(weight.data):
            return j
    return -1


def apply(mod: Any, params: tuple[np.ndarray, ...], packed: dict[str, Packing]) -> tuple[Any, tuple[np.ndarray, ...]]:
    """`main` with each packed weight parameter re-declared in its packed shape, and the arrays packed."""
    import tvm
    from tvm import relax

    from autocomp.build.passes.relax_main import rebuild_main

    if not packed:
        return mod, params
    main = mod["main"]
    num_input = num_inputs(main)
    call_tir = tvm.ir.Op.get("relax.call_tir")
    swap: dict[Any, Any] = {}
    new_params = list(params)
    for block in main.body.blocks:
        for binding in block.bindings:
            call = binding.value
            if not (getattr(call, "op", None) is not None and call.op.same_as(call_tir)):
                continue
            name = call.args[0].name_hint
            if name not in packed:
                continue
            pk = packed[name]
            var = call.args[1].fields[pk.param_index]
            pos = next(k for k, p in enumerate(main.params) if p.same_as(var)) - num_input
            new_params[pos] = pk.pack(params[pos])
            swap[var] = relax.Var(var.name, relax.TensorType(new_params[pos].shape, str(new_params[pos].dtype)))

    fn_params = [swap.get(p, p) for p in main.params]
    return rebuild_main(mod, main, main.body, fn_params, swap), tuple(new_params)
