"""MLflow's error answers: {"error_code", "message"} with MLflow's codes and HTTP statuses.

A domain error of the registry becomes the MLflow code that means the same thing. Nothing here answers a 5xx:
MLflow's INVALID_STATE is a 500 (its client would retry), so a conflict with the registry's state is
RESOURCE_CONFLICT (409).
"""

from __future__ import annotations

from core.exceptions import Conflict, DomainError, Forbidden, InvalidInput, NotFound, Unprocessable

INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
BAD_REQUEST = "BAD_REQUEST"
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
RESOURCE_CONFLICT = "RESOURCE_CONFLICT"
PERMISSION_DENIED = "PERMISSION_DENIED"
UNAUTHENTICATED = "UNAUTHENTICATED"
ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"
REQUEST_LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"

# The HTTP status MLflow's server answers each code with (mlflow/exceptions.py).
STATUS = {
    INVALID_PARAMETER_VALUE: 400,
    BAD_REQUEST: 400,
    RESOURCE_DOES_NOT_EXIST: 404,
    RESOURCE_ALREADY_EXISTS: 400,
    RESOURCE_CONFLICT: 409,
    PERMISSION_DENIED: 403,
    UNAUTHENTICATED: 401,
    ENDPOINT_NOT_FOUND: 404,
    REQUEST_LIMIT_EXCEEDED: 429,
}


class MlflowError(Exception):
    """An answer in MLflow's error shape."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return STATUS[self.code]

    def body(self) -> dict:
        return {"error_code": self.code, "message": self.message}


def invalid(message: str) -> MlflowError:
    return MlflowError(INVALID_PARAMETER_VALUE, message)


def from_domain(error: DomainError) -> MlflowError:
    """The MLflow answer for a refusal of the registry's services."""
    if isinstance(error, NotFound):
        return MlflowError(RESOURCE_DOES_NOT_EXIST, error.detail)
    if isinstance(error, Forbidden):
        return MlflowError(PERMISSION_DENIED, error.detail)
    if isinstance(error, InvalidInput | Unprocessable):
        return MlflowError(INVALID_PARAMETER_VALUE, error.detail)
    if isinstance(error, Conflict):
        if error.type == "duplicate-name":
            return MlflowError(RESOURCE_ALREADY_EXISTS, error.detail)
        return MlflowError(RESOURCE_CONFLICT, error.detail)
    return MlflowError(BAD_REQUEST, error.detail)
