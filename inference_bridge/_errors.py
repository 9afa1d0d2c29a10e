"""Errors of the inference bridge, as subclasses of the gateway's error tree.

::

    his_sdk.errors.NotFoundError
    └── ModelNotFoundError              (NOT_FOUND)
    his_sdk.errors.ResourceExhaustedError
    └── InputTooLargeError              (RESOURCE_EXHAUSTED)
    his_sdk.errors.UpstreamUnavailableError
    └── NoPlacementAvailableError       (UNAVAILABLE)
    his_sdk.errors.UpstreamDataError
    └── BackendRejectedError            (DATA_LOSS)
"""

from __future__ import annotations

import his_sdk.errors

__all__ = [
    "BackendRejectedError",
    "InputTooLargeError",
    "ModelNotFoundError",
    "NoPlacementAvailableError",
]


class ModelNotFoundError(his_sdk.errors.NotFoundError):
    """No model with that name (and version) in the catalog."""


class InputTooLargeError(his_sdk.errors.ResourceExhaustedError):
    """The encoded input exceeds the message cap of every placement that could serve it."""


class NoPlacementAvailableError(his_sdk.errors.UpstreamUnavailableError):
    """No placement of the model is healthy, admitted by routing policy and closed-circuit."""


class BackendRejectedError(his_sdk.errors.UpstreamDataError):
    """A backend refused the request or answered with tensors that do not match the schema."""
