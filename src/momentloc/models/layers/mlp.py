"""Multi-layer perceptron."""

from __future__ import annotations

from torch import nn

from momentloc.models.layers.dropout import Dropout


class MLP(nn.Sequential):
    """``in -> hidden (xN, activation, dropout) -> out``; ``dims = [in, h1, ..., out]``."""

    def __init__(self, dims: list[int], activation: type[nn.Module] = nn.ReLU, dropout: float = 0.0,
                 final_activation: bool = False):
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            last = i == len(dims) - 2
            if not last or final_activation:
                layers.append(activation())
                if dropout > 0 and not last:
                    layers.append(Dropout(dropout))
        super().__init__(*layers)
