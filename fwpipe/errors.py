"""One root exception and a subclass per failure a user can hit.

Every message says what is wrong, where, and ends with a hint on what to do. The CLI turns
any FwpipeError into a single `Error: ...` line and exit code 1; library code never prints.
"""


class FwpipeError(Exception):
    """Root of every error fwpipe raises on purpose."""

    def __init__(self, message: str, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(f"{message} (hint: {hint})" if hint else message)

    def __reduce__(self):
        # rebuilt from (message, hint), not from the joined text: an error raised in a worker
        # process or a Ray task reaches the CLI as the same one line
        return (type(self), (self.message, self.hint))


class InputNotFoundError(FwpipeError):
    """A path, glob or dataset that is not there."""


class InputFormatError(FwpipeError):
    """An input that exists but cannot be read: not parquet, truncated, wrong schema."""


class ShardFormatError(FwpipeError):
    """A token shard whose header or size is wrong."""


class DatasetMismatchError(FwpipeError):
    """An output directory or checkpoint that belongs to a different dataset or inputs."""


class ConfigError(FwpipeError):
    """A config file, key or value that is wrong."""


class BudgetError(FwpipeError):
    """A token budget that cannot be met or makes no sense."""


class OutputError(FwpipeError):
    """Writing output failed (disk full, permissions)."""


class DiskSpaceError(OutputError):
    """Too little free disk for what a command is about to write, found before it writes it."""


class DependencyError(FwpipeError):
    """An optional dependency (torch) that is not installed."""


class RemoteError(FwpipeError):
    """A URL input that cannot be fetched: access denied, a failing server, a file changed mid-read."""


class DivergedError(FwpipeError):
    """Training whose loss or weights stopped being finite numbers."""


class ClusterError(FwpipeError):
    """A Ray cluster that cannot be reached, loses a unit for good, or lacks storage every node sees."""
