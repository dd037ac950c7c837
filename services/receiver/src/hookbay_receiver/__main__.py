"""``python -m hookbay_receiver``: settings are read here, once, and passed down."""

from __future__ import annotations

import asyncio
import sys

from hookbay_common.grpc_server import PortInUse
from hookbay_common.logging import configure_logging
from hookbay_common.settings import ReceiverSettings
from hookbay_common.tracing import configure_tracing


def main() -> None:
    settings = ReceiverSettings()
    configure_logging(settings.log_level, settings.log_format, service="receiver")
    configure_tracing("receiver")
    from hookbay_receiver.app import SchemaOutOfDate, run

    try:
        asyncio.run(run(settings))
    except (PortInUse, SchemaOutOfDate) as exc:
        print(f"hookbay-receiver: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
