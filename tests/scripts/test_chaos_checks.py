"""`make chaos`'s checks find each kind of violation on a crafted database, and none on a consistent one."""
import datetime

from bson import ObjectId

from scripts.chaos_checks import SOME_NEW_PATIENT, Ledger, Snapshot, violations

APPOINTMENT, FREED, MISSING = (str(ObjectId()) for _ in range(3))
LINKED_PATIENT, KEPT_PATIENT = str(ObjectId()), str(ObjectId())
CORRECTED = {"_id": LINKED_PATIENT, "doctor_id": "doctor_a", "firstName": "Jane", "lastName": "Garcia"}
KEPT = {"_id": KEPT_PATIENT, "doctor_id": "doctor_a", "firstName": "Jim", "lastName": "Smith"}
CREATED = {"success": True, "data": {**CORRECTED, "lastName": "Smith"}}


def entry(number, action, outcome, **targets):
    """Return the audit entry request r<number> left, made at second <number>."""
    return {"_id": ObjectId(), "at": datetime.datetime(2026, 12, 2, 9, 0, number), "action": action,
            "outcome": outcome, "targets": targets, "request_id": f"r{number}", "doctor_id": "doctor_a"}


def consistent():
    """Return a ledger and the database it describes: a patient created (keyed, retried and re-sent), linked
    to a second appointment and unlinked again, then corrected; and a patient kept by the documented 404."""
    ledger = Ledger()
    ledger.settle_appointment(APPOINTMENT, LINKED_PATIENT)
    ledger.settle_appointment(FREED, None)
    ledger.settle_patient(LINKED_PATIENT, 2, CORRECTED)
    ledger.settle_patient(KEPT_PATIENT, 1, KEPT)
    ledger.writes = [(("r2", "r3"), "patient.create", 201, {"patient_id": LINKED_PATIENT,
                                                            "appointment_id": APPOINTMENT}),
                     (("r4",), "patient.create", 404, {"patient_id": KEPT_PATIENT, "appointment_id": MISSING}),
                     (("r5",), "appointment.link", 200, {"appointment_id": FREED, "patient_id": LINKED_PATIENT}),
                     (("r6",), "appointment.unlink", 200, {"appointment_id": FREED, "patient_id": LINKED_PATIENT}),
                     (("r7",), "patient.update", 200, {"patient_id": LINKED_PATIENT})]
    ledger.requests.update({APPOINTMENT: 1, MISSING: 1})
    ledger.keyed["visit-1"] = [(None, None, False), (201, CREATED, False), (201, CREATED, True)]
    audit = [entry(0, "appointment.create", 201, appointment_id=APPOINTMENT),
             entry(1, "appointment.create", 201, appointment_id=FREED),
             entry(3, "patient.create", 201, patient_id=LINKED_PATIENT, appointment_id=APPOINTMENT),
             entry(4, "patient.create", 404, patient_id=KEPT_PATIENT, appointment_id=MISSING),
             entry(5, "appointment.link", 200, appointment_id=FREED, patient_id=LINKED_PATIENT),
             entry(6, "appointment.unlink", 200, appointment_id=FREED, patient_id=LINKED_PATIENT),
             entry(7, "patient.update", 200, patient_id=LINKED_PATIENT),
             entry(8, "appointment.link", 409, appointment_id=APPOINTMENT)]  # a refusal: no write
    snapshot = Snapshot(appointments={APPOINTMENT: LINKED_PATIENT, FREED: None},
                        patients={LINKED_PATIENT: (2, CORRECTED), KEPT_PATIENT: (1, KEPT)},
                        versions={LINKED_PATIENT: [1]}, audit=audit)
    return ledger, snapshot


def found(ledger, snapshot):
    """Return {check name: violations} for the checks that found any."""
    return {check.__name__: lines for check, lines in violations(ledger, snapshot).items() if lines}


def test_a_consistent_database_passes_every_check():
    assert found(*consistent()) == {}


def test_an_acknowledged_patient_missing_is_reported():
    ledger, snapshot = consistent()
    del snapshot.patients[KEPT_PATIENT]

    assert f"patient {KEPT_PATIENT}: acknowledged, missing" in found(ledger, snapshot)[
        "acknowledged_writes_are_there"]


def test_an_acknowledged_link_found_undone_is_reported():
    ledger, snapshot = consistent()
    snapshot.appointments[APPOINTMENT] = None

    assert found(ledger, snapshot)["acknowledged_writes_are_there"] == [
        f"appointment {APPOINTMENT}: points to None, answered {LINKED_PATIENT}"]


