"""Errors of the Shopify Admin API client.

Each carries the HTTP status, Shopify's ``errors`` value from the body (a string, a list or a
field -> messages mapping, as Shopify sends it), the ``X-Request-Id`` to quote to Shopify
support, and ``retryable``: whether trying the same call again later can help. None of them
carries a request header, so no access token can end up in a message or a log line.
"""

from __future__ import annotations

from typing import Any


class ShopifyError(Exception):
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: Any = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [self.message]
        if self.errors is not None:
            parts.append(f"errors: {self.errors}")
        if self.request_id:
            parts.append(f"request id: {self.request_id}")
        return "; ".join(parts)


class ShopifyRequestError(ShopifyError):
    """A 4xx (or an unexpected 3xx) the same request will get again: 400, 406, 409, 422…"""


class ShopifyAuthError(ShopifyRequestError):
    """401 (token invalid, revoked or expired) or 403 (missing scope, app not allowed)."""


class ShopifyNotFound(ShopifyRequestError):
    """404: the resource, or the shop itself, does not exist."""


class ShopifyShopUnavailable(ShopifyRequestError):
    """402 (shop frozen, payment required) or 423 (shop locked): nothing to do until the
    merchant acts."""


class ShopifyThrottled(ShopifyError):
    """Still rate limited after every retry the client allows."""

    retryable = True


class ShopifyServerError(ShopifyError):
    """5xx after every retry the client allows (or at once for a request unsafe to repeat)."""

    retryable = True


class ShopifyNetworkError(ShopifyError):
    """No usable answer: connect or read timeout, connection reset, protocol error."""

    retryable = True


class ShopifyGraphQLError(ShopifyError):
    """Top-level GraphQL ``errors`` other than THROTTLED (a syntax error, an access denied
    field…); ``data`` holds whatever part of the answer came back. ``userErrors`` of a
    mutation are no error here: they are part of ``data`` for the caller to read."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: Any = None,
        request_id: str | None = None,
        data: Any = None,
    ) -> None:
        super().__init__(message, status=status, errors=errors, request_id=request_id)
        self.data = data
