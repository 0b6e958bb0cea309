"""Batched first-order optimisers with per-run hyperparameters.

A study stacks B independent runs along the leading axis of every parameter tensor. PyTorch's own
optimisers take one learning rate per parameter group; here every hyperparameter may be a tensor
with one entry per run (shape ``[B]``), so that a learning-rate or weight-decay sweep is still one
tensor program. Because each update is elementwise (Adam) or linear (GD, heavy ball) and the objective
is a sum over runs, the batched step equals B separate optimisers exactly.

Weight decay is *coupled* (added to the gradient, as in ``torch.optim.SGD``/``Adam``'s
``weight_decay``), i.e. it is the gradient of ``wd/2 * ||theta||^2``; pass ``decay_mask`` to leave some
entries (e.g. biases) out.

References: Kingma & Ba, Adam (``kingma2015adam``); Polyak's heavy ball.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

Method = Literal["gd", "momentum", "adam"]


def per_run(x: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or a ``[B]`` tensor of hyperparameters against ``like`` (``[B, ...]``)."""
    t = torch.as_tensor(x, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        return t
    if t.shape[0] != like.shape[0]:
        raise ValueError(f"per-run hyperparameter has {t.shape[0]} entries for {like.shape[0]} runs")
    return t.reshape(-1, *([1] * (like.ndim - 1)))


@dataclass
class BatchedOptimizer:
    """GD, heavy-ball momentum or Adam over a list of ``[B, ...]`` parameter tensors.

    Args:
        params: tensors updated in place (they need not require grad; pass gradients to ``step``).
        method: ``"gd"``, ``"momentum"`` (heavy ball: ``v <- mu v + g; theta <- theta - lr v``) or
            ``"adam"`` (bias-corrected, as ``torch.optim.Adam``).
        lr, wd, momentum, beta1, beta2, eps: scalars or ``[B]`` tensors.
        decay_mask: per parameter, whether weight decay applies to it (default: all).
    """

    params: list[torch.Tensor]
    method: Method = "gd"
    lr: float | torch.Tensor = 1e-2
    wd: float | torch.Tensor = 0.0
    momentum: float | torch.Tensor = 0.9
    beta1: float | torch.Tensor = 0.9
    beta2: float | torch.Tensor = 0.999
    eps: float = 1e-8
    decay_mask: list[bool] | None = None
    t: int = 0
    state: list[dict[str, torch.Tensor]] = field(default_factory=list)
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.method not in ("gd", "momentum", "adam"):
            raise ValueError(f"invalid method={self.method!r}: allowed values are 'gd', 'momentum', 'adam'")
        lr = torch.as_tensor(self.lr)
        if not torch.isfinite(lr).all() or (lr <= 0).any():
            raise ValueError(f"invalid lr={self.lr!r}: the learning rate must be finite and > 0")
        if (torch.as_tensor(self.wd) < 0).any():
            raise ValueError(f"invalid wd={self.wd!r}: weight decay must be >= 0")
        if self.decay_mask is None:
            self.decay_mask = [True] * len(self.params)
        self.state = [{} for _ in self.params]

    def _hyper(self, name: str, i: int, p: torch.Tensor) -> torch.Tensor:
        """``per_run(getattr(self, name), p)``, built once per parameter and value (a schedule that
        assigns a new value, e.g. ``opt.lr = ...``, is picked up at the next step)."""
        value = getattr(self, name)
        hit = self._cache.get((name, i))
        if hit is None or hit[0] is not value:
            hit = (value, per_run(value, p))
            self._cache[(name, i)] = hit
        return hit[1]

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        self.t += 1
        for i, (p, g, st, decay) in enumerate(zip(self.params, grads, self.state, self.decay_mask)):
            if decay:
                g = g + self._hyper("wd", i, p) * p
            lr = self._hyper("lr", i, p)
            if self.method == "gd":
                p.sub_(lr * g)
            elif self.method == "momentum":
                v = st.get("v")
                v = g.clone() if v is None else self._hyper("momentum", i, p) * v + g
                st["v"] = v
                p.sub_(lr * v)
            else:
                b1, b2 = self._hyper("beta1", i, p), self._hyper("beta2", i, p)
                if "m" not in st:
                    st["m"], st["v"] = torch.zeros_like(p), torch.zeros_like(p)
                    # the step count as a float64 tensor, so that a compiled step (torch.compile)
                    # does not specialise on t; b^t is computed in float64 and rounded, as ``b ** t``
                    # with a Python int does (bit for bit in float64; in float32 PyTorch computes
                    # b^3 as b*b*b, so step 3 may differ by one unit in the last place)
                    st["t"] = torch.zeros((), dtype=torch.float64, device=p.device)
                    st["b1"], st["b2"] = b1.double(), b2.double()
                st["t"] += 1
                m = b1 * st["m"] + (1 - b1) * g
                v = b2 * st["v"] + (1 - b2) * g * g
                st["m"], st["v"] = m, v
                mhat = m / (1 - torch.pow(st["b1"], st["t"]).to(p.dtype))
                vhat = v / (1 - torch.pow(st["b2"], st["t"]).to(p.dtype))
                p.sub_(lr * mhat / (vhat.sqrt() + self.eps))
