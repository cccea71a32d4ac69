"""Whether a command the service sends reaches one shard of a cluster sharded on doctor_id, or every shard.

mongos sends a command to one shard only when its filter holds an equality on the shard key (at the top, or in a
top-level `$and`), or when it inserts a document holding the shard key; anything else goes to every shard (a
broadcast). `judge` reads a command as a CommandStartedEvent carries it and names each of its operations that would
be broadcast; `ShardRouting` is a command listener that judges the commands the service itself sends (not a test's
own commands, which arrange and check data however they like).

Not judged, and why:
- collections other than the five sharded by doctor (app.store.db.SHARDED_BY_DOCTOR): the key vault and the search
  key stay unsharded (MongoDB's key vault must not be sharded; one data key, read once per start), and so may
  rate_limit_windows, whose every command the limits library selects by `_id` (docs/scaling.md);
- createIndexes, dropIndexes and listIndexes: index upkeep goes to every shard by its nature, at a start;
- getMore and killCursors: they continue or close a cursor whose find or aggregate was judged when it opened;
- reads marked as looking across doctors (app.store.records.ACROSS_DOCTORS, a `$comment` in their filter): the one
  that tells a refused request's 403 from its 404, and the start's and operator commands' scans. Writes are
  judged even when marked: every write names its doctor.
"""
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from re import Pattern
from typing import Any

from bson.regex import Regex

import app as service_package
from app.store.db import SHARD_KEY, SHARDED_BY_DOCTOR
from app.store.records import ACROSS_DOCTORS
from tests.conftest import CommandsStarted

NOT_JUDGED = ("createIndexes", "dropIndexes", "listIndexes", "getMore", "killCursors")
# The commands that select documents by one filter, and the field that holds it.
FILTER_OF = {"find": "filter", "count": "query", "distinct": "query", "findAndModify": "query"}
READS = ("find", "count", "distinct", "aggregate")
SERVICE_CODE = str(Path(service_package.__file__).parent) + os.sep
TEST_CODE = str(Path(__file__).parent) + os.sep


def names_one_value(value: Any) -> bool:
    """Tell whether a filter's condition on a field is an equality on one value: `v` or `{"$eq": v, ...}`."""
    if isinstance(value, Mapping):
        # {"$eq": v} among other operators (app.store.records.exactly adds `$not`) still pins the field to v;
        # a whole document without operators is an equality on an embedded document, never a doctor's id.
        return bool(value) and all(name.startswith("$") for name in value) and "$eq" in value \
            and names_one_value(value["$eq"])
    return not isinstance(value, list | tuple | Pattern | Regex)


def targets_one_doctor(query: Any) -> bool:
    """Tell whether a filter pins the shard key to one value, as mongos needs to send it to one shard."""
    if not isinstance(query, Mapping):
        return False
    if SHARD_KEY in query and names_one_value(query[SHARD_KEY]):
        return True
    return any(targets_one_doctor(clause) for clause in query.get("$and", ()))


def across_doctors(query: Any) -> str | None:
    """Return the mark of a filter that reads across doctors on purpose, or None."""
    mark = query.get("$comment") if isinstance(query, Mapping) else None
    return mark if mark in ACROSS_DOCTORS else None


@dataclass
class Judgement:
    """What one command's operations would do on a cluster sharded on doctor_id."""

    broadcasts: list[str] = field(default_factory=list)
    # The reads marked as looking across doctors on purpose, each with its mark.
    across: list[str] = field(default_factory=list)
    # How many operations on the sharded collections were judged.
    judged: int = 0


def _show(value: Any) -> str:
    """Return a value as a line of a failure message, cut short."""
    text = repr(value)
    return text if len(text) <= 300 else text[:297] + "..."


def _judge_filter(judgement: Judgement, command_name: str, collection: str, query: Any, what: str,
                  write: bool) -> None:
    """Judge one filter of a command: targeted, marked as reading across doctors (reads only), or a broadcast."""
    judgement.judged += 1
    if targets_one_doctor(query):
        return
    mark = across_doctors(query)
    if mark is not None and not write:
        judgement.across.append(f"{command_name} on {collection} ({mark})")
        return
    judgement.broadcasts.append(f"{command_name} on {collection}: {what} {_show(query)} names no one doctor")


