"""Health, readiness, Prometheus metrics, the OpenAPI document and docs page, 404s, and JSON access logs."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.deps import Services
from api.observability import JsonFormatter
from tests.api.conftest import World

Client = TestClient[Litestar]  # conftest's Client, with its type argument for mypy

ACCESS = "vledger.access"
# Someone registered through the API in the access-log tests; none of this may reach a log line.
NAME = "慕容复"
ID_NUMBER = "510107198812033315"
PHONE = "13912340000"


def _c(w: World) -> str:
    return f"/api/v1/communities/{w.community_id}"


def _samples(client: Client, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


# ------------------------------------------------------------------------------ health, ready


def test_health_and_ready_need_no_token(client: Client) -> None:
    health = client.get("/health")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = client.get("/ready")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


# ------------------------------------------------------------------------------------- metrics


def test_metrics_count_requests_by_route_template(client: Client, world: World) -> None:
    path = f"{_c(world)}/accounts/{world.other_account}"
    labels = (
        ("app_name", "vledger"),
        ("method", "GET"),
        ("path", "/api/v1/communities/{community_id}/accounts/{account_id}"),
        ("status_code", "200"),
    )
    before = _samples(client, "vledger_http_requests_total").get(labels, 0.0)
    for _ in range(2):
        assert client.get(path, headers=world.auth("auditor")).status_code == 200
    after = _samples(client, "vledger_http_requests_total")
    assert after[labels] == before + 2

    text = client.get("/metrics").text
    assert "# TYPE vledger_http_requests_total counter" in text
    assert "# TYPE vledger_http_request_duration_seconds histogram" in text
    assert str(world.other_account) not in text  # ids never become label values
    assert f"/communities/{world.community_id}/" not in text


def test_metrics_label_the_status_time_the_request_and_track_requests_in_progress(
    client: Client, world: World
) -> None:
    route = "/api/v1/communities/{community_id}/accounts/{account_id}"

    def labels(status: int) -> tuple[tuple[str, str], ...]:
        return (("app_name", "vledger"), ("method", "GET"), ("path", route), ("status_code", str(status)))

    before = _samples(client, "vledger_http_requests_total").get(labels(404), 0.0)
    timed = _samples(client, "vledger_http_request_duration_seconds_count").get(labels(404), 0.0)
    missing = f"{_c(world)}/accounts/{uuid.uuid4()}"
    assert client.get(missing, headers=world.auth("auditor")).status_code == 404
    assert _samples(client, "vledger_http_requests_total")[labels(404)] == before + 1
    assert _samples(client, "vledger_http_request_duration_seconds_count")[labels(404)] == timed + 1
    assert _samples(client, "vledger_http_requests_in_progress")[labels(200)] == 0
    assert labels(404) not in _samples(client, "vledger_http_requests_error_total")  # only 5xx are errors


def test_metrics_are_prometheus_text(client: Client) -> None:
    client.get("/health")
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    assert "version=" in response.headers["content-type"]
    families = {f.name for f in text_string_to_metric_families(response.text)}
    assert {"vledger_http_requests", "vledger_http_request_duration_seconds"} <= families
    # The scrape itself is not counted.
    assert 'path="/metrics"' not in response.text


def test_posted_transfers_are_counted(client: Client, world: World) -> None:
    before = _samples(client, "vledger_postings_total").get((("unit", "points"),), 0.0)
    body = {
        "kind": "manual_award",
        "postings": [
            {"account_id": str(world.issuance), "unit": "points", "amount": -2},
            {"account_id": str(world.other_account), "unit": "points", "amount": 2},
        ],
    }
    headers = {**world.auth("community_admin"), "Idempotency-Key": f"m-{uuid.uuid4().hex}"}
    assert client.post(f"{_c(world)}/transfers", json=body, headers=headers).status_code == 201
    assert client.post(f"{_c(world)}/transfers", json=body, headers=headers).status_code == 200  # a replay
    after = _samples(client, "vledger_postings_total")[(("unit", "points"),)]
    assert after == before + 2


# ------------------------------------------------------------------------------------- OpenAPI


def test_openapi_is_3_1_with_bearer_security(client: Client) -> None:
    response = client.get("/docs/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert re.fullmatch(r"3\.1\.\d+", doc["openapi"])
    assert doc["info"]["version"] == "1.0.0"
    scheme = doc["components"]["securitySchemes"]["BearerToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert doc["security"] == [{"BearerToken": []}]


def test_openapi_lists_every_api_route_of_the_app(client: Client) -> None:
    doc = client.get("/docs/openapi.json").json()
    documented = {
        path: {m.upper() for m in ops if m in ("get", "post", "put", "patch", "delete")}
        for path, ops in doc["paths"].items()
    }
    served: dict[str, set[str]] = {}
    for route in client.app.routes:
        if not route.path.startswith(("/api/v1", "/audit/v1")):
            continue
        template = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        served.setdefault(template, set()).update(set(route.methods) - {"OPTIONS", "HEAD"})
    assert len(served) > 30
    assert documented == served


def test_openapi_documents_the_idempotency_header_on_transfers(client: Client) -> None:
    doc = client.get("/docs/openapi.json").json()
    post = doc["paths"]["/api/v1/communities/{community_id}/transfers"]["post"]
    headers = {p["name"] for p in post.get("parameters", []) if p["in"] == "header"}
    assert "Idempotency-Key" in headers


def test_the_docs_page_is_html(client: Client) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert "vledger" in response.text


# ------------------------------------------------------------------------------------ 404, 405


def test_an_unknown_route_is_a_404_problem(client: Client, world: World) -> None:
    for path in ("/nope", "/api/v2/me", f"{_c(world)}/accounts/not-a-uuid"):
        response = client.get(path, headers=world.auth("community_admin"))
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json() == {"type": "about:blank", "title": "请求的地址不存在", "status": 404}


def test_a_wrong_method_is_a_405_problem(client: Client, world: World) -> None:
    response = client.delete("/api/v1/me", headers=world.auth("community_admin"))
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 405


# --------------------------------------------------------------------------------- access logs


@pytest.fixture(scope="module")
def logged(api_services: Services) -> Iterator[Client]:
    """The app with access logging on, started before the test so that caplog sees its records."""
    with TestClient(app=create_app(api_services)) as c:
        yield c


def _register_and_read(logged: Client, world: World) -> str:
    headers = world.auth("community_admin")
    body = {"profile": {"name": NAME, "id_number": ID_NUMBER, "phone": PHONE}, "consent_entry": True}
    created = logged.post(f"{_c(world)}/people", json=body, headers=headers)
    assert created.status_code == 201
    person_id: str = created.json()["person_id"]
    found = logged.get(f"{_c(world)}/people", params={"id_number": ID_NUMBER}, headers=headers)
    assert [p["person_id"] for p in found.json()["items"]] == [person_id]
    assert logged.get(f"{_c(world)}/people/{person_id}?phone={PHONE}", headers=headers).status_code == 200
    return person_id


def _access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ACCESS]


def test_access_logs_are_json_with_method_status_and_duration(
    logged: Client, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS):
        person_id = _register_and_read(logged, world)
        logged.post(f"{_c(world)}/transfers", content=b"{", headers=world.auth("community_admin"))
    records = _access_records(caplog)
    assert len(records) == 4
    entries = [json.loads(JsonFormatter().format(r)) for r in records]
    assert [(e["method"], e["status"]) for e in entries] == [
        ("POST", 201),
        ("GET", 200),
        ("GET", 200),
        ("POST", 400),
    ]
    for entry in entries:
        assert entry["logger"] == ACCESS
        assert entry["level"] == "info"
        assert isinstance(entry["duration_ms"], int | float) and entry["duration_ms"] >= 0
        assert isinstance(entry["route"], str)
        assert person_id not in entry["route"]  # a template, not the path


def test_logs_never_carry_query_strings_or_personal_values(
    logged: Client, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        _register_and_read(logged, world)
    assert _access_records(caplog)
    formatter = JsonFormatter()
    text = "\n".join(formatter.format(r) for r in caplog.records if not r.name.startswith("httpx"))
    for value in (NAME, ID_NUMBER, PHONE, "id_number=", "phone=", "?"):
        assert value not in text, value


def test_access_logs_carry_the_route_template(
    logged: Client, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS):
        _register_and_read(logged, world)
    routes = [r.fields["route"] for r in _access_records(caplog)]  # type: ignore[attr-defined]
    people = "/api/v1/communities/{community_id}/people"  # the route template, as in the OpenAPI paths
    assert routes == [people, people, people + "/{person_id}"]


def test_an_unknown_route_is_logged_too(logged: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS):
        assert logged.get("/no/such/route").status_code == 404
    assert [(r.fields["method"], r.fields["status"]) for r in _access_records(caplog)] == [  # type: ignore[attr-defined]
        ("GET", 404)
    ]
