"""Errors an operator can act on: the message says what was wrong and what to do instead."""

from __future__ import annotations

from collections.abc import Iterable


class AdminError(ValueError):
    """Bad input to an admin action or query (unknown id, bad filter, refused change)."""


class UnknownModel(AdminError):
    def __init__(self, endpoint_ids: Iterable[str], suggestions: Iterable[str] = ()) -> None:
        self.endpoint_ids = tuple(endpoint_ids)
        hint = list(suggestions)
        message = "no model with id " + ", ".join(repr(i) for i in self.endpoint_ids) + " in the models table"
        if hint:
            message += "; did you mean " + ", ".join(hint) + "?"
        super().__init__(message)
