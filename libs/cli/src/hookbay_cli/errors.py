"""The one error the CLI reports: a message for a single ``hookbay: ...`` line and an exit code."""

from __future__ import annotations


class CliError(Exception):
    """Printed by ``main`` as ``hookbay: <message>``; the process exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
