"""FHIR Bundles: a page of search matches (searchset) and a page of a patient's versions (history), with their links."""
from typing import Any
from urllib.parse import urlencode

from flask import request

from app.http.fhir.outcomes import FHIR_BASE_PATH
from app.http.fhir.resources import weak_etag

# The query parameter that carries the service's page cursor in a `next` link.
CURSOR_PARAMETER = "after"


def base_url() -> str:
    """Return the FHIR base URL as this request reached the service (its scheme and Host)."""
    return request.host_url.rstrip("/") + FHIR_BASE_PATH


def page_url(path: str, parameters: list[tuple[str, str]], cursor: str | None = None) -> str:
    """Return the absolute URL of a page: the path under the base, the request's parameters and the cursor if any."""
    kept = [(name, value) for name, value in parameters if name != CURSOR_PARAMETER]
    if cursor is not None:
        kept.append((CURSOR_PARAMETER, cursor))
    return f"{base_url()}/{path}" + (f"?{urlencode(kept)}" if kept else "")


def _links(path: str, parameters: list[tuple[str, str]], next_cursor: str | None) -> list[dict[str, str]]:
    """Return a page's links: itself, and the next page while there is one."""
    links = [{"relation": "self", "url": page_url(path, parameters, dict(parameters).get(CURSOR_PARAMETER))}]
    if next_cursor is not None:
        links.append({"relation": "next", "url": page_url(path, parameters, next_cursor)})
    return links


def searchset(path: str, parameters: list[tuple[str, str]], resources: list[dict[str, Any]], next_cursor: str | None,
              total: int) -> dict[str, Any]:
    """Return one page of search matches as a searchset Bundle, with the number of matches over every page."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": _links(path, parameters, next_cursor),
        "entry": [{"fullUrl": f"{base_url()}/{resource['resourceType']}/{resource['id']}", "resource": resource,
                   "search": {"mode": "match"}} for resource in resources],
    }


def history(path: str, parameters: list[tuple[str, str]], versions: list[dict[str, Any]],
            next_cursor: str | None) -> dict[str, Any]:
    """Return one page of a resource's versions, newest first, as a history Bundle.

    Each entry says how its version came to be: the first created it (POST), each later one replaced it (PUT).
    """
    entries = []
    for resource in versions:
        meta = resource.get("meta", {})
        created = meta.get("versionId") == "1"
        response: dict[str, Any] = {"status": "201 Created" if created else "200 OK"}
        if "versionId" in meta:
            response["etag"] = weak_etag(meta["versionId"])
        if "lastUpdated" in meta:
            response["lastModified"] = meta["lastUpdated"]
        entries.append({
            "fullUrl": f"{base_url()}/{resource['resourceType']}/{resource['id']}",
            "resource": resource,
            "request": {"method": "POST" if created else "PUT",
                        "url": resource["resourceType"] if created else f"{resource['resourceType']}/{resource['id']}"},
            "response": response,
        })
    return {"resourceType": "Bundle", "type": "history", "link": _links(path, parameters, next_cursor),
            "entry": entries}


BUNDLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["resourceType", "type", "link", "entry"],
    "properties": {
        "resourceType": {"const": "Bundle"},
        "type": {"enum": ["searchset", "history"]},
        "total": {"type": "integer", "minimum": 0},
        "link": {"type": "array", "items": {"type": "object", "required": ["relation", "url"]}},
        "entry": {"type": "array", "items": {"type": "object", "required": ["fullUrl", "resource"]}},
    },
}