def _judge_insert(judgement: Judgement, command_name: str, collection: str, document: Any) -> None:
    """Judge one inserted document: it must hold the shard key, as one value."""
    judgement.judged += 1
    if isinstance(document, Mapping) and SHARD_KEY in document and names_one_value(document[SHARD_KEY]):
        return
    judgement.broadcasts.append(f"{command_name} on {collection}: inserts {_show(document)} without a {SHARD_KEY}")


def judge(command_name: str, command: Mapping[str, Any]) -> Judgement:
    """Judge a command as sent: which of its operations on the sharded collections would be broadcast."""
    judgement = Judgement()
    if command_name == "bulkWrite":
        # A client bulkWrite names its collections in nsInfo, and each op the index of its collection there.
        collections = [info["ns"].split(".", 1)[1] for info in command.get("nsInfo", ())]
        for op in command.get("ops", ()):
            kind = next(name for name in ("insert", "update", "delete") if name in op)
            collection = collections[op[kind]]
            if collection not in SHARDED_BY_DOCTOR:
                continue
            if kind == "insert":
                _judge_insert(judgement, f"bulkWrite {kind}", collection, op["document"])
            else:
                _judge_filter(judgement, f"bulkWrite {kind}", collection, op["filter"], "filter", write=True)
        return judgement
    collection = command.get(command_name)
    if collection not in SHARDED_BY_DOCTOR or command_name in NOT_JUDGED:
        return judgement
    if command_name == "insert":
        for document in command.get("documents", ()):
            _judge_insert(judgement, command_name, collection, document)
    elif command_name in ("update", "delete"):
        for statement in command.get("updates" if command_name == "update" else "deletes", ()):
            _judge_filter(judgement, command_name, collection, statement.get("q"), "filter", write=True)
    elif command_name in FILTER_OF:
        _judge_filter(judgement, command_name, collection, command.get(FILTER_OF[command_name]),
                      FILTER_OF[command_name], write=command_name == "findAndModify")
    elif command_name == "aggregate":
        pipeline = command.get("pipeline") or [{}]
        first = pipeline[0].get("$match")
        _judge_filter(judgement, command_name, collection, first, "first stage's $match", write=False)
    else:
        judgement.judged += 1
        judgement.broadcasts.append(f"{command_name} on {collection}: a command this check does not know; judge it "
                                    "in tests/shard_routing.py")
    return judgement


def sent_by_the_service() -> bool:
    """Tell whether the command being sent in this thread comes from the service's code (app/), not a test's."""
    # The innermost caller in app/ or tests/ decides: a test's competitor write injected into a request (a forced
    # race) runs below the service's frames, and is the test's own.
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(SERVICE_CODE):
            return True
        if filename.startswith(TEST_CODE) and filename != __file__:
            return False
        frame = frame.f_back
    return False


@dataclass
class Seen:
    """What the service sent while watched: its commands' broadcasts, its marked reads, and how many ops were
    judged."""

    broadcasts: list[str] = field(default_factory=list)
    across: list[str] = field(default_factory=list)
    judged: int = 0

    def clear(self) -> None:
        """Forget what was seen so far."""
        self.broadcasts.clear()
        self.across.clear()
        self.judged = 0


class ShardRouting(CommandsStarted):
    """Judge every command the service sends while watching(), on every client this listener is registered with."""

    def __init__(self) -> None:
        self._seen: Seen | None = None
        self._lock = threading.Lock()

    @contextmanager
    def watching(self) -> Iterator[Seen]:
        """Judge the service's commands until the block ends, gathering what they would do in the Seen given."""
        seen = Seen()
        self._seen = seen
        try:
            yield seen
        finally:
            self._seen = None

    def started(self, event):
        seen = self._seen
        if seen is None or not sent_by_the_service():
            return
        judgement = judge(event.command_name, event.command)
        with self._lock:
            seen.broadcasts.extend(judgement.broadcasts)
            seen.across.extend(judgement.across)
            seen.judged += judgement.judged
