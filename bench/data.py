"""The benchmark's data: a doctor's token, appointments to link and the scale dataset, inserted with pymongo."""
import datetime
import random
import time

import jwt
from bson import ObjectId

from bench.floor import PATIENT_FIELDS, now

BATCH = 1000
FIRST_NAMES = ["Jane", "John", "Maria", "Wei", "Amara", "Lars", "Priya", "Omar", "Yuki", "Elena"]
LAST_NAMES = ["Smith", "Garcia", "Chen", "Okafor", "Nilsen", "Patel", "Haddad", "Sato", "Rossi", "Novak"]


def mint_token(secret, doctor_id, ttl_seconds=6 * 3600):
    """Return an HS256 token for the doctor, as the clinic's identity provider would mint it."""
    issued = int(time.time())
    return jwt.encode({"sub": doctor_id, "iat": issued, "exp": issued + ttl_seconds}, secret, algorithm="HS256")


def insert_batches(collection, documents):
    """Insert documents with insert_many, BATCH at a time."""
    for start in range(0, len(documents), BATCH):
        collection.insert_many(documents[start:start + BATCH], ordered=False)


def add_appointments(db, doctor_id, count, linked=False):
    """Insert count appointments of the doctor (free, or linked to a made-up patient) and return their ids."""
    start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    documents = [
        {"_id": ObjectId(), "doctor_id": doctor_id, "patient_id": ObjectId() if linked else None,
         "date": start + datetime.timedelta(minutes=15 * i)}
        for i in range(count)
    ]
    insert_batches(db.appointments, documents)
    return [str(document["_id"]) for document in documents]


def write_ids(path, ids):
    """Write ids one per line, for link.lua and the floor processes."""
    with open(path, "w") as out:
        out.write("\n".join(ids) + "\n")


def doctor_name(index):
    """Return the uid of the index-th doctor of the scale dataset."""
    return f"doctor_{index:04d}"


def add_scale_dataset(db, records, doctors, seed=7):
    """Insert `records` patients, spread over `doctors` doctors, each linked to an appointment of theirs."""
    rng = random.Random(seed)
    year_ago = now() - datetime.timedelta(days=365)
    patients, appointments = [], []
    for i in range(records):
        doctor = doctor_name(i % doctors)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        created = year_ago + datetime.timedelta(seconds=rng.randrange(365 * 86400))
        patient = {"_id": ObjectId(), "doctor_id": doctor, **PATIENT_FIELDS, "firstName": first, "lastName": last,
                   "created_at": created, "name_keys": [first.lower(), last.lower()]}
        patients.append(patient)
        appointments.append({"_id": ObjectId(), "doctor_id": doctor, "patient_id": patient["_id"],
                             "date": created + datetime.timedelta(days=rng.randrange(60))})
    insert_batches(db.patients, patients)
    insert_batches(db.appointments, appointments)
