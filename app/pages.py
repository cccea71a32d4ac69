"""Opaque cursors for keyset pagination: a page resumes after the last item of the one before."""
import base64
import binascii
import datetime
import json

from bson import ObjectId
from bson.errors import InvalidId

from app.exceptions import InvalidRequest


def encode_cursor(moment, document_id):
    """Return the cursor that resumes after the item with this sort time and id."""
    millis = int(moment.timestamp() * 1000)
    raw = json.dumps([millis, str(document_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor):
    """Return the (sort time, ObjectId) a cursor resumes after, refusing anything we did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        millis, document_id = json.loads(raw)
        if not isinstance(millis, int) or isinstance(millis, bool):
            raise ValueError
        moment = datetime.datetime.fromtimestamp(millis / 1000, datetime.timezone.utc)
        return moment, ObjectId(document_id)
    except (ValueError, TypeError, binascii.Error, InvalidId, OverflowError, OSError, UnicodeDecodeError):
        raise InvalidRequest("Invalid cursor", details={"after": ["Not a cursor this service issued."]}) from None


def after_clause(field, cursor, descending):
    """Return the filter that selects items strictly after the cursor in (field, _id) order."""
    moment, document_id = decode_cursor(cursor)
    beyond = "$lt" if descending else "$gt"
    return {"$or": [{field: {beyond: moment}}, {field: moment, "_id": {beyond: document_id}}]}
