"""Loading configs: YAML → typed pydantic object, or a one-line ConfigError naming the field.

Every config model of the package sits in this package on the ``Strict`` base: ``config.campaign``
(``CampaignConfig``) and ``config.train`` (``TrainConfig``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from wavesurrogate.errors import ConfigError
from wavesurrogate.safeload import load_yaml

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, floats must be finite, objects are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, validate_default=True)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a YAML mapping from ``path`` (``wavesurrogate.safeload``: a regular file, bounded, duplicate keys
    refused); ConfigError for a missing, unreadable, special or non-mapping file."""
    path = Path(path)
    data = load_yaml(path, ConfigError, missing=f"config file not found: {path}")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


def format_validation_error(exc: ValidationError, source: str = "config") -> str:
    """One line naming the first offending field, e.g. ``config: grid.nx: Input should be greater than 0``."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
    msg = err.get("msg", "invalid value")
    if err.get("type") == "extra_forbidden":
        msg = "unknown key"
    inp = err.get("input")
    if isinstance(inp, float) and not math.isfinite(inp):
        msg = "must be a finite number"
    more = len(exc.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
    return f"{source}: {loc}: {msg}{tail}".replace("\n", " ")


def validate(model: type[M], data: dict[str, Any], source: str = "config") -> M:
    """Validate ``data`` into ``model``; ConfigError with one line on failure."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_config(path: str | Path, model: type[M]) -> M:
    """Read YAML at ``path`` and validate it into ``model`` (a Strict subclass)."""
    return validate(model, read_yaml(path), source=str(path))


def dump_yaml(cfg: BaseModel) -> str:
    """The resolved config as YAML text (JSON-compatible values only)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
