"""Builders of untrained models: the laws and structure of each model kind, and
``build_model``, the one place where a configuration's names become a model (the command line,
the training pipeline and the studies all build through it).
"""

from __future__ import annotations

import dataclasses

import jax

from ..learned import (
    DailyParameterLSTM,
    LSTMRunoff,
    MLPRunoff,
    MLPStressET,
    MonotoneRunoff,
    MonotoneStressET,
)
from ..physics.evaporation import AbstractET, SoilMoistureStressET
from ..physics.pet import PET_LAWS
from ..physics.runoff import AbstractRunoff, PowerLawRunoff
from .model import ColumnModel


@dataclasses.dataclass(frozen=True)
class Structure:
    """The laws and the bucket structure of a model kind (``build_model``; every field can be
    set in a run configuration's ``model`` section)."""

    et_law: str = "threshold"
    """Name in ``ET_LAWS``."""
    runoff_law: str = "power"
    """Name in ``RUNOFF_LAWS``."""
    fast_reservoir: bool = False
    capillary_rise: bool = False
    nonlinear_drainage: bool = False
    infiltration_excess: bool = False
    groundwater_loss: bool = False
    routing_days: int = 0
    components: int = 1
    dynamic_params: tuple[str, ...] = ()
    """Parameters given a new value every day by a ``DailyParameterLSTM`` (none: no network)."""


KIND_STRUCTURES: dict[str, Structure] = {
    "physics": Structure(),
    "hybrid": Structure(et_law="mlp", runoff_law="mlp"),
    "sequence_hybrid": Structure(
        et_law="shaped",
        runoff_law="power",
        fast_reservoir=True,
        capillary_rise=True,
        routing_days=15,
        components=16,
        dynamic_params=("runoff_shape", "et_shape"),
    ),
}
"""Default structure of each bucket kind: ``physics`` (the basic bucket of physical laws),
``hybrid`` (the basic bucket with MLP ET stress and runoff partition) and ``sequence_hybrid``
(fast and slow flow paths, capillary rise, routing, parallel components, and the runoff and ET
shapes given every day by a sequence network, as in differentiable HBV models)."""


def _et_law(name, key, n_attributes, width, depth) -> AbstractET:
    if name == "mlp":
        return MLPStressET(n_attributes, width, depth, key=key)
    if name == "monotone":
        return MonotoneStressET(n_attributes, width, depth, key=key)
    return SoilMoistureStressET(shaped=name == "shaped")


def _runoff_law(name, key, n_attributes, width, depth) -> AbstractRunoff:
    if name == "mlp":
        return MLPRunoff(n_attributes, width, depth, key=key)
    if name == "monotone":
        return MonotoneRunoff(n_attributes, width, depth, key=key)
    return PowerLawRunoff()


ET_LAWS = ("threshold", "shaped", "mlp", "monotone")
"""ET stress laws by configuration name: the linear threshold stress, the same to the power
``et_shape``, an MLP, or a monotone network (0 at an empty store, never falling as the soil
wets, ``MonotoneStressET``)."""

RUNOFF_LAWS = ("power", "mlp", "monotone")
"""Runoff partition laws by configuration name: ``(S / Smax) ** runoff_shape``, an MLP, or a
monotone network (never falling as the soil wets or the input grows, ``MonotoneRunoff``)."""

MODEL_KINDS = (*KIND_STRUCTURES, "lstm")
"""Kinds of untrained model that ``build_model`` makes (the names used by the CLI and configs)."""

BUCKET_KINDS = tuple(KIND_STRUCTURES)
"""The kinds that are a ``ColumnModel`` (closure-exact bucket with stores and fluxes, run by
``simulate``); ``lstm`` is a pure data-driven runoff model without a water balance."""


def build_model(
    kind: str,
    *,
    pet: str = "given",
    key=None,
    n_attributes: int = 0,
    width: int = 16,
    depth: int = 2,
    dynamic_width: int = 64,
    dynamic_depth: int = 1,
    **structure,
) -> ColumnModel | LSTMRunoff:
    """An untrained model of a kind in ``MODEL_KINDS``: a ``ColumnModel`` with the
    ``KIND_STRUCTURES`` of ``kind`` (keywords ``structure`` override its fields), or ``lstm``
    (an ``LSTMRunoff`` of ``depth`` layers of ``width`` units). MLP laws have ``depth`` hidden
    layers of ``width`` units, the daily-parameter network ``dynamic_depth`` LSTM layers of
    ``dynamic_width``; networks get weights drawn from ``key`` and are fed ``n_attributes``
    static attributes; PET by the law named ``pet`` in ``PET_LAWS``."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"Unknown model kind {kind!r}; choose from {list(MODEL_KINDS)}.")
    pet_law = PET_LAWS[pet]()
    if key is None:
        key = jax.random.key(0)
    if kind == "lstm":
        return LSTMRunoff(n_attributes, width, depth, pet=pet_law, key=key)
    s = dataclasses.replace(KIND_STRUCTURES[kind], **structure)
    if s.et_law not in ET_LAWS:
        raise ValueError(f"Unknown ET law {s.et_law!r}; choose from {list(ET_LAWS)}.")
    if s.runoff_law not in RUNOFF_LAWS:
        raise ValueError(f"Unknown runoff law {s.runoff_law!r}; choose from {list(RUNOFF_LAWS)}.")
    k_et, k_runoff = jax.random.split(key)
    k_daily = jax.random.fold_in(key, 2)
    daily = None
    if s.dynamic_params:
        daily = DailyParameterLSTM(
            s.dynamic_params, n_attributes, dynamic_width, dynamic_depth, s.components,
            key=k_daily,
        )
    return ColumnModel(
        pet=pet_law,
        et=_et_law(s.et_law, k_et, n_attributes, width, depth),
        runoff=_runoff_law(s.runoff_law, k_runoff, n_attributes, width, depth),
        fast_reservoir=s.fast_reservoir,
        capillary_rise=s.capillary_rise,
        nonlinear_drainage=s.nonlinear_drainage,
        infiltration_excess=s.infiltration_excess,
        groundwater_loss=s.groundwater_loss,
        routing_days=s.routing_days,
        components=s.components,
        daily=daily,
    )
