"""The unit of work without transactions (mongomock, allowed for development): refusals and errors undo the inserts."""
import datetime

import mongomock
import pytest

from app.service.refusals import NotAppointmentOwner
from app.store.db import ClinicDatabase
from app.store.exceptions import KeyTakenOver, ReplicaSetRequired
from app.store.idempotency_keys import Answer, HeldKey


@pytest.fixture
def database():
    return ClinicDatabase(mongomock.MongoClient(tz_aware=True), "clinic", 5000, allow_standalone=True)


def test_a_server_without_transactions_is_refused_unless_allowed():
    database = ClinicDatabase(mongomock.MongoClient(tz_aware=True), "clinic", 5000)

    with pytest.raises(ReplicaSetRequired):
        database.unit_of_work()
    assert "rs.initiate()" in ReplicaSetRequired.message


def test_a_refusal_that_rolls_back_deletes_what_was_inserted(database):
    def steps(records):
        records.add_patient("doc", {"firstName": "J", "lastName": "S"})
        raise NotAppointmentOwner()

    with pytest.raises(NotAppointmentOwner):
        database.unit_of_work().run(steps)
    assert database.db.patients.count_documents({}) == 0


def test_an_unexpected_error_deletes_what_was_inserted(database):
    def steps(records):
        records.add_patient("doc", {"firstName": "J", "lastName": "S"})
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        database.unit_of_work().run(steps)
    assert database.db.patients.count_documents({}) == 0


def held_key(database):
    """Return an Idempotency-Key claimed for a request of doctor `doc`."""
    keys = database.idempotency_keys()
    return HeldKey(keys, keys.claim("doc", "key-1", "fingerprint"))


def test_the_answer_a_keyed_transaction_returns_is_kept_with_its_writes(database):
    def steps(records):
        patient = records.add_patient("doc", {"firstName": "J", "lastName": "S"})
        return Answer(201, {"success": True, "data": {"_id": patient["_id"]}}, {"Location": "/patients/x"})

    answer = database.unit_of_work(held_key=held_key(database)).run(steps)
    kept = database.db.idempotency_keys.find_one({"key": "key-1"})
    assert kept["state"] == "done" and kept["status"] == 201 and kept["headers"] == {"Location": "/patients/x"}
    assert database.idempotency_keys().answer_of(kept) == answer
    assert database.db.patients.count_documents({"doctor_id": "doc"}) == 1


def test_a_keyed_transaction_that_raises_keeps_neither_its_writes_nor_an_answer(database):
    def steps(records):
        records.add_patient("doc", {"firstName": "J", "lastName": "S"})
        raise NotAppointmentOwner()

    with pytest.raises(NotAppointmentOwner):
        database.unit_of_work(held_key=held_key(database)).run(steps)
    assert database.db.idempotency_keys.find_one({"key": "key-1"})["state"] == "running"
    assert database.db.patients.count_documents({}) == 0


def test_a_key_taken_over_meanwhile_is_refused_and_the_writes_undone(database):
    key = held_key(database)
    database.db.idempotency_keys.update_one({"key": "key-1"}, {"$set": {"claimed_at": key.claim.claimed_at
                                                                        + datetime.timedelta(seconds=61)}})

    with pytest.raises(KeyTakenOver):
        database.unit_of_work(held_key=key).run(
            lambda records: Answer(201, {"id": records.add_patient("doc", {"firstName": "J", "lastName": "S"})["_id"]},
                                   {}))
    assert database.db.patients.count_documents({}) == 0


def test_the_result_of_the_steps_is_returned_and_kept(database):
    patient = database.unit_of_work().run(
        lambda records: records.add_patient("doc", {"firstName": "J", "lastName": "S"}))

    # The steps see the patient's version and last change too; the schema keeps them out of every body.
    assert len(patient["_id"]) == 24 and set(patient) == {"_id", "doctor_id", "firstName", "lastName",
                                                           "version", "updated_at", "updated_by"}
    assert database.db.patients.count_documents({}) == 1


def test_mongomock_is_seen_as_without_transactions_and_indexes_are_created(database):
    assert database.unit_of_work().transactional is False
    assert "doctor_found_by_newest" in database.db.patients.index_information()
    assert set(database.db.appointments.index_information()) == {"_id_", "doctor_by_date_with_patient"}


def test_an_error_after_the_link_frees_the_appointment_again(database):
    appointment_id = database.db.appointments.insert_one({"doctor_id": "doc", "patient_id": None}).inserted_id

    def steps(records):
        patient = records.add_patient("doc", {"firstName": "J", "lastName": "S"})
        assert records.link_patient(str(appointment_id), "doc", patient["_id"])
        raise RuntimeError("the answer could not be stored")

    with pytest.raises(RuntimeError):
        database.unit_of_work().run(steps)
    assert database.db.appointments.find_one({"_id": appointment_id})["patient_id"] is None
    assert database.db.patients.count_documents({}) == 0
