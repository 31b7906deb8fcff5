"""The audit trail of a store (``append_audit``, ``list_audit`` and the ``audit`` entries written
with a change). Mix :class:`AuditContract` beside :class:`~tests.store_contract.StoreContract`
(same ``store`` fixture)."""

from __future__ import annotations

import dataclasses

from tasker_host.audit import Actor, ActorKind, AuditAction, AuditEntry, AuditFilter, entry_for
from tasker_host.models import StepState
from tasker_host.store.base import Store
from tasker_host.store.tokens import token_store_for
from tasker_host.tokens import issue_token, revoke_token
from tests.store_contract import LEASE, NOW, fail, single

API = Actor.of_token("ops", ActorKind.API, "corr-1")
CLI = Actor("cli", ActorKind.CLI, os_user="alice")


def entry(action: AuditAction, namespace: str | None = "ns", target: str | None = "t1", at: float = NOW,
          actor: Actor = API) -> AuditEntry:
    return entry_for(actor, action, at, namespace=namespace, target=target, details={"reason": "why"})


def actions(store: Store, **query: object) -> list[tuple[str, str | None]]:
    return [(r.entry.action.value, r.entry.target) for r in store.list_audit(AuditFilter(**query))]  # type: ignore[arg-type]


class AuditContract:
    def test_appended_rows_come_back_newest_first_as_written(self, store: Store) -> None:
        first = entry(AuditAction.CONSOLE_SIGN_IN, namespace=None, target=None)
        second = entry(AuditAction.TASK_CANCEL, actor=CLI, at=NOW + 1)
        store.append_audit([first])
        store.append_audit([second])
        rows = store.list_audit(AuditFilter())
        assert [r.entry for r in rows] == [second, first]
        assert rows[0].id > rows[1].id
        assert (rows[0].entry.principal, rows[0].entry.os_user, rows[0].entry.actor_kind) == ("cli", "alice",
                                                                                              ActorKind.CLI)
        assert (rows[1].entry.token_name, rows[1].entry.correlation_id) == ("ops", "corr-1")
        assert rows[0].entry.details == {"reason": "why"}

    def test_filters_and_cursor(self, store: Store) -> None:
        store.append_audit([entry(AuditAction.TASK_RETRY, "a", "t1", NOW), entry(AuditAction.TASK_RETRY, "b", "t2",
                                                                                NOW + 1),
                            entry(AuditAction.TOKEN_CREATE, None, "tok", NOW + 2),
                            entry(AuditAction.TASK_CANCEL, "a", "t3", NOW + 3)])
        assert actions(store, namespaces=["a"]) == [("task.cancel", "t3"), ("task.retry", "t1")]
        assert actions(store, since=NOW + 1) == [("task.cancel", "t3"), ("token.create", "tok"), ("task.retry", "t2")]
        page = store.list_audit(AuditFilter(limit=2))
        assert [r.entry.target for r in page] == ["t3", "tok"]
        assert actions(store, before_id=page[-1].id) == [("task.retry", "t2"), ("task.retry", "t1")]
        assert actions(store, namespaces=[]) == []

    def test_a_created_task_writes_its_entry_an_idempotent_repeat_none(self, store: Store) -> None:
        task = dataclasses.replace(single("t1", idempotency_key="k"), audit=entry(AuditAction.TASK_CREATE))
        assert store.create_task(task, NOW).created
        again = dataclasses.replace(task, id="t2")
        assert not store.create_tasks([again], NOW)[0].created
        plain = single("t3")  # no actor: no row
        store.create_tasks([plain, dataclasses.replace(single("t4"), audit=entry(AuditAction.TASK_CREATE,
                                                                                  target="t4"))], NOW)
        assert actions(store) == [("task.create", "t4"), ("task.create", "t1")]

    def test_actions_write_their_entry_only_when_they_change_something(self, store: Store) -> None:
        store.create_task(single("t1"), NOW)
        [claim] = store.claim("w1", 1, NOW, LEASE)
        store.record([fail(claim)])
        assert not store.cancel_task("nope", NOW, "x", audit=entry(AuditAction.TASK_CANCEL, target="nope"))
        assert not store.resolve_step("t1", "zz", NOW, audit=entry(AuditAction.STEP_RESOLVE, target="zz"))
        assert store.retry_task("t1", NOW + 1, "again", audit=entry(AuditAction.TASK_RETRY))
        assert not store.retry_task("t1", NOW + 1, "again", audit=entry(AuditAction.TASK_RETRY, target="twice"))
        [claim] = store.claim("w1", 1, NOW + 2, LEASE)
        store.record([fail(claim, NOW + 3)])
        assert store.resolve_step("t1", "a", NOW + 4, {"ok": 1}, audit=entry(AuditAction.STEP_RESOLVE))
        store.create_task(single("t2"), NOW)
        assert store.cancel_task("t2", NOW + 5, "stop", audit=entry(AuditAction.TASK_CANCEL, target="t2"))
        assert actions(store) == [("task.cancel", "t2"), ("step.resolve", "t1"), ("task.retry", "t1")]
        assert store.get_task("t1").steps[0].state is StepState.RESOLVED_MANUALLY  # type: ignore[union-attr]

    def test_token_create_and_revoke_are_recorded(self, store: Store) -> None:
        tokens = token_store_for(store)
        issue_token(tokens, "ci-payments", grants=["payments"], now=NOW, actor=CLI)
        issue_token(tokens, "quiet", admin=True, now=NOW)  # no actor: no row
        assert revoke_token(tokens, "ci-payments", now=NOW + 1, actor=CLI) is not None
        assert revoke_token(tokens, "ci-payments", now=NOW + 2, actor=CLI) is not None  # already: no row
        assert revoke_token(tokens, "unknown", now=NOW + 2, actor=CLI) is None
        rows = store.list_audit(AuditFilter())
        assert [(r.entry.action, r.entry.target, r.entry.namespace) for r in rows] == [
            (AuditAction.TOKEN_REVOKE, "ci-payments", None), (AuditAction.TOKEN_CREATE, "ci-payments", None)]
        assert rows[1].entry.details == {"admin": False, "grants": ["payments:manage"]}
        assert rows[0].entry.os_user == "alice"
