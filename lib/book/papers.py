"""The five papers of the book, one chapter each (bibliographic details in ``references.bib``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    chapter: str  # chapter stem in book/
    key: str  # bibliography key
    authors: str
    title: str
    venue: str
    topic: str


PAPERS = [
    Paper("01-single-neuron", "vardi2021implicit", "Vardi & Shamir",
          "Implicit Regularization in ReLU Networks with the Square Loss", "COLT 2021",
          "no explicit function of the parameters describes the bias of a single ReLU neuron; balancedness is all that survives for one hidden layer"),
    Paper("02-margin-maximization", "vardi2022margin", "Vardi, Shamir & Srebro",
          "On Margin Maximization in Linear and ReLU Networks", "NeurIPS 2022",
          "the KKT point that gradient flow reaches is often not even a local max-margin solution"),
    Paper("03-bias-penalty-sparsity", "boursier2023penalising", "Boursier & Flammarion",
          "Penalising the Biases in Norm Regularisation Enforces Sparsity", "NeurIPS 2023",
          "with the bias in the norm, minimal-norm ReLU interpolants in 1-D are unique and have few kinks"),
    Paper("04-explicit-penalty-adam", "zhao2022combining", "Zhao",
          "Combining Explicit and Implicit Regularization for Efficient Learning in Deep Networks", "NeurIPS 2022",
          "a scale-invariant rank penalty with Adam lets a depth-1 model complete matrices like a deep one"),
    Paper("05-known-regions", "park2023minimum", "Park, Pelakh & Wojtowytsch",
          "Minimum Norm Interpolation by Perceptra: Explicit Regularization and Implicit Bias", "NeurIPS 2023",
          "how shallow ReLU networks interpolate between known regions, with vanishing weight decay and without"),
]
