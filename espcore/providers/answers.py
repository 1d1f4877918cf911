"""Building blocks of the typed answer shapes the three clients check every 2xx body against.

Each provider module declares the documented success shape of each answer it reads as a ``TypedDict``
decorated with :data:`answer`: the envelope and the fields the client reads, nothing more, so a new field the
provider adds never breaks a call, and every other key is kept as sent. Validation is pydantic's lax mode, which
fits JSON written by PHP services (``"12"`` is accepted for an int), and a :class:`espcore.http.Shape` compiles
it on first use. A missing or mistyped field the client relies on is a mismatch, which the HTTP layer reports as
:class:`espcore.errors.UnexpectedResponseError`: never a success, never a raw ``KeyError``.
"""

from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, with_config

#: decorator of every answer ``TypedDict``: unknown keys are kept (they are passed on, e.g. as raw extras)
answer = with_config(ConfigDict(extra="allow"))


def _int_as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


#: an id that arrives as a string or an integer, kept as a string (a boolean or a float is a mismatch)
Id = Annotated[str, BeforeValidator(_int_as_text)]


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number here")
    return value


#: an integer sent as a number or a numeric string (``"12"``), never a boolean (``true`` is no count)
Int = Annotated[int, BeforeValidator(_no_bool)]


#: an empty JSON array where an object is documented: PHP's ``json_encode`` writes an empty object as ``[]``
EmptyList = Annotated[list[Any], Field(max_length=0)]
#: a JSON object, or ``[]`` for an empty one
Obj = dict[str, Any] | EmptyList
#: a non-empty string (a uid, a token)
Text = Annotated[str, Field(min_length=1)]
