"""Two workers starting at once on an empty database end up with one data key and one search key, both used."""
import mongomock

from app.store.db import INDEXES
from app.store.field_encryption import (
    DATA_KEY_NAME,
    KEY_VAULT,
    SEARCH_KEYS,
    FieldEncryption,
    _data_key,
    _search_key,
    key_vault,
)
from tests import mongomock_key_vault
from tests.conftest import MASTER_KEY


def database():
    """Return an empty mongomock database with the service's indexes, and its key vault client."""
    client = mongomock.MongoClient(tz_aware=True)
    db = client["races"]
    for collection, indexes in INDEXES.items():
        db[collection].create_indexes(indexes)
    return db, mongomock_key_vault.MongoClient(client)


def vault(db, key_vault_client):
    """Return a ClientEncryption over the database's key vault under the tests' master key."""
    return key_vault(db, key_vault_client, MASTER_KEY.kms_providers())


def test_a_worker_that_read_no_data_key_before_another_made_one_uses_that_one():
    db, key_vault_client = database()
    first = FieldEncryption.open(db, key_vault_client, MASTER_KEY)  # the other worker got there first
    second = vault(db, key_vault_client)
    looked = []
    real_lookup = second.get_key_by_alt_name

    def read_before_the_other_inserted(name):
        # This worker's first read happened before the other worker's insert; its next read sees it.
        looked.append(name)
        return None if len(looked) == 1 else real_lookup(name)

    second.get_key_by_alt_name = read_before_the_other_inserted
    key_id = _data_key(second, MASTER_KEY)

    assert len(looked) == 2 and db[KEY_VAULT].count_documents({"keyAltNames": DATA_KEY_NAME}) == 1
    assert second.decrypt(first.seal({"firstName": "Jane"})) == {"firstName": "Jane"}
    assert key_id == db[KEY_VAULT].find_one()["_id"]


class FirstReadMisses:
    """The search key collection as a worker saw it: its first read came before the other worker's insert."""

    def __init__(self, collection):
        self._collection = collection
        self.reads = 0

    def find_one(self, *args, **kwargs):
        self.reads += 1
        return None if self.reads == 1 else self._collection.find_one(*args, **kwargs)

    def insert_one(self, *args, **kwargs):
        return self._collection.insert_one(*args, **kwargs)


def test_a_worker_that_read_no_search_key_before_another_stored_one_uses_that_one():
    db, key_vault_client = database()
    first = FieldEncryption.open(db, key_vault_client, MASTER_KEY)
    encryption = vault(db, key_vault_client)
    late = FirstReadMisses(db[SEARCH_KEYS])

    search_key = _search_key({SEARCH_KEYS: late}, encryption, first._data_key_id, MASTER_KEY)

    assert late.reads == 2 and db[SEARCH_KEYS].count_documents({}) == 1
    second = FieldEncryption(encryption, first._data_key_id, search_key)
    assert second.blind("name", "doctor_a", "jan") == first.blind("name", "doctor_a", "jan")


def test_a_worker_refused_by_the_other_workers_key_waits_until_its_majority_read_sees_it():
    db, key_vault_client = database()
    first = FieldEncryption.open(db, key_vault_client, MASTER_KEY)
    second = vault(db, key_vault_client)
    looked = []
    real_lookup = second.get_key_by_alt_name

    def not_majority_committed_yet(name):
        # Before its insert, and twice after the unique index refused it: the other key is not majority-read yet.
        looked.append(name)
        return None if len(looked) <= 3 else real_lookup(name)

    second.get_key_by_alt_name = not_majority_committed_yet
    key_id = _data_key(second, MASTER_KEY)

    assert len(looked) == 4 and db[KEY_VAULT].count_documents({"keyAltNames": DATA_KEY_NAME}) == 1
    assert key_id == db[KEY_VAULT].find_one()["_id"]
    assert second.decrypt(first.seal({"firstName": "Jane"})) == {"firstName": "Jane"}
