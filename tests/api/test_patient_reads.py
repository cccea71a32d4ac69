"""Reading patients back over HTTP: one by id, and the doctor's list with name search and pages."""
import pytest
from bson import ObjectId

from app import create_app
from app.store import leftovers
from tests.conftest import bearer, jane, make_config


@pytest.fixture
def add_patient(client, add_appointment):
    """Create a patient through add_and_link for a doctor and return it as the API returned it."""

    def add(first="Jane", last="Smith", doctor="doctor_a"):
        body = jane(add_appointment(doctor_id=doctor), firstName=first, lastName=last)
        response = client.post(f"/patients/add_and_link?uid={doctor}", json=body, headers=bearer(doctor))
        assert response.status_code == 201
        return response.get_json()["data"]

    return add


def test_a_patient_reads_back_as_add_and_link_returned_it(client, add_patient):
    patient = add_patient()
    response = client.get(f"/patients/{patient['_id']}?uid=doctor_a", headers=bearer())

    assert response.status_code == 200
    assert response.get_json() == {"success": True, "data": patient}


def test_reading_refuses_unknown_and_foreign_patients(client, add_patient):
    other = add_patient(doctor="doctor_b")
    unknown = client.get(f"/patients/{ObjectId()}?uid=doctor_a", headers=bearer())
    foreign = client.get(f"/patients/{other['_id']}?uid=doctor_a", headers=bearer())
    malformed = client.get("/patients/123?uid=doctor_a", headers=bearer())

    assert (unknown.status_code, unknown.get_json()["error"]) == (404, "Patient not found")
    assert (foreign.status_code, foreign.get_json()["error"]) == (403, "Doctor does not own this patient")
    assert malformed.status_code == 400


def test_the_list_is_newest_first_and_only_the_doctors_own(client, add_patient):
    created = [add_patient(first=f"P{i}") for i in range(3)]
    add_patient(doctor="doctor_b")
    body = client.get("/patients?uid=doctor_a", headers=bearer()).get_json()

    assert [p["_id"] for p in body["data"]] == [p["_id"] for p in reversed(created)]
    assert body["next"] is None


def test_q_matches_the_start_of_either_name_case_insensitively(client, add_patient):
    smith = add_patient("Jane", "Smith")
    add_patient("Anna", "Jones")
    smithers = add_patient("Waylon", "SMITHERS")
    add_patient("Sam", "Mithra")
    add_patient("Smita", "Rao", doctor="doctor_b")

    by_last = client.get("/patients?uid=doctor_a&q=smi", headers=bearer()).get_json()["data"]
    by_first = client.get("/patients?uid=doctor_a&q=JAN", headers=bearer()).get_json()["data"]
    regex_chars = client.get("/patients?uid=doctor_a&q=.*", headers=bearer()).get_json()["data"]

    assert [p["_id"] for p in by_last] == [smithers["_id"], smith["_id"]]
    assert [p["_id"] for p in by_first] == [smith["_id"]]
    assert regex_chars == []


def test_a_q_shorter_than_three_characters_matches_a_whole_name_only(client, add_patient, db):
    li = add_patient("Li", "Wu")
    lina = add_patient("Lina", "Wuster")
    add_patient("Al", "Li", doctor="doctor_b")

    short_last = client.get("/patients?uid=doctor_a&q=wu", headers=bearer()).get_json()["data"]
    short_first = client.get("/patients?uid=doctor_a&q=LI", headers=bearer()).get_json()["data"]
    one_letter = client.get("/patients?uid=doctor_a&q=l", headers=bearer()).get_json()["data"]
    longer = client.get("/patients?uid=doctor_a&q=wus", headers=bearer()).get_json()["data"]

    assert [p["_id"] for p in short_last] == [li["_id"]]
    assert [p["_id"] for p in short_first] == [li["_id"]]
    assert one_letter == []
    assert [p["lastName"] for p in longer] == ["Wuster"]
    # The key every sealed patient holds, one blind entry per name a search can find it by (li, wu; lin, lina, wus,
    # wust, wuste, wuster) and one for the date of birth.
    assert [len(db.patients.find_one({"_id": ObjectId(p["_id"])})["found_by"]) for p in (li, lina)] == [4, 8]


