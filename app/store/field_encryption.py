"""Client-side field-level encryption: the data key in the key vault, sealing values, and keyed blind indexes."""
import hashlib
import hmac
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any, Self

from bson.binary import STANDARD, Binary
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.database import Database
from pymongo.encryption import Algorithm, ClientEncryption
from pymongo.errors import DuplicateKeyError, EncryptionError
from pymongo.mongo_client import MongoClient
from pymongocrypt.errors import MongoCryptError

from app.store.exceptions import NotSealedForThisRecord
from config import ConfigError, MasterKey

# The data keys, wrapped by the master key, live in the service's own database, so a backup holds what it needs
# to be read again with the master key, and nothing that reads it without.
KEY_VAULT = "key_vault"
# The blind-index key, sealed under the data key; like the data key, it is never stored in plaintext.
SEARCH_KEYS = "search_keys"
DATA_KEY_NAME = "clinic-patient-data"
SEARCH_KEY_ID = "patient-search"
SEARCH_KEY_BYTES = 32
# How long a worker that lost the race to create the data key waits to read the winner's (a majority commit).
OTHER_KEY_WAIT_S = 5.0
# Randomized: equal values seal differently, so ciphertexts say nothing; equality lookups go through blind indexes.
SEALED = Algorithm.AEAD_AES_256_CBC_HMAC_SHA_512_Random
# BSON's binary subtype of a value encrypted by MongoDB's client-side field-level encryption.
ENCRYPTED = 6
# 128 bits of HMAC-SHA-256: collisions between distinct values are out of reach, and index entries stay small.
BLIND_INDEX_BYTES = 16


class MasterKeyMismatch(ConfigError):
    """The configured master key does not open the data key the database was written with."""


class FieldEncryption:
    """Seal and unseal values with the clinic's data key, and key the blind indexes that stand in for searches."""

    def __init__(self, client_encryption: ClientEncryption[dict[str, Any]], data_key_id: Binary,
                 search_key: bytes) -> None:
        self._encryption = client_encryption
        self._data_key_id = data_key_id
        self._search_key = search_key

    @classmethod
    def open(cls, db: Database[dict[str, Any]], key_vault_client: MongoClient[dict[str, Any]],
             master_key: MasterKey) -> Self:
        """Open (creating on first use) the data key and the search key of this database under the master key."""
        # The data key stays cached for the life of the process (key_expiration_ms=0): no request ever waits on
        # the key vault or a KMS, and a rotation (which rewraps, never replaces, the data key) needs no restart.
        encryption = key_vault(db, key_vault_client, master_key.kms_providers(), key_expiration_ms=0)
        data_key_id = _data_key(encryption, master_key)
        search_key = _search_key(db, encryption, data_key_id, master_key)
        return cls(encryption, data_key_id, search_key)

    def close(self) -> None:
        """Release the libmongocrypt handle."""
        self._encryption.close()

    def seal(self, value: Any) -> Binary:
        """Encrypt a value (a string, a document) with the data key."""
        return self._encryption.encrypt(value, SEALED, key_id=self._data_key_id)

    def unseal(self, sealed: Binary) -> Any:
        """Decrypt a sealed value, refusing (NotSealedForThisRecord) anything that is not a value sealed by us."""
        # Another program may have written a `sealed` of its own (text, other bytes): one odd record, refused like a
        # copied one, rather than a TypeError or a libmongocrypt error failing a whole list.
        if not isinstance(sealed, Binary) or sealed.subtype != ENCRYPTED:
            raise NotSealedForThisRecord()
        try:
            return self._encryption.decrypt(sealed)
        except EncryptionError as error:
            if not isinstance(error.cause, MongoCryptError):
                raise  # the key vault or the KMS was out of reach: not the record's fault
            raise NotSealedForThisRecord() from None

    def blind(self, kind: str, doctor_id: str, value: str) -> bytes:
        """Return the keyed blind index of a value: equal for equal values of a doctor, meaningless without the key."""
        return self.blind_all(kind, doctor_id, [value])[0]

    def blind_all(self, kind: str, doctor_id: str, values: Iterable[str]) -> list[bytes]:
        """Return the blind indexes of several values of one kind and doctor (a name's prefixes), in their order."""
        # The doctor is part of the input, so the same name at two doctors' does not show as the same entry. The
        # HMAC state after that common part is computed once and copied for each value: a name has ~15 prefixes.
        common = hmac.new(self._search_key, f"{kind}\0{doctor_id}\0".encode(), hashlib.sha256)
        indexes = []
        for value in values:
            state = common.copy()
            state.update(value.encode())
            indexes.append(state.digest()[:BLIND_INDEX_BYTES])
        return indexes


