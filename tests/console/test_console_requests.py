"""The console over ASGI (httpx.ASGITransport): sign-in and session cookies, CSRF on every
state-changing form, namespace authorization identical to the API (404 for what a token may not
see, 403 for what it may see but not do) and every page's answers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest

from tasker_host.api import create_app
from tasker_host.host import Host
from tasker_host.models import TaskState
from tests.console.support import Plan, issue, make_host

PAGES = ["/ui/", "/ui/tasks", "/ui/plugins", "/ui/versions"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class World:
    host: Host
    tokens: dict[str, str]
    ids: dict[str, str]  # payments_ok, payments_failed, cs_failed, cs_pending


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    plan = Plan()
    host = make_host(tmp_path / "c.db", plan)
    tokens = issue(host)
    svc = host.service
    ids = {
        "payments_ok": svc.create_task("payments", "refund", context={"order": "o-1"}).task.id,
        "payments_failed": svc.create_task("payments", "refund", context={"plan": {"charge": "fail"}}).task.id,
        "cs_failed": svc.create_task("customer_success", "escalate_ticket",
                                     context={"plan": {"triage": "fail"}, "ticket": "secret-cs-ticket"}).task.id,
    }
    anyio.run(host.engine.run_until_idle)
    ids["cs_pending"] = svc.create_task("customer_success", "escalate_ticket", context={}).task.id
    yield World(host, tokens, ids)
    host.close()


@pytest.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(world.host, run_worker=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test") as c:
        yield c


async def sign_in(client: httpx.AsyncClient, token: str) -> str:
    """Signs in; returns the session's CSRF token (read from a page's sign-out form)."""
    form = await client.get("/ui/sign-in")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    response = await client.post("/ui/sign-in", data={"token": token, "csrf_token": csrf})
    assert response.status_code == 303 and response.headers["location"] == "/ui/"
    page = await client.get("/ui/")
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


@pytest.mark.anyio
async def test_pages_need_a_session_and_redirect_to_sign_in(client: httpx.AsyncClient, world: World) -> None:
    for path in [*PAGES, f"/ui/tasks/{world.ids['payments_ok']}"]:
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/ui/sign-in?next=")
    assert (await client.get("/ui/live")).status_code == 401
    assert (await client.get("/")).headers["location"] == "/ui/"
    for path in ("/ui/sign-out", f"/ui/tasks/{world.ids['payments_failed']}/retry", "/ui/tasks/bulk"):
        assert (await client.post(path, data={})).status_code == 303  # to sign-in: nothing done
    assert world.host.store.get_task(world.ids["payments_failed"]).status is TaskState.ERROR


@pytest.mark.anyio
async def test_sign_in_sets_a_strict_http_only_cookie_holding_no_token(client: httpx.AsyncClient, world: World) -> None:
    form = await client.get("/ui/sign-in")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    response = await client.post("/ui/sign-in", data={"token": world.tokens["payments"], "csrf_token": csrf})
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith("tasker_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain http here; https below
    assert world.tokens["payments"] not in cookie


@pytest.mark.anyio
async def test_cookies_are_secure_over_https(world: World) -> None:
    app = create_app(world.host, run_worker=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://console.test") as c:
        form = await c.get("/ui/sign-in")
        assert "Secure" in form.headers["set-cookie"]
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        response = await c.post("/ui/sign-in", data={"token": world.tokens["admin"], "csrf_token": csrf})
        assert "Secure" in response.headers["set-cookie"]


@pytest.mark.anyio
async def test_sign_in_refuses_bad_tokens_and_forms_without_their_csrf_token(client: httpx.AsyncClient,
                                                                             world: World) -> None:
    form = await client.get("/ui/sign-in")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    bad = await client.post("/ui/sign-in", data={"token": "tsk_nope", "csrf_token": csrf})
    assert bad.status_code == 401 and "Unknown or revoked token" in bad.text
    assert "tasker_session" not in bad.headers.get("set-cookie", "")
    forged = await client.post("/ui/sign-in", data={"token": world.tokens["admin"], "csrf_token": "x" * 40})
    assert forged.status_code == 403 and "tasker_session=" not in forged.headers.get("set-cookie", "")
    client.cookies.clear()
    no_cookie = await client.post("/ui/sign-in", data={"token": world.tokens["admin"], "csrf_token": csrf})
    assert no_cookie.status_code == 403


@pytest.mark.anyio
async def test_next_after_sign_in_stays_inside_the_console(client: httpx.AsyncClient, world: World) -> None:
    for target, expected in (("/ui/tasks?status=error", "/ui/tasks?status=error"), ("https://evil.example/", "/ui/"),
                             ("//evil.example/ui/", "/ui/"), ("/ui//evil.example", "/ui/")):
        form = await client.get("/ui/sign-in", params={"next": target})
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        response = await client.post("/ui/sign-in", params={"next": target},
                                     data={"token": world.tokens["admin"], "csrf_token": csrf})
        assert response.headers["location"] == expected


@pytest.mark.anyio
async def test_every_state_changing_form_needs_the_session_csrf_token(client: httpx.AsyncClient, world: World) -> None:
    csrf = await sign_in(client, world.tokens["admin"])
    failed = world.ids["payments_failed"]
    forms = [(f"/ui/tasks/{failed}/retry", {}), (f"/ui/tasks/{failed}/cancel", {}),
             (f"/ui/tasks/{failed}/steps/charge/resolve", {"results": "{}"}),
             ("/ui/tasks/bulk", {"action": "cancel", "task": failed}), ("/ui/sign-out", {})]
    for path, data in forms:
        for sent in ({}, {"csrf_token": "0" * 40}, {"csrf_token": csrf[:-1] + ("0" if csrf[-1] != "0" else "1")}):
            response = await client.post(path, data={**data, **sent})
            assert response.status_code == 403, path
            assert "CSRF" in response.text
    assert world.host.store.get_task(failed).status is TaskState.ERROR
    assert (await client.get("/ui/")).status_code == 200  # still signed in
    # another session's token does not work either
    other = httpx.AsyncClient(transport=client._transport, base_url="http://console.test")
    other_csrf = await sign_in(other, world.tokens["admin"])
    assert other_csrf != csrf
    response = await client.post(f"/ui/tasks/{failed}/retry", data={"csrf_token": other_csrf})
    assert response.status_code == 403
    await other.aclose()


@pytest.mark.anyio
async def test_header_csrf_token_is_accepted_and_actions_use_the_service(client: httpx.AsyncClient,
                                                                          world: World) -> None:
    csrf = await sign_in(client, world.tokens["payments"])
    failed = world.ids["payments_failed"]
    response = await client.post(f"/ui/tasks/{failed}/retry", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 303 and response.headers["location"].endswith("notice=Retrying.")
    assert world.host.store.get_task(failed).status is TaskState.IN_PROGRESS
    again = await client.post(f"/ui/tasks/{failed}/retry", data={"csrf_token": csrf})
    assert again.status_code == 303 and "only%20tasks%20in%20error" in again.headers["location"]


@pytest.mark.anyio
async def test_resolve_step_with_results_and_refuses_bad_json(client: httpx.AsyncClient, world: World) -> None:
    csrf = await sign_in(client, world.tokens["payments"])
    failed = world.ids["payments_failed"]
    bad = await client.post(f"/ui/tasks/{failed}/steps/charge/resolve", data={"csrf_token": csrf, "results": "{x"})
    assert bad.status_code == 400 and "not JSON" in bad.text
    ok = await client.post(f"/ui/tasks/{failed}/steps/charge/resolve",
                           data={"csrf_token": csrf, "results": '{"charged": false}'})
    assert ok.status_code == 303 and "Step%20resolved." in ok.headers["location"]
    step = next(s for s in world.host.store.get_task(failed).steps if s.name == "charge")
    assert step.state.value == "resolved_manually" and step.results == {"charged": False}


@pytest.mark.anyio
async def test_payments_token_sees_no_trace_of_customer_success(client: httpx.AsyncClient, world: World) -> None:
    csrf = await sign_in(client, world.tokens["payments"])
    for path in [*PAGES, "/ui/tasks?status=error", "/ui/tasks?namespace=customer_success",
                 f"/ui/tasks/{world.ids['payments_ok']}"]:
        page = await client.get(path)
        assert page.status_code == 200, path
        # the only mention allowed is the viewer's own filter echoed in the page's URLs
        assert "customer_success" not in page.text.replace("namespace=customer_success", "")
        for secret in ("escalate_ticket", "secret-cs-ticket", "Tickets and escalations", "tasker-cs-test",
                       world.ids["cs_failed"], world.ids["cs_pending"]):
            assert secret not in page.text, (path, secret)
    listed = await client.get("/ui/tasks?namespace=customer_success")
    assert "No tasks match." in listed.text
    for task in ("cs_failed", "cs_pending"):
        cs = world.ids[task]
        assert (await client.get(f"/ui/tasks/{cs}")).status_code == 404
        assert (await client.get("/ui/live", params={"task": cs})).status_code == 404
        for path, data in ((f"/ui/tasks/{cs}/retry", {}), (f"/ui/tasks/{cs}/cancel", {}),
                           (f"/ui/tasks/{cs}/steps/triage/resolve", {"results": "{}"})):
            response = await client.post(path, data={"csrf_token": csrf, **data})
            assert response.status_code == 404 and "escalate_ticket" not in response.text
    bulk = await client.post("/ui/tasks/bulk", data={"csrf_token": csrf, "action": "cancel",
                                                     "task": [world.ids["cs_pending"]]})
    assert bulk.status_code == 303 and "0%20cancelled" in bulk.headers["location"]
    assert world.host.store.get_task(world.ids["cs_pending"]).status is TaskState.PENDING
    assert world.host.store.get_task(world.ids["cs_failed"]).status is TaskState.ERROR


@pytest.mark.anyio
async def test_viewer_may_see_but_not_act_403(client: httpx.AsyncClient, world: World) -> None:
    csrf = await sign_in(client, world.tokens["payments_viewer"])
    failed = world.ids["payments_failed"]
    page = await client.get(f"/ui/tasks/{failed}")
    assert page.status_code == 200 and "Retry task" not in page.text and "Resolve manually" not in page.text
    for path, data in ((f"/ui/tasks/{failed}/retry", {}), (f"/ui/tasks/{failed}/cancel", {}),
                       (f"/ui/tasks/{failed}/steps/charge/resolve", {"results": "{}"})):
        response = await client.post(path, data={"csrf_token": csrf, **data})
        assert response.status_code == 403 and "may not" in response.text
    assert world.host.store.get_task(failed).status is TaskState.ERROR


@pytest.mark.anyio
async def test_unknown_tasks_are_404_and_bad_filters_400_listing_every_problem(client: httpx.AsyncClient,
                                                                              world: World) -> None:
    await sign_in(client, world.tokens["admin"])
    assert (await client.get("/ui/tasks/no-such-task")).status_code == 404
    assert (await client.get("/ui/tasks/%00")).status_code == 404
    bad = await client.get("/ui/tasks",
                           params={"status": "done", "since": "yesterday", "after": "\ud800"[:0] + "x\x00"})
    assert bad.status_code == 400
    assert "status" in bad.text and "since" in bad.text and "after" in bad.text


@pytest.mark.anyio
async def test_task_list_filters_and_keyset_pages(client: httpx.AsyncClient, world: World) -> None:
    await sign_in(client, world.tokens["admin"])
    for i in range(55):
        world.host.service.create_task("payments", "refund", context={"order": f"bulk-{i}"})
    first = await client.get("/ui/tasks", params={"namespace": "payments"})
    rows = re.findall(r'name="task" value="([^"]+)"', first.text)
    assert len(rows) == 50
    older = re.search(r'<a href="([^"]+)" rel="next">', first.text).group(1).replace("&amp;", "&")
    rest = re.findall(r'name="task" value="([^"]+)"', (await client.get(older)).text)
    assert len(rest) == 57 - 50 and not set(rest) & set(rows)
    assert rows[0] != world.ids["payments_ok"] and rest[-1] == world.ids["payments_ok"]
    only = await client.get("/ui/tasks", params={"q": "bulk-7", "namespace": "payments"})
    assert len(re.findall(r'name="task" value="', only.text)) == 1
    errors = await client.get("/ui/tasks", params={"status": "error"})
    assert set(re.findall(r'name="task" value="([^"]+)"', errors.text)) == {world.ids["payments_failed"],
                                                                            world.ids["cs_failed"]}


@pytest.mark.anyio
async def test_task_page_shows_dag_steps_results_errors(client: httpx.AsyncClient, world: World) -> None:
    await sign_in(client, world.tokens["admin"])
    page = (await client.get(f"/ui/tasks/{world.ids['payments_failed']}")).text
    assert page.count('<g class="node') == 4 and "st-error" in page and "st-complete" in page
    assert "charge failed: card declined" in page and "Resolve manually" in page and "Retry task" in page
    assert "&#34;step&#34;: &#34;validate&#34;" in page or '"step": "validate"' in page
    assert "log of attempt 1 (1 line)" in page and "declining the card in charge (attempt 1)" in page
    assert page.count('<pre class="log">') == 1  # only the step that logged


@pytest.mark.anyio
async def test_sign_out_ends_the_session(client: httpx.AsyncClient, world: World) -> None:
    csrf = await sign_in(client, world.tokens["admin"])
    response = await client.post("/ui/sign-out", data={"csrf_token": csrf})
    assert response.status_code == 303 and response.headers["location"].startswith("/ui/sign-in")
    assert (await client.get("/ui/")).status_code == 303


@pytest.mark.anyio
async def test_a_revoked_token_ends_its_sessions_and_tampered_cookies_are_refused(client: httpx.AsyncClient,
                                                                                 world: World) -> None:
    await sign_in(client, world.tokens["payments"])
    cookie = client.cookies.get("tasker_session", path="/ui")
    client.cookies.set("tasker_session", cookie[:-2] + "00", domain="console.test", path="/ui")
    assert (await client.get("/ui/")).status_code == 303
    await sign_in(client, world.tokens["payments"])
    world.host.tokens.revoke_token("payments", 0.0)
    assert (await client.get("/ui/")).status_code == 303


@pytest.mark.anyio
async def test_versions_page_counts_work_and_names_callers_only_where_visible(client: httpx.AsyncClient,
                                                                           world: World) -> None:
    from tasker_host.engine.service import Parent

    caller = world.ids["cs_pending"]
    world.host.service.create_task("payments", "refund", "1.0.0", {},
                                   parent=Parent(caller, "triage", "k-1", None, "customer_success"))
    await sign_in(client, world.tokens["payments"])
    page = (await client.get("/ui/versions")).text
    row = re.search(r"payments\.refund@1\.0\.0</a></th>(.*?)</tr>", page, re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row, re.S)
    assert cells[:5] == ["1", "0", "0", "1", "1"]  # pending (the child), running, waiting, error, done
    assert "other namespaces (1)" in row and "customer_success" not in page
    assert "deprecated: use 1.0.0" in page  # refund@0.9.0, never run
    client.cookies.clear()
    await sign_in(client, world.tokens["admin"])
    page = (await client.get("/ui/versions")).text
    assert "customer_success (1)" in page
    cs_row = re.search(r"customer_success\.escalate_ticket@2\.0\.0</a></th>(.*?)</tr>", page, re.S).group(1)
    assert re.findall(r"<td>(.*?)</td>", cs_row, re.S)[2] == "1"  # cs_pending waits on its child


@pytest.mark.anyio
async def test_task_page_shows_the_deprecation_warning_of_its_version(client: httpx.AsyncClient,
                                                                      world: World) -> None:
    task = world.host.service.create_task("payments", "refund", "0.9.0", {}).task
    await sign_in(client, world.tokens["payments"])
    page = (await client.get(f"/ui/tasks/{task.id}")).text
    assert "warning: payments.refund@0.9.0 is deprecated: use 1.0.0" in page
    assert "is deprecated" not in (await client.get(f"/ui/tasks/{world.ids['payments_failed']}")).text
