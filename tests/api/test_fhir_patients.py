"""The FHIR view of patients: read, version read, history and search, each answer a valid FHIR R4 resource, each
read in the audit trail, every failure an OperationOutcome."""
import datetime

import pytest
from bson import ObjectId

from app.service.schemas import utc_text
from tests.conftest import bearer, jane
from tests.fhir_models import fhir_body

UTC = datetime.timezone.utc


@pytest.fixture
def add_patient(client, add_appointment):
    """Create a patient through add_and_link for a doctor and return it as the REST API returned it."""

    def add(first="Jane", last="Smith", doctor="doctor_a", **fields):
        body = jane(add_appointment(doctor_id=doctor), firstName=first, lastName=last, **fields)
        response = client.post(f"/patients/add_and_link?uid={doctor}", json=body, headers=bearer(doctor))
        assert response.status_code == 201
        return response.get_json()["data"]

    return add


def audit_of(db, action):
    """Return the audit records of an action, oldest first, without their ids and times."""
    return [{name: value for name, value in record.items() if name not in ("_id", "at", "request_id")}
            for record in db.audit.find({"action": action}).sort("at", 1)]


def test_a_patient_reads_as_a_fhir_patient_with_its_version_as_weak_etag_and_the_read_audited(client, db,
                                                                                              add_patient):
    patient = add_patient()

    response = client.get(f"/fhir/Patient/{patient['_id']}", headers=bearer())

    assert response.status_code == 200
    assert response.headers["ETag"] == 'W/"1"'
    assert response.headers["Cache-Control"] == "no-store"
    body = fhir_body(response)
    stored = db.patients.find_one({"_id": ObjectId(patient["_id"])})
    assert body == {
        "resourceType": "Patient", "id": patient["_id"],
        "meta": {"versionId": "1", "lastUpdated": utc_text(stored["updated_at"])},
        "name": [{"use": "official", "family": "Smith", "given": ["Jane"]}],
        "telecom": [{"system": "phone", "value": "+1234567892"},
                    {"system": "email", "value": "jane.smith@example.com"}],
        "birthDate": "1990-03-20",
        "address": [{"line": ["456 Oak St"], "city": "Boston", "state": "MA", "postalCode": "02101"}],
    }
    text = response.get_data(as_text=True)
    # Not exposed in the FHIR view (docs/fhir.md): insurance, medical history, medications.
    for private in ("Aetna", "AET789012", "No significant medical history", "Multivitamin daily"):
        assert private not in text
    assert audit_of(db, "fhir.patient.read") == [{"actor": "doctor_a", "doctor_id": "doctor_a",
                                                  "action": "fhir.patient.read",
                                                  "targets": {"patient_id": patient["_id"]}, "outcome": 200}]


@pytest.mark.parametrize("headers, query", [({"Accept": "application/json"}, ""),
                                            ({"Accept": "application/fhir+json"}, ""),
                                            ({"Accept": "text/html,*/*;q=0.8"}, ""),
                                            ({}, "?_format=json"),
                                            ({"Accept": "application/fhir+xml"}, "?_format=application/fhir+json")])
def test_fhir_json_is_served_when_asked_as_json_or_fhir_json(client, add_patient, headers, query):
    patient = add_patient()

    response = client.get(f"/fhir/Patient/{patient['_id']}{query}", headers={**bearer(), **headers})

    assert response.status_code == 200
    assert fhir_body(response)["id"] == patient["_id"]


@pytest.mark.parametrize("headers, query", [({"Accept": "application/fhir+xml"}, ""), ({"Accept": "text/html"}, ""),
                                            ({}, "?_format=xml"), ({"Accept": "application/json"}, "?_format=html")])
def test_any_other_format_is_refused_with_406_and_the_refusal_audited(client, db, add_patient, headers, query):
    patient = add_patient()

    response = client.get(f"/fhir/Patient/{patient['_id']}{query}", headers={**bearer(), **headers})

    assert response.status_code == 406
    assert fhir_body(response)["issue"][0]["code"] == "not-supported"
    assert [record["outcome"] for record in audit_of(db, "fhir.patient.read")] == [406]


