"""User-facing errors: scripts turn these into one clear message and exit status 2."""


class SCCLError(Exception):
    """An error caused by the user's input (files, flags), not a bug in sccl."""


class DataError(SCCLError):
    """A data file is missing, unreadable or does not have the SHD layout."""


class ConfigError(SCCLError):
    """A command-line value is out of range or inconsistent with the data."""


class TrainingDiverged(SCCLError):
    """The loss became NaN or infinite: the run stops and is not counted as finished."""
