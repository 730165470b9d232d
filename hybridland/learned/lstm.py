"""A pure data-driven LSTM rainfall-runoff model: the peer without physics in the robustness study.

``LSTMRunoff`` maps each day's forcing and the basin's static attributes to that day's runoff
through stacked ``eqx.nn.LSTMCell`` layers and a linear head, sequence to sequence, as in
Kratzert et al. (2019, HESS 23, 5089, "Towards learning universal, regional, and local
hydrological behaviors via machine learning applied to large-sample datasets"). It has no
stores and no water balance: nothing ties its runoff to the precipitation, which is exactly what
the climate-shift study sets it against.

**Inputs per day** (fixed scalings, no statistics of any dataset hidden here; the static
attributes arrive already normalised with the run's training-basin statistics, saved in the
run's ``normalisation.json``):

- ``log1p(P)``, P in mm day-1 (precipitation is skewed; log1p keeps dry days at 0 and brings a
  100 mm storm to 4.6);
- ``PET / 5``, PET in mm day-1 from the model's PET law ``pet`` (as in ``ColumnModel``, so
  ``hybridland.solvers.check_forcing`` checks its inputs, and the bounded ``pet_coefficient``
  parameter scales it; at its default 1 for a run of this kind);
- ``T / 10``, T the daily mean air temperature in degC;
- then the ``n_attributes`` static attributes, the same every day.

**Output.** Runoff in mm day-1 is ``softplus(head(h))``: strictly positive and smooth, so no
negative flow is ever predicted, and unlike a ReLU the gradient never vanishes exactly, so a
basin whose prediction sank to zero (dry season, arid basins) can still be pulled back up.

**Initialisation.** Equinox's default uniform weights, except the forget-gate bias of every
layer, set to ``FORGET_BIAS`` = 3: the cell starts out remembering (f = sigmoid(3) = 0.95), the
usual choice for long hydrological memory (Gers et al. 2000; neuralhydrology's
``initial_forget_bias: 3``). Hidden and cell states start at zero on the first day of every
sequence; the warm-up days of a training window spin them up and are left out of the loss, as
for the bucket models.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._containers import Forcing
from .._custom_types import ColumnTime, FloatArray
from .._params import Params
from ..physics.pet import AbstractPET, GivenPET
from ._precision import full_precision

INPUT_SCALES = {"precip": "log1p(P)", "pet": 5.0, "t_mean": 10.0}
"""Fixed input transforms: log1p of precipitation (mm day-1), PET / 5 (mm day-1), T / 10 (degC)."""

N_DYNAMIC_INPUTS = 3
"""precip, PET, mean temperature."""

FORGET_BIAS = 3.0
"""Initial forget-gate bias of every LSTM layer."""


def dynamic_inputs(forcing: Forcing, pet: FloatArray) -> FloatArray:
    """Scaled drivers ``[..., 3]`` (see ``INPUT_SCALES``) for series of any shape."""
    return jnp.stack(
        [
            jnp.log1p(forcing.precip),
            pet / INPUT_SCALES["pet"],
            forcing.t_mean / INPUT_SCALES["t_mean"],
        ],
        axis=-1,
    )


def sequence_inputs(forcing: Forcing, pet: FloatArray) -> FloatArray:
    """Inputs ``[time, 3 + n_attributes]`` of one column: the scaled drivers
    (``dynamic_inputs``) and the static attributes, repeated every day."""
    x = dynamic_inputs(forcing, pet)
    if forcing.attributes is None:
        return x
    static = jnp.broadcast_to(forcing.attributes, (*x.shape[:-1], forcing.attributes.shape[-1]))
    return jnp.concatenate([x, static.astype(x.dtype)], axis=-1)


def _with_forget_bias(cell: eqx.nn.LSTMCell) -> eqx.nn.LSTMCell:
    # eqx.nn.LSTMCell splits its gates in the order input, forget, cell, output.
    h = cell.hidden_size
    return eqx.tree_at(lambda c: c.bias, cell, cell.bias.at[h : 2 * h].set(FORGET_BIAS))


def lstm_cells(n_inputs: int, width: int, keys) -> tuple[eqx.nn.LSTMCell, ...]:
    """One LSTM layer of ``width`` units per key, stacked (the first fed ``n_inputs`` values),
    each with its forget-gate bias at ``FORGET_BIAS``."""
    if len(keys) < 1:
        raise ValueError("An LSTM needs depth >= 1 layers, got 0.")
    sizes = [n_inputs] + [width] * (len(keys) - 1)
    return tuple(
        _with_forget_bias(eqx.nn.LSTMCell(size, width, key=k)) for size, k in zip(sizes, keys)
    )


@full_precision
def run_cells(cells: tuple[eqx.nn.LSTMCell, ...], x: FloatArray) -> FloatArray:
    """The top layer's hidden state ``[time, width]`` of stacked ``cells`` over inputs
    ``[time, n_inputs]``, from zero hidden and cell states (in the weights' dtype)."""
    weight_dtype = cells[0].weight_ih.dtype
    zero = jnp.zeros((cells[0].hidden_size,), weight_dtype)

    def day(carry, x_t):
        new = []
        for cell, hidden in zip(cells, carry, strict=True):
            hidden = cell(x_t, hidden)
            new.append(hidden)
            x_t = hidden[0]
        return tuple(new), x_t

    _, top = jax.lax.scan(day, tuple((zero, zero) for _ in cells), x.astype(weight_dtype))
    return top


class LSTMRunoff(eqx.Module):
    """Stacked LSTM (``depth`` layers of ``width`` units) and a linear head: daily runoff,
    mm day-1, from forcing and static attributes.

    **Fields:**

    - ``pet``: an ``AbstractPET`` law giving the PET input (default: PET given in the forcing).
    - ``cells``: the LSTM layers, the first fed the scaled inputs, each next one the hidden
      state of the one below.
    - ``head``: linear map from the top hidden state to the pre-softplus runoff.
    - ``n_attributes``: number of static attributes the forcing must carry.
    """

    pet: AbstractPET
    cells: tuple[eqx.nn.LSTMCell, ...]
    head: eqx.nn.Linear
    n_attributes: int = eqx.field(static=True)

    def __init__(
        self,
        n_attributes: int = 0,
        width: int = 64,
        depth: int = 1,
        *,
        pet: AbstractPET | None = None,
        key,
    ):
        if depth < 1:
            raise ValueError(f"An LSTM needs depth >= 1 layers, got {depth}.")
        self.n_attributes = n_attributes
        self.pet = GivenPET() if pet is None else pet
        *cell_keys, head_key = jax.random.split(key, depth + 1)
        self.cells = lstm_cells(N_DYNAMIC_INPUTS + n_attributes, width, cell_keys)
        self.head = eqx.nn.Linear(width, "scalar", key=head_key)

    @property
    def width(self) -> int:
        return self.cells[0].hidden_size

    @full_precision
    def column_runoff(self, forcing: Forcing, params: Params) -> FloatArray:
        """Runoff ``[time]`` (mm day-1) of one column: series ``[time]``, scalar ``params``,
        ``forcing.attributes`` ``[n_attributes]`` or None."""
        self._check(forcing)
        dtype = forcing.precip.dtype
        # Every PET law is elementwise in time for one column (lat is a scalar here).
        top = run_cells(self.cells, sequence_inputs(forcing, self.pet(forcing, params)))
        # The head is applied once to all days after the scan: one matrix product, not n_time.
        return jax.nn.softplus(jax.vmap(self.head)(top)).astype(dtype)

    def runoff(self, forcing: Forcing, params: Params | None = None) -> ColumnTime:
        """Runoff ``[column, time]`` (mm day-1) of ``forcing`` series ``[column, time]``;
        ``params`` per column or shared (only ``pet_coefficient`` is used; default
        ``Params.default``)."""
        n = forcing.precip.shape[0]
        dtype = forcing.precip.dtype
        if params is None:
            params = Params.default(n, dtype=dtype)
        params = jax.tree_util.tree_map(lambda p: jnp.asarray(p, dtype), params).broadcast(n)
        return eqx.filter_vmap(type(self).column_runoff, in_axes=(None, forcing.column_axes(), 0))(
            self, forcing, params
        )

    def _check(self, forcing: Forcing) -> None:
        n = 0 if forcing.attributes is None else forcing.attributes.shape[-1]
        if n != self.n_attributes:
            raise ValueError(
                f"LSTMRunoff was built for {self.n_attributes} static attributes but the forcing "
                f"carries {n}; build it with n_attributes={n}."
            )