def test_another_doctors_patient_is_403_and_an_unknown_one_404_each_an_operation_outcome_and_audited(client, db,
                                                                                                    add_patient):
    other = add_patient(doctor="doctor_b")
    unknown = str(ObjectId())

    foreign = client.get(f"/fhir/Patient/{other['_id']}", headers=bearer())
    missing = client.get(f"/fhir/Patient/{unknown}", headers=bearer())
    malformed = client.get("/fhir/Patient/123", headers=bearer())

    assert (foreign.status_code, missing.status_code, malformed.status_code) == (403, 404, 400)
    assert fhir_body(foreign)["issue"] == [{"severity": "error", "code": "forbidden",
                                            "diagnostics": "Doctor does not own this patient"}]
    assert fhir_body(missing)["issue"] == [{"severity": "error", "code": "not-found",
                                            "diagnostics": "Patient not found"}]
    assert fhir_body(malformed)["issue"][0]["code"] == "invalid"
    assert "Smith" not in foreign.get_data(as_text=True)
    assert [(record["targets"], record["outcome"]) for record in audit_of(db, "fhir.patient.read")] == [
        ({"patient_id": other["_id"]}, 403), ({"patient_id": unknown}, 404), ({}, 400)]


def test_without_a_token_every_read_is_401_with_its_challenge_and_nothing_is_audited(client, db, add_patient):
    patient = add_patient()

    missing = client.get(f"/fhir/Patient/{patient['_id']}")
    invalid = client.get("/fhir/Patient?name=smi", headers={"Authorization": "Bearer nope"})

    assert (missing.status_code, invalid.status_code) == (401, 401)
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert invalid.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert fhir_body(missing)["issue"][0]["code"] == "login"
    assert fhir_body(invalid)["issue"][0]["diagnostics"] == "Invalid token"
    assert db.audit.count_documents({"action": {"$regex": "^fhir"}}) == 0


def test_an_admin_names_the_doctor_with_uid_and_a_doctor_may_not_name_another(client, db, add_patient):
    patient = add_patient(doctor="doctor_b")

    as_admin = client.get(f"/fhir/Patient/{patient['_id']}?uid=doctor_b", headers=bearer("ops_1", roles=["admin"]))
    admin_without_uid = client.get(f"/fhir/Patient/{patient['_id']}", headers=bearer("ops_1", roles=["admin"]))
    as_other_doctor = client.get(f"/fhir/Patient/{patient['_id']}?uid=doctor_b", headers=bearer("doctor_a"))
    as_itself = client.get(f"/fhir/Patient/{patient['_id']}?uid=doctor_b", headers=bearer("doctor_b"))

    assert as_admin.status_code == 200 and fhir_body(as_admin)["id"] == patient["_id"]
    assert admin_without_uid.status_code == 403  # the admin's own records: the patient is another's
    assert as_other_doctor.status_code == 403
    assert fhir_body(as_other_doctor)["issue"][0]["diagnostics"] == "Token does not allow acting for this doctor"
    assert as_itself.status_code == 200
    reads = audit_of(db, "fhir.patient.read")
    assert [(record["actor"], record["doctor_id"], record["outcome"]) for record in reads] == [
        ("ops_1", "doctor_b", 200), ("ops_1", "ops_1", 403), ("doctor_a", "doctor_a", 403),
        ("doctor_b", "doctor_b", 200)]
    assert reads[2]["named_doctor"] == "doctor_b"


