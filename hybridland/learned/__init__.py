"""Learned submodels (Equinox) that plug into the column model through the physics interfaces,
the regional parameter network, and the pure data-driven LSTM peer."""

from .dynamic import DailyParameterLSTM as DailyParameterLSTM
from .flax_adapter import FlaxRunoff as FlaxRunoff, FlaxStressET as FlaxStressET
from .lstm import LSTMRunoff as LSTMRunoff
from .monotone import MonotoneRunoff as MonotoneRunoff, MonotoneStressET as MonotoneStressET
from .networks import (
    MLPRunoff as MLPRunoff,
    MLPStressET as MLPStressET,
    ParameterNetwork as ParameterNetwork,
)