def test_a_correction_answered_but_stored_with_other_values_is_reported():
    ledger, snapshot = consistent()
    snapshot.patients[LINKED_PATIENT] = (2, {**CORRECTED, "lastName": "Chen"})

    assert found(ledger, snapshot)["acknowledged_writes_are_there"] == [
        f"patient {LINKED_PATIENT}: at version 2 with other values, answered version 2"]


def test_either_side_of_an_unanswered_write_is_accepted():
    ledger, snapshot = consistent()
    ledger.doubt_appointment(FREED, SOME_NEW_PATIENT)
    ledger.doubt_patient(LINKED_PATIENT, 3)
    assert found(ledger, snapshot) == {}

    snapshot.patients[LINKED_PATIENT] = (4, CORRECTED)
    assert list(found(ledger, snapshot)) == ["acknowledged_writes_are_there", "every_write_has_its_audit_entry"]


def test_an_answer_contradicting_an_acknowledged_write_is_reported():
    ledger, snapshot = consistent()
    ledger.contradictions.append(f"appointment {FREED}: read pointing to {KEPT_PATIENT}, acknowledged None")

    assert found(ledger, snapshot) == {"acknowledged_writes_are_there": ledger.contradictions}


def test_an_appointment_pointing_to_a_missing_patient_is_reported():
    ledger, snapshot = consistent()
    ghost = str(ObjectId())
    snapshot.appointments[FREED] = ghost

    assert found(ledger, snapshot)["links_point_to_patients"] == [
        f"appointment {FREED}: points to missing patient {ghost}"]


def test_an_orphan_patient_is_reported():
    ledger, snapshot = consistent()
    orphan = str(ObjectId())
    snapshot.patients[orphan] = (1, {**KEPT, "_id": orphan})
    snapshot.audit.append(entry(9, "patient.create", 201, patient_id=orphan))  # made, and linked to no appointment

    assert found(ledger, snapshot) == {"every_patient_was_linked_or_kept": [
        f"patient {orphan}: neither linked nor kept by a 404"]}


def test_an_appointment_linked_over_another_patient_is_reported():
    ledger, snapshot = consistent()
    snapshot.audit.append(entry(9, "appointment.link", 200, appointment_id=APPOINTMENT, patient_id=KEPT_PATIENT))
    snapshot.appointments[APPOINTMENT] = KEPT_PATIENT
    ledger.settle_appointment(APPOINTMENT, KEPT_PATIENT)

    assert found(ledger, snapshot) == {"links_alternate_with_unlinks": [
        f"appointment {APPOINTMENT}: linked to {KEPT_PATIENT} over {LINKED_PATIENT}"]}


def test_a_keyed_add_and_link_that_created_two_patients_is_reported():
    ledger, snapshot = consistent()
    again = str(ObjectId())
    snapshot.patients[again] = (1, {**KEPT, "_id": again})
    snapshot.audit += [entry(9, "patient.create", 404, patient_id=again, appointment_id=MISSING)]

    assert found(ledger, snapshot) == {"one_patient_per_request": [
        f"appointment {MISSING}: 2 patients created by 1 add_and_link requests"]}


def test_a_missing_audit_entry_is_reported():
    ledger, snapshot = consistent()
    snapshot.audit = [kept for kept in snapshot.audit if kept["action"] != "patient.update"]

    assert found(ledger, snapshot) == {"every_write_has_its_audit_entry": [
        f"patient {LINKED_PATIENT}: at version 2 with 0 patient.update entries and earlier versions [1]",
        f"request r7: answered 200, no patient.update entry for patient_id={LINKED_PATIENT}"]}


def test_an_audit_entry_of_a_write_that_is_not_there_is_reported():
    ledger, snapshot = consistent()
    ghost = str(ObjectId())
    snapshot.audit.append(entry(9, "patient.update", 200, patient_id=ghost))

    assert found(ledger, snapshot) == {"every_write_has_its_audit_entry": [
        f"patient {ghost}: in the audit trail, missing"]}


def test_a_replay_with_a_different_body_is_reported():
    ledger, snapshot = consistent()
    other = {"success": True, "data": {**CORRECTED, "_id": str(ObjectId())}}
    ledger.keyed["visit-1"].append((201, other, True))

    assert found(ledger, snapshot) == {"replays_repeat_the_answer": [
        "key visit-1: answered 201, then 201 with another body"]}


def test_a_retry_that_ran_again_instead_of_replaying_is_reported():
    ledger, snapshot = consistent()
    ledger.keyed["visit-1"].append((409, {"success": False, "error": "Appointment already linked to a patient"},
                                    False))

    assert found(ledger, snapshot) == {"replays_repeat_the_answer": [
        "key visit-1: answered 201, then 409 with another body not marked Idempotent-Replayed"]}