@pytest.mark.parametrize("query, named", [
    ("foo=1", "foo"), ("name:exact=smith", "name:exact"), ("_sort=name", "_sort"), ("name=smi&name=jan", "name"),
    ("_count=-1", "_count"), ("_count=201", "_count"), ("_count=x", "_count"), ("birthdate=ge1990-01-01", "birthdate"),
    ("birthdate=1990", "birthdate"), ("name=smith,jones", "name"), ("uid=doctor_a&uid=doctor_b", "uid"),
    ("after=nope", "after"), ("_summary=count", "_summary"), ("_total=exact", "_total"),
    ("_totalMethod=count", "_totalMethod")])
def test_an_unknown_repeated_or_malformed_search_parameter_is_400_naming_it(client, db, query, named):
    response = client.get(f"/fhir/Patient?{query}", headers=bearer())

    assert response.status_code == 400
    issues = fhir_body(response)["issue"]
    assert any(issue["diagnostics"].startswith(named) or named in issue["diagnostics"] for issue in issues), issues
    assert [record["outcome"] for record in audit_of(db, "fhir.patient.search")] == [400]


def test_the_history_after_a_patch_holds_both_versions_newest_first_and_each_reads_by_version(client, db,
                                                                                               add_patient):
    patient = add_patient()
    patched = client.patch(f"/patients/{patient['_id']}?uid=doctor_a", json={"contact": {"phone": "+1234567899"}},
                           headers={**bearer(), "If-Match": '"1"', "Content-Type": "application/merge-patch+json"})
    assert patched.status_code == 200

    history = client.get(f"/fhir/Patient/{patient['_id']}/_history", headers=bearer())
    current = client.get(f"/fhir/Patient/{patient['_id']}", headers=bearer())
    first = client.get(f"/fhir/Patient/{patient['_id']}/_history/1", headers=bearer())
    third = client.get(f"/fhir/Patient/{patient['_id']}/_history/3", headers=bearer())
    beyond = client.get(f"/fhir/Patient/{patient['_id']}/_history/{2**70}", headers=bearer())

    assert history.status_code == 200
    bundle = fhir_body(history)
    assert bundle["type"] == "history"
    entries = bundle["entry"]
    assert [entry["resource"]["meta"]["versionId"] for entry in entries] == ["2", "1"]
    assert [entry["request"] for entry in entries] == [{"method": "PUT", "url": f"Patient/{patient['_id']}"},
                                                       {"method": "POST", "url": "Patient"}]
    assert [entry["response"]["etag"] for entry in entries] == ['W/"2"', 'W/"1"']
    assert [entry["resource"]["telecom"][0]["value"] for entry in entries] == ["+1234567899", "+1234567892"]
    assert entries[0]["resource"] == fhir_body(current)
    assert current.headers["ETag"] == 'W/"2"'
    assert first.status_code == 200 and first.headers["ETag"] == 'W/"1"'
    assert fhir_body(first) == entries[1]["resource"]
    stored_version = db.patient_versions.find_one({"patient_id": ObjectId(patient["_id"])})
    assert fhir_body(first)["meta"]["lastUpdated"] == utc_text(stored_version["at"])
    assert (third.status_code, beyond.status_code) == (404, 404)
    assert fhir_body(third)["issue"][0]["diagnostics"] == "Patient version not found"
    assert [record["outcome"] for record in audit_of(db, "fhir.patient.vread")] == [200, 404, 404]
    assert audit_of(db, "fhir.patient.history")[0]["targets"] == {"patient_id": patient["_id"]}


def test_the_history_pages_with_next_links(client, add_patient):
    patient = add_patient()
    for version, phone in ((1, "+1000"), (2, "+2000")):
        client.patch(f"/patients/{patient['_id']}?uid=doctor_a", json={"contact": {"phone": phone}},
                     headers={**bearer(), "If-Match": f'"{version}"', "Content-Type": "application/merge-patch+json"})

    seen, url = [], f"/fhir/Patient/{patient['_id']}/_history?_count=2"
    while url:
        bundle = fhir_body(client.get(url, headers=bearer()))
        seen += [entry["resource"]["meta"]["versionId"] for entry in bundle["entry"]]
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = following[0].removeprefix("http://localhost") if following else None

    assert seen == ["3", "2", "1"]


