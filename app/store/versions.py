"""A patient's version as stored: the number a record is read at, and which earlier versions a history finds."""
from typing import Any

from app.store.exceptions import UnreadableVersion

FIRST_VERSION = 1
# The last version a record is read at: the largest a history cursor names (15 digits, app/store/cursors.py), so that
# every page of its history can be asked for. An ETag and If-Match (up to 18 digits) name it too.
LAST_VERSION = 10**15 - 1
# Numbers a history leaves out although a range on `version` matches them: a fraction or a decimal (2.5, and 2.0 too:
# this service writes integers, and no cursor names 2.5), and a list, which a range matches by any of its items.
NOT_INTEGERS = ("double", "decimal", "array")


def version_of(stored: dict[str, Any]) -> int:
    """Return the version a stored record is at, refusing (UnreadableVersion) one this service never writes."""
    version = stored.get("version")
    if version is None:
        # Stored before versions existed (no field), or by a program that wrote none (null): the first, as the
        # conditional write of a correction takes both.
        return FIRST_VERSION
    if isinstance(version, bool) or not isinstance(version, int) or not FIRST_VERSION <= version <= LAST_VERSION:
        raise UnreadableVersion()
    return int(version)  # a 64-bit integer comes back from the driver as bson.Int64


def versions_below(version: int) -> dict[str, Any]:
    """Return the filter of a record's earlier versions a history lists below this one: integers from the first."""
    # The types first: mongomock tests a filter's conditions in order, and cannot compare a decimal with a number.
    return {"$nor": [{"version": {"$type": kind}} for kind in NOT_INTEGERS],
            "version": {"$gte": FIRST_VERSION, "$lt": version}}
