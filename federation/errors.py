"""Errors of the federation layer: a status, a safe French message, an internal reason.

    Exception
     └── node.errors.AppError        (status, message shown to the client)
          └── FederationError        502 by default
               ├── SignatureError    401 (403 for a blocked domain's key)
               ├── FetchError        502 (``remote_status``: what the peer answered, if it did)
               │    └── FetchRefused refused by our own guards (URL, address, policy, answer): final
               └── ValidationError   400

``reason`` is the internal cause, in English, for logs and tests; it never reaches
the client (the edge renders ``message``). ``str(exc)`` is the reason, so a logged
exception says what actually went wrong. Library exceptions (aiohttp, cryptography,
httpsig) are translated into these at the boundary and never escape the package.
"""

from __future__ import annotations

from node.errors import AppError
from node.i18n import _


class FederationError(AppError):
    status = 502
    default_message = "Erreur de fédération."

    def __init__(self, reason: str, *, status: int | None = None, message: str | None = None) -> None:
        super().__init__(message or _(self.default_message))
        self.reason = reason
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, status={self.status})"


class SignatureError(FederationError):
    """The HTTP signature is missing, malformed, unsupported or wrong."""

    status = 401
    default_message = "Signature HTTP absente ou invalide."

    @classmethod
    def blocked(cls, domain: str) -> SignatureError:
        """The key belongs to a blocked domain: 403, refused before any key fetch."""
        return cls(f"blocked domain {domain}", status=403, message=_("Serveur non autorisé."))


class FetchError(FederationError):
    """A remote document could not be fetched, or was refused by the guards."""

    status = 502
    default_message = "Le serveur distant n'a pas pu être consulté."

    def __init__(
        self,
        reason: str,
        *,
        remote_status: int | None = None,
        status: int | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(reason, status=status, message=message)
        self.remote_status = remote_status


class FetchRefused(FetchError):
    """Our guards refused the URL, its address, its domain or the answer (type, size):
    asking again cannot help."""


class ValidationError(FederationError):
    """A document is not the ActivityPub we accept (schema, hosts, ownership)."""

    status = 400
    default_message = "Document ActivityPub invalide."
