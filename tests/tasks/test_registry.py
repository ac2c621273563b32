import sys
import textwrap

import pytest

from autocomp.errors import UserError
from autocomp.tasks import Task, load_task


def test_builtin_digits_task_has_disjoint_splits(digits_task):
    t = digits_task
    assert t.example_input.shape == (1, 1, 8, 8)
    calib = {bytes(x.numpy().tobytes()) for x in t.calib_data}
    evals = {bytes(x.numpy().tobytes()) for x in t.eval_inputs}
    # digits has a few duplicate images; almost all must be disjoint
    assert len(calib & evals) <= 2
    model = t.build_model().eval()
    acc = t.metric(model(t.eval_inputs), t.eval_targets)
    assert acc > 0.9


def test_user_task_from_module_function(tmp_path, monkeypatch):
    (tmp_path / "mytasks.py").write_text(textwrap.dedent("""
        import torch
        from autocomp.tasks import Task

        def build():
            torch.manual_seed(0)
            x = torch.randn(32, 4)
            return Task(name="mine", build_model=lambda: torch.nn.Sequential(torch.nn.Linear(4, 3)),
                        example_input=x[:1], calib_data=x[:16], eval_inputs=x[16:],
                        eval_targets=torch.zeros(16, dtype=torch.long))

        def not_a_task():
            return 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    task = load_task("mytasks:build")
    assert isinstance(task, Task) and task.name == "mine"
    with pytest.raises(UserError, match="returned int"):
        load_task("mytasks:not_a_task")
    with pytest.raises(UserError, match="has no function 'missing'"):
        load_task("mytasks:missing")
    sys.modules.pop("mytasks", None)


@pytest.mark.parametrize("spec, message", [("nope", "unknown task 'nope'"), ("no_such_mod:f", "cannot import module")])
def test_bad_task_specs(spec, message):
    with pytest.raises(UserError, match=message):
        load_task(spec)
