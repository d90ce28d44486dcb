"""Generated gRPC contracts of tierroute (``tierroute.v1``); regenerate with ``make proto``."""
