"""The errors the model layer raises: one clear sentence each."""

from __future__ import annotations


class ModelError(ValueError):
    """A backbone that cannot be named, built or loaded; the message says what to do."""


class WeightsUnavailableError(ModelError):
    """Pretrained weights are not on this computer; the message says how to get them."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for a one-sentence error."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)