def test_the_plain_search_indexes_are_kept_only_while_plain_patients_may_be_stored(mongo, db, add_appointment):
    client, name = mongo
    plain_names = {"doctor_name_prefix", "doctor_born_newest"}

    def start(**settings):
        """Start a service on the database, as a worker does, and return the patients' index names after it."""
        api = create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name, **settings)).test_client()
        assert api.get("/patients?uid=doctor_a", headers=bearer()).status_code == 200
        return api, set(db.patients.index_information())

    plain, with_encryption_off = start(FIELD_ENCRYPTION=False, MASTER_KEY=None)
    created = plain.post("/patients/add_and_link?uid=doctor_a", json=jane(add_appointment()), headers=bearer())
    assert created.status_code == 201
    _, while_a_plain_patient_remains = start()
    db.patients.delete_many({})  # as if encrypt-existing had sealed it
    sealed, once_none_remains = start()
    sealed.post("/patients/add_and_link?uid=doctor_a", json=jane(add_appointment()), headers=bearer())

    assert plain_names <= with_encryption_off and plain_names <= while_a_plain_patient_remains
    assert not plain_names & once_none_remains
    assert not plain_names & set(db.patients.index_information())


def test_a_start_moves_blind_indexes_stored_by_the_earlier_version_under_one_index(mongo, db, add_appointment,
                                                                                   add_patient):
    client, name = mongo
    sealed = add_patient(first="Anna", last="Sealed")
    plain = create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name, FIELD_ENCRYPTION=False, MASTER_KEY=None))
    body = jane(add_appointment(), firstName="Paul", lastName="Plain", dateOfBirth="1971-02-03")
    added = plain.test_client().post("/patients/add_and_link?uid=doctor_a", json=body, headers=bearer())
    assert added.status_code == 201
    # As the version before found_by stored a sealed patient: its blind indexes in name_index and birth_index, each
    # under an index of its own, and the list on one more.
    stored = db.patients.find_one({"_id": ObjectId(sealed["_id"])})
    db.patients.update_one({"_id": stored["_id"]}, {"$unset": {"found_by": ""}, "$set": {
        "name_index": stored["found_by"][1:-1], "birth_index": stored["found_by"][-1]}})
    db.patients.create_index([("doctor_id", 1), ("name_index", 1), ("created_at", -1)], name="doctor_sealed_name")
    db.patients.create_index([("doctor_id", 1), ("created_at", -1), ("_id", -1)], name="doctor_newest")
    db[leftovers.STATE].delete_one({"_id": leftovers.BLIND_INDEXES_UNDER_ONE_INDEX})

    api = create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name)).test_client()
    listed = api.get("/patients?uid=doctor_a", headers=bearer()).get_json()["data"]
    by_name_and_birth = api.get("/patients?uid=doctor_a&q=sea&dateOfBirth=1990-03-20", headers=bearer())
    by_birth = api.get("/patients?uid=doctor_a&dateOfBirth=1990-03-20", headers=bearer())
    plain_by_name = api.get("/patients?uid=doctor_a&q=pla", headers=bearer())

    assert [p["firstName"] for p in listed] == ["Paul", "Anna"]
    assert [p["_id"] for p in by_name_and_birth.get_json()["data"]] == [sealed["_id"]]
    assert [p["_id"] for p in by_birth.get_json()["data"]] == [sealed["_id"]]
    assert [p["firstName"] for p in plain_by_name.get_json()["data"]] == ["Paul"]
    moved = db.patients.find_one({"_id": stored["_id"]})
    assert moved["found_by"] == stored["found_by"] and not {"name_index", "birth_index"} & set(moved)
    assert "found_by" not in db.patients.find_one({"firstName": "Paul"})
    assert not {"doctor_sealed_name", "doctor_newest"} & set(db.patients.index_information())
    assert db[leftovers.STATE].find_one({"_id": leftovers.BLIND_INDEXES_UNDER_ONE_INDEX}) is not None


def test_patient_pages_do_not_skip_or_repeat_when_patients_are_added(client, add_patient):
    for i in range(5):
        add_patient(first=f"P{i}")
    first = client.get("/patients?uid=doctor_a&limit=2", headers=bearer()).get_json()
    add_patient(first="Newer")  # newer than every page: not part of the remaining pages
    seen, cursor = list(first["data"]), first["next"]
    while cursor:
        body = client.get(f"/patients?uid=doctor_a&limit=2&after={cursor}", headers=bearer()).get_json()
        seen += body["data"]
        cursor = body["next"]

    names = [p["firstName"] for p in seen]
    assert names == ["P4", "P3", "P2", "P1", "P0"]


def test_list_parameters_are_validated(client):
    too_long = client.get("/patients?uid=doctor_a&q=" + "x" * 101, headers=bearer())
    bad_cursor = client.get("/patients?uid=doctor_a&after=%%%", headers=bearer())

    assert too_long.status_code == 400 and "q" in too_long.get_json()["details"]
    assert bad_cursor.status_code == 400
