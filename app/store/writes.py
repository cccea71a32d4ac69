"""How a unit of work's writes reach the server: a command each, or all of them in one client bulkWrite."""
from collections.abc import Sequence
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import ClientBulkWriteException, PyMongoError
from pymongo.mongo_client import MongoClient


class SuccessPathMissed(Exception):
    """A conditional write of a batch matched nothing: the success path's assumption did not hold."""


class CommandWrites:
    """Each write is its own command, answered before the next step (every server, mongomock included)."""

    def __init__(self, db: Database[dict[str, Any]], session: ClientSession | None = None) -> None:
        self._db = db
        self._session = session

    def insert(self, collection: str, documents: Sequence[dict[str, Any]]) -> None:
        """Insert documents into a collection."""
        if len(documents) == 1:
            self._db[collection].insert_one(documents[0], session=self._session)
        else:
            self._db[collection].insert_many(documents, session=self._session)

    def update(self, collection: str, query: dict[str, Any], update: dict[str, Any]) -> bool:
        """Update the one document matching query; tell whether one matched."""
        return self._db[collection].update_one(query, update, session=self._session).matched_count == 1

    def flush(self) -> None:
        """Nothing is waiting: every write was sent when made."""


class BatchedWrites:
    """Every write of a transaction in one bulkWrite command, sent just before the commit (MongoDB 8.0 and later).

    A conditional update is taken to match when made, and checked when the batch is sent: if one matched nothing,
    flush raises SuccessPathMissed and the transaction is aborted, so nothing of the batch counts.
    """

    def __init__(self, client: MongoClient[dict[str, Any]], db: Database[dict[str, Any]],
                 session: ClientSession) -> None:
        self._client = client
        self._db = db
        self._session = session
        self._models: list[InsertOne[dict[str, Any]] | UpdateOne] = []
        self._conditions: list[int] = []

    def insert(self, collection: str, documents: Sequence[dict[str, Any]]) -> None:
        """Queue the insert of documents."""
        namespace = f"{self._db.name}.{collection}"
        self._models.extend(InsertOne(document, namespace=namespace) for document in documents)

    def update(self, collection: str, query: dict[str, Any], update: dict[str, Any]) -> bool:
        """Queue the update of the one document matching query, taking it to match (checked at flush)."""
        self._conditions.append(len(self._models))
        self._models.append(UpdateOne(query, update, namespace=f"{self._db.name}.{collection}"))
        return True

    def flush(self) -> None:
        """Send the queued writes in one command, raising SuccessPathMissed if a conditional update matched nothing."""
        if not self._models:
            return
        models, self._models = self._models, []
        try:
            result = self._client.bulk_write(models, session=self._session, ordered=True, verbose_results=True)
        except ClientBulkWriteException as failed:
            # A command-level error (a write conflict, a lost connection) comes wrapped, its TransientTransactionError
            # label on the inner error only: raised as itself, the transaction is retried as for any other command.
            if isinstance(failed.error, PyMongoError):
                raise failed.error from failed
            raise
        if any(result.update_results[index].matched_count != 1 for index in self._conditions):
            raise SuccessPathMissed()
