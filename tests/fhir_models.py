"""Every FHIR resource the service answers, checked against the maintained R4B models of the fhir.resources package."""
from fhir.resources.R4B import get_fhir_model_class

FHIR_JSON = "application/fhir+json"


def valid_fhir(body):
    """Return a FHIR JSON body once fhir.resources' model of its resourceType takes it, and each Bundle entry's.

    The models check types, required elements and codes, not FHIRPath invariants: the few the view could break
    (an Appointment's start and end, a Bundle's total, request and response) are checked here.
    """
    get_fhir_model_class(body["resourceType"]).model_validate(body)
    resources = [body]
    if body["resourceType"] == "Bundle":
        resources += [entry["resource"] for entry in body.get("entry", [])]
        for entry in body.get("entry", []):
            get_fhir_model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])
            # bdl-3, bdl-4: a history's entries say how each version came to be; a searchset's never do.
            assert ("request" in entry and "response" in entry) == (body["type"] == "history"), entry
        assert ("total" in body) <= (body["type"] in ("searchset", "history"))  # bdl-1
    for resource in resources:
        if resource["resourceType"] == "Appointment":
            assert ("start" in resource) == ("end" in resource), resource  # app-2
            assert "start" in resource or resource["status"] in ("proposed", "cancelled", "waitlist"), resource  # app-3
    return body


def fhir_body(response):
    """Return a response's FHIR JSON body once valid (see valid_fhir), asserting it was sent as FHIR JSON."""
    assert response.mimetype == FHIR_JSON, (response.status_code, response.mimetype, response.get_data(as_text=True))
    return valid_fhir(response.get_json(force=True))
