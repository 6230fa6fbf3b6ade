import pytest

from fwpipe.train.mfu import PEAK_TFLOPS, mfu, peak_tflops


@pytest.mark.parametrize("name,peak", [
    ("NVIDIA GeForce RTX 4070", 58.3),
    ("NVIDIA GeForce RTX 4070 Ti", 80.2),
    ("NVIDIA GeForce RTX 4070 SUPER", 71.0),
    ("NVIDIA GeForce RTX 4090", 165.2),
    ("NVIDIA GeForce RTX 3060", 25.6),
    ("NVIDIA A100-SXM4-80GB", 312.0),
    ("NVIDIA A10", 125.0),
    ("NVIDIA H100 80GB HBM3", 989.0),
    ("NVIDIA H100 PCIe", 756.0),
    ("NVIDIA H200", 989.0),
    ("NVIDIA L4", 121.0),
    ("NVIDIA L40S", 362.0),
])
def test_peak_by_device_name(name, peak):
    assert peak_tflops(name) == peak


def test_unknown_device_and_cpu_have_no_mfu():
    assert peak_tflops("cpu (2 threads)") is None
    assert peak_tflops("NVIDIA GeForce GTX 1080") is None
    assert mfu(1e5, 3e8, None) is None


def test_mfu_arithmetic():
    # the seed's report: nanoGPT's ~11% of an A100's 312 TFLOPS is ~59% of a 4070's 58.3
    achieved = 0.11 * 312e12
    assert mfu(achieved / 3e8, 3e8, PEAK_TFLOPS["RTX 4070"]) == pytest.approx(0.11 * 312 / 58.3)
