"""Parallelism and memory savings applied to a plain :class:`~corpusmill.trainer.model.Nemotron` from outside.

As torchtitan does: per block, optional activation checkpointing, then optional ``torch.compile``,
then FSDP2's ``fully_shard``; the embedding is its own FSDP unit and the root holds the final norm and
the output head. On a GPU the policy all-gathers bf16 parameters and reduce-scatters fp32 gradients
(the optimizer keeps fp32 master weights); on CPU (gloo, tests) everything stays fp32.
The checkpoint wrapper and ``Module.compile`` leave parameter names as they were, so checkpoints do
not depend on these choices.
"""

from __future__ import annotations

import torch
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from corpusmill.trainer.model import Nemotron


def mixed_precision_policy(device: torch.device) -> MixedPrecisionPolicy:
    if device.type == "cuda":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def parallelize(
    model: Nemotron,
    mesh: DeviceMesh,
    *,
    activation_checkpointing: bool = False,
    compile: bool = False,
) -> Nemotron:
    """Shard ``model`` over ``mesh`` in place (and return it)."""
    policy = mixed_precision_policy(torch.device(mesh.device_type))
    fully_shard(model.embed_tokens, mesh=mesh, mp_policy=policy)
    last = len(model.layers) - 1
    for index, block in enumerate(model.layers):
        if activation_checkpointing:
            block = checkpoint_wrapper(block, preserve_rng_state=False)
        if compile:
            block.compile()
        # The last block's parameters are needed again first in the backward: keep them gathered.
        fully_shard(block, mesh=mesh, mp_policy=policy, reshard_after_forward=index < last)
        model.layers[index] = block
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model
