"""Model FLOPs utilisation against the device's own dense bf16 peak, not an A100's.

FLOPs per token as in nanoGPT's estimate_mfu (PaLM paper, appendix B): 6N for the matmuls of
forward and backward plus 12*L*H*Q*T for attention, N the parameters without position
embeddings. On a CPU there is no honest peak, so MFU is None and only tokens/s is reported.
"""

from __future__ import annotations

from fwpipe.train.config import ModelConfig

# Dense (no 2:4 sparsity) bf16 tensor-core peaks in TFLOPS, FP32 accumulate, at boost clock.
# GeForce cards run FP32-accumulate at half their FP16-accumulate rate; these are the halved
# figures, which is what a bf16 autocast run gets. Sources:
#   Ada (RTX 40xx): NVIDIA Ada GPU Architecture whitepaper, appendix tables ("Peak BF16 Tensor
#     TFLOPS with FP32 Accumulate", first figure = dense). RTX 4070: 58.3 (issue 4: "about 58").
#   Ampere GeForce (RTX 30xx): NVIDIA Ampere GA102 whitepaper, same row; RTX 3060/3070 scaled
#     from it by tensor-core count and boost clock (GA106/GA104 share the SM).
#   Datacenter: product datasheets, dense figure (A100 312, H100 SXM 989, H100 PCIe 756,
#     H200 989, L4 121, L40S 362, A10 125); V100 and T4 have no bf16, their fp16 peak is given.
# Matched against torch.cuda.get_device_name() by the longest key contained in it.
PEAK_TFLOPS: dict[str, float] = {
    "RTX 3060": 25.6,
    "RTX 3060 Ti": 32.4,
    "RTX 3070": 40.6,
    "RTX 3080": 59.5,
    "RTX 3090": 71.0,
    "RTX 3090 Ti": 80.0,
    "RTX 4060": 30.2,
    "RTX 4060 Ti": 44.1,
    "RTX 4070": 58.3,
    "RTX 4070 SUPER": 71.0,
    "RTX 4070 Ti": 80.2,
    "RTX 4070 Ti SUPER": 88.2,
    "RTX 4080": 97.5,
    "RTX 4080 SUPER": 104.5,
    "RTX 4090": 165.2,
    "RTX A6000": 154.8,
    "RTX 6000 Ada": 364.2,
    "A10": 125.0,
    "A100": 312.0,
    "H100": 989.0,
    "H100 PCIe": 756.0,
    "H200": 989.0,
    "L4": 121.0,
    "L40S": 362.0,
    "V100": 125.0,
    "T4": 65.0,
}


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU by its name, or None when it is not in the table."""
    name = device_name.upper()
    hits = [k for k in PEAK_TFLOPS if _contains_word(name, k.upper())]
    return PEAK_TFLOPS[max(hits, key=len)] if hits else None


def _contains_word(name: str, key: str) -> bool:
    # "L4" must not match "L40S", "A10" must not match "A100": the key must end at a boundary
    start = name.find(key)
    while start >= 0:
        end = start + len(key)
        before_ok = start == 0 or not name[start - 1].isalnum()
        after_ok = end == len(name) or not name[end].isalnum()
        if before_ok and after_ok:
            return True
        start = name.find(key, start + 1)
    return False


def flops_per_token(model: ModelConfig, n_params_non_embedding: int) -> int:
    """Training FLOPs per token (forward + backward), nanoGPT's estimate_mfu."""
    L, H, Q, T = model.n_layer, model.n_head, model.n_embd // model.n_head, model.block_size
    return 6 * n_params_non_embedding + 12 * L * H * Q * T


def mfu(tokens_per_s: float, flops_per_tok: float, peak: float | None) -> float | None:
    """Achieved FLOPs over peak, in [0, 1]; None when the peak is unknown (CPU, unlisted GPU)."""
    if not peak:
        return None
    return tokens_per_s * flops_per_tok / (peak * 1e12)
