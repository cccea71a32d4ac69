"""A sealed value belongs to one record: copied into another (another id, another doctor) it is never served."""
import datetime
import logging

import pytest
from bson import ObjectId

from app import create_app
from app.store import leftovers
from tests.api.test_field_encryption import marked_patient, markers
from tests.conftest import bearer, make_config

ATTACKER = "doctor_b"
REFUSED = {"success": False, "error": "Stored record failed its integrity check"}
HOUR = datetime.timedelta(hours=1)


def appointment(client, doctor="doctor_a", reason=None, date="2026-12-01T09:00:00Z"):
    """Create one of the doctor's appointments through the API and return its id."""
    body = {"date": date, **({"reason": reason} if reason else {})}
    response = client.post(f"/appointments?uid={doctor}", json=body, headers=bearer(doctor))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]["_id"]


def patient(client, tag, doctor="doctor_a", key=None):
    """Create one of the doctor's patients (every value marked with tag) through the API; return its id and answer."""
    body = {"appointment_id": appointment(client, doctor), **marked_patient(tag)}
    headers = {**bearer(doctor), **({"Idempotency-Key": key} if key else {})}
    response = client.post(f"/patients/add_and_link?uid={doctor}", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]["_id"], response


def copied(db, collection, source_id, **place):
    """Copy a stored document, sealed value and all, into a new one at another place (ids, doctor); return its id."""
    document = {**db[collection].find_one({"_id": ObjectId(source_id)}), "_id": ObjectId(), **place}
    db[collection].insert_one(document)
    return document["_id"]


def refusal_logged(caplog, collection, record_id):
    """Tell whether the log names this collection and record as failing its integrity check."""
    return any(record.levelno == logging.ERROR and "integrity check" in record.getMessage()
               and f"{collection} {record_id}" in record.getMessage() for record in caplog.records)


def no_values_of(tag, *texts):
    """Tell whether none of the values of the patient marked with tag appears in the texts."""
    own = [value for value in markers(marked_patient(tag)) if tag.lower() in value.lower()]
    return not [value for value in own if any(value in text for text in texts)]


def pages(client, path, doctor=ATTACKER, **query):
    """Return (status, ids, next) of every page of a list, one item a page, following its cursors to the end."""
    seen, after = [], None
    while True:
        params = {"uid": doctor, "limit": 1, **query, **({"after": after} if after else {})}
        response = client.get(path, query_string=params, headers=bearer(doctor))
        body = response.get_json()
        seen.append((response.status_code, [item.get("version", item["_id"]) for item in body["data"]],
                     body["next"]))
        after = body["next"]
        if response.status_code != 200 or not after:
            return seen


def test_a_patient_copied_into_another_doctors_record_is_refused_and_the_log_names_it_without_its_values(
        client, db, caplog):
    source, _ = patient(client, "Victim1")
    copy = copied(db, "patients", source, doctor_id=ATTACKER)

    response = client.get(f"/patients/{copy}?uid={ATTACKER}", headers=bearer(ATTACKER))

    assert (response.status_code, response.get_json()) == (500, REFUSED)
    assert refusal_logged(caplog, "patients", copy)
    assert no_values_of("Victim1", response.get_data(as_text=True), caplog.text)
    # The record it was copied from still reads as its doctor's.
    assert client.get(f"/patients/{source}?uid=doctor_a", headers=bearer()).status_code == 200


def test_a_patient_copied_to_another_id_of_the_same_doctor_is_refused(client, db, caplog):
    source, _ = patient(client, "Same1")
    copy = copied(db, "patients", source)

    response = client.get(f"/patients/{copy}?uid=doctor_a", headers=bearer())

    assert (response.status_code, response.get_json()) == (500, REFUSED)
    assert refusal_logged(caplog, "patients", copy)


