"""Sub-commands of the ``tierroute`` CLI; each module exposes ``register(subparsers)``."""
