"""Earlier versions another program stored with a version this service never writes (text, 2.5, a bool, a list, 0,
a number no cursor names): left out of histories and their pages, never a 500."""
import datetime

from bson import Decimal128, Int64, ObjectId

from tests.conftest import bearer, jane
from tests.fhir_models import fhir_body

UTC = datetime.timezone.utc
CREATED = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
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
