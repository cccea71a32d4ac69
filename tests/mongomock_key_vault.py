"""mongomock as the key vault client of pymongo's ClientEncryption, which reads and writes keys as raw BSON.

mongomock has no RawBSONDocument codec, so this adapter turns the driver's raw filters and key documents into
dicts on the way in and back into raw BSON on the way out. The keys are real libmongocrypt keys, stored in the
test's mongomock database beside its patients; only the key vault's I/O is adapted.
"""
import bson
from bson.raw_bson import RawBSONDocument


def _plain(document):
    """Return a document (raw BSON or a mapping) as a dict mongomock can match and store."""
    if isinstance(document, RawBSONDocument):
        return bson.decode(document.raw)
    return {name: _plain(value) if isinstance(value, (RawBSONDocument, dict)) else value
            for name, value in document.items()}


def _raw(document):
    """Return a stored key document as raw BSON, as the driver's key vault reads return it."""
    return RawBSONDocument(bson.encode(document))


class MongoClient:  # ClientEncryption takes any class named MongoClient as a client (its Motor allowance)
    """The key vault client over a mongomock client."""

    def __init__(self, client):
        self._client = client

    def __getitem__(self, name):
        return _Database(self._client[name])


class _Database:
    def __init__(self, database):
        self._database = database

    def __getitem__(self, name):
        return _KeyVault(self._database[name])


class _Cursor(list):
    """The key documents a find returned, usable as the context manager the driver opens it with."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _KeyVault:
    """The key vault collection, taking and giving raw BSON."""

    def __init__(self, collection):
        self._collection = collection

    def with_options(self, **options):
        return self

    def find(self, filter=None, *args, **kwargs):
        return _Cursor(_raw(document) for document in self._collection.find(_plain(filter or {})))

    def find_one(self, filter=None, *args, **kwargs):
        found = self._collection.find_one(_plain(filter or {}))
        return None if found is None else _raw(found)

    def insert_one(self, document, *args, **kwargs):
        return self._collection.insert_one(_plain(document))

    def bulk_write(self, requests, *args, **kwargs):
        # rewrap_many_data_key's UpdateOne({"_id": ...}, {"$set": ..., "$currentDate": ...}) models.
        for request in requests:
            self._collection.update_one(_plain(request._filter), _plain(request._doc))
        return _BulkResult(len(requests))

    def delete_one(self, filter, *args, **kwargs):
        return self._collection.delete_one(_plain(filter))


class _BulkResult:
    def __init__(self, count):
        self.matched_count = self.modified_count = count
        self.acknowledged = True
