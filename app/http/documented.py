"""What the OpenAPI document says of each view, attached where the view is declared."""
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from marshmallow import Schema

# A view function, handed back by each decorator here as it came, with what it says of itself attached.
View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class ListingOf:
    """A response whose `data` is a list of `schema` items, with a `next` cursor beside it."""

    schema: type[Schema]


# What a status of an operation answers: a Schema class (success envelope, `data` one item), a ListingOf (success
# envelope, `data` a list plus `next`), a string (error envelope: a note beside the messages of the refusals listed in
# `refusals`, or the whole description of a failure no refusal answers), or a whole OpenAPI response object.
DocumentedResponse = type[Schema] | ListingOf | str | dict[str, Any]


@dataclass(frozen=True)
class Operation:
    """One documented operation: its schemas, its responses and whether it needs a token.

    Used as a view's decorator (`@documented(...)`), it attaches itself to the view for app/http/openapi.py to read.
    """

    summary: str
    tag: str
    responses: dict[int, DocumentedResponse]
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    example: dict[str, Any] | None = None
    public: bool = False
    headers: tuple[str, ...] = field(default_factory=tuple)
    # Media types the body may be sent as.
    body_types: tuple[str, ...] = ("application/json",)
    # The refusals it may answer, documented with their status and message from app/http/refusals.py's table.
    refusals: tuple[type[Exception], ...] = ()
    # Response headers beyond the shared ones, by status, e.g. {200: ("ETag",)}.
    response_headers: dict[int, tuple[str, ...]] = field(default_factory=dict)
    # The media type of its answers: application/json (the envelope), or application/fhir+json (the FHIR view, whose
    # failures are OperationOutcomes).
    media_type: str = "application/json"

    def __call__(self, view: View) -> View:
        """Attach this operation to a view function, marking it open to all if it is public."""
        # The function's own attributes, as `view.openapi = self` would set them: a type checker knows no attributes
        # of a function, so they are written through vars().
        vars(view)["openapi"] = self
        return open_to_all(view) if self.public else view


# The decorator's name where a view is declared: `@documented(summary=..., ...)` builds the Operation that attaches
# itself, so each view's description is checked against Operation's fields.
documented = Operation


def open_to_all(view: View) -> View:
    """Mark a view as served without a token (the probes, the docs)."""
    vars(view)["open_to_all"] = True
    return view


def operation_of(view: Callable[..., Any] | None) -> Operation | None:
    """Return what the document says of a view, or None for a view it leaves out."""
    return getattr(view, "openapi", None)


def is_open_to_all(view: Callable[..., Any]) -> bool:
    """Tell whether a view is served without a token."""
    return getattr(view, "open_to_all", False)