def test_the_attackers_list_and_searches_answer_their_own_patients_and_leave_the_copy_out(client, db, caplog):
    source, _ = patient(client, "Victim2")
    first, _ = patient(client, "Own2a", doctor=ATTACKER)
    last, _ = patient(client, "Own2b", doctor=ATTACKER)
    # The copy between the attacker's two patients, and found by the searches that find the first (its blind
    # indexes copied from it: the attacker cannot make them for the copy's own values without the search key).
    now = datetime.datetime.now(datetime.timezone.utc)
    db.patients.update_one({"_id": ObjectId(first)}, {"$set": {"created_at": now - 3 * HOUR}})
    db.patients.update_one({"_id": ObjectId(last)}, {"$set": {"created_at": now - HOUR}})
    keys = db.patients.find_one({"_id": ObjectId(first)})["found_by"]
    copy = copied(db, "patients", source, doctor_id=ATTACKER, created_at=now - 2 * HOUR, found_by=keys)

    listed = pages(client, "/patients")
    searched = pages(client, "/patients", q="qfirstown2a", dateOfBirth="1961-07-13")

    # Every page answers; the page that held only the copy is empty, and its cursor still moves past it.
    assert [(status, ids) for status, ids, _ in listed] == [(200, [last]), (200, []), (200, [first])]
    assert [(status, ids) for status, ids, _ in searched] == [(200, []), (200, [first])]
    assert refusal_logged(caplog, "patients", copy)
    assert no_values_of("Victim2", caplog.text)
    whole = client.get(f"/patients?uid={ATTACKER}", headers=bearer(ATTACKER))
    assert (whole.status_code, [p["_id"] for p in whole.get_json()["data"]]) == (200, [last, first])


def test_a_version_copied_into_another_patients_history_is_left_out_of_it(client, db, caplog):
    source, _ = patient(client, "Victim3")
    assert client.patch(f"/patients/{source}?uid=doctor_a", json={"lastName": "Renamed"},
                        headers={**bearer(), "If-Match": '"1"'}).status_code == 200
    own, _ = patient(client, "Own3", doctor=ATTACKER)
    for version in (1, 2, 3):
        assert client.patch(f"/patients/{own}?uid={ATTACKER}", json={"medicalHistory": f"Own history {version}"},
                            headers={**bearer(ATTACKER), "If-Match": f'"{version}"'}).status_code == 200
    # The victim's first version, put in the attacker's patient's history in place of its second.
    kept = db.patient_versions.find_one({"patient_id": ObjectId(source)})
    db.patient_versions.delete_one({"patient_id": ObjectId(own), "version": 2})
    copy = copied(db, "patient_versions", kept["_id"], patient_id=ObjectId(own), doctor_id=ATTACKER, version=2)

    history = pages(client, f"/patients/{own}/history")
    whole = client.get(f"/patients/{own}/history?uid={ATTACKER}", headers=bearer(ATTACKER))

    assert [(status, versions) for status, versions, _ in history] == [(200, [4]), (200, [3]), (200, []), (200, [1])]
    assert (whole.status_code, [entry["version"] for entry in whole.get_json()["data"]]) == (200, [4, 3, 1])
    assert refusal_logged(caplog, "patient_versions", copy)
    assert no_values_of("Victim3", whole.get_data(as_text=True), caplog.text)


def test_an_appointment_reason_copied_into_another_doctors_appointment_is_refused_and_left_out_of_lists(
        client, db, caplog):
    source = appointment(client, reason="Qreason9 chest pain")
    own = appointment(client, ATTACKER, reason="Own reason", date="2026-12-03T09:00:00Z")
    copy = copied(db, "appointments", source, doctor_id=ATTACKER)

    read = client.get(f"/appointments/{copy}?uid={ATTACKER}", headers=bearer(ATTACKER))
    listed = client.get(f"/appointments?uid={ATTACKER}", headers=bearer(ATTACKER))

    assert (read.status_code, read.get_json()) == (500, REFUSED)
    assert listed.status_code == 200
    assert [(a["_id"], a["reason"]) for a in listed.get_json()["data"]] == [(own, "Own reason")]
    assert refusal_logged(caplog, "appointments", copy)
    assert "Qreason9" not in read.get_data(as_text=True) + listed.get_data(as_text=True) + caplog.text


