"""Errors that carry an HTTP status and a safe, French message.

    Exception
     └── AppError (status, message shown to the user)
          ├── NotFound        404  (also "not allowed to see": no oracle)
          ├── Forbidden       403
          ├── BadRequest      400  (+ field errors for forms)
          ├── Conflict        409  (duplicate name …)
          ├── TooManyRequests 429
          └── PayloadTooLarge 413

They are turned into responses once, at the edge (``node.web.app``); the
internal cause goes to the log, never to the client.
"""

from __future__ import annotations


class AppError(Exception):
    status = 500
    default_message = "Une erreur interne est survenue."

    def __init__(self, message: str | None = None, *, fields: dict[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.fields = fields or {}
        super().__init__(self.message)


class NotFound(AppError):
    status = 404
    default_message = "Page introuvable."


class Forbidden(AppError):
    status = 403
    default_message = "Action non autorisée."


class BadRequest(AppError):
    status = 400
    default_message = "Requête invalide."


class Conflict(AppError):
    status = 409
    default_message = "Conflit avec une donnée existante."


class TooManyRequests(AppError):
    status = 429
    default_message = "Trop de tentatives. Réessayez dans quelques minutes."


class PayloadTooLarge(AppError):
    status = 413
    default_message = "Contenu trop volumineux."


class Unauthorized(AppError):
    status = 401
    default_message = "Authentification requise."
