"""The floor: add_and_link's own database operations, straight from pymongo, with no HTTP and no Flask.

Mirrors app/unit_of_work.py and app/records.py: insert the patient, find the appointment by _id, the
conditional link update and the two audit records, in one `with_transaction` with majority write concern
on a replica set; without transactions, the same writes and a delete of the patient on refusal. The
`conflict` mode is the 409 path: the appointment is already linked, so the transaction aborts and one
refusal audit record is written outside it, as app/audit.py does.

One process per stream (`python -m bench.floor ...`), so the client's GIL never limits the floor.
"""
import argparse
import datetime
import json
import sys
import time
import uuid

import pymongo
from bson import ObjectId
from pymongo.errors import ConnectionFailure, PyMongoError
from pymongo.write_concern import WriteConcern

from app.patients import ADD_AND_LINK_EXAMPLE

MAJORITY = WriteConcern("majority", j=True)  # as the service writes
PATIENT_FIELDS = {key: value for key, value in ADD_AND_LINK_EXAMPLE.items() if key != "appointment_id"}


class Refused(Exception):
    """The appointment was not free: the 409 path."""


def now():
    """Return the current UTC time at millisecond precision, as app/records.py stores it."""
    moment = datetime.datetime.now(datetime.timezone.utc)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def audit_entry(doctor_id, action, outcome, **targets):
    """Build an audit record shaped as app/records.audit_entry builds it."""
    return {"_id": ObjectId(), "at": now(), "actor": doctor_id, "doctor_id": doctor_id, "action": action,
            "targets": {k: str(v) for k, v in targets.items()}, "outcome": outcome, "request_id": uuid.uuid4().hex}


def link_steps(db, doctor_id, appointment_id, session):
    """Run add_and_link's steps; raise Refused when the appointment is not this doctor's free one."""
    patient = {"_id": ObjectId(), "doctor_id": doctor_id, **PATIENT_FIELDS, "created_at": now(),
               "name_keys": ["jane", "smith"]}
    db.patients.insert_one(patient, session=session)
    appointment = db.appointments.find_one({"_id": appointment_id}, session=session)
    if appointment is None or appointment.get("doctor_id") != doctor_id or appointment.get("patient_id") is not None:
        raise Refused(patient["_id"])
    result = db.appointments.update_one(
        {"_id": appointment_id, "doctor_id": doctor_id, "patient_id": None},
        {"$set": {"patient_id": patient["_id"]}}, session=session)
    if result.matched_count != 1:
        raise Refused(patient["_id"])
    db.audit.insert_many([
        audit_entry(doctor_id, "patient.create", 201, patient_id=patient["_id"]),
        audit_entry(doctor_id, "appointment.link", 201, appointment_id=appointment_id, patient_id=patient["_id"]),
    ], session=session)


def add_and_link(client, db, doctor_id, appointment_id, transactional, timeout_s):
    """Do one add_and_link's database work; return 201, or 409 after recording the refusal."""
    try:
        with pymongo.timeout(timeout_s):
            if transactional:
                with client.start_session() as session:
                    session.with_transaction(lambda s: link_steps(db, doctor_id, appointment_id, s),
                                             write_concern=MAJORITY)
            else:
                try:
                    link_steps(db, doctor_id, appointment_id, None)
                except Refused as refused:
                    db.patients.delete_one({"_id": refused.args[0]})
                    raise
        return 201
    except Refused:
        db.audit.insert_one(audit_entry(doctor_id, "appointment.link", 409, appointment_id=appointment_id))
        return 409


def parse_args(argv=None):
    """Parse one floor process's command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--doctor", required=True)
    parser.add_argument("--ids-file", required=True)
    parser.add_argument("--first", type=int, required=True, help="index of this process's first id")
    parser.add_argument("--count", type=int, required=True, help="how many ids this process may use")
    parser.add_argument("--mode", choices=("fresh", "cycle"), required=True)
    parser.add_argument("--start-at", type=float, required=True, help="time.time() to start at")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--timeout-ms", type=int, default=5000)
    return parser.parse_args(argv)


def main(argv=None):
    """Run add_and_link's database work back to back until the deadline; print one JSON line of results."""
    args = parse_args(argv)
    with open(args.ids_file) as lines:
        ids = [ObjectId(line.strip()) for line in lines if line.strip()][args.first:args.first + args.count]
    timeout = args.timeout_ms
    # The service's own client settings (app/db.build_client).
    client = pymongo.MongoClient(args.uri, serverSelectionTimeoutMS=timeout, connectTimeoutMS=timeout,
                                 socketTimeoutMS=timeout, tz_aware=True, appname="clinic-records-floor")
    db = client[args.db]
    hello = client.admin.command("hello")
    transactional = "setName" in hello or hello.get("msg") == "isdbgrid"
    time.sleep(max(0.0, args.start_at - time.time()))
    latencies, statuses, exhausted, position = [], {}, 0, 0
    cpu_start, deadline = time.process_time(), time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        if position == len(ids):
            if args.mode == "fresh":
                exhausted = 1
                break
            position = 0
        started = time.perf_counter()
        try:
            status = add_and_link(client, db, args.doctor, ids[position], transactional, timeout / 1000)
        except PyMongoError as error:
            # What the service would answer (app/errors.py): 503 when the database does not answer in time.
            status = 503 if isinstance(error, ConnectionFailure) or getattr(error, "timeout", False) else 500
        latencies.append(round((time.perf_counter() - started) * 1e6))
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        position += 1
    cpu_seconds = time.process_time() - cpu_start
    client.close()
    json.dump({"latencies_us": latencies, "statuses": statuses, "exhausted": exhausted,
               "cpu_seconds": cpu_seconds, "transactional": transactional}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
