"""What one request writes on the database: the documents it inserts or changes and the index entries they add.

Counted from what the database holds before and after, under the indexes it lists: a document is written when it is
new or differs; an index entry is written when a written document holds a key the index did not have for it before
(an array field gives one key per distinct value, as MongoDB's multikey indexes do; a partial index keeps only the
documents the database says match its filter).
"""
import itertools

from bson import json_util


def _values(document, path):
    """The values a dotted path reaches in a document, None when it reaches nothing (indexed as null)."""
    found = [document]
    for part in path.split("."):
        found = [value.get(part) if isinstance(value, dict) else None for value in found]
        found = [item for value in found for item in (value if isinstance(value, list) and value else [value])]
    return found


def _keys(document, fields):
    """The index keys one document gives, as comparable strings."""
    per_field = [{json_util.dumps(value) for value in _values(document, field)} for field in fields]
    return set(itertools.product(*per_field))


def snapshot(db):
    """Every document of every collection of db, by collection and _id."""
    return {name: {json_util.dumps(document["_id"]): document for document in db[name].find()}
            for name in db.list_collection_names()}


def _indexed(collection, index, document):
    """Whether the index holds this document: a sparse one skips it when it lacks every field; the database
    evaluates a partial index's filter."""
    if index.get("sparse") and all(value is None for field in index["key"] for value in _values(document, field)):
        return False
    partial = index.get("partialFilterExpression")
    if partial is None:
        return True
    return collection.count_documents({"$and": [{"_id": document["_id"]}, partial]}, limit=1) == 1


def written(db, before, after):
    """Return {collection: (documents, index entries)} written between two snapshots of db."""
    counted = {}
    for name, documents in after.items():
        collection = db[name]
        indexes = list(collection.list_indexes())
        changed = [(before.get(name, {}).get(_id), document) for _id, document in documents.items()
                   if before.get(name, {}).get(_id) != document]
        if not changed:
            continue
        entries = 0
        for old, new in changed:
            for index in indexes:
                if not _indexed(collection, index, new):
                    continue
                fields = list(index["key"])
                had = _keys(old, fields) if old is not None else set()
                entries += len(_keys(new, fields) - had)
        counted[name] = (len(changed), entries)
    return counted
