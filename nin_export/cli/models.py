"""'models' and 'summary': what each registered model is."""

from __future__ import annotations

from typing import Any

import click

from .options import MODEL_SHAPE
from .render import print_models, print_summary


@click.command("models")
def models_cmd() -> None:
    """List every model with its parameters, MACs and input shape at its defaults.

    \b
    Example:
      nin-export models
    """
    from ..models import create_model, get_spec, list_models
    from ..models.summary import summarize

    rows = []
    for name in list_models():
        spec = get_spec(name)
        rows.append((name, spec, summarize(create_model(name), (spec.in_channels, *spec.input_size))))
    print_models(rows)


@click.command("summary")
@click.argument("model")
@MODEL_SHAPE
def summary_cmd(model: str, **kw: Any) -> None:
    """Per-layer table (output shape, params, MACs) and totals with weight bytes per precision.

    \b
    Example:
      nin-export summary nin-imagenet
      nin-export summary nin-cifar10 --num-classes 100 --input-size 48x48
    """
    from ..models.summary import WEIGHT_BYTES_RULE, summarize

    m = MODEL_SHAPE.build(model, None, kw)
    print_summary(model, m.input_shape, summarize(m, m.input_shape), WEIGHT_BYTES_RULE)