def test_a_search_by_name_prefix_and_birth_date_pages_through_every_match_with_the_true_total(client, db,
                                                                                                add_patient):
    matches = [add_patient("Jane", f"Smith{i}") for i in range(5)]
    add_patient("Jane", "Smith", dateOfBirth="1991-01-01")
    add_patient("Anna", "Jones")
    add_patient("Jane", "Smithers", doctor="doctor_b")

    seen, totals, url = [], [], "/fhir/Patient?name=smi&birthdate=1990-03-20&_count=2"
    while url:
        response = client.get(url, headers=bearer())
        assert response.status_code == 200
        bundle = fhir_body(response)
        totals.append(bundle["total"])
        seen += [entry["resource"]["id"] for entry in bundle["entry"]]
        assert all(entry["fullUrl"] == f"http://localhost/fhir/Patient/{entry['resource']['id']}"
                   for entry in bundle["entry"])
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = following[0].removeprefix("http://localhost") if following else None

    assert seen == [patient["_id"] for patient in reversed(matches)]
    assert totals == [5, 5, 5]
    searches = audit_of(db, "fhir.patient.search")
    assert [record["targets"]["patient_ids"] for record in searches] == [seen[:2], seen[2:4], seen[4:]]
    trail = client.get("/audit?uid=doctor_a&limit=1", headers=bearer()).get_json()["data"]
    assert trail[0]["action"] == "fhir.patient.search" and trail[0]["targets"] == {"patient_ids": seen[4:]}


@pytest.mark.parametrize("query", ["name=smi&_count=0", "family=smi&_count=0", "_count=0&_total=accurate",
                                   "name=smi&_total=none"])
def test_a_search_with_count_0_answers_its_total_alone_and_total_is_always_accurate(client, db, add_patient, query):
    matches = [add_patient("Jane", f"Smith{i}") for i in range(3)]
    add_patient("Smithy", "Jones")  # a first name starting so: `name` finds it, `family` does not
    add_patient("Jane", "Smith", doctor="doctor_b")

    response = client.get(f"/fhir/Patient?{query}", headers=bearer())

    assert response.status_code == 200
    bundle = fhir_body(response)
    expected = 3 if query.startswith("family") else 4
    assert bundle["total"] == expected
    if "_count=0" in query:
        assert bundle["entry"] == []
        assert [link["relation"] for link in bundle["link"]] == ["self"]
        assert audit_of(db, "fhir.patient.search")[-1]["targets"] == {"patient_ids": []}
    else:
        assert len(bundle["entry"]) == expected and matches[0]["_id"] in [e["resource"]["id"] for e in bundle["entry"]]


def test_family_given_and_name_tell_the_names_apart(client, add_patient):
    jane_smith = add_patient("Jane", "Smith")
    smith_jones = add_patient("Smith", "Jones")
    li_wu = add_patient("Li", "Wu")
    add_patient("Lina", "Wuster")

    def ids(query):
        bundle = fhir_body(client.get(f"/fhir/Patient?{query}", headers=bearer()))
        found = [entry["resource"]["id"] for entry in bundle["entry"]]
        assert bundle["total"] == len(found)
        return found

    assert ids("name=SMI") == [smith_jones["_id"], jane_smith["_id"]]
    assert ids("family=smi") == [jane_smith["_id"]]
    assert ids("given=smi") == [smith_jones["_id"]]
    assert ids("family=smi&given=jan") == [jane_smith["_id"]]
    assert ids("family=smi&given=smi") == []
    assert ids("name=jon&given=smi") == [smith_jones["_id"]]
    assert ids("family=wu") == [li_wu["_id"]]  # under three letters: a whole name
    assert ids("given=wu") == []