def test_a_replay_whose_stored_answer_was_swapped_with_another_keys_is_refused(client, db, caplog):
    patient(client, "Victim4", key="victims-key")
    body = {"appointment_id": appointment(client, ATTACKER), **marked_patient("Own4")}
    headers = {**bearer(ATTACKER), "Idempotency-Key": "attackers-key"}
    assert client.post(f"/patients/add_and_link?uid={ATTACKER}", json=body, headers=headers).status_code == 201
    victims = db.idempotency_keys.find_one({"key": "victims-key"})
    db.idempotency_keys.update_one({"key": "attackers-key"}, {"$set": {"sealed": victims["sealed"]}})
    swapped = db.idempotency_keys.find_one({"key": "attackers-key"})

    replay = client.post(f"/patients/add_and_link?uid={ATTACKER}", json=body, headers=headers)

    assert (replay.status_code, replay.get_json()) == (500, REFUSED)
    assert refusal_logged(caplog, "idempotency_keys", swapped["_id"])
    assert no_values_of("Victim4", replay.get_data(as_text=True), caplog.text)
    # Nothing ran again and nothing was written: the key's record is as the attacker left it.
    assert db.idempotency_keys.find_one({"key": "attackers-key"}) == swapped
    assert db.patients.count_documents({"doctor_id": ATTACKER}) == 1


def test_a_patch_of_a_copied_patient_is_refused_and_writes_nothing(client, db, caplog):
    source, _ = patient(client, "Victim5")
    copy = copied(db, "patients", source, doctor_id=ATTACKER)
    before = db.patients.find_one({"_id": copy})
    audited = db.audit.count_documents({})

    response = client.patch(f"/patients/{copy}?uid={ATTACKER}", json={"lastName": "Whatever"},
                            headers={**bearer(ATTACKER), "If-Match": '"1"'})

    assert (response.status_code, response.get_json()) == (500, REFUSED)
    assert refusal_logged(caplog, "patients", copy)
    assert no_values_of("Victim5", response.get_data(as_text=True), caplog.text)
    assert db.patients.find_one({"_id": copy}) == before
    assert db.patient_versions.count_documents({"patient_id": copy}) == 0
    assert db.audit.count_documents({}) == audited


def test_a_link_of_a_copied_patient_is_refused_and_writes_nothing(client, db, caplog):
    source, _ = patient(client, "Victim6")
    copy = copied(db, "patients", source, doctor_id=ATTACKER)
    free = appointment(client, ATTACKER)
    audited = db.audit.count_documents({})

    response = client.put(f"/appointments/{free}/patient?uid={ATTACKER}", json={"patient_id": str(copy)},
                          headers=bearer(ATTACKER))

    assert (response.status_code, response.get_json()) == (500, REFUSED)
    assert refusal_logged(caplog, "patients", copy)
    assert db.appointments.find_one({"_id": ObjectId(free)})["patient_id"] is None
    assert db.audit.count_documents({}) == audited


# Values sealed before binding (by the version before it): the value alone, with no record inside and no mark.

def seal_as_before(values, value):
    """Return a value sealed as the version before binding sealed it: alone."""
    return values._encryption.seal(value)


def written_before_binding(app, db, doctor="doctor_old"):
    """Store one patient, one earlier version, one appointment and one stored answer sealed without binding."""
    values = app.extensions["clinic.db"].values
    fields = marked_patient("Old7")
    patient_id, appointment_id, key_id = ObjectId(), ObjectId(), ObjectId()
    moment = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    db.patients.insert_one({
        "_id": patient_id, "doctor_id": doctor, "sealed": seal_as_before(values, fields),
        "name_index": values._name_index(doctor, fields),
        "birth_index": values._encryption.blind("birth", doctor, fields["dateOfBirth"]), "created_at": moment,
        "version": 2, "updated_at": moment, "updated_by": doctor})
    db.patient_versions.insert_one({
        "_id": ObjectId(), "patient_id": patient_id, "doctor_id": doctor, "version": 1, "at": moment, "actor": doctor,
        "sealed": seal_as_before(values, {**fields, "lastName": "Qoldlast"})})
    db.appointments.insert_one({"_id": appointment_id, "doctor_id": doctor, "patient_id": patient_id,
                                "date": moment, "sealed": seal_as_before(values, {"reason": "Qoldreason"})})
    answer = {"success": True, "data": {"_id": str(patient_id), "doctor_id": doctor, **fields}}
    db.idempotency_keys.insert_one({
        "_id": key_id, "doctor_id": doctor, "key": "old-key", **values.request_fingerprint("x"), "state": "done",
        "created_at": moment, "claimed_at": moment, "status": 201, "headers": {},
        "sealed": seal_as_before(values, answer)})
    forget_every_value_was_bound(db)
    # That version also kept a patient's blind indexes where the next start moves them from.
    db[leftovers.STATE].delete_one({"_id": leftovers.BLIND_INDEXES_UNDER_ONE_INDEX})
    return patient_id, appointment_id


