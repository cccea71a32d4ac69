"""The MongoDB connection: client, indexes and what the deployment supports."""
import logging
import threading
from collections.abc import Mapping
from typing import Any

import pymongo
from pymongo.errors import PyMongoError
from pymongo.mongo_client import MongoClient

from app.store import leftovers
from app.store.exceptions import ReplicaSetRequired
from app.store.field_encryption import KEY_VAULT, FieldEncryption
from app.store.idempotency_keys import HeldKey, IdempotencyStore
from app.store.rate_limit_storage import RATE_LIMIT_WINDOWS, RATE_LIMIT_WINDOWS_EXPIRE
from app.store.records import (
    APPOINTMENTS,
    AUDIT,
    IDEMPOTENCY,
    IDEMPOTENCY_TTL_SECONDS,
    PATIENT_VERSIONS,
    PATIENTS,
    AuditContext,
    Records,
)
from app.store.sealing import FOUND_BY, PlainValues, SealedValues, ValueStorage
from app.store.unit_of_work import DURABLE, UnitOfWork
from config import Config, MasterKey

log = logging.getLogger("clinic.db")

# The collections a sharded cluster splits by doctor, on this key (docs/scaling.md): every command on them names one
# doctor, and each unique index among theirs starts with the key. The key vault, the search key, the rate-limit
# windows and the database's notes (leftovers.STATE) stay unsharded.
SHARD_KEY = "doctor_id"
SHARDED_BY_DOCTOR = (PATIENTS, APPOINTMENTS, AUDIT, PATIENT_VERSIONS, IDEMPOTENCY)

# Every query the service runs is served by one of these, or by leftovers.PLAIN_PATIENT_INDEXES for patients stored
# plain (the link update uses the `_id` index).
INDEXES = {
    PATIENTS: [
        # The list and the searches of sealed patients (by name prefix, date of birth or both), newest first, on one
        # index of the keys each is found by (sealing.FOUND_BY). The keys a query names are equalities, so the index
        # gives the order too: one range of entries per key, merged.
        pymongo.IndexModel([("doctor_id", 1), (FOUND_BY, 1), ("created_at", -1), ("_id", -1)],
                           name=leftovers.PATIENTS_FOUND_BY_INDEX),
    ],
    APPOINTMENTS: [
        # Every query on appointments, on one index: an index more costs each insert and link. The dated ones come in
        # index order (a `$type: date` bound on `date`); with patient_id last, the free or linked ones and one
        # patient's are told apart on the keys, opening only the appointments listed. One patient's walk the doctor's
        # keys over the dates asked for rather than a range of their own. Those another program dated otherwise are
        # found through the same doctor_id prefix and sorted by _id in memory: they are few.
        pymongo.IndexModel([("doctor_id", 1), ("date", 1), ("_id", 1), ("patient_id", 1)],
                           name=leftovers.APPOINTMENTS_BY_DATE_INDEX),
    ],
    AUDIT: [
        pymongo.IndexModel([("doctor_id", 1), ("at", -1), ("_id", -1)], name="doctor_newest"),
    ],
    PATIENT_VERSIONS: [
        # doctor_id first, as every query on it names the doctor (a sharded cluster routes by it); a new name, since
        # an index's keys cannot change under the name it has (a database from before keeps `patient_newest`).
        pymongo.IndexModel([("doctor_id", 1), ("patient_id", 1), ("version", -1)], name="doctor_patient_newest"),
    ],
    KEY_VAULT: [
        # As MongoDB's key vault asks: one data key per name, so two workers starting at once make one key.
        pymongo.IndexModel([("keyAltNames", 1)], name="one_key_per_name", unique=True,
                           partialFilterExpression={"keyAltNames": {"$exists": True}}),
    ],
    RATE_LIMIT_WINDOWS: [RATE_LIMIT_WINDOWS_EXPIRE],
    IDEMPOTENCY: [
        pymongo.IndexModel([("doctor_id", 1), ("key", 1)], name="doctor_key", unique=True),
        # MongoDB deletes keys a day old by itself; lookups also ignore older ones until it does.
        pymongo.IndexModel([("created_at", 1)], name="expire_after_a_day", expireAfterSeconds=IDEMPOTENCY_TTL_SECONDS),
    ],
}


def build_client(config: Config) -> MongoClient[dict[str, Any]]:
    """Build a client whose every wait is bounded by the configured timeout."""
    timeout = config.MONGODB_TIMEOUT_MS
    return pymongo.MongoClient(
        config.MONGODB_URI,
        serverSelectionTimeoutMS=timeout,
        connectTimeoutMS=timeout,
        socketTimeoutMS=timeout,
        tz_aware=True,
        appname="clinic-records",
    )


# MongoDB 8.0, the first to take the client bulkWrite command (one command for writes to several collections).
CLIENT_BULK_WRITE_WIRE_VERSION = 25


def server_abilities(client: MongoClient[dict[str, Any]]) -> tuple[bool, bool]:
    """Tell from the server's hello reply whether it runs transactions and takes a client bulkWrite."""
    try:
        hello = client.admin.command("hello")
    except NotImplementedError:  # mongomock: no sessions, no transactions
        return False, False
    transactions = "setName" in hello or hello.get("msg") == "isdbgrid"
    return transactions, transactions and hello.get("maxWireVersion", 0) >= CLIENT_BULK_WRITE_WIRE_VERSION


