"""Learned submodels (Equinox) that plug into the column model through the physics interfaces,
and the regional parameter network."""

from .networks import (
    MLPRunoff as MLPRunoff,
    MLPStressET as MLPStressET,
    ParameterNetwork as ParameterNetwork,
)
