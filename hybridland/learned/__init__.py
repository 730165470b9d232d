"""Learned submodels (Equinox) that plug into the column model through the physics interfaces."""

from .networks import MLPRunoff as MLPRunoff, MLPStressET as MLPStressET
