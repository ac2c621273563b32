import pytest

from autocomp.device import hostcpu

from autocomp.device import profiles
from autocomp.errors import UserError


def test_builtin_profiles_load_and_validate():
    names = {p.name for p in profiles.load_all()[0]}
    assert {"host", "rpi4"} <= names


def test_host_target_is_this_cpu():
    host = profiles.load_profile("host")
    target = host.resolved_target()
    cpu = hostcpu.detect()
    assert target["mcpu"] == cpu.llvm_cpu != "detect"
    assert target["num-cores"] == cpu.cores
    host.tvm_target()  # TVM accepts it


def test_the_host_target_has_every_feature_the_cpu_reports():
    """What the compiler targets is what the CPU does, even where LLVM's name for the CPU (from the
    model number a virtual machine reports) lacks some of it: fp16 is offered only where the CPU computes
    it, and compiled without AVX512-FP16 it was emulated, 12x slower."""
    from autocomp.device.features import has_feature

    target = profiles.load_profile("host").tvm_target()
    reported = [f for f in hostcpu.detect().features if f in hostcpu.LLVM_FEATURES]
    assert all(has_feature(target, hostcpu.LLVM_FEATURES[f]) for f in reported), (reported, target)


def test_features_llvm_names_the_cpu_without_are_added():
    rocketlake = hostcpu.missing_features("rocketlake", {"avx2", "avx512_vnni", "avx512_bf16", "avx512_fp16"})
    assert rocketlake == ("+avx512bf16", "+avx512fp16")  # Rocket Lake has VNNI, not the other two
    assert hostcpu.missing_features("sapphirerapids", {"avx512_vnni", "avx512_bf16", "avx512_fp16"}) == ()
    assert hostcpu.missing_features("znver3", {"avx2", "fma"}) == ()  # nothing reported beyond it


def test_rpi4_is_aarch64_cortex_a72_over_rpc():
    rpi4 = profiles.load_profile("rpi4")
    t = rpi4.resolved_target()
    assert (t["mtriple"], t["mcpu"], t["num-cores"]) == ("aarch64-linux-gnu", "cortex-a72", 4)
    assert "+neon" in t["mattr"]
    assert (rpi4.measure, rpi4.rpc_key, rpi4.memory_mb) == ("rpc", "rpi4", 4096)
    assert rpi4.tvm_target().kind.name == "llvm"


def test_fp16_arithmetic_only_where_the_target_has_it():
    # A72 (ARMv8.0) converts fp16 but has no fp16 arithmetic; A76 (+fullfp16) and GPUs have it
    assert not profiles.load_profile("rpi4").fp16_compute()
    assert profiles.load_profile("rpi5").fp16_compute()
    assert profiles.load_profile("jetson-orin-nano").fp16_compute()
    assert profiles.load_profile("host").fp16_compute() == ("avx512_fp16" in hostcpu.detect().features)


def test_unknown_device_lists_known_ones():
    with pytest.raises(UserError, match="unknown device 'nope'.*host.*rpi4"):
        profiles.load_profile("nope")


GOOD = 'name = "{name}"\nkind = "cpu"\nmeasure = "local"\n[target]\nkind = "llvm"\n'


@pytest.mark.parametrize(
    "text, message",
    [
        ('colour = "red"\n' + GOOD, "unknown key 'colour'"),
        (GOOD.replace('kind = "cpu"', "kind = 3"), "key 'kind' must be str"),
        (GOOD.replace('kind = "cpu"', 'kind = "tpu"'), "key 'kind' must be 'cpu' or 'gpu'"),
        (GOOD.replace('measure = "local"', 'measure = "rpc"'), "'rpc_key' is required"),
        (GOOD + "[measurement]\nrepeat = 0\n", "measurement.repeat"),
        (GOOD + "[measurement]\nthreads = -1\n", "measurement.threads"),
        ('name = "{name}"\nkind = ', "not valid TOML"),
        (GOOD.replace('name = "{name}"', 'name = "other"'), "must match the file name"),
        (GOOD.replace('[target]\nkind = "llvm"\n', ""), "missing required key 'target'"),
        ('winograd = "always"\n' + GOOD, "key 'winograd' must be one of auto, stored, off"),
        (GOOD + '[mca]\ncpu = "cortex-a72"\n', "table 'mca' takes exactly 'cpu'"),
        (GOOD + '[mca]\ncpu = "cortex-a72"\nclock_ghz = 0\n', "clock_ghz as a positive number"),
    ],
)
def test_malformed_profile_names_file_and_key(tmp_path, monkeypatch, text, message):
    path = tmp_path / "mine.toml"
    path.write_text(text.replace("{name}", "mine"))
    monkeypatch.setenv("AUTOCOMP_PROFILE_PATH", str(tmp_path))
    with pytest.raises(UserError, match=message) as err:
        profiles.load_profile("mine")
    assert str(path) in str(err.value)


def test_user_profile_directory_adds_devices(tmp_path, monkeypatch):
    (tmp_path / "mybox.toml").write_text(GOOD.replace("{name}", "mybox"))
    monkeypatch.setenv("AUTOCOMP_PROFILE_PATH", str(tmp_path))
    assert profiles.load_profile("mybox").source == str(tmp_path / "mybox.toml")
    assert "mybox" in profiles.available()


def test_target_tvm_rejects_is_a_user_error(tmp_path, monkeypatch):
    (tmp_path / "odd.toml").write_text(GOOD.replace("{name}", "odd").replace('kind = "llvm"', 'kind = "no-such-backend"'))
    monkeypatch.setenv("AUTOCOMP_PROFILE_PATH", str(tmp_path))
    with pytest.raises(UserError, match="TVM rejects its target"):
        profiles.load_profile("odd").tvm_target()
