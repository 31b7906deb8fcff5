"""Every class of bad input gets a 4xx with a JSON ``{error, message, problems}`` body and
writes NOTHING (checked in the store). The server here runs no engine and a 4 KiB body limit."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .conftest import SEED_PAYMENTS, Live

LIMIT = 4096


@pytest.fixture(scope="module")
def quiet(serve: Any) -> Live:
    return serve(run_worker=False, max_body_bytes=LIMIT)


def seed(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(SEED_PAYMENTS)
    body.update(changes)
    return body


def post(live: Live, content: bytes | Iterator[bytes], content_type: str | None = "application/json",
         **headers: str) -> Any:
    if content_type is not None:
        headers["Content-Type"] = content_type
    return live.client.post("/tasks", content=content, headers=live.auth("admin", **headers))


def check(live: Live, send: Callable[[], Any], status: int, error: str) -> dict[str, Any]:
    before = live.rows()
    response = send()
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and isinstance(body["message"], str) and body["message"]
    assert isinstance(body["problems"], list)
    assert live.rows() == before, "a refused request wrote something"
    return body


@pytest.mark.parametrize(("content", "why"), [
    (b"{", "truncated"), (b"", "empty"), (b"\xff\xfe{}", "not UTF-8"),
    (b'{"name": NaN}', "NaN"), (b"[" * 100_0 + b"]" * 100_0, "too deep"), (b"{'name': 'x'}", "single quotes"),
])
def test_malformed_json_is_400(quiet: Live, content: bytes, why: str) -> None:
    check(quiet, lambda: post(quiet, content), 400, "malformed_json")


@pytest.mark.parametrize(("body", "paths"), [
    ([], [""]), ("process_refund", [""]), (None, [""]), (42, [""]),
    (seed(name=5), ["name"]), (seed(namespace=["payments"]), ["namespace"]), (seed(name=""), ["name"]),
    (seed(name="x" * 201), ["name"]), (seed(context="pay_123"), ["context"]), (seed(context=[1]), ["context"]),
    (seed(version=2.1), ["version"]), (seed(version="banana"), ["version"]), (seed(priority="high"), ["priority"]),
    ({"context": {}}, ["namespace", "name"]), ({"task": "x"}, [""]),
    ({"task": {"name": 1}}, ["task.namespace", "task.name"]),
    (seed(name=1, namespace=2, version=3, context=4, extra=5), ["extra", "namespace", "name", "version", "context"]),
])
def test_wrong_shapes_are_422_listing_every_problem(quiet: Live, body: Any, paths: list[str]) -> None:
    found = check(quiet, lambda: post(quiet, json.dumps(body).encode()), 422, "invalid_request")
    assert [p["path"] for p in found["problems"]] == paths
    assert all(p["message"] for p in found["problems"])


@pytest.mark.parametrize(("changes", "error", "available"), [
    ({"namespace": "billing"}, "unknown_namespace", ["customer_success", "inventory", "payments", "shared"]),
    ({"name": "process_refnud"}, "unknown_template", ["process_payment", "process_refund"]),
    ({"version": "9.9.9"}, "no_matching_version", ["2.0.0", "2.1.3"]),
    ({"version": "~=3.0"}, "no_matching_version", ["2.0.0", "2.1.3"]),
])
def test_unknown_namespace_template_or_version_is_404_with_what_exists(quiet: Live, changes: dict[str, Any],
                                                                       error: str, available: list[str]) -> None:
    found = check(quiet, lambda: post(quiet, json.dumps(seed(**changes)).encode()), 404, error)
    assert found["available"] == available


def test_schema_violations_are_422_listing_each_with_its_path(quiet: Live) -> None:
    context = {"payment_id": 123, "refund_amount": -5, "refund_reason": "whim", "partial_refund": "no"}
    found = check(quiet, lambda: post(quiet, json.dumps(seed(context=context)).encode()), 422, "invalid_context")
    assert [p["path"] for p in found["problems"]] == [
        "context.partial_refund", "context.payment_id", "context.refund_amount", "context.refund_reason"]
    missing = check(quiet, lambda: post(quiet, json.dumps(seed(context={})).encode()), 422, "invalid_context")
    assert len(missing["problems"]) == 2 and {p["path"] for p in missing["problems"]} == {"context"}


def test_oversized_body_is_413_by_content_length(quiet: Live) -> None:
    body = json.dumps(seed(context={"payment_id": "pay_1", "refund_amount": 1, "pad": "x" * LIMIT})).encode()
    check(quiet, lambda: post(quiet, body), 413, "payload_too_large")


def test_oversized_body_is_413_while_reading_a_chunked_stream(quiet: Live) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "process_refund", "namespace": "payments", "context": {"pad": "'
        for _ in range(LIMIT // 512 + 2):
            yield b"x" * 512
        yield b'"}}'

    sent: list[Any] = []

    def send() -> Any:
        sent.append(post(quiet, chunks()))
        return sent[-1]

    check(quiet, send, 413, "payload_too_large")
    assert "content-length" not in sent[0].request.headers  # nothing declared: counted while read


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_non_json_media_type_is_415(quiet: Live, content_type: str | None) -> None:
    check(quiet, lambda: post(quiet, json.dumps(SEED_PAYMENTS).encode(), content_type), 415, "unsupported_media_type")


def test_json_media_type_variants_are_accepted(quiet: Live) -> None:
    response = post(quiet, json.dumps(seed()).encode(), "application/json; charset=utf-8")
    assert response.status_code == 201


@pytest.mark.parametrize("key", ["", "k" * 201])
def test_bad_idempotency_key_is_422(quiet: Live, key: str) -> None:
    found = check(quiet, lambda: post(quiet, json.dumps(seed()).encode(), **{"Idempotency-Key": key}), 422,
                  "invalid_request")
    assert found["problems"][0]["path"] == "Idempotency-Key"
