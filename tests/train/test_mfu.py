import pytest

from fwpipe.train.mfu import mfu, peak_tflops


@pytest.mark.parametrize(
    "name,peak",
    [
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
    ],
)
def test_peak_by_device_name(name, peak):
    assert peak_tflops(name) == peak


def test_unknown_device_and_cpu_have_no_mfu():
    assert peak_tflops("cpu (2 threads)") is None
    assert peak_tflops("NVIDIA GeForce GTX 1080") is None
    assert mfu(1e5, 3e8, None) is None


def test_mfu_reproduces_nanogpts_a100_figure():
    """nanoGPT's transformer_sizing.ipynb: GPT-2 124M at batch 20 x grad_accum 5 (100 sequences of
    1024 tokens) in 755 ms per iteration on one A100 is "fraction of A100 used: 37.14%" (the
    "current 37%" its 8xA100 estimate starts from)."""
    from fwpipe.train.config import ModelConfig
    from fwpipe.train.mfu import flops_per_token
    from fwpipe.train.plan import param_counts

    m = ModelConfig(block_size=1024, vocab_size=50257, n_layer=12, n_head=12, n_embd=768, bias=False)
    tokens_per_s = 100 * 1024 / 0.755
    a100 = peak_tflops("NVIDIA A100-SXM4-40GB")
    assert mfu(tokens_per_s, flops_per_token(m, param_counts(m)[1]), a100) == pytest.approx(0.3714, abs=5e-4)
