"""Building blocks shared by the model families (each lives here once)."""

from momentloc.models.layers.attention import MultiHeadAttention
from momentloc.models.layers.frame_pool import FrameAvgPool
from momentloc.models.layers.masking import masked_max, masked_mean, masked_softmax
from momentloc.models.layers.mlp import MLP
from momentloc.models.layers.position import (
    LearnedPositionalEncoding,
    SinusoidalPositionalEncoding,
    sinusoidal_table,
)
from momentloc.models.layers.rnn import RNNEncoder

__all__ = ["MLP", "FrameAvgPool", "LearnedPositionalEncoding", "MultiHeadAttention", "RNNEncoder",
           "SinusoidalPositionalEncoding", "masked_max", "masked_mean", "masked_softmax",
           "sinusoidal_table"]
