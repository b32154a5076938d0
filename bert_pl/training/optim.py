"""Optimizers and schedules: AdamW/LAMB with BERT's weight-decay exclusions, linear warmup then linear decay."""
from __future__ import annotations

import inspect
from typing import Callable, Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

NO_DECAY = ("bias", "LayerNorm", "layer_norm")


def param_groups(model: torch.nn.Module, weight_decay: float):
    """Two groups: decayed weights, and biases + LayerNorm parameters (no decay), as in Google's optimizer."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if any(k in name for k in NO_DECAY) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: torch.nn.Module, optimizer: Callable, device: torch.device, grad_scaler: bool = False):
    """`optimizer` is a partial from the Hydra config (`_partial_: true`); its weight_decay applies to group 1.
    `grad_scaler`: fp16 mixed precision, whose scaler must unscale before clipping, which a fused step would do
    internally (Lightning refuses that pair): no fused step then."""
    kwargs = dict(getattr(optimizer, "keywords", {}))
    weight_decay = kwargs.pop("weight_decay", 0.0)
    factory = getattr(optimizer, "func", optimizer)
    if device.type in ("cuda", "cpu") and "fused" in inspect.signature(factory).parameters and "fused" not in kwargs \
            and not grad_scaler:
        kwargs["fused"] = True  # one kernel for the whole update (torch has fused AdamW on GPU and CPU)
    return factory(param_groups(model, weight_decay), **kwargs)


def linear_warmup_decay(optimizer, total_steps: int, warmup_steps: int = 0, warmup_ratio: float = 0.0):
    """lr * step/warmup during warmup (0 at step 0, as Google's and transformers'), then linearly down to 0 at
    `total_steps`, the same curve as transformers' get_linear_schedule_with_warmup. (Google's polynomial decay runs
    from step 0, so its peak right after warmup is (1 - warmup_ratio) * lr; the paper's numbers come from both.)"""
    warmup = warmup_steps or int(warmup_ratio * total_steps)
    total = max(total_steps, warmup + 1)

    def factor(step: int) -> float:
        if step < warmup:
            return step / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return LambdaLR(optimizer, factor)


class Lamb(torch.optim.Optimizer):
    """LAMB (You et al., 2019, Algorithm 2): Adam's update, rescaled per layer by ||w|| / ||update||.

    Bias correction as in the paper; the trust ratio is 1 where either norm is zero."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.01):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                state["step"] += 1
                m, v, t = state["m"], state["v"], state["step"]
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                update = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + group["eps"])
                if group["weight_decay"]:
                    update = update + group["weight_decay"] * p
                w_norm, u_norm = p.norm(), update.norm()
                trust = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
                p.add_(update * trust, alpha=-group["lr"])
        return loss
