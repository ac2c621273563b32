"""Outputs of many models that differ in one layer only, sharing the forward up to that layer.

Why: the sensitivity step runs the eval subset through the fp32 model with one layer quantized, for
every layer and each of its ~10 weight / activation choices. All of one layer's choices compute the
same values up to that layer, so computing them once and only the rest of the graph per choice saves
about half of the step's quantization work on a VGG-style net (more where the early layers dominate).

The model is traced with torch.fx, the layer kept as one call; the nodes that do not depend on it run
once per batch, the others once per variant, with the variant's module in the layer's place. The
results are those of calling each model (the same ops on the same tensors, in the same batches as
accuracy.torch_outputs). A model fx cannot trace, a layer called more than once, or a value changed in
place where both parts read it (running the shared part first would change what one of them reads)
gets None, and the caller runs the models whole.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx, nn

from autocomp.measure.accuracy import EVAL_BATCH, finite


class _LayerLeaf(fx.Tracer):
    """fx's tracer with the varied layer kept as one call (whatever its type), and the modules holding
    it traced into (fx keeps torch.nn's own containers, e.g. nn.TransformerEncoder, as one call)."""

    def __init__(self, layer: str) -> None:
        super().__init__()
        self.layer = layer

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if qualname == self.layer:
            return True
        if self.layer.startswith(qualname + "."):
            return False
        return super().is_leaf_module(m, qualname)


def variant_outputs(base: nn.Module, layer: str, variants: dict[str, nn.Module],
                    inputs: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """Per variant key, the outputs on `inputs` of `base` with its module `layer` replaced by the
    variant's (all in eval mode); None when the shared forward cannot be split off (run them whole)."""
    try:
        graph = _LayerLeaf(layer).trace(base)
    except Exception:  # noqa: BLE001 - control flow on values, a custom tracer-hostile op: run whole
        return None
    gm = fx.GraphModule(base, graph)
    nodes = list(gm.graph.nodes)
    calls = [n for n in nodes if n.op == "call_module" and n.target == layer]
    if len(calls) != 1 or sum(n.op == "placeholder" for n in nodes) != 1:
        return None  # called twice (shared weights), or inputs other than the one the subset gives
    after = _dependents(calls[0])
    if nodes[-1] not in after:
        return None  # the layer does not reach the output (or does through an in-place op fx cannot see)
    for n in nodes:
        m = _mutated(gm, n)
        if m is not None and m not in after and any(u in after for u in m.users):
            return None  # the shared part changed in place where the layer's part reads it: order matters
    before = [n for n in nodes if n not in after]
    tail = [n for n in nodes if n in after]
    needed = {n for n in before if any(u in after for u in n.users)}  # what the varied part reads
    parent_name, _, attr = layer.rpartition(".")
    parent = gm.get_submodule(parent_name) if parent_name else gm
    original = getattr(parent, attr)
    chunks: dict[str, list[torch.Tensor]] = {key: [] for key in variants}
    interp = fx.Interpreter(gm, garbage_collect_values=False)
    try:
        with torch.no_grad():
            for i in range(0, len(inputs), EVAL_BATCH):
                shared = _run(interp, before, {}, inputs[i : i + EVAL_BATCH], keep=needed)
                for key, module in variants.items():
                    setattr(parent, attr, module)
                    # a copy per variant: a view of a shared value changed in place after the layer (which the
                    # check above cannot see) must not change the next variant's inputs
                    env = {n: v.clone() if torch.is_tensor(v) else v for n, v in shared.items()}
                    chunks[key].append(_run(interp, tail, env, None))
    finally:
        setattr(parent, attr, original)
    return {key: finite(torch.cat(parts), "the torch simulation") for key, parts in chunks.items()}


def _mutated(gm: fx.GraphModule, n: fx.Node) -> fx.Node | None:
    """The node whose value `n` changes in place (x.add_(y), torch.relu_(x), F.relu(x, inplace=True),
    nn.ReLU(inplace=True), x[i] = y), if any."""
    import operator

    first = n.args[0] if n.args and isinstance(n.args[0], fx.Node) else None
    if n.op == "call_method":
        inplace = n.target.endswith("_") and not n.target.endswith("__")
    elif n.op == "call_function":
        name = getattr(n.target, "__name__", "")
        inplace = (name.endswith("_") and not name.endswith("__")) or bool(n.kwargs.get("inplace")) \
            or n.target in (operator.setitem, operator.iadd, operator.isub, operator.imul, operator.itruediv)
    elif n.op == "call_module":
        inplace = bool(getattr(gm.get_submodule(n.target), "inplace", False))
    else:
        inplace = False
    return first if inplace else None


def _dependents(node: fx.Node) -> set[fx.Node]:
    out, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n not in out:
            out.add(n)
            todo.extend(n.users)
    return out


def _run(interp: fx.Interpreter, nodes: list[fx.Node], env: dict[fx.Node, Any], x: torch.Tensor | None,
         keep: set[fx.Node] | None = None) -> Any:
    """Run `nodes` in order on `env` (placeholders take `x`): the output's value, or, with `keep`, the
    values of `keep` (the others dropped once their last user has run, as a forward would)."""
    interp.env = env
    left = {n: len(n.users) for n in nodes}
    result = None
    for n in nodes:
        if n.op == "placeholder":
            env[n] = x
        elif n.op == "output":
            result = interp.run_node(n)
        else:
            env[n] = interp.run_node(n)
        if keep is not None:
            for arg in n.all_input_nodes:
                left[arg] = left.get(arg, 0) - 1
                if left[arg] <= 0 and arg not in keep:
                    env.pop(arg, None)
    return {n: env[n] for n in keep} if keep is not None else result
