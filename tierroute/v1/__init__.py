"""Generated gRPC contracts of tierroute (package ``tierroute.v1``); regenerate with ``make proto``."""
