"""wavesurrogate: small, fast neural surrogates of wave-equation simulators, measured against the solver."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wavesurrogate")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
