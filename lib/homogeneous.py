"""Positively homogeneous networks, batched over initialisations.

A network ``Phi(theta; x)`` is *L-homogeneous* when ``Phi(c theta; x) = c^L Phi(theta; x)`` for every
``c > 0``. Bias-free linear and ReLU networks of depth L are L-homogeneous. For labelled data
``(x_i, y_i)`` with ``y_i in {-1, +1}`` the *margins* are ``q_i(theta) = y_i Phi(theta; x_i)`` and the
*normalized margin* is

    gamma(theta) = min_i q_i(theta) / ||theta||^L,

which is scale invariant. Lyu & Li (``lyu2020gradient``) and Ji & Telgarsky (``ji2020directional``)
show that gradient flow on the exponential loss converges in direction to a KKT point of

    (P)   min 1/2 ||theta||^2   s.t.   q_i(theta) >= 1 for all i;

Vardi, Shamir & Srebro (``vardi2022margin``) ask when that KKT point is an optimum of (P).

Three families, each a frozen :class:`Family` describing the layout of a flat parameter vector
``theta`` of shape ``[B, P]`` (B independent runs stacked along the leading axis):

- ``fc(d, width, depth)``: fully connected linear ``Phi = W_L ... W_1 x`` (``W_1: [k, d]``,
  ``W_l: [k, k]``, ``W_L: [1, k]``);
- ``diagonal(d, depth)``: diagonal linear ``Phi = <u_1 * ... * u_L, x>`` (``u_l in R^d``);
- ``relu(d, width)``: depth-2 bias-free ReLU ``Phi = sum_j v_j relu(<w_j, x>)`` (``w: [m, d]``
  then ``v: [m]``).

Every family gives predictions ``[B, n]`` and their analytic Jacobian ``[B, n, P]`` (for ReLU the
derivative of ``relu`` at 0 is taken as 0, as in PyTorch).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

KINDS = ("fc", "diagonal", "relu")


@dataclass(frozen=True)
class Family:
    """A homogeneous architecture: ``kind`` in ``KINDS``, input dimension ``d``, ``depth``, ``width``."""

    kind: str
    d: int
    depth: int
    width: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"invalid kind={self.kind!r}: allowed values are {', '.join(map(repr, KINDS))}")
        if self.d < 1:
            raise ValueError(f"invalid d={self.d!r}: the input dimension must be >= 1")
        if self.depth < 2 or (self.kind == "relu" and self.depth != 2):
            raise ValueError(f"invalid depth={self.depth!r}: >= 2 (exactly 2 for relu)")
        if self.kind in ("fc", "relu") and self.width < 1:
            raise ValueError(f"invalid width={self.width!r}: {self.kind} networks need width >= 1")

    # -- layout -----------------------------------------------------------------------------
    @property
    def degree(self) -> int:
        """The homogeneity degree L: ``Phi(c theta) = c^L Phi(theta)``."""
        return self.depth

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        if self.kind == "fc":
            k, L = self.width, self.depth
            return [(k, self.d)] + [(k, k)] * (L - 2) + [(1, k)]
        if self.kind == "diagonal":
            return [(self.d,)] * self.depth
        return [(self.width, self.d), (self.width,)]

    @property
    def size(self) -> int:
        """P, the number of parameters of one run."""
        return sum(math.prod(s) for s in self.shapes)

    @property
    def layer_slices(self) -> list[slice]:
        """Slices of the flat vector holding each layer (for per-layer statements)."""
        out, i = [], 0
        for s in self.shapes:
            n = math.prod(s)
            out.append(slice(i, i + n))
            i += n
        return out

    def unpack(self, theta: torch.Tensor) -> list[torch.Tensor]:
        """Split ``theta: [B, P]`` into the layers ``[B, *shape]``."""
        if theta.ndim != 2 or theta.shape[1] != self.size:
            raise ValueError(f"theta has shape {tuple(theta.shape)}, expected [B, {self.size}]")
        return [theta[:, sl].reshape(theta.shape[0], *s) for sl, s in zip(self.layer_slices, self.shapes)]

    def pack(self, layers: list[torch.Tensor]) -> torch.Tensor:
        """Inverse of :meth:`unpack`."""
        return torch.cat([t.reshape(t.shape[0], -1) for t in layers], dim=1)

    # -- the network ----------------------------------------------------------------------------
    def predict(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """``Phi(theta; x_i)`` for ``X: [n, d]``, shape ``[B, n]``."""
        layers = self.unpack(theta)
        if self.kind == "fc":
            h = X.T.unsqueeze(0).expand(theta.shape[0], -1, -1)  # [B, d, n]
            for W in layers:
                h = W @ h
            return h[:, 0, :]
        if self.kind == "diagonal":
            return self.predictor(theta) @ X.T
        w, v = layers
        return torch.einsum("bmn,bm->bn", torch.relu(w @ X.T), v)

    def predictor(self, theta: torch.Tensor) -> torch.Tensor:
        """End-to-end linear predictor ``beta: [B, d]`` (linear families): ``Phi(theta; x) = <beta, x>``."""
        layers = self.unpack(theta)
        if self.kind == "diagonal":
            return torch.stack(layers, 0).prod(0)
        if self.kind == "fc":
            M = layers[0]
            for W in layers[1:]:
                M = W @ M
            return M[:, 0, :]
        raise ValueError("a ReLU network has no end-to-end linear predictor")

    def jacobian(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """``d Phi(theta; x_i) / d theta``, shape ``[B, n, P]`` (analytic); ``X`` is ``[n, d]`` or per run ``[B, n, d]``."""
        B = theta.shape[0]
        Xb = X.unsqueeze(0).expand(B, -1, -1) if X.ndim == 2 else X  # [B, n, d]
        n = Xb.shape[1]
        layers = self.unpack(theta)
        if self.kind == "diagonal":
            U = torch.stack(layers, 0)  # [L, B, d]
            parts = []
            for l in range(self.depth):
                others = torch.cat([U[:l], U[l + 1:]], 0).prod(0)  # [B, d]
                parts.append(others[:, None, :] * Xb)
            return torch.cat(parts, dim=2)
        if self.kind == "fc":
            # forward activations h_{l-1} (input of layer l) and backward row vectors g_l
            hs = [Xb]
            for W in layers[:-1]:
                hs.append(hs[-1] @ W.transpose(1, 2))
            g = [None] * self.depth
            g[-1] = torch.ones(B, 1, dtype=theta.dtype, device=theta.device)
            for l in range(self.depth - 2, -1, -1):
                g[l] = (g[l + 1].unsqueeze(1) @ layers[l + 1])[:, 0, :]
            parts = [(g[l][:, None, :, None] * hs[l][:, :, None, :]).reshape(B, n, -1) for l in range(self.depth)]
            return torch.cat(parts, dim=2)
        w, v = layers
        pre = torch.einsum("bmd,bnd->bnm", w, Xb)
        act = (pre > 0).to(theta.dtype)
        jw = (act * v[:, None, :])[..., None] * Xb[:, :, None, :]  # [B, n, m, d]
        return torch.cat([jw.reshape(B, n, -1), torch.relu(pre)], dim=2)

    def weighted_gradient(self, theta: torch.Tensor, X: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``sum_i c_i grad Phi(theta; x_i)`` for weights ``c: [B, n]``, shape ``[B, P]``, without forming
        the Jacobian. Linear networks: the gradient at the single input ``sum_i c_i x_i``; ReLU:
        ``d/dv_j = sum_i c_i relu(<w_j, x_i>)``, ``d/dw_j = v_j sum_i c_i 1[<w_j, x_i> > 0] x_i``."""
        if self.kind in ("fc", "diagonal"):
            xbar = (c @ X)[:, None, :]  # [B, 1, d]
            return self.jacobian(theta, xbar)[:, 0, :]
        w, v = self.unpack(theta)
        pre = w @ X.T  # [B, m, n]
        cb = c[:, :, None]  # [B, n, 1]
        gv = (torch.relu(pre) @ cb)[..., 0]
        gw = v[:, :, None] * (((pre > 0).to(theta.dtype) * c[:, None, :]) @ X)
        return torch.cat([gw.reshape(theta.shape[0], -1), gv], dim=1)

    def margins_and_pullback(
        self, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """The margins ``q_i = y_i Phi(theta; x_i)`` (``[B, n]``) and ``c -> sum_i c_i grad Phi(theta; x_i)``.

        The same quantities as :func:`margins` and :meth:`weighted_gradient`; for the ReLU family
        the pre-activations and activations are computed once and shared by both (the inner loop of
        :func:`lib.margins.train`: about 2.5x fewer kernel calls per step for small networks).
        """
        if self.kind != "relu":
            return margins(self, theta, X, y), lambda c: self.weighted_gradient(theta, X, c)
        w, v = self.unpack(theta)
        pre = w @ X.T  # [B, m, n]
        act = torch.relu(pre)
        q = (v.unsqueeze(1) @ act).squeeze(1) * y[None, :]

        def pullback(c: torch.Tensor) -> torch.Tensor:
            gv = (act @ c.unsqueeze(-1)).squeeze(-1)
            gw = v.unsqueeze(-1) * (((pre > 0).to(theta.dtype) * c.unsqueeze(1)) @ X)
            return torch.cat([gw.reshape(theta.shape[0], -1), gv], dim=1)

        return q, pullback

    def preactivations(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """ReLU pre-activations ``<w_j, x_i>``, shape ``[B, n, m]``."""
        if self.kind != "relu":
            raise ValueError("pre-activations are defined for the relu family")
        return torch.einsum("bmd,nd->bnm", self.unpack(theta)[0], X)


def fc(d: int, width: int, depth: int) -> Family:
    """Fully connected linear network of the given depth (``ji2020directional``)."""
    return Family("fc", d, depth, width)


def diagonal(d: int, depth: int) -> Family:
    """Diagonal linear network ``<u_1 * ... * u_L, x>`` (``vardi2022margin``; ``gunasekar2017implicit``)."""
    return Family("diagonal", d, depth, 0)


def relu(d: int, width: int) -> Family:
    """Depth-2 bias-free ReLU network ``sum_j v_j relu(<w_j, x>)`` (``vardi2022margin``)."""
    return Family("relu", d, 2, width)


# -- margins ---------------------------------------------------------------------------------------
def margins(fam: Family, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``q_i = y_i Phi(theta; x_i)``, shape ``[B, n]``."""
    return fam.predict(theta, X) * y[None, :]


def margin_jacobian(fam: Family, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``grad q_i(theta)``, shape ``[B, n, P]``."""
    return fam.jacobian(theta, X) * y[None, :, None]


def normalized_margin(fam: Family, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``gamma(theta) = min_i q_i / ||theta||^L``, shape ``[B]`` (scale invariant)."""
    q = margins(fam, theta, X, y)
    return q.min(dim=1).values / theta.norm(dim=1) ** fam.degree
