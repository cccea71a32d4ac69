"""What the OpenAPI document says of each view, attached where the view is declared."""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ListingOf:
    """A response whose `data` is a list of `schema` items, with a `next` cursor beside it."""

    schema: type


@dataclass(frozen=True)
class Operation:
    """One documented operation: its schemas, its responses and whether it needs a token."""

    summary: str
    tag: str
    responses: dict
    body: type = None
    query: type = None
    example: dict = None
    public: bool = False
    headers: tuple = field(default_factory=tuple)
    # Media types the body may be sent as.
    body_types: tuple = ("application/json",)
    # The refusals it may answer, documented with their status and message from app/http/refusals.py's table.
    refusals: tuple = ()
    # Response headers beyond the shared ones, by status, e.g. {200: ("ETag",)}.
    response_headers: dict = field(default_factory=dict)


def documented(**description):
    """Attach an Operation to a view function, for app/http/openapi.py to read.

    responses maps a status to a Schema class (success envelope, `data` one item), a ListingOf (success
    envelope, `data` a list plus `next`), or a string (error envelope: a note beside the messages of the refusals
    listed in `refusals`, or the whole description of a failure no refusal answers).
    """
    operation = Operation(**description)

    def attach(view):
        view.openapi = operation
        return open_to_all(view) if operation.public else view

    return attach


def open_to_all(view):
    """Mark a view as served without a token (the probes, the docs)."""
    view.open_to_all = True
    return view


def is_open_to_all(view):
    """Tell whether a view is served without a token."""
    return getattr(view, "open_to_all", False)
