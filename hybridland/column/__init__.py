"""The column model and its builders: one daily step of one closure-exact column
(``ColumnModel``, ``bucket_day``), and the kinds of untrained model (``build_model``)."""

from .builders import (
    BUCKET_KINDS as BUCKET_KINDS,
    ET_LAWS as ET_LAWS,
    KIND_STRUCTURES as KIND_STRUCTURES,
    MODEL_KINDS as MODEL_KINDS,
    RUNOFF_LAWS as RUNOFF_LAWS,
    Structure as Structure,
    build_model as build_model,
)
from .model import ColumnModel as ColumnModel, bucket_day as bucket_day, day_fluxes as day_fluxes
