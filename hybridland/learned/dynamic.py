"""Time-varying physical parameters from a sequence network (the dynamic parameterisation of
differentiable HBV models, Feng et al. 2022, WRR 58, e2022WR032404; neuralhydrology's hybrid
of an LSTM and a conceptual bucket).

``DailyParameterLSTM`` reads one column's forcing, day by day, through stacked LSTM layers (the
same scaled inputs and static attributes as the data-driven ``LSTMRunoff``) and a linear head
that gives, for every day, one unconstrained value per named parameter (and per component).
Each value is an offset from the logit of the parameter's default and passes through the same
sigmoid into its ``PARAMETER_BOUNDS`` range as every other parameter, so whatever the weights,
every day's parameter is physically valid and the bucket still closes its balance.

The head starts with small weights (``HEAD_SCALE``), so an untrained network gives parameters
close to their defaults that still differ a little between components.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._containers import Forcing
from .._custom_types import FloatArray
from .._params import (
    CAPACITY_PARAMETERS,
    PARAMETER_BOUNDS,
    ROUTING_PARAMETERS,
    AbstractDailyParameters,
    bounded,
    default_logit,
)
from .lstm import N_DYNAMIC_INPUTS, lstm_cells, run_cells, sequence_inputs
from ._precision import full_precision

HEAD_SCALE = 0.1
"""Factor on the head's initial (uniform) weights."""


class DailyParameterLSTM(AbstractDailyParameters):
    """Day-varying values of ``names`` from an LSTM over the forcing and static attributes.

    **Fields:** ``cells`` (``depth`` LSTM layers of ``width`` units), ``head`` (linear,
    ``width -> len(names) x components``), ``names``, ``components``, ``n_attributes``.
    """

    cells: tuple[eqx.nn.LSTMCell, ...]
    head: eqx.nn.Linear
    names: tuple[str, ...] = eqx.field(static=True)
    components: int = eqx.field(static=True)
    n_attributes: int = eqx.field(static=True)

    def __init__(
        self,
        names,
        n_attributes: int = 0,
        width: int = 64,
        depth: int = 1,
        components: int = 1,
        *,
        key,
    ):
        unknown = [n for n in names if n not in PARAMETER_BOUNDS]
        if unknown or not names:
            raise ValueError(
                f"DailyParameterLSTM needs parameter names from PARAMETER_BOUNDS, got {list(names)}."
            )
        routed = [n for n in names if n in ROUTING_PARAMETERS]
        if routed:
            raise ValueError(
                f"DailyParameterLSTM cannot vary {routed} by day: a column routes its runoff "
                "through one unit hydrograph for the whole run. Leave them out of the daily "
                "parameters (train them as static parameters instead)."
            )
        capacity = [n for n in names if n in CAPACITY_PARAMETERS]
        if capacity:
            raise ValueError(
                f"DailyParameterLSTM cannot vary {capacity} by day: the soil store holds mm of "
                "water, so a capacity that fell from one day to the next would spill water no "
                "input brought. Leave them out of the daily parameters (train them as static "
                "parameters instead)."
            )
        self.names = tuple(names)
        self.components = components
        self.n_attributes = n_attributes
        *cell_keys, head_key = jax.random.split(key, depth + 1)
        self.cells = lstm_cells(N_DYNAMIC_INPUTS + n_attributes, width, cell_keys)
        head = eqx.nn.Linear(width, len(self.names) * components, key=head_key)
        self.head = eqx.tree_at(
            lambda h: (h.weight, h.bias), head, (head.weight * HEAD_SCALE, jnp.zeros_like(head.bias))
        )

    @full_precision
    def __call__(self, forcing: Forcing, pet: FloatArray) -> dict[str, FloatArray]:
        n = 0 if forcing.attributes is None else forcing.attributes.shape[-1]
        if n != self.n_attributes:
            raise ValueError(
                f"DailyParameterLSTM was built for {self.n_attributes} static attributes but the "
                f"forcing carries {n}; build it with n_attributes={n}."
            )
        dtype = forcing.precip.dtype
        top = run_cells(self.cells, sequence_inputs(forcing, pet))
        out = jax.vmap(self.head)(top).astype(dtype)
        out = out.reshape(out.shape[0], len(self.names), self.components)
        values = {}
        for i, name in enumerate(self.names):
            u = default_logit(name) + out[:, i, :]
            values[name] = bounded(name, u if self.components > 1 else u[:, 0])
        return values
