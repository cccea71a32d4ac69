"""What callers are shown of a value another program stored: JSON's own values and moments as they are, ids as text."""
import datetime
import math
from typing import Any

from bson import ObjectId

# A value JSON cannot carry (a Decimal128, bytes, a timestamp, NaN, ...), or a list or object holding one: left out
# rather than turned into something that was never stored.
UNSHOWABLE: Any = object()


def showable(value: Any) -> Any:
    """Return a stored value as callers may see it (moments stay datetimes, ObjectIds become 24-hex), or UNSHOWABLE."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else UNSHOWABLE
    if isinstance(value, datetime.datetime):
        # BSON dates are UTC: a client built without tz_aware hands them back naive.
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, list):
        items = [showable(item) for item in value]
        return UNSHOWABLE if any(item is UNSHOWABLE for item in items) else items
    if isinstance(value, dict):
        members = {name: showable(member) for name, member in value.items()}
        return UNSHOWABLE if any(member is UNSHOWABLE for member in members.values()) else members
    return UNSHOWABLE
