"""The indexes a cluster sharded on doctor_id can hold and use (docs/scaling.md), read from app.store.db.INDEXES and
the indexes a start keeps for records of earlier versions (app.store.leftovers)."""
from app.store import leftovers
from app.store.db import INDEXES, SHARD_KEY, SHARDED_BY_DOCTOR
from app.store.field_encryption import KEY_VAULT
from app.store.rate_limit_storage import RATE_LIMIT_WINDOWS


def indexes_of_the_sharded_collections():
    """Return (collection, index document) for every index of the collections sharded by doctor."""
    kept_for_leftovers = {leftovers.PATIENTS: leftovers.PLAIN_PATIENT_INDEXES}
    for collection in leftovers.SEALED_COLLECTIONS:
        kept_for_leftovers.setdefault(collection, []).append(leftovers.UNBOUND_SEALED)
    return [(collection, index.document) for collection in SHARDED_BY_DOCTOR
            for index in INDEXES[collection] + kept_for_leftovers.get(collection, [])]


def test_every_unique_index_of_a_collection_sharded_by_doctor_starts_with_the_shard_key():
    # MongoDB holds a unique index on a sharded collection only with the shard key as its prefix: each shard can
    # then enforce it alone. `_id`'s own index is MongoDB's, unique per shard, and never in INDEXES.
    unique = {(collection, index["name"]): list(index["key"]) for collection, index in
              indexes_of_the_sharded_collections() if index.get("unique")}

    assert ("idempotency_keys", "doctor_key") in unique
    assert {name: keys[0] for name, keys in unique.items()} == dict.fromkeys(unique, SHARD_KEY)


def test_every_index_a_request_reads_through_starts_with_the_shard_key():
    # Each request names one doctor, so its index leads with doctor_id, and a ranged shard key finds an index to
    # use in every collection. The others serve no request: MongoDB's expiry (TTL) and the start's partial indexes.
    for_requests = {(collection, index["name"]): list(index["key"])[0] for collection, index in
                    indexes_of_the_sharded_collections()
                    if "expireAfterSeconds" not in index and "partialFilterExpression" not in index}

    assert ("patient_versions", "doctor_patient_newest") in for_requests
    assert for_requests == dict.fromkeys(for_requests, SHARD_KEY)
    assert {collection for collection, _ in for_requests} == set(SHARDED_BY_DOCTOR)


def test_the_collections_left_unsharded_are_the_key_vault_and_the_rate_limit_windows():
    # A new collection must be placed: sharded by doctor (every command names one) or left on the primary shard.
    assert set(INDEXES) - set(SHARDED_BY_DOCTOR) == {KEY_VAULT, RATE_LIMIT_WINDOWS}
