"""4-bit conv weights unpacked inside their conv kernel, per work item, instead of by a kernel of their own.

The torch importer turns a 4-bit layer's weight into a kernel of floor-divides that unpacks the whole
weight to int8 on every call (`fused_cast_floor_divide_..._transpose`), then the conv reads the int8
copy: uniform w4a8 ran 1.61x slower than w8a8 on the built-in task (scripts/bench_mixed.py).

Here, for each conv that the target's dot-product template takes (kernels/dot.py) and whose weight is
computed from one parameter used nowhere else by a chain of kernels (the unpack kernel; for shared
weights the codebook lookup, whose codebook is a small parameter used nowhere else; on ARM a transpose
to OHWI): the chain is run once on the build host (its real output, whatever its arithmetic), and when
the values fit 2 or 4 bits (`packing`: as themselves plus an offset, or as indices into at most 2^bits
distinct values, a shared-weight layer's codebook) in no more bytes than the parameter took, the
parameter is replaced by those bits packed in the order the dot template reads them,
``[O/L, I/G, KH, KW, L*G*bits/8]``: byte j of a vector holds lanes j, j + q, ... (q the vector's bytes),
so one vector of packed bytes unpacks with an AND and a shift per lane group (and a tree of selects for
a codebook, whose values are constants of the kernel; its parameter stays, unread, and is counted).
The conv kernel gets a block (UNPACK_BLOCK) that computes the int8 weight from those bytes; the dot
template computes it once per parallel work item, for that item's channels, into a small buffer its
dot-product instructions read (kernels/dot.py). Both are put into one PrimFunc by TVM's own FuseTIR. The
bytes the artifact stores do not grow (checked per weight), so memory figures stay the packed size.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from autocomp.build.kernels.dot import MAX_ABS_ATTR, UNPACK_BLOCK  # the block the dot template computes per work item
from autocomp.build.passes.prepack import Packing, param_buffer, weight_param_index
from autocomp.build.passes.relax_main import num_inputs, rebuild_main


def nibble_pack(w: np.ndarray, lanes: int, group: int, ohwi: bool) -> np.ndarray:
    """An int8 weight (values in [-8, 7]) as ``[O/L, I/G, KH, KW, L*G/2]`` uint8, two lanes per byte."""
    return index_pack(w.astype(np.int16) + 8, lanes, group, ohwi, 4)


def index_pack(idx: np.ndarray, lanes: int, group: int, ohwi: bool, bits: int) -> np.ndarray:
    """Unsigned `bits`-bit values (a weight's shape) as ``[O/L, I/G, KH, KW, L*G*bits/8]`` uint8: byte j
    of a vector holds lanes j, j + q, j + 2q, ... (q = L*G*bits/8), the first in the lowest bits."""
    per = 8 // bits
    dot = Packing(0, "dot", lanes, group, ohwi).pack(idx.astype(np.int16))  # [O/L, I/G, KH, KW, L, G]
    flat = dot.reshape(*dot.shape[:4], per, lanes * group // per)
    out = np.zeros(flat.shape[:4] + flat.shape[5:], dtype=np.int16)
    for m in range(per):
        out |= flat[..., m, :] << (bits * m)
    return out.astype(np.uint8)


def unpack_func(shape: tuple[int, ...], lanes: int, group: int, ohwi: bool, bits: int = 4,
                codebook: tuple[int, ...] | None = None) -> Any:
    """PrimFunc (packed bytes) -> int8 weight of `shape` (OHWI or OIHW), inverse of `index_pack`: each value
    is its index minus 2^(bits-1), or with a `codebook` (shared weights) the codebook's entry, chosen by
    a tree of selects on the index's bits (no table in memory, vectorises like the subtraction)."""
    from tvm import te, tirx

    if ohwi:
        o, kh, kw, i = shape
    else:
        o, i, kh, kw = shape
    per = 8 // bits
    width = lanes * group // per
    i64 = lambda *xs: [tirx.IntImm("int64", x) for x in xs]  # noqa: E731 - the legalized kernels' index type
    packed = te.placeholder(i64(o // lanes, i // group, kh, kw, width), "uint8", name="w_nibbles")

    def value(oc, ic, y, x):  # type: ignore[no-untyped-def]
        lane = (oc % lanes) * group + ic % group
        byte = packed[oc // lanes, ic // group, y, x, lane % width]
        shifted = tirx.shift_right(byte, (lane // width * bits).astype("uint8"))
        index = tirx.bitwise_and(shifted, tirx.const((1 << bits) - 1, "uint8"))
        if codebook is None:
            return index.astype("int8") - tirx.const(1 << (bits - 1), "int8")
        return _lookup(index, codebook, bits)

    attrs = {MAX_ABS_ATTR: value_bound(bits, codebook)}  # what a dot product that needs small weights checks
    if ohwi:
        weight = te.compute(i64(*shape), lambda oc, y, x, ic: value(oc, ic, y, x), name=UNPACK_BLOCK, attrs=attrs)
    else:
        weight = te.compute(i64(*shape), lambda oc, ic, y, x: value(oc, ic, y, x), name=UNPACK_BLOCK, attrs=attrs)
    return te.create_prim_func([packed, weight])


def value_bound(bits: int, codebook: tuple[int, ...] | None) -> int:
    """The largest |value| the unpacking can compute from any bytes: the format's, not this weight's."""
    return max(abs(v) for v in codebook) if codebook is not None else 1 << (bits - 1)


def _lookup(index: Any, codebook: tuple[int, ...], bits: int) -> Any:
    """codebook[index] for a `bits`-bit index, as selects on its bits, highest bit at the root."""
    from tvm import tirx

    def pick(lo: int, bit: int) -> Any:
        if bit < 0:
            return tirx.const(codebook[lo], "int8")
        test = tirx.bitwise_and(index, tirx.const(1 << bit, "uint8")) != tirx.const(0, "uint8")
        return tirx.Select(test, pick(lo + (1 << bit), bit - 1), pick(lo, bit - 1))

    return pick(0, bits - 1)


def packing(w: np.ndarray, budget: int) -> tuple[int, np.ndarray, tuple[int, ...] | None] | None:
    """How to store int8 weights `w` in at most `budget` bytes: (bits, unsigned indices, codebook or None).

    2 bits before 4: values in [-2^(b-1), 2^(b-1)) are stored as themselves plus an offset; otherwise
    at most 2^b distinct values (a shared-weight layer's codebook) as indices into them. None: neither
    fits (e.g. int8 weights, or 2-bit weights a nibble each would double)."""
    for bits in (2, 4):
        if w.size * bits // 8 > budget:
            continue
        half = 1 << (bits - 1)
        if w.min() >= -half and w.max() < half:
            return bits, w.astype(np.int16) + half, None
        values = np.unique(w)
        if len(values) <= 1 << bits:
            book = tuple(int(v) for v in values) + (int(values[-1]),) * ((1 << bits) - len(values))
            return bits, np.searchsorted(values, w), book
    return None


def merge(unpack: Any, conv: Any, weight_index: int, arg_types: list[Any], out_type: Any) -> Any:
    """One PrimFunc: `unpack` feeding `conv`'s parameter `weight_index`, fused by relax.FuseTIR."""
    from tvm import relax

    bb = relax.BlockBuilder()
    gu, gk = bb.add_func(unpack, "unpack"), bb.add_func(conv, "conv")
    packed_ty = relax.TensorType([int(d) for d in param_buffer(unpack, 0).shape], "uint8")
    weight_ty = arg_types[weight_index]
    params = [relax.Var(f"a{j}", packed_ty if j == weight_index else t) for j, t in enumerate(arg_types)]
    with bb.function("merged", params, attrs={"Primitive": True}, private=True):
        with bb.dataflow():
            w = bb.emit(relax.call_tir(gu, (params[weight_index],), weight_ty))
            y = bb.emit_output(relax.call_tir(gk, [w if j == weight_index else p for j, p in enumerate(params)],
                                              out_type))
        bb.emit_func_output(y)
    merged = bb.get().get_global_var("merged")
    outer = [relax.Var(f"m{j}", p.ty) for j, p in enumerate(params)]
    with bb.function("main", outer):
        with bb.dataflow():
            r = bb.emit_output(relax.Call(merged, outer))
        bb.emit_func_output(r)
    return relax.transform.FuseTIR()(bb.get())["merged"]


CODEBOOK_BYTES = 256  # a parameter this small that feeds a weight's chain is its codebook (shared weights)


def apply(mod: Any, params: tuple[np.ndarray, ...], target: Any) -> tuple[Any, tuple[np.ndarray, ...], list[str]]:
    """`mod` with every eligible conv reading nibble-packed weights; returns the module, its parameters
    and the names of the conv kernels that now unpack their weights themselves."""
    import tvm
    from tvm import relax, s_tir

    from autocomp.build.kernels.conv import find_conv
    from autocomp.build.kernels.dot import applicable_kind
    from autocomp.build.passes.precompute import host_library, use_counts

    target = tvm.target.Target(target) if not isinstance(target, tvm.target.Target) else target
    main = mod["main"]
    num_input = num_inputs(main)
    call_tir = tvm.ir.Op.get("relax.call_tir")
    weights = {v: k for k, v in enumerate(main.params[num_input:])}
    uses = use_counts(main)
    # var -> chain of kernels from a parameter (each link used once, so the parameter and the whole chain
    # go when the conv reads the packed bytes instead): [(kernel, its arguments)], output vars, parameter.
    # A link takes the chain's value and otherwise only small parameters used nowhere else (a codebook).
    producer: dict[Any, tuple[list[tuple[Any, list[Any]]], list[Any], Any]] = {}
    sites = []  # (conv binding, argument position, chain, chain vars, parameter, dot kind, conv info)

    def small(a: Any) -> bool:
        return a in weights and uses.get(a, 0) == 1 and params[weights[a]].nbytes <= CODEBOOK_BYTES

    for block in main.body.blocks:
        for binding in block.bindings:
            call = binding.value
            if not (getattr(call, "op", None) is not None and call.op.same_as(call_tir)):
                continue
            args = list(call.args[1].fields)
            chained = [a for a in args if a in producer]
            head = chained[0] if len(chained) == 1 else (args[0] if len(args) == 1 and args[0] in weights else None)
            if head is not None and uses.get(head, 0) == 1 and uses.get(binding.var, 0) == 1 \
                    and all(a.same_as(head) or small(a) for a in args):
                chain, links, root = producer.pop(head, ([], [], head))
                producer[binding.var] = ([*chain, (call.args[0], args)], [*links, binding.var], root)
                continue
            for j, a in enumerate(args):
                if a not in producer:
                    continue
                conv = mod[call.args[0]]
                info = find_conv(s_tir.Schedule(conv))
                kind = applicable_kind(conv, target) if info is not None and not info.group_out else None
                if kind is not None and weight_param_index(conv, info) == j:
                    sites.append((binding, j, *producer[a], kind, info))
    if not sites:  # nothing to build on the host: no conv here takes a dot product on an unpacked weight
        return mod, params, []
    lib = host_library(mod, list({gv.name_hint: gv for site in sites for gv, _ in site[2]}.values()))
    new_params = list(params)
    swap: dict[Any, Any] = {}  # parameter var -> packed var
    calls: dict[Any, tuple[str, list[Any]]] = {}  # conv binding var -> (kernel, arguments)
    dropped: set[Any] = set()  # unpack bindings whose conv now unpacks
    funcs: dict[str, Any] = {}
    for binding, j, chain, links, p, kind, info in sites:
        w, var = params[weights[p]], p
        for (gv, args), out_var in zip(chain, links):  # run on this host: its real output, whatever its arithmetic
            out = param_buffer(mod[gv], len(mod[gv].params) - 1)
            result = tvm.runtime.tensor(np.zeros([int(d) for d in out.shape], dtype=str(out.dtype)))
            inputs = [w if a.same_as(var) else params[weights[a]] for a in args]
            lib[gv.name_hint](*(tvm.runtime.tensor(np.ascontiguousarray(x)) for x in inputs), result)
            w, var = result.numpy(), out_var
        if w.dtype != np.int8:
            continue
        how = packing(w, params[weights[p]].nbytes)
        if how is None:
            continue  # e.g. 2-bit weights with more than four values
        bits, idx, book = how
        k = binding.value.args[0]
        kind = applicable_kind(mod[k], target, max_abs=value_bound(bits, book)) or kind  # small weights: AVX2's u8 x s8
        packed = index_pack(idx, kind.lanes, kind.group, info.nhwc, bits)
        name = f"{k.name_hint}_int{bits}_{kind.lanes}x{kind.group}"
        if book is not None:  # the codebook is part of the kernel: one per codebook
            name += "_cb" + hashlib.sha256(np.array(book, np.int8).tobytes()).hexdigest()[:8]
        if name not in funcs:
            arg_types = [a.ty for a in binding.value.args[1].fields]
            funcs[name] = merge(unpack_func(w.shape, kind.lanes, kind.group, info.nhwc, bits, book), mod[k], j,
                                arg_types, binding.var.ty)
        new_params[weights[p]] = packed
        swap[p] = relax.Var(p.name, relax.TensorType(list(packed.shape), "uint8"))
        args = list(binding.value.args[1].fields)
        dropped.update(links)
        args[j] = swap[p]
        calls[binding.var] = (name, args)
    if not funcs:
        return mod, params, []
    new_mod = tvm.IRModule(dict(mod.functions_items()), attrs=mod.attrs)
    for name, func in funcs.items():
        new_mod[tvm.ir.GlobalVar(name)] = func
    gvs = {gv.name_hint: gv for gv in new_mod.get_global_vars()}
    blocks = []
    for block in main.body.blocks:
        kept = []
        for b in block.bindings:
            if b.var in dropped:
                continue
            if b.var in calls:
                name, args = calls[b.var]
                b = relax.VarBinding(b.var, relax.call_tir(gvs[name], args, b.var.ty))
            kept.append(b)
        blocks.append(relax.DataflowBlock(kept) if isinstance(block, relax.DataflowBlock) else relax.BindingBlock(kept))
    body = relax.SeqExpr(blocks, main.body.body)
    fn_params = [swap.get(v, v) for v in main.params]
    rebuilt = rebuild_main(new_mod, main, body, fn_params, swap)
    return relax.transform.DeadCodeElimination(["main"])(rebuilt), tuple(new_params), list(funcs)
