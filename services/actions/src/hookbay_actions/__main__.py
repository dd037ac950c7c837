"""``python -m hookbay_actions``: settings are read here, once, and passed down."""

from __future__ import annotations

import asyncio
import sys

from hookbay_common.grpc_server import PortInUse
from hookbay_common.logging import configure_logging
from hookbay_common.settings import ActionsSettings
from hookbay_common.tracing import configure_tracing


def main() -> None:
    settings = ActionsSettings()
    configure_logging(settings.log_level, settings.log_format, service="actions")
    configure_tracing("actions")
    from hookbay_actions.app import run

    try:
        asyncio.run(run(settings))
    except PortInUse as exc:
        print(f"hookbay-actions: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
