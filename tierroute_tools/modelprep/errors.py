"""Errors of model preparation."""

from __future__ import annotations

from tierroute.errors import FailedPreconditionError


class ModelPrepError(FailedPreconditionError):
    """A model could not be prepared: missing package, failed download, wrong checksum."""