def forget_every_value_was_bound(db):
    """Take back a start's note that no value sealed before binding remains: a database from before binding has none."""
    db[leftovers.STATE].delete_one({"_id": leftovers.EVERY_VALUE_BOUND})


def seen_by(app, patient_id, appointment_id, doctor="doctor_old"):
    """Return what the service answers for the patient, its history and its appointment."""
    api, headers = app.test_client(), bearer(doctor)
    return [(response.status_code, response.get_json()) for response in (
        api.get(f"/patients/{patient_id}?uid={doctor}", headers=headers),
        api.get(f"/patients/{patient_id}/history?uid={doctor}", headers=headers),
        api.get(f"/appointments/{appointment_id}?uid={doctor}", headers=headers))]


@pytest.mark.parametrize("backend", ["mongomock", "replica_set"], indirect=True)
def test_values_sealed_before_binding_are_read_until_encrypt_existing_binds_them_then_a_copy_is_refused(
        backend, mongo, db, app, caplog):
    app.extensions["clinic.db"].prepare()
    patient_id, appointment_id = written_before_binding(app, db)
    client, name = mongo
    started = create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name))

    before = seen_by(started, patient_id, appointment_id)
    # A start finds them and says so, naming the collections and the command (no values).
    assert any("encrypted before they were bound" in record.getMessage() and "encrypt-existing" in record.getMessage()
               and "patients, patient_versions, appointments, idempotency_keys" in record.getMessage()
               for record in caplog.records)
    assert [status for status, _ in before] == [200, 200, 200]
    assert before[0][1]["data"]["firstName"] == "QfirstOld7" and before[2][1]["data"]["reason"] == "Qoldreason"
    assert [entry["lastName"] for entry in before[1][1]["data"]] == ["QlastOld7", "Qoldlast"]

    result = started.test_cli_runner().invoke(args=["encrypt-existing"])
    assert result.exit_code == 0, result.output
    assert ("bound to their records 1 patients, 1 patient_versions, 1 idempotency_keys, 1 appointments"
            in result.output)
    assert db.patients.count_documents({"bound": True}) == 1

    # Callers see the same, before and after a restart, and the stored answer still replays.
    restarted = create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name))
    assert seen_by(started, patient_id, appointment_id) == before == seen_by(restarted, patient_id, appointment_id)
    # Bound now: a copy into the attacker's record is refused.
    copy = copied(db, "patients", patient_id, doctor_id=ATTACKER)
    response = restarted.test_client().get(f"/patients/{copy}?uid={ATTACKER}", headers=bearer(ATTACKER))
    assert (response.status_code, response.get_json()) == (500, REFUSED)
    again = started.test_cli_runner().invoke(args=["encrypt-existing"])
    assert "bound to their records 0 patients, 0 patient_versions, 0 idempotency_keys, 0 appointments" in again.output


def test_a_stored_answer_sealed_before_binding_replays_and_is_then_bound_to_its_key(mongo, db, app, client):
    body = {"appointment_id": appointment(client), **marked_patient("Old8")}
    headers = {**bearer(), "Idempotency-Key": "old-answer"}
    first = client.post("/patients/add_and_link?uid=doctor_a", json=body, headers=headers)
    # As the version before binding stored it: the answer alone, unmarked.
    values = app.extensions["clinic.db"].values
    client, name = mongo
    db.idempotency_keys.update_one({"key": "old-answer"}, {"$set": {"sealed": seal_as_before(values, first.get_json())},
                                                           "$unset": {"bound": ""}})
    forget_every_value_was_bound(db)
    legacy = create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name))

    replayed = legacy.test_client().post("/patients/add_and_link?uid=doctor_a", json=body, headers=headers)
    assert legacy.test_cli_runner().invoke(args=["encrypt-existing"]).exit_code == 0
    rebound = legacy.test_client().post("/patients/add_and_link?uid=doctor_a", json=body, headers=headers)

    assert (replayed.status_code, replayed.get_json()) == (rebound.status_code, rebound.get_json()) == (
        201, first.get_json())
    assert db.idempotency_keys.find_one({"key": "old-answer"})["bound"] is True


