"""The model zoo: NiN variants, their FC-headed twins and AlexNet, behind one factory."""

from . import alexnet as _alexnet  # noqa: F401  (registers)
from . import nin as _nin  # noqa: F401  (registers)
from ._registry import (
    DEFAULT_MODEL,
    Classifier,
    ModelSpec,
    create_model,
    get_spec,
    list_models,
    parse_input_size,
    smallest_input_size,
)
from ._weights import build_model, load_checkpoint, load_weights
from .nin import DEFAULT_FC_WIDTH

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_FC_WIDTH",
    "Classifier",
    "ModelSpec",
    "create_model",
    "get_spec",
    "list_models",
    "parse_input_size",
    "smallest_input_size",
    "build_model",
    "load_checkpoint",
    "load_weights",
]
