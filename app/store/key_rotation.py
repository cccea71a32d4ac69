"""Master key rotation: rewrap the data key under a new master key, after which the old one is no longer needed."""
from typing import Any

from pymongo.database import Database
from pymongo.mongo_client import MongoClient

from app.store.field_encryption import FieldEncryption, key_vault
from config import ConfigError, MasterKey


def rotate_master_key(db: Database[dict[str, Any]], key_vault_client: MongoClient[dict[str, Any]], old: MasterKey,
                      new: MasterKey) -> int:
    """Rewrap every data key of the vault from the old master key to the new one; return how many were rewrapped."""
    if old.provider == new.provider and old.key == new.key:
        raise ConfigError("the new master key is the one already in use")
    # Both keys in one ClientEncryption: libmongocrypt unwraps with the old and wraps with the new, and the data
    # key itself (so every sealed value) stays as it is.
    providers = {**old.kms_providers(), **new.kms_providers()}
    with key_vault(db, key_vault_client, providers) as encryption:
        result = encryption.rewrap_many_data_key({}, provider=new.provider, master_key=new.key)
    # Proof before anyone retires the old key: the new one alone opens the data key and the search key.
    FieldEncryption.open(db, key_vault_client, new)
    return 0 if result.bulk_write_result is None else result.bulk_write_result.modified_count