def test_a_value_sealed_before_binding_is_refused_where_none_remained_when_the_service_started(client, db, app):
    # A database with no unbound value at start (new, or bound by encrypt-existing): one planted later, an old
    # copy from a backup say, is refused like any copy.
    source, _ = patient(client, "Plant1")
    values = app.extensions["clinic.db"].values
    plant = {**db.patients.find_one({"_id": ObjectId(source)}), "_id": ObjectId(), "doctor_id": ATTACKER}
    plant["sealed"] = seal_as_before(values, marked_patient("Plant1"))
    plant.pop("bound", None)
    db.patients.insert_one(plant)

    response = client.get(f"/patients/{plant['_id']}?uid={ATTACKER}", headers=bearer(ATTACKER))

    assert (response.status_code, response.get_json()) == (500, REFUSED)


def test_encrypt_existing_leaves_a_value_changed_since_it_read_it_to_that_change(mongo, db, app):
    from app.store import encrypt_existing

    app.extensions["clinic.db"].prepare()
    patient_id, _ = written_before_binding(app, db)
    client, name = mongo
    legacy = create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name))
    read_by_the_command = db.patients.find_one({"_id": patient_id})
    corrected = legacy.test_client().patch(f"/patients/{patient_id}?uid=doctor_old", json={"lastName": "Qchanged"},
                                           headers={**bearer("doctor_old"), "If-Match": '"2"'})
    assert corrected.status_code == 200

    values = legacy.extensions["clinic.db"].values
    assert encrypt_existing._bind(db, values, "patients", read_by_the_command) == 0
    now = legacy.test_client().get(f"/patients/{patient_id}?uid=doctor_old", headers=bearer("doctor_old"))
    assert now.get_json()["data"]["lastName"] == "Qchanged"
    assert db.patients.find_one({"_id": patient_id})["bound"] is True


def test_encrypt_existing_never_binds_a_copied_value_to_its_copy_when_its_mark_was_removed(client, db, app):
    source, _ = patient(client, "Unmarked1")
    copy = copied(db, "patients", source, doctor_id=ATTACKER)
    db.patients.update_one({"_id": copy}, {"$unset": {"bound": ""}})
    sealed = db.patients.find_one({"_id": copy})["sealed"]

    result = app.test_cli_runner().invoke(args=["encrypt-existing"])

    assert result.exit_code == 0, result.output
    assert "bound to their records 0 patients" in result.output
    # Only the mark came back: the value inside is still bound to the record it was copied from.
    assert db.patients.find_one({"_id": copy}) == {**db.patients.find_one({"_id": copy}), "sealed": sealed,
                                                   "bound": True}
    response = client.get(f"/patients/{copy}?uid={ATTACKER}", headers=bearer(ATTACKER))
    assert (response.status_code, response.get_json()) == (500, REFUSED)


def test_a_start_that_finds_no_value_sealed_before_binding_notes_it_and_keeps_no_index_for_them(client, db, app):
    patient(client, "Noted1")  # a sealed patient, bound

    assert db[leftovers.STATE].find_one({"_id": leftovers.EVERY_VALUE_BOUND}) is not None
    assert [collection for collection in leftovers.SEALED_COLLECTIONS
            if leftovers.UNBOUND_INDEX in db[collection].index_information()] == []
    # The next start reads the note and looks no further: no index is made again.
    client, name = app.extensions["clinic.db"].client, app.extensions["clinic.db"].db.name
    create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name)).extensions["clinic.db"].prepare()
    assert leftovers.UNBOUND_INDEX not in db.patients.index_information()
