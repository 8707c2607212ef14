"""Resumable stages the demo's parts share: shipped configs, freshness of outputs, a campaign made once."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from wavesurrogate.config.base import read_yaml
from wavesurrogate.errors import ConfigError, DataFileError

__all__ = ["find_config", "read_config", "fresh", "stage_campaign"]


def find_config(name: str) -> Path:
    """Path of a shipped config: in the package's ``configs`` (a link) or the repository's."""
    try:
        p = Path(str(resources.files("wavesurrogate") / "configs" / name))
        if p.is_file():
            return p
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover - odd installs
        pass
    p = Path(__file__).resolve().parents[3] / "configs" / name
    if p.is_file():
        return p
    raise ConfigError(f"demo: shipped config {name!r} not found (package configs/ or repository configs/)")


def read_config(name: str) -> dict[str, Any]:
    """A shipped YAML config as a mapping."""
    return read_yaml(find_config(name))


def fresh(out: Path, *inputs: Path) -> bool:
    """Whether ``out`` exists and is at least as new as every existing input."""
    if not out.exists():
        return False
    t = out.stat().st_mtime
    return all(t >= p.stat().st_mtime for p in inputs if p.exists())


def stage_campaign(campaign: dict[str, Any], out: Path, stem: str = "data") -> tuple[Path, str]:
    """Simulate ``campaign`` into ``out``/``stem``.h5 unless a complete file of this config is there."""
    from wavesurrogate.config.base import dump_yaml
    from wavesurrogate.data.campaign import run_campaign
    from wavesurrogate.data.cases import load_campaign
    from wavesurrogate.data.store import open_data
    from wavesurrogate.io import atomic_write_text

    cfg_path = out / ("campaign.yaml" if stem == "data" else f"{stem}_campaign.yaml")
    text = yaml.safe_dump(campaign, sort_keys=False)
    if not cfg_path.is_file() or cfg_path.read_text(encoding="utf-8") != text:
        atomic_write_text(cfg_path, text)
    data = out / f"{stem}.h5"
    want = dump_yaml(load_campaign(cfg_path))
    if data.is_file():
        try:
            with open_data(data) as f:
                if f.attrs.get("config_yaml") == want and bool(f.done.all()):
                    return data, "complete data file found"
        except DataFileError:
            pass
    overwrite = data.exists() and not (out / f"{stem}.h5.work").is_dir()
    run_campaign(cfg_path, data, overwrite=overwrite)
    return data, "simulated"
