"""Which runner measures a device profile: the local CPU, a board at an RPC tracker, or (only when
asked) an estimate."""

from __future__ import annotations

from autocomp.device.profiles import DeviceProfile
from autocomp.errors import UserError
from autocomp.measure.base import MeasureOptions, Runner


def runner_for(profile: DeviceProfile, options: MeasureOptions | None = None) -> Runner:
    """The runner for a profile; a device that cannot be reached is a UserError now, not a bad trial later."""
    options = options or MeasureOptions()
    if options.tracker:
        from autocomp.measure.rpc import RPCRunner

        return RPCRunner(profile, options)
    if profile.measure == "local" and not options.estimate:
        from autocomp.measure.local import LocalRunner

        return LocalRunner(profile.measurement)
    if options.estimate:
        from autocomp.measure.estimate import EstimateRunner

        return EstimateRunner(profile)
    raise UserError(
        f"device '{profile.name}' is measured on the board through a TVM RPC tracker: pass "
        f"--tracker HOST:PORT (boards register with key '{profile.rpc_key}'), or --estimate for "
        "figures estimated from the profile's rates, labelled 'estimate'"
    )
