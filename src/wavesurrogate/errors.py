"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (config, data file, checkpoint, argument): one line, exit code 2."""

    exit_code = 2

    def __str__(self) -> str:  # always one line
        return " ".join(str(a) for a in self.args).replace("\n", " ").strip()


class ConfigError(UserError):
    """A config file or value is invalid."""


class DataFileError(UserError):
    """A data file is missing, unreadable, of another schema, or corrupted."""


class CheckpointError(UserError):
    """A run directory or checkpoint is missing, corrupted, unsafe, or of another architecture."""


class CFLError(ConfigError):
    """An explicit time step breaks the CFL stability bound."""


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


class ExportError(UserError):
    """A run cannot be exported (its model or task has no ONNX form), or an exported model is unusable."""
