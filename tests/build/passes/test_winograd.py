"""The Winograd rewrite: which convs take the kernel, in which mode."""

from tvm import relax

from autocomp.build.kernels.winograd import WinogradConv
from autocomp.build.passes import winograd


def test_auto_keeps_the_direct_template_where_the_per_call_transform_does_not_pay():
    def conv(h, w):
        return WinogradConv(n=1, h=h, w=w, ci=64, co=64, pad=(1, 1, 1, 1), vf=32)

    assert conv(28, 28).tiles == 49 and winograd.chosen(conv(28, 28), "auto") == "runtime"
    assert conv(14, 14).tiles == 16 and winograd.chosen(conv(14, 14), "auto") is None
    assert winograd.chosen(conv(14, 14), "stored") == "stored"
    assert winograd.chosen(conv(7, 7), "stored") is None  # 4 tiles: 4x the weight reads cost more
    assert winograd.chosen(conv(56, 56), "off") is None


def _conv_call(dtype: str, stride: int = 1, kernel: int = 3, groups: int = 1, co: int = 32):
    x = relax.Var("x", relax.TensorType([1, 14, 14, 32], dtype))
    w = relax.Var("w", relax.TensorType([co, kernel, kernel, 32 // groups], dtype))
    bb = relax.BlockBuilder()
    with bb.function("main", [x, w]):
        call = bb.normalize(relax.op.nn.conv2d(x, w, strides=stride, padding=1, groups=groups,
                                               data_layout="NHWC", kernel_layout="OHWI"))
        bb.emit_func_output(call)
    return call


def test_only_fp32_3x3_stride_1_dense_convs_are_eligible():
    assert winograd.eligible(_conv_call("float32"), lanes=8).vf == 16
    assert winograd.eligible(_conv_call("float32", co=24), lanes=16).vf == 8  # pruned: 8-lane vectors
    assert winograd.eligible(_conv_call("float32", co=6), lanes=16) is None
    assert winograd.eligible(_conv_call("int8"), lanes=8) is None
    assert winograd.eligible(_conv_call("float16"), lanes=8) is None
    assert winograd.eligible(_conv_call("float32", stride=2), lanes=8) is None
    assert winograd.eligible(_conv_call("float32", kernel=1), lanes=8) is None
    assert winograd.eligible(_conv_call("float32", groups=32), lanes=8) is None
