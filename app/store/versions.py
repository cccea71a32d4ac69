"""A patient's version as stored: which earlier versions a history finds."""
from typing import Any

FIRST_VERSION = 1
# Numbers a history leaves out although a range on `version` matches them: a fraction or a decimal (2.5, and 2.0 too:
# this service writes integers, and no cursor names 2.5), and a list, which a range matches by any of its items.
NOT_INTEGERS = ("double", "decimal", "array")


def versions_below(version: int) -> dict[str, Any]:
    """Return the filter of a record's earlier versions a history lists below this one: integers from the first."""
    # The types first: mongomock tests a filter's conditions in order, and cannot compare a decimal with a number.
    return {"$nor": [{"version": {"$type": kind}} for kind in NOT_INTEGERS],
            "version": {"$gte": FIRST_VERSION, "$lt": version}}