class ClinicDatabase:
    """One service's handle on its database, prepared once (indexes, topology, data key) on first use."""

    def __init__(self, client: MongoClient[dict[str, Any]], name: str, timeout_ms: int, allow_standalone: bool = False,
                 master_key: MasterKey | None = None, key_vault_client: MongoClient[dict[str, Any]] | None = None,
                 client_bulk_write: bool = True) -> None:
        self.client = client
        # Every write outside a transaction takes this; a transaction's writes take it at commit.
        self.db = client.get_database(name, write_concern=DURABLE)
        self.timeout_s = timeout_ms / 1000
        self.allow_standalone = allow_standalone
        # Without a master key (FIELD_ENCRYPTION=off) patient values are stored plain.
        self.master_key = master_key
        self.key_vault_client = key_vault_client or client
        self.values: ValueStorage | None = None
        # Whether a transaction's writes may go in one client bulkWrite (where the server takes it).
        self._client_bulk_write = client_bulk_write
        self._batched = False
        self._transactions: bool | None = None
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Create the indexes and learn the topology, once; retried on the next call if the server was down."""
        if self._transactions is not None:
            return
        with self._lock:
            if self._transactions is not None:
                return
            for collection, indexes in INDEXES.items():
                self.db[collection].create_indexes(indexes)
            leftovers.blind_indexes_under_one_index(self.db)
            leftovers.drop_earlier_appointment_indexes(self.db)
            if self.master_key is None:
                leftovers.plain_patients_to_be_stored(self.db)
                self.values = PlainValues()
            else:
                self.values = SealedValues(FieldEncryption.open(self.db, self.key_vault_client, self.master_key),
                                           plain_patients=self._plain_patients_remain(),
                                           unbound_values=self._unbound_values_remain())
            transactions, bulk_write = server_abilities(self.client)
            self._batched = bulk_write and self._client_bulk_write
            self._transactions = transactions
            log.info("database prepared transactions=%s batched_writes=%s field_encryption=%s", self._transactions,
                     self._batched, "on" if self.master_key else "off")

    def _plain_patients_remain(self) -> bool:
        """Tell whether patients written before field encryption remain, saying how to encrypt them if so."""
        if not leftovers.plain_patients_remain(self.db):
            return False
        log.warning("patients stored unencrypted remain: run `flask --app wsgi encrypt-existing`")
        return True

    def _unbound_values_remain(self) -> bool:
        """Tell whether values sealed before they were bound to their records remain, saying how to bind them."""
        remaining = leftovers.unbound_values_remain(self.db)
        if not remaining:
            return False
        # Read until then, wherever they are found: only a bound value is refused in another record.
        log.warning("values encrypted before they were bound to their records remain in %s: run "
                    "`flask --app wsgi encrypt-existing`", ", ".join(remaining))
        return True

    def try_prepare(self) -> None:
        """Prepare at start-up without failing: a database that is down now may be up by the first request."""
        try:
            self.prepare()
        except PyMongoError as error:
            log.warning("database not ready at start-up (%s); will retry on first request", type(error).__name__)

    def unit_of_work(self, actor: str | None = None, doctor_id: str = "", request_id: str = "",
                     named_doctor: str | None = None, outcomes: Mapping[str, int] | None = None,
                     held_key: HeldKey | None = None) -> UnitOfWork:
        """Return a unit of work, audited as the actor's if one acts; refuse a server without transactions."""
        self.require_transactions()
        assert self.values is not None and self._transactions is not None  # prepare() set both
        audit_context = (None if actor is None
                         else AuditContext(actor, doctor_id, request_id, named_doctor, dict(outcomes or {})))
        return UnitOfWork(self.client, self.db, self.values, self._transactions, self.timeout_s, audit_context,
                          batched=self._batched, held_key=held_key)

    def idempotency_keys(self) -> IdempotencyStore:
        """Return the store of the answers kept for requests sent with an Idempotency-Key."""
        self.prepare()
        assert self.values is not None  # prepare() set it
        return IdempotencyStore(self.db, self.values)

    def require_transactions(self) -> None:
        """Refuse (503) a server without transactions, where a crash mid-request could leave half a write."""
        self.prepare()
        if not (self._transactions or self.allow_standalone):
            raise ReplicaSetRequired()

    def records(self) -> Records:
        """Return records for reads outside a unit of work."""
        self.prepare()
        assert self.values is not None  # prepare() set it
        return Records(self.db, self.values)

    def close(self) -> None:
        """Release the field encryption's libmongocrypt handle and the client."""
        if self.values is not None:
            self.values.close()
        self.client.close()

    def ping(self, deadline_s: float) -> None:
        """Raise unless the server answers a ping within deadline_s and can take this service's writes."""
        # The driver's own operation deadline: server selection and the reply both end with it, so a probe is
        # answered before its own timeout. It replaces the client's timeouts rather than shortening them, hence
        # the min: never longer than MONGODB_TIMEOUT_MS either.
        with pymongo.timeout(min(deadline_s, self.timeout_s)):
            self.client.admin.command("ping")
        # Outside the deadline: the server has just answered, and a first preparation (indexes, the data key,
        # perhaps through a KMS) may take longer than a probe's budget yet must be allowed to finish.
        self.require_transactions()
