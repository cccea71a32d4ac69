"""Opaque cursors for keyset pagination: a page resumes after the last item of the one before."""
import datetime
import re
from typing import Any

from bson import ObjectId

from app.store.exceptions import InvalidCursor

# `<milliseconds since 1970>_<24-hex id>` resumes among items whose sort field holds a date; a bare `<24-hex id>`
# resumes among those whose field holds anything else (an appointment another program wrote), which follow by id.
# Shapes the OpenAPI document can state exactly, so every cursor it allows is one the service reads.
# An ObjectId as callers see it: 24 hexadecimal digits, in either case.
HEX_ID = "[0-9a-fA-F]{24}"
CURSOR = re.compile(rf"^(-?[0-9]{{1,15}}_)?{HEX_ID}\Z")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_MILLISECOND = datetime.timedelta(milliseconds=1)
_FIRST_MILLIS = (datetime.datetime.min.replace(tzinfo=datetime.timezone.utc) - _EPOCH) // _MILLISECOND
_LAST_MILLIS = (datetime.datetime.max.replace(tzinfo=datetime.timezone.utc) - _EPOCH) // _MILLISECOND


def encode_cursor(moment: datetime.datetime, document_id: ObjectId) -> str:
    """Return the cursor that resumes after the item with this sort time and id."""
    millis = (moment - _EPOCH) // _MILLISECOND
    return f"{millis}_{document_id}"


def encode_undated_cursor(document_id: ObjectId) -> str:
    """Return the cursor that resumes after the item with this id, among those whose sort field holds no date."""
    return str(document_id)


def is_undated(cursor: str) -> bool:
    """Tell whether a cursor is ours and resumes among the items whose sort field holds no date."""
    return CURSOR.match(cursor) is not None and "_" not in cursor


def _cursor_parts(cursor: str) -> tuple[int, str]:
    """Return the number and the 24-hex id of a cursor, refusing anything not shaped like ours or undated."""
    if not CURSOR.match(cursor) or is_undated(cursor):
        raise InvalidCursor("Not a cursor this service issued.")
    number, document_id = cursor.split("_")
    return int(number), document_id


def decode_cursor(cursor: str) -> tuple[datetime.datetime, ObjectId]:
    """Return the (sort time, ObjectId) a cursor resumes after, refusing anything not shaped like ours."""
    millis, document_id = _cursor_parts(cursor)
    # A moment beyond what a date holds resumes at the edge: an empty page or the first one, never a 400.
    millis = max(_FIRST_MILLIS, min(_LAST_MILLIS, millis))
    return _EPOCH + millis * _MILLISECOND, ObjectId(document_id.lower())


def after_clause(field: str, cursor: str, descending: bool) -> dict[str, Any]:
    """Return the filter that selects items strictly after the cursor in (field, _id) order."""
    moment, document_id = decode_cursor(cursor)
    beyond = "$lt" if descending else "$gt"
    return {"$or": [{field: {beyond: moment}}, {field: moment, "_id": {beyond: document_id}}]}


def after_undated_clause(cursor: str) -> dict[str, Any]:
    """Return the filter that selects items strictly after an undated cursor, in _id order."""
    if not is_undated(cursor):
        raise InvalidCursor("Not a cursor this service issued.")
    return {"_id": {"$gt": ObjectId(cursor.lower())}}


def encode_version_cursor(version: int, record_id: str) -> str:
    """Return the cursor that resumes a record's history below this version, in the same shape as the others."""
    return f"{version}_{record_id}"


def decode_version_cursor(cursor: str) -> int:
    """Return the version a history cursor resumes below, refusing anything not shaped like ours."""
    if is_undated(cursor):
        return 0  # versions are all numbers: below every one, an empty page, as the other lists answer
    return _cursor_parts(cursor)[0]
