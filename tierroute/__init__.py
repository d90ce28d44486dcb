"""tierroute: LLM inference with tiered routing.

The shared runtime lives here (settings, logging, errors, the gRPC server bootstrap); the
generated contracts live in :mod:`tierroute.v1`. Services import this package, never each other.
"""

__version__ = "0.1.0"
