"""One-hidden-layer ReLU networks, batched over independent runs.

    f_theta(x) = sum_j a_j relu(w_j . x + b_j) + v . x + c

with an optional skip (affine) term ``(v, c)``. Parameters of B runs are stacked along a leading axis:
``a, b: [B, m]``, ``w: [B, m, d]``, ``v: [B, d]``, ``c: [B]``. Runs of different widths share one tensor
program through ``mask: [B, m]`` (0 for the neurons a run does not have; they stay exactly zero).

The weight-decay penalty ``1/2 sum_j (a_j^2 + |w_j|^2 + b_j^2)`` is, at balance
(``|a_j| = |(w_j, b_j)|``), the variation norm ``sum_j |a_j| |(w_j, b_j)|``; leaving ``b_j`` out gives the
bias-free cost. References: Savarese et al. (``savarese2019infinite``), Boursier & Flammarion
(``boursier2023penalising``), Park et al. (``park2023minimum``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ShallowNet:
    a: torch.Tensor  # [B, m]
    w: torch.Tensor  # [B, m, d]
    b: torch.Tensor  # [B, m]
    v: torch.Tensor | None = None  # [B, d] skip slope (None: no affine term)
    c: torch.Tensor | None = None  # [B] skip offset
    mask: torch.Tensor | None = None  # [B, m] 1 for existing neurons

    @property
    def tensors(self) -> list[torch.Tensor]:
        return [t for t in (self.a, self.w, self.b, self.v, self.c) if t is not None]

    @property
    def batch(self) -> int:
        return self.a.shape[0]

    @property
    def width(self) -> int:
        return self.a.shape[1]

    def requires_grad_(self, flag: bool = True) -> ShallowNet:
        for t in self.tensors:
            t.requires_grad_(flag)
        return self


def init(
    batch: int,
    width: int,
    dim: int = 1,
    *,
    scale: float | torch.Tensor = 1.0,
    skip: bool = False,
    widths: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> ShallowNet:
    """Gaussian initialisation: ``w, b ~ N(0, scale^2)``, ``a ~ N(0, scale^2 / m)``; skip term zero.

    ``scale`` may be a ``[B]`` tensor (e.g. standard vs small initialisation in one batch); ``widths``
    (``[B]`` ints <= ``width``) masks each run down to its own width.
    """
    if width <= 0 or dim <= 0 or batch <= 0:
        raise ValueError(f"invalid network size: batch={batch}, width={width}, dim={dim} must be > 0")
    kw = dict(dtype=dtype, device=device)
    s = torch.as_tensor(scale, **kw)
    if s.ndim == 1:
        s = s.reshape(-1, 1)  # one scale per run
    w = torch.randn(batch, width, dim, generator=generator, **kw) * (s.unsqueeze(-1) if s.ndim else s)
    b = torch.randn(batch, width, generator=generator, **kw) * s
    a = torch.randn(batch, width, generator=generator, **kw) * s / width**0.5
    mask = None
    if widths is not None:
        widths = torch.as_tensor(widths, device=device)
        if (widths <= 0).any() or (widths > width).any():
            raise ValueError(f"invalid widths {widths.tolist()}: each must lie in 1..{width}")
        mask = (torch.arange(width, device=device)[None, :] < widths[:, None]).to(dtype)
        a, b, w = a * mask, b * mask, w * mask.unsqueeze(-1)
    v = torch.zeros(batch, dim, **kw) if skip else None
    c = torch.zeros(batch, **kw) if skip else None
    return ShallowNet(a, w, b, v, c, mask)


def forward(net: ShallowNet, x: torch.Tensor) -> torch.Tensor:
    """Outputs ``[B, n]`` for inputs ``x`` of shape ``[n, d]`` (shared) or ``[B, n, d]`` (per run)."""
    if x.ndim == 2:
        pre = torch.einsum("nd,bmd->bnm", x, net.w)
    else:
        pre = torch.einsum("bnd,bmd->bnm", x, net.w)
    out = torch.einsum("bnm,bm->bn", torch.relu(pre + net.b[:, None, :]), net.a)
    if net.v is not None:
        lin = x @ net.v.T if x.ndim == 2 else torch.einsum("bnd,bd->bn", x, net.v)
        out = out + (lin.T if x.ndim == 2 else lin) + net.c[:, None]
    return out


def penalty(net: ShallowNet, *, include_bias: bool = True) -> torch.Tensor:
    """Per-run weight decay ``1/2 sum_j (a_j^2 + |w_j|^2 [+ b_j^2])`` (the skip term is free)."""
    r = net.a.pow(2).sum(1) + net.w.pow(2).sum((1, 2))
    if include_bias:
        r = r + net.b.pow(2).sum(1)
    return 0.5 * r


def variation_norm(net: ShallowNet, *, include_bias: bool = True) -> torch.Tensor:
    """Per-run ``sum_j |a_j| |(w_j, b_j)|`` (or ``|a_j| |w_j|``): the penalty after optimal rescaling."""
    inner = net.w.pow(2).sum(-1)
    if include_bias:
        inner = inner + net.b.pow(2)
    return (net.a.abs() * inner.sqrt()).sum(1)


def kinks_1d(net: ShallowNet, *, threshold: float = 1e-6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For scalar inputs: per run, the kink positions ``-b_j / w_j`` and slope jumps ``a_j |w_j|`` of
    the neurons with ``|a_j w_j| > threshold`` (unsorted, not merged)."""
    if net.w.shape[-1] != 1:
        raise ValueError("kinks_1d needs scalar inputs (d = 1)")
    w = net.w[..., 0]
    jump = net.a * w.abs()
    out = []
    for r in range(net.batch):
        keep = (jump[r].abs() > threshold) & (w[r] != 0)
        out.append((-net.b[r, keep] / w[r, keep], jump[r, keep]))
    return out
