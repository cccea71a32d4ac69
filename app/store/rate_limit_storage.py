"""Where the rate limits count requests: the service's own database by default, or a limits storage URI."""
from typing import Any

import pymongo
from limits.storage import MongoDBStorage, StorageTypes, storage_from_string
from pymongo.database import Database
from pymongo.mongo_client import MongoClient
from pymongo.write_concern import WriteConcern

# The limits library's two collections, named as the service's own: fixed-window counters and moving windows.
RATE_LIMIT_COUNTERS = "rate_limit_counters"
RATE_LIMIT_WINDOWS = "rate_limit_windows"
# A window is deleted once its last request has left it (the library's own index, by the name it gives it).
RATE_LIMIT_WINDOWS_EXPIRE = pymongo.IndexModel([("expireAt", 1)], name="expireAt_1", expireAfterSeconds=0)


class _ServiceDatabaseStorage(MongoDBStorage):
    """The limits library's MongoDB storage over the service's own client and database."""

    def __init__(self, client: MongoClient[dict[str, Any]], database_name: str) -> None:
        self._service_client = client
        super().__init__("mongodb://", database_name=database_name, counter_collection_name=RATE_LIMIT_COUNTERS,
                         window_collection_name=RATE_LIMIT_WINDOWS)

    @property
    def storage(self) -> MongoClient[dict[str, Any]]:
        """Use the service's client: its pool, its timeouts and its credentials, not a second client of its own."""
        # Not the library's first-use createIndexes: the store creates the index at start (db.INDEXES), since
        # secantusd-py hangs when a createIndexes that creates the collection races the first counts into it.
        return self._service_client

    def _init_mongo_client(self, uri: str | None, **options: int | str | bool) -> MongoClient[dict[str, Any]]:
        """Return the service's client (never called: storage returns it)."""
        return self._service_client

    @property
    def _database(self) -> Database[dict[str, Any]]:
        """Return the service's database, acknowledged by the primary alone: a count lost in a failover costs a
        caller a few extra requests, where waiting for a majority on each would cost every request."""
        return self.storage.get_database(self._database_name, write_concern=WriteConcern(w=1, j=False))

    def __del__(self) -> None:
        """Leave the client open: the service owns it (the library's storage closes the client it made)."""


def rate_limit_storage(uri: str | None, client: MongoClient[dict[str, Any]], database_name: str) -> StorageTypes:
    """Return the storage named by uri, or the service's own database when uri is None."""
    if uri is None:
        return _ServiceDatabaseStorage(client, database_name)
    return storage_from_string(uri)
