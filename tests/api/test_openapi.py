"""The OpenAPI document is valid OpenAPI 3.1 and describes every route; a bounded schemathesis
run against the live server (admin token) finds no 5xx and no response outside the document."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Mount, Route

from tasker_host.api.openapi import openapi_document
from tasker_host.auth import TokenRecord, token_digest

from .conftest import PREFIX, Live

# the document the server serves (checked below), built in-process so pytest can parametrize on it
schema = schemathesis.openapi.from_dict(openapi_document(PREFIX))
FUZZ_TOKEN = "tsk_fuzzing-admin-token-for-tests-only"


@schema.auth()
class FuzzAdmin:
    """Every generated request carries the admin token planted in the fuzzed server's store."""

    def get(self, case: Any, ctx: Any) -> str:
        return FUZZ_TOKEN

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture(scope="module")
def fuzzed(serve: Any) -> Live:
    live = serve(run_worker=False)
    record = TokenRecord(id=uuid.uuid4().hex, name="fuzzer", digest=token_digest(FUZZ_TOKEN), admin=True,
                         grants=(), created_at=time.time())
    live.host.tokens.add_token(record)
    return live


def test_document_is_valid_openapi_31(live: Live) -> None:
    response = live.client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert doc["paths"] == openapi_document(PREFIX)["paths"]


def test_document_describes_every_route(live: Live) -> None:
    doc = live.client.get("/openapi.json").json()
    app = live.server.server.config.app
    mount = next(r for r in app.routes if isinstance(r, Mount))
    served = {(f"{PREFIX}{r.path}", m.lower()) for r in mount.routes if isinstance(r, Route)
              for m in r.methods or () if m != "HEAD"}
    described = {(path, method) for path, item in doc["paths"].items() for method in item if method != "parameters"}
    assert served == described


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_no_server_errors(case: Any, fuzzed: Live) -> None:
    # Every built-in check (no 5xx, responses and status codes as documented, ...) except
    # "schema-valid data is accepted": a task's context is checked against ITS template's schema
    # and a version request against PEP 440, neither of which the document can express (422).
    case.call_and_validate(base_url=f"http://127.0.0.1:{fuzzed.server.port}",
                           excluded_checks=[schemathesis.checks.positive_data_acceptance])


def test_fuzzing_was_authenticated_and_reached_the_handlers(fuzzed: Live) -> None:
    """(Runs after the fuzz tests above.) Authenticated requests got through (the 401s are
    schemathesis' own probes without or with a broken token, which must be refused)."""
    text = fuzzed.client.get("/metrics", headers=fuzzed.auth("admin")).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "tasker_http_requests_total":
                counts[s.labels["status"]] = counts.get(s.labels["status"], 0) + s.value
    assert sum(n for status, n in counts.items() if status.startswith("2")) >= 50
    assert not any(status.startswith("5") for status in counts)
