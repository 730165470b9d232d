"""Learned submodels: small MLPs behind the same interfaces as the physical laws.

Each network sees the column's relative soil storage, the day's forcing (precipitation, mean
air temperature, PET) and the column's static attributes, and ends in a sigmoid, so its output
is a bounded stress factor or partition fraction. The bucket turns that into fluxes limited by
the water available, so the water balance closes whatever the weights are.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._containers import Fixed, Forcing
from .._custom_types import FloatArray
from .._params import (
    PARAMETER_BOUNDS, ROUTING_PARAMETERS, default_logit, unconstrained,
)
from ..physics.evaporation import AbstractET
from ..physics.runoff import AbstractRunoff
from ._precision import full_precision

FEATURE_SCALES = {"precip": 10.0, "t_mean": 20.0, "pet": 5.0}
"""Fixed divisors (mm day-1, degC, mm day-1) bringing the raw drivers to order one."""

N_DYNAMIC_FEATURES = 4
"""soil_rel, precip, t_mean, pet."""


def features(soil_rel, forcing: Forcing, pet, water_input=None) -> FloatArray:
    """Network input vector: relative storage, scaled drivers, then static attributes."""
    precip = forcing.precip if water_input is None else water_input
    dynamic = jnp.stack(
        [
            soil_rel,
            precip / FEATURE_SCALES["precip"],
            forcing.t_mean / FEATURE_SCALES["t_mean"],
            pet / FEATURE_SCALES["pet"],
        ]
    )
    if forcing.attributes is None:
        return dynamic
    return jnp.concatenate([dynamic, jnp.asarray(forcing.attributes, dynamic.dtype)])


class _BoundedMLP(eqx.Module):
    mlp: eqx.nn.MLP
    n_attributes: int = eqx.field(static=True)

    def __init__(self, n_attributes: int = 0, width: int = 16, depth: int = 2, *, key):
        self.n_attributes = n_attributes
        self.mlp = eqx.nn.MLP(
            in_size=N_DYNAMIC_FEATURES + n_attributes,
            out_size="scalar",
            width_size=width,
            depth=depth,
            activation=jnp.tanh,
            final_activation=jax.nn.sigmoid,
            key=key,
        )

    @full_precision
    def _apply(self, x: FloatArray, like: FloatArray) -> FloatArray:
        # Weights may be float32 inside a float64 run (or the reverse): compute in the weights'
        # dtype and return in the run's dtype so the scan carry keeps one dtype.
        weight_dtype = self.mlp.layers[0].weight.dtype
        return self.mlp(x.astype(weight_dtype)).astype(jnp.result_type(like))

    def _check(self, forcing: Forcing):
        n = 0 if forcing.attributes is None else forcing.attributes.shape[-1]
        if n != self.n_attributes:
            raise ValueError(
                f"{type(self).__name__} was built for {self.n_attributes} static attributes but "
                f"the forcing carries {n}; build it with n_attributes={n}."
            )


class MLPStressET(_BoundedMLP, AbstractET):
    """ET stress factor in (0, 1) from an MLP of storage, forcing and static attributes."""

    def stress(self, soil_rel, forcing, pet, params):
        self._check(forcing)
        return self._apply(features(soil_rel, forcing, pet), soil_rel)


class MLPRunoff(_BoundedMLP, AbstractRunoff):
    """Surface-runoff fraction in (0, 1) from an MLP of storage, water input, forcing, attributes."""

    def surface_fraction(self, soil_rel, water_input, forcing, pet, params):
        self._check(forcing)
        return self._apply(features(soil_rel, forcing, pet, water_input=water_input), soil_rel)


class ParameterNetwork(eqx.Module):
    """Regional parameter learning: physical parameters of a column from its static attributes.

    An MLP maps normalised attributes ``[n_attributes]`` to one unconstrained value per name in
    ``names`` (and per component, for a model of ``components`` parallel buckets; the routing
    parameters are one per column); ``hybridland.train`` puts each through a sigmoid into its
    ``PARAMETER_BOUNDS`` range, so every output is a physically valid parameter. Trained
    across basins, it gives parameters for basins it never saw.

    With ``storage_prior = (j, mean, std)`` (attribute ``j`` is the log of the mass-curve
    root-zone storage, normalised with that mean and standard deviation) the network does not
    predict ``root_depth``: each component's soil capacity ``1000 (theta_cap - theta_wp)
    root_depth`` is that basin's storage (Gao et al. 2014) times a factor of the component,
    ``exp(log_capacity_factor)``, learned but shared by every basin, and ``root_depth`` is the
    depth that gives that capacity at the default water contents (which are then not trained:
    they would only rescale the capacity). The capacity therefore follows each basin's own
    climate by construction, wherever the attributes extrapolate: the network cannot cancel it
    through the attributes (within the depth's bounds, 0.1-3 m: 20-600 mm).
    The factors start spread over 0.5-2 across the components (1 for one component).

    With ``attribute_bounds = (lower, upper)`` (per attribute, normalised units) the MLP sees
    each attribute clipped into that range (the training basins', ``model.clip_attributes``),
    so a basin outside the training climate gets the parameters of the nearest training climate
    rather than an extrapolation; the storage prior still reads the basin's own storage.

    The bounds and the storage's mean and standard deviation are ``Fixed``: traced, so that
    networks fitted to other basins share one compiled program, and never trained.
    """

    mlp: eqx.nn.MLP
    names: tuple[str, ...] = eqx.field(static=True)
    components: int = eqx.field(static=True, default=1)
    storage_index: int | None = eqx.field(static=True, default=None)
    """``j`` of ``storage_prior``: the attribute holding the log of the root-zone storage."""
    storage_scale: Fixed | None = None
    """``(mean, std)`` of ``storage_prior``, which de-normalise that attribute."""
    attribute_bounds: Fixed | None = None
    """``[2, n_attributes]``: the lower and upper bounds of the attributes the MLP sees."""
    log_capacity_factor: FloatArray | None = None

    def __init__(
        self, names, n_attributes: int, width: int = 32, depth: int = 2, components: int = 1,
        *, storage_prior: tuple[int, float, float] | None = None, attribute_bounds=None, key,
    ):
        self.names = tuple(names)
        self.components = components
        self.mlp = eqx.nn.MLP(
            n_attributes, sum(self._output_sizes(storage_prior is not None)), width, depth,
            activation=jax.nn.tanh, key=key,
        )
        dtype = self.mlp.layers[0].weight.dtype
        self.attribute_bounds = None
        if attribute_bounds is not None:
            lower, upper = (tuple(float(v) for v in np.ravel(b)) for b in attribute_bounds)
            if len(lower) != n_attributes or len(upper) != n_attributes or any(
                lo > hi for lo, hi in zip(lower, upper)
            ):
                raise ValueError(
                    f"attribute_bounds needs {n_attributes} lower and upper values with "
                    f"lower <= upper, got {attribute_bounds}."
                )
            self.attribute_bounds = Fixed(jnp.asarray([lower, upper], dtype))
        self.storage_index, self.storage_scale, self.log_capacity_factor = None, None, None
        if storage_prior is not None:
            j, mean, std = storage_prior
            if ("root_depth" not in self.names or not 0 <= j < n_attributes
                    or {"theta_cap", "theta_wp"} & set(self.names)):
                raise ValueError(
                    f"storage_prior {storage_prior} needs root_depth among the names, theta_cap "
                    f"and theta_wp not among them, and an attribute index below {n_attributes}."
                )
            self.storage_index = int(j)
            self.storage_scale = Fixed(jnp.asarray([float(mean), float(std)], dtype))
            spread = np.log(2.0) if components > 1 else 0.0
            self.log_capacity_factor = jnp.linspace(-spread, spread, components, dtype=dtype)

    def _output_sizes(self, storage_prior: bool) -> list[int]:
        """Outputs of the MLP per name (none for ``root_depth`` with the storage prior)."""
        return [
            0 if n == "root_depth" and storage_prior
            else 1 if n in ROUTING_PARAMETERS else self.components
            for n in self.names
        ]

    def _sizes(self) -> list[int]:
        return self._output_sizes(self.storage_index is not None)

    @full_precision
    def __call__(self, attributes: FloatArray) -> dict[str, FloatArray]:
        """Unconstrained values ``{name: [column]}`` (``[column, component]`` for a parameter
        of each component) from attributes ``[column, n_attributes]``."""
        weight_dtype = self.mlp.layers[0].weight.dtype
        seen = attributes.astype(weight_dtype)
        if self.attribute_bounds is not None:
            lower, upper = self.attribute_bounds.read().astype(weight_dtype)
            seen = jnp.clip(seen, lower, upper)
        out = jax.vmap(self.mlp)(seen)
        values, start = {}, 0
        for name, size in zip(self.names, self._sizes()):
            if size == 0:  # root_depth with the storage prior: from the capacity below
                continue
            block = out[:, start : start + size]
            values[name] = block if self.components > 1 and size > 1 else block[:, 0]
            start += size
        if self.storage_index is not None:
            values["root_depth"] = self._depth_for_storage(attributes)
        return values

    def _depth_for_storage(self, attributes: FloatArray) -> FloatArray:
        """Unconstrained offset (from the default) of the root depth that gives each column's
        components the capacity ``storage * exp(log_capacity_factor)`` at the default
        ``theta_cap`` and ``theta_wp``; ``[column]`` or ``[column, component]``."""
        dtype = self.log_capacity_factor.dtype
        mean, std = self.storage_scale.read().astype(dtype)
        log_storage = attributes[:, self.storage_index].astype(dtype) * std + mean
        storage = jnp.exp(log_storage)  # mm, [column]
        b = PARAMETER_BOUNDS
        available = b["theta_cap"].default - b["theta_wp"].default
        factor = jnp.exp(self.log_capacity_factor)
        if self.components > 1:
            capacity = storage[:, None] * factor[None, :]
        else:
            capacity = storage * factor[0]
        depth = capacity / (1000.0 * available)
        return unconstrained("root_depth", depth) - default_logit("root_depth")