def key_vault(db: Database[dict[str, Any]], key_vault_client: MongoClient[dict[str, Any]],
              kms_providers: Mapping[str, Any], **options: Any) -> ClientEncryption[dict[str, Any]]:
    """Return pymongo's ClientEncryption over this database's key vault, with these KMS providers."""
    return ClientEncryption(kms_providers, f"{db.name}.{KEY_VAULT}", key_vault_client,
                            CodecOptions(uuid_representation=STANDARD), **options)


def _data_key(encryption: ClientEncryption[dict[str, Any]], master_key: MasterKey) -> Binary:
    """Return the id of the clinic's data key, creating it under the master key if the vault has none."""
    stored = encryption.get_key_by_alt_name(DATA_KEY_NAME)
    if stored is None:
        try:
            return encryption.create_data_key(master_key.provider, master_key=master_key.key,
                                              key_alt_names=[DATA_KEY_NAME])
        except EncryptionError as error:
            # Another worker created it first: the unique index on keyAltNames keeps one.
            if not isinstance(error.cause, DuplicateKeyError):
                raise
            stored = _other_workers_key(encryption)
    wrapped_by = stored["masterKey"]["provider"]
    if wrapped_by != master_key.provider:
        raise MasterKeyMismatch(f"the data key in {KEY_VAULT} is wrapped by master key {wrapped_by}, but the "
                                f"configured one is {master_key.provider}: configure the master key it was made with")
    return stored["_id"]


def _other_workers_key(encryption: ClientEncryption[dict[str, Any]]) -> RawBSONDocument:
    """Return the data key another worker inserted first, once the key vault's majority read sees it."""
    # The unique index refuses our insert as soon as theirs is in it, before it is majority-committed, and the
    # key vault reads at majority: the first reads after the refusal may still find nothing.
    deadline = time.monotonic() + OTHER_KEY_WAIT_S
    while (stored := encryption.get_key_by_alt_name(DATA_KEY_NAME)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"another worker's data key in {KEY_VAULT} was not readable within "
                               f"{OTHER_KEY_WAIT_S:g} s")
        time.sleep(0.05)
    return stored


def _search_key(db: Database[dict[str, Any]], encryption: ClientEncryption[dict[str, Any]], data_key_id: Binary,
                master_key: MasterKey) -> bytes:
    """Return the blind-index key, creating it (sealed under the data key) on first use."""
    keys = db[SEARCH_KEYS]
    stored = keys.find_one({"_id": SEARCH_KEY_ID})
    if stored is None:
        sealed = encryption.encrypt(Binary(os.urandom(SEARCH_KEY_BYTES)), SEALED, key_id=data_key_id)
        try:
            keys.insert_one({"_id": SEARCH_KEY_ID, "key": sealed})
        except DuplicateKeyError:
            pass  # another worker stored one first: use theirs
        stored = keys.find_one({"_id": SEARCH_KEY_ID})
        # Ours, or the one whose insert beat ours: a read at the default read concern (local) sees it.
        assert stored is not None
    try:
        return bytes(encryption.decrypt(stored["key"]))
    except EncryptionError as error:
        if not isinstance(error.cause, MongoCryptError):
            raise  # the key vault or the KMS was out of reach: not a wrong key
        raise MasterKeyMismatch(f"the master key {master_key.provider} does not open the data key in "
                                f"{KEY_VAULT} ({error.cause})") from None
