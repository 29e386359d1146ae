"""Errors of the raster path that a caller can fix by changing the request.

Plain exceptions (no HTTP here); the kserve components map them to V2 errors:
BadInput -> 400 / INVALID_ARGUMENT, OverBudget -> 413 / RESOURCE_EXHAUSTED.
"""


class BadInput(ValueError):
    """The request is malformed or does not fit the model (400)."""


class OverBudget(BadInput):
    """The raster is larger than one request may be (413)."""
