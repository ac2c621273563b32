import pytest

from autocomp.build.compile import build
from autocomp.errors import UserError
from autocomp.lower import lower
from autocomp.measure.local import LocalRunner
from autocomp.measure.runners import runner_for
from autocomp.device.profiles import Measurement, load_profile


def test_local_latency_is_a_measured_distribution(digits_task, digits_ctx, host):
    built = build(lower(digits_ctx.model, digits_task.example_input), host)
    runner = LocalRunner(Measurement(number=5, repeat=9, min_repeat_ms=1, warmup=1))
    latency = runner.time(runner.session(built), digits_task.example_input.numpy())
    assert latency.samples == 9
    assert 0 < latency.p10_ms <= latency.median_ms <= latency.p90_ms
    assert runner.measured_on == "local"


def test_remote_profile_without_rpc_support_is_a_clear_error():
    with pytest.raises(UserError, match="RPC tracker"):
        runner_for(load_profile("rpi4"))
