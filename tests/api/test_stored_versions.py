"""Patients and earlier versions another program stored with a version this service never writes (text, 2.5, a bool,
a list, 0, a number no cursor names): refused alone, left out of lists and histories, never a 500, never written."""
import datetime
import logging

import bson
import pytest
from bson import Decimal128, Int64, ObjectId

from tests.conftest import bearer, jane
from tests.fhir_models import fhir_body

UTC = datetime.timezone.utc
CREATED = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
UNREADABLE = "Stored record has a version this service cannot read"
REFUSED = {"success": False, "error": UNREADABLE}
FHIR_REFUSED = {"resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "conflict", "diagnostics": UNREADABLE}]}
# Versions no read can name: no ETag, If-Match or history cursor holds them, or the service never writes their type.
ODD = {
    "text": "2",
    "a fraction": 2.5,
    "a whole number stored as a fraction": 2.0,
    "true": True,
    "false": False,
    "a list": [1, 2],
    "an empty list": [],
    "an object": {"version": 2},
    "a decimal": Decimal128("2"),
    "zero": 0,
    "negative": -3,
    "not a number": float("nan"),
    "beyond what a history cursor names": 10**15,
    "the largest a database holds": Int64(2**63 - 1),
}
ABSENT = object()
# The last version a history cursor can name (15 digits).
LAST_VERSION = 10**15 - 1


@pytest.fixture
def store_patient(app, db):
    """Insert a patient of a doctor as the service stores one, at this version (none: no field); return its id."""
    app.extensions["clinic.db"].prepare()
    values = app.extensions["clinic.db"].values

    def store(version=ABSENT, doctor_id="doctor_a", created_at=CREATED, last="Smith"):
        patient_id = ObjectId()
        versioned = {} if version is ABSENT else {"version": version, "updated_at": created_at, "updated_by": "sched"}
        db.patients.insert_one({"_id": patient_id, "doctor_id": doctor_id,
                                **values.patient(patient_id, doctor_id, {"firstName": "Jane", "lastName": last}),
                                "created_at": created_at, **versioned})
        return str(patient_id)

    return store


def as_stored(db, collection, record_id):
    """Return a stored record as BSON bytes: what the database holds, NaN and all, to compare before and after."""
    return bson.encode(db[collection].find_one({"_id": ObjectId(record_id)}))


def logged_unreadable(caplog, collection, record_id):
    """Tell whether the log names this record as one whose version cannot be read."""
    return any(record.levelno == logging.ERROR and "version this service cannot read" in record.getMessage()
               and f"{collection} {record_id}" in record.getMessage() for record in caplog.records)


def every_page(client, path, key, **query):
    """Return (status, keys of its items) of every page of a REST list, one item a page, following its cursors."""
    pages, after = [], None
    while True:
        params = {"uid": "doctor_a", "limit": 1, **query, **({"after": after} if after else {})}
        response = client.get(path, query_string=params, headers=bearer())
        body = response.get_json()
        pages.append((response.status_code, [item[key] for item in body.get("data", [])]))
        after = body.get("next")
        if response.status_code != 200 or not after:
            return pages


def every_bundle_page(client, path):
    """Return (status, resources) of every page of a FHIR Bundle, following its `next` links."""
    pages, url = [], path
    while url:
        response = client.get(url, headers=bearer())
        if response.status_code != 200:
            return [*pages, (response.status_code, [])]
        bundle = fhir_body(response)
        pages.append((200, [entry["resource"] for entry in bundle["entry"]]))
        url = next((link["url"].removeprefix("http://localhost") for link in bundle["link"]
                    if link["relation"] == "next"), None)
    return pages


def test_a_patient_whose_version_cannot_be_read_is_refused_alone_on_every_read_never_with_a_500(
        client, db, store_patient, caplog):
    patients = {shape: store_patient(version) for shape, version in ODD.items()}
    held = {shape: as_stored(db, "patients", patient_id) for shape, patient_id in patients.items()}

    answers, etags = {}, {}
    for shape, patient_id in patients.items():
        rest = [client.get(path, headers=bearer()) for path in (
            f"/patients/{patient_id}?uid=doctor_a", f"/patients/{patient_id}/history?uid=doctor_a")]
        fhir = [client.get(path, headers=bearer()) for path in (
            f"/fhir/Patient/{patient_id}", f"/fhir/Patient/{patient_id}/_history",
            f"/fhir/Patient/{patient_id}/_history/1", f"/fhir/Patient/{patient_id}/_history/2")]
        answers[shape] = ([(response.status_code, response.get_json()) for response in rest]
                          + [(response.status_code, response.get_json(force=True)) for response in fhir])
        etags[shape] = [response.headers.get("ETag") for response in rest + fhir]

    assert answers == {shape: [(409, REFUSED)] * 2 + [(409, FHIR_REFUSED)] * 4 for shape in ODD}
    assert etags == {shape: [None] * 6 for shape in ODD}
    assert [shape for shape, patient_id in patients.items()
            if not logged_unreadable(caplog, "patients", patient_id)] == []
    # Nothing of them was changed, and each refused FHIR read is in the doctor's trail, as any refused read is.
    assert {shape: as_stored(db, "patients", patient_id) for shape, patient_id in patients.items()} == held
    assert db.patient_versions.count_documents({}) == 0
    refused = [(record["action"], record["outcome"], record["targets"]["patient_id"])
               for record in db.audit.find().sort("_id", 1)]
    assert refused == [(action, 409, patient_id) for patient_id in patients.values()
                       for action in ("fhir.patient.read", "fhir.patient.history", "fhir.patient.vread",
                                      "fhir.patient.vread")]


def test_a_patch_or_a_link_of_a_patient_whose_version_cannot_be_read_is_refused_and_writes_nothing(
        client, db, store_patient, add_appointment):
    patients = {shape: store_patient(version) for shape, version in ODD.items()}
    held = {shape: as_stored(db, "patients", patient_id) for shape, patient_id in patients.items()}
    free = add_appointment()

    answers = {}
    for shape, patient_id in patients.items():
        patches = [client.patch(f"/patients/{patient_id}?uid=doctor_a", json={"lastName": "Renamed"},
                                headers={**bearer(), "If-Match": if_match}) for if_match in ('"1"', '"2"')]
        link = client.put(f"/appointments/{free}/patient?uid=doctor_a", json={"patient_id": patient_id},
                          headers=bearer())
        answers[shape] = [(response.status_code, response.get_json()) for response in (*patches, link)]

    assert answers == {shape: [(409, REFUSED)] * 3 for shape in ODD}
    assert {shape: as_stored(db, "patients", patient_id) for shape, patient_id in patients.items()} == held
    assert db.patient_versions.count_documents({}) == 0
    assert db.appointments.find_one({"_id": ObjectId(free)})["patient_id"] is None
    # Each refused attempt is in the trail, as refused writes are; none as done.
    outcomes = [(record["action"], record["outcome"]) for record in db.audit.find().sort("_id", 1)]
    assert outcomes == [("patient.update", 409), ("patient.update", 409), ("appointment.link", 409)] * len(ODD)


def test_lists_and_searches_leave_out_the_patients_whose_version_cannot_be_read_and_page_past_them(
        client, db, store_patient, caplog):
    hour = datetime.timedelta(hours=1)
    # Newest first: a readable patient (at the last version a history cursor names), every odd one, then another.
    newest = store_patient(LAST_VERSION, created_at=CREATED + hour)
    odd = [store_patient(version, created_at=CREATED - index * hour) for index, version in enumerate(ODD.values())]
    oldest = store_patient(created_at=CREATED - len(ODD) * hour)

    listed = every_page(client, "/patients", "_id")
    searched = every_page(client, "/patients", "_id", q="smi")
    whole = client.get("/patients?uid=doctor_a", headers=bearer())
    bundles = {search: every_bundle_page(client, f"/fhir/Patient?_count=1{search}")
               for search in ("", "&name=smi", "&family=smi")}
    totals = [fhir_body(client.get(f"/fhir/Patient?_count=0{search}", headers=bearer()))["total"]
              for search in bundles]

    # Every page answers 200; a page that held only an odd patient is empty, and its cursor still moves past it.
    assert listed == searched == [(200, [newest]), *[(200, [])] * len(ODD), (200, [oldest])]
    assert (whole.status_code, [patient["_id"] for patient in whole.get_json()["data"]]) == (200, [newest, oldest])
    assert {search: [(status, [resource["id"] for resource in resources]) for status, resources in pages
                     if resources or status != 200] for search, pages in bundles.items()} == {
        search: [(200, [newest]), (200, [oldest])] for search in bundles}
    assert [resource["meta"]["versionId"] for _, resources in bundles[""] for resource in resources] == [
        str(LAST_VERSION), "1"]
    # As for a record failing its integrity check: counted by a total that counts index keys; a search by family or
    # given name opens every candidate to count it, and counts only those it can read.
    assert totals == [2 + len(ODD), 2 + len(ODD), 2]
    assert [patient_id for patient_id in odd if not logged_unreadable(caplog, "patients", patient_id)] == []


def test_earlier_versions_stored_in_other_shapes_are_left_out_of_the_history_and_its_pages(client, db,
                                                                                          add_appointment):
    created = client.post("/patients/add_and_link?uid=doctor_a", json=jane(add_appointment()), headers=bearer())
    patient_id = created.get_json()["data"]["_id"]
    for version in range(1, 5):
        assert client.patch(f"/patients/{patient_id}?uid=doctor_a", json={"firstName": f"Jane{version}"},
                            headers={**bearer(), "If-Match": f'"{version}"'}).status_code == 200
    # Stored plain, as an earlier version written before encryption, beside the service's own versions 1 to 4.
    db.patient_versions.insert_many([
        {"_id": ObjectId(), "patient_id": ObjectId(patient_id), "doctor_id": "doctor_a", "version": version,
         "at": CREATED, "actor": "sched", "patient": {"firstName": "Odd", "lastName": "Version"}}
        for version in [*ODD.values(), None, 3.0, [2, 4], Decimal128("2.5"), -1]])

    paged = {limit: every_page(client, f"/patients/{patient_id}/history", "version", limit=limit)
             for limit in (1, 2, 50)}
    bundles = {count: every_bundle_page(client, f"/fhir/Patient/{patient_id}/_history?_count={count}")
               for count in (1, 50)}
    vreads = [client.get(f"/fhir/Patient/{patient_id}/_history/{version}", headers=bearer())
              for version in range(0, 7)]
    whole = [client.get(path, headers=bearer()) for path in (f"/patients/{patient_id}/history?uid=doctor_a",
                                                              f"/fhir/Patient/{patient_id}/_history")]

    assert {limit: ([status for status, _ in pages], [version for _, versions in pages for version in versions])
            for limit, pages in paged.items()} == {1: ([200] * 5, [5, 4, 3, 2, 1]), 2: ([200] * 3, [5, 4, 3, 2, 1]),
                                                   50: ([200], [5, 4, 3, 2, 1])}
    assert {count: [resource["meta"]["versionId"] for _, resources in pages for resource in resources]
            for count, pages in bundles.items()} == {1: ["5", "4", "3", "2", "1"], 50: ["5", "4", "3", "2", "1"]}
    assert [response.status_code for response in vreads] == [404, 200, 200, 200, 200, 200, 404]
    shown = "".join(response.get_data(as_text=True) for response in (*vreads, *whole))
    assert [response.status_code for response in whole] == [200, 200] and "Odd" not in shown


@pytest.mark.parametrize("version, read_as", [(ABSENT, 1), (None, 1), (Int64(7), 7),
                                              (LAST_VERSION - 1, LAST_VERSION - 1)],
                         ids=["no version", "null", "a 64-bit integer", "one before the last a cursor names"])
def test_a_version_another_program_stored_as_null_or_a_64_bit_integer_is_read_and_corrected_as_that_version(
        client, db, store_patient, version, read_as):
    patient_id = store_patient(version)

    read = client.get(f"/patients/{patient_id}?uid=doctor_a", headers=bearer())
    fhir = client.get(f"/fhir/Patient/{patient_id}", headers=bearer())
    corrected = client.patch(f"/patients/{patient_id}?uid=doctor_a", json={"lastName": "Renamed"},
                             headers={**bearer(), "If-Match": f'"{read_as}"'})
    history = client.get(f"/patients/{patient_id}/history?uid=doctor_a", headers=bearer())

    assert (read.status_code, read.headers["ETag"]) == (200, f'"{read_as}"')
    assert (fhir.status_code, fhir.headers["ETag"], fhir_body(fhir)["meta"]["versionId"]) == (
        200, f'W/"{read_as}"', str(read_as))
    assert (corrected.status_code, corrected.headers["ETag"]) == (200, f'"{read_as + 1}"')
    assert [(entry["version"], entry["lastName"]) for entry in history.get_json()["data"]] == [
        (read_as + 1, "Renamed"), (read_as, "Smith")]
    assert db.patients.find_one({"_id": ObjectId(patient_id)})["version"] == read_as + 1
    assert [kept["version"] for kept in db.patient_versions.find({"patient_id": ObjectId(patient_id)})] == [read_as]