def test_a_family_search_pages_over_the_matches_only(client, add_patient):
    family = [add_patient("Anna", f"Smith{i}") for i in range(3)]
    for i in range(3):
        add_patient(f"Smithy{i}", "Jones")  # their first names match the blind index too

    first = fhir_body(client.get("/fhir/Patient?family=smith&_count=2", headers=bearer()))
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = fhir_body(client.get(following.removeprefix("http://localhost"), headers=bearer()))

    assert (first["total"], second["total"]) == (3, 3)
    assert [entry["resource"]["id"] for entry in first["entry"] + second["entry"]] == [
        patient["_id"] for patient in reversed(family)]
    assert [link["relation"] for link in second["link"]] == ["self"]


def test_a_patient_another_program_wrote_in_other_shapes_reads_and_searches_without_a_500(client, db):
    now = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    odd = ObjectId()
    # Stored plain, without a version or the times this service keeps, its fields in shapes the service never writes.
    db.patients.insert_one({"_id": odd, "doctor_id": "doctor_a", "firstName": "Jane", "lastName": 42,
                            "dateOfBirth": 19900320, "address": "456 Oak St", "contact": {"phone": "", "email": None},
                            "name_keys": ["jane"], "created_at": now})
    bare = ObjectId()
    db.patients.insert_one({"_id": bare, "doctor_id": "doctor_a", "firstName": "Ann", "lastName": "Lee",
                            "name_keys": ["ann", "lee"], "created_at": now})

    read = client.get(f"/fhir/Patient/{odd}", headers=bearer())
    listed = client.get("/fhir/Patient", headers=bearer())

    assert read.status_code == 200
    assert fhir_body(read) == {"resourceType": "Patient", "id": str(odd),
                               "meta": {"versionId": "1", "lastUpdated": "2026-01-02T03:04:05Z"},
                               "name": [{"use": "official", "given": ["Jane"]}]}
    assert read.headers["ETag"] == 'W/"1"'
    assert listed.status_code == 200
    assert sorted(entry["resource"]["id"] for entry in fhir_body(listed)["entry"]) == sorted([str(odd), str(bare)])


def test_the_capability_statement_needs_no_token_and_names_exactly_what_is_served(client):
    response = client.get("/fhir/metadata")

    assert response.status_code == 200
    statement = fhir_body(response)
    assert statement["fhirVersion"] == "4.0.1"
    assert "json" in statement["format"]
    resources = {resource["type"]: resource for resource in statement["rest"][0]["resource"]}
    assert {kind: [interaction["code"] for interaction in resource["interaction"]]
            for kind, resource in resources.items()} == {
        "Patient": ["read", "vread", "history-instance", "search-type"], "Appointment": ["read", "search-type"]}
    assert {kind: [parameter["name"] for parameter in resource["searchParam"]]
            for kind, resource in resources.items()} == {
        "Patient": ["name", "family", "given", "birthdate"], "Appointment": ["patient", "date"]}
    assert client.get("/fhir/metadata?foo=1").status_code == 400
    assert client.get("/fhir/metadata?_format=xml").status_code == 406


def test_every_search_parameter_the_capability_statement_names_is_taken(client):
    statement = fhir_body(client.get("/fhir/metadata"))
    values = {"name": "smi", "family": "smi", "given": "jan", "birthdate": "1990-03-20", "date": "ge2026-01-01",
              "patient": f"Patient/{ObjectId()}"}

    for resource in statement["rest"][0]["resource"]:
        for parameter in resource["searchParam"]:
            response = client.get(f"/fhir/{resource['type']}?{parameter['name']}={values[parameter['name']]}",
                                  headers=bearer())
            assert response.status_code == 200, (resource["type"], parameter["name"], response.get_json())


def test_unknown_fhir_paths_and_methods_answer_operation_outcomes(client):
    unknown = client.get("/fhir/Observation", headers=bearer())
    written = client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=bearer())

    assert (unknown.status_code, written.status_code) == (404, 405)
    assert fhir_body(unknown)["issue"][0]["code"] == "not-found"
    assert fhir_body(written)["issue"][0]["code"] == "not-supported"
    assert "GET" in written.headers["Allow"]
