"""Every kernel goes through Triton's real compiler and ptxas for an H100 (sm_90), no GPU needed.

The CPU interpreter accepts code the compiler rejects (and the other way round), so this catches
what the interpreted reference tests cannot. It runs in a fresh interpreter without TRITON_INTERPRET,
where the kernels are defined for compilation, in bf16 at the Nemotron-4 15B and 340B shapes.
"""

import json
import os
import subprocess
import sys

import triton

from corpusmill.trainer.kernels.launch import row_block_settings
from corpusmill.trainer.presets import PRESETS

COMPILE_ALL = """
import importlib, json, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
for module_name, kernel_name, signature, constexprs, num_warps in json.loads(sys.argv[1]):
    kernel = getattr(importlib.import_module(module_name), kernel_name)
    compiled = triton.compile(
        ASTSource(kernel, signature, constexprs), target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps}
    )
    assert compiled.asm["cubin"], kernel_name
    print(kernel_name, constexprs)
"""


def _kernels_at_nemotron_shapes() -> list[tuple[str, str, dict, dict, int]]:
    package = "corpusmill.trainer.kernels"
    cross_entropy = (
        f"{package}.fused_linear_cross_entropy",
        "_cross_entropy_grad_in_place_kernel",
        {
            "logits_ptr": "*bf16",
            "targets_ptr": "*i64",
            "losses_ptr": "*fp32",
            "n_cols": "i32",
            "ignore_index": "i32",
            "grad_scale": "fp32",
            "BLOCK_SIZE": "constexpr",
        },
        {"BLOCK_SIZE": 4096},
        16,
    )
    squared_relu = [
        (
            f"{package}.squared_relu",
            name,
            {**pointers, "n_elements": "i64", "BLOCK_SIZE": "constexpr"},
            {"BLOCK_SIZE": 1024},
            4,
        )
        for name, pointers in [
            ("_squared_relu_forward_kernel", {"x_ptr": "*bf16", "y_ptr": "*bf16"}),
            ("_squared_relu_backward_kernel", {"x_ptr": "*bf16", "grad_y_ptr": "*bf16", "grad_x_ptr": "*bf16"}),
        ]
    ]
    kernels = [cross_entropy, *squared_relu]
    for config in (PRESETS["15b"], PRESETS["340b"]):
        block_size, num_warps = row_block_settings(config.hidden_size)
        kernels += [
            (
                f"{package}.layer_norm_1p",
                "_layer_norm_1p_forward_kernel",
                {
                    "x_ptr": "*bf16",
                    "y_ptr": "*bf16",
                    "weight_ptr": "*bf16",
                    "bias_ptr": "*bf16",
                    "mean_ptr": "*fp32",
                    "rstd_ptr": "*fp32",
                    "n_cols": "i32",
                    "eps": "fp32",
                    "BLOCK_SIZE": "constexpr",
                },
                {"BLOCK_SIZE": block_size},
                num_warps,
            ),
            (
                f"{package}.layer_norm_1p",
                "_layer_norm_1p_backward_kernel",
                {
                    "grad_y_ptr": "*bf16",
                    "x_ptr": "*bf16",
                    "weight_ptr": "*bf16",
                    "mean_ptr": "*fp32",
                    "rstd_ptr": "*fp32",
                    "grad_x_ptr": "*bf16",
                    "grad_weight_partial_ptr": "*fp32",
                    "grad_bias_partial_ptr": "*fp32",
                    "n_rows": "i32",
                    "n_cols": "i32",
                    "rows_per_program": "i32",
                    "BLOCK_SIZE": "constexpr",
                },
                {"BLOCK_SIZE": block_size},
                num_warps,
            ),
            (
                f"{package}.partial_rope",
                "_partial_rope_kernel",
                {
                    "q_ptr": "*bf16",
                    "k_ptr": "*bf16",
                    "q_out_ptr": "*bf16",
                    "k_out_ptr": "*bf16",
                    "cos_ptr": "*fp32",
                    "sin_ptr": "*fp32",
                    "seq_len": "i32",
                    "n_q_heads": "i32",
                    "n_k_heads": "i32",
                    "head_dim": "i32",
                    "half_rotary": "i32",
                    "sin_sign": "fp32",
                    "BLOCK_Q_HEADS": "constexpr",
                    "BLOCK_K_HEADS": "constexpr",
                    "BLOCK_HALF": "constexpr",
                    "BLOCK_PASS": "constexpr",
                },
                {
                    "BLOCK_Q_HEADS": triton.next_power_of_2(config.num_heads),
                    "BLOCK_K_HEADS": triton.next_power_of_2(config.num_kv_heads),
                    "BLOCK_HALF": triton.next_power_of_2(config.rotary_dim // 2),
                    "BLOCK_PASS": triton.next_power_of_2(config.head_dim - config.rotary_dim),
                },
                4,
            ),
        ]
    return kernels


def test_every_kernel_compiles_for_h100_in_bf16(tmp_path):
    kernels = _kernels_at_nemotron_shapes()
    environment = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    environment["TRITON_CACHE_DIR"] = str(tmp_path)  # compile for real, not from an earlier run's cache
    result = subprocess.run(
        [sys.executable, "-c", COMPILE_ALL, json.dumps(kernels)],
        check=False,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(kernels) == 9
