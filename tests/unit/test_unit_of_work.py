"""The unit of work without transactions (mongomock, allowed for development): refusals and errors undo the inserts."""
import mongomock
import pytest

from app.service.refusals import AppointmentNotFoundPatientKept, NotAppointmentOwner
from app.store.db import Database
from app.store.errors import ReplicaSetRequired


@pytest.fixture
def database():
    return Database(mongomock.MongoClient(tz_aware=True), "clinic", 5000, allow_standalone=True)


def test_a_server_without_transactions_is_refused_unless_allowed():
    database = Database(mongomock.MongoClient(tz_aware=True), "clinic", 5000)

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


def test_a_refusal_that_keeps_its_writes_keeps_them(database):
    def steps(records):
        raise AppointmentNotFoundPatientKept(records.add_patient("doc", {"firstName": "J", "lastName": "S"}))

    with pytest.raises(AppointmentNotFoundPatientKept):
        database.unit_of_work().run(steps)
    assert database.db.patients.count_documents({"doctor_id": "doc"}) == 1


def test_the_result_of_the_steps_is_returned_and_kept(database):
    patient = database.unit_of_work().run(
        lambda records: records.add_patient("doc", {"firstName": "J", "lastName": "S"}))

    # The steps see the patient's version and last change too; the schema keeps them out of every body.
    assert len(patient["_id"]) == 24 and set(patient) == {"_id", "doctor_id", "firstName", "lastName",
                                                           "version", "updated_at", "updated_by"}
    assert database.db.patients.count_documents({}) == 1


def test_mongomock_is_seen_as_without_transactions_and_indexes_are_created(database):
    assert database.unit_of_work().transactional is False
    assert "doctor_newest" in database.db.patients.index_information()
    assert "doctor_by_date" in database.db.appointments.index_information()


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
