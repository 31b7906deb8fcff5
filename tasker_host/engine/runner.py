"""The runner: claims ready steps through the store, runs them concurrently on anyio and
records their outcomes in batches (one transaction for many steps, acknowledged only after
commit). Any number of runners may share one database."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
from opentelemetry.trace import INVALID_SPAN, Span

from tasker_host.engine import lifecycle
from tasker_host.engine.alarm import Alarm
from tasker_host.engine.attempt_spans import AttemptSpans
from tasker_host.engine.clock import Clock
from tasker_host.engine.config import EngineConfig
from tasker_host.engine.events import EventBus, EventKind
from tasker_host.engine.execute import StepExecutor
from tasker_host.engine.heartbeat import Heartbeat
from tasker_host.engine.outage import Outage
from tasker_host.engine.poison import record_one_by_one
from tasker_host.engine.retry import RetryPolicy, lost_attempts
from tasker_host.engine.runtime import RUNTIME_CACHE_SIZE, Lru, StepTemplates, TaskRuntime
from tasker_host.engine.step_context import RunningStep
from tasker_host.engine.step_log import StepLogBuffer
from tasker_host.engine.store_calls import StoreCalls
from tasker_host.engine.tracing import Tracing, attempt_ended, current_span
from tasker_host.engine.waiters import TaskWaiters
from tasker_host.errors import PermanentError, StoreUnavailableError, TaskNotFoundError
from tasker_host.models import StepState, TaskState
from tasker_host.registry import Registry
from tasker_host.store.base import Claim, ClaimRequest, StepOutcome, StepResultBatch, Store, TaskChange, TaskRecord
from tasker_host.waiting import WakeInfo, wake_info

log = logging.getLogger("tasker_host.engine")

FINAL_TASK_STATES = frozenset({TaskState.COMPLETE, TaskState.ERROR, TaskState.CANCELLED,
                               TaskState.RESOLVED_MANUALLY})
#: A runner sharing its database with other processes, whose claims lately took all they asked
#: for (so more work was waiting), looks again this often while idle (a cheap claim): work other
#: runners left (a full batch, a tail of a fan-out) is picked up at once, without notifications on
#: every busy commit.
WARM_POLL_SECONDS = 0.05
WARM_FOR_SECONDS = 2.0
FINAL_FLUSH_PATIENCE = 10.0  # seconds a stopping runner waits for the database to record outcomes


class Engine:
    def __init__(self, store: Store, registry: Registry, clock: Clock, events: EventBus, *,
                 config: EngineConfig | None = None, policy: RetryPolicy | None = None,
                 tracing: Tracing | None = None):
        self.store, self.registry, self.clock, self.events = store, registry, clock, events
        self.tracing = tracing or Tracing()
        self.config = config or EngineConfig()
        self.policy = policy or RetryPolicy()
        self.invoke: Callable[..., Any] | None = None  # set by the composition root
        self.send: Callable[..., Any] | None = None  # ctx.send: set by the composition root
        self._cache: Lru[str, TaskRuntime] = Lru(RUNTIME_CACHE_SIZE)
        self._templates = StepTemplates()
        self._running: dict[tuple[str, str], anyio.CancelScope] = {}
        self._outcomes: list[StepOutcome] = []
        self._inflight = 0
        self._committing = False
        self._waiters = TaskWaiters()
        self._wake: anyio.Event | None = None  # events are made on the loop, in run()
        self._outcome_ready: anyio.Event | None = None
        self._calls = StoreCalls(store)  # inline or in threads; outages ridden out
        self._tg: anyio.abc.TaskGroup | None = None
        self._loop_token: Any = None
        self._loop_thread: int | None = None
        self._until_idle = False
        self._stopping = False
        self._alarm = Alarm()  # when the idle claim loop wakes up by itself (backoffs, timers, polls)
        self._last_full_claim_at = float("-inf")  # when a claim last took all it asked for
        self._look_after_commit = False  # the claim loop gave way to a commit: look once it ends
        self._held: set[tuple[str, str]] = set()  # steps claimed here whose outcomes are not committed
        self._heartbeat = Heartbeat(self)  # registration, heartbeats, reaping dead workers, leases
        self._executor = StepExecutor(registry, clock, self.policy, self.config.owner, self._invoke, self._send)
        self._spans = AttemptSpans(self.tracing, registry,  # spans; a retry's link may read its task
                                   lambda task_id: self.db(store.get_task, task_id, patience=2.0))

    # -- public ------------------------------------------------------------------------------
    def nudge(self) -> None:
        """Wake the claim loop: new or newly ready work exists. Safe from any thread (a service
        call made in a worker thread wakes the loop through its token)."""
        if self._wake is not None:
            self._call_on_loop(self._wake.set)

    def claim_request(self) -> ClaimRequest | None:
        """Offered to the service: claim a new task's first steps in its creating transaction
        (only while this runner runs and has room, and no commit is about to claim that room)."""
        free = self.config.concurrency - self._inflight
        if (self._tg is None or self._stopping or free <= 0 or self.config.namespace_limits
                or self._commit_ahead):
            return None  # (namespace limits are checked by the claim loop's claims)
        return ClaimRequest(self.config.owner, min(free, 16), self.config.lease_seconds)

    def on_work(self, task: TaskRecord | None = None, claims: tuple[Claim, ...] = ()) -> None:
        """New or newly runnable work: remember a task just created here (so claiming its steps
        needs no extra read), start what was claimed with it, and wake the claim loop. Safe from
        any thread."""
        if task is not None and task.steps and self._tg is not None:
            self._cache.put(task.id, TaskRuntime.from_record(task))
        if claims:  # the commits that follow claim whatever else becomes ready
            self._call_on_loop(self._adopt, list(claims))
        else:
            self.nudge()

    def _adopt(self, claims: list[Claim]) -> None:
        if self._tg is None:
            return  # stopped meanwhile: the leases expire and another run takes the steps
        self._inflight += len(claims)
        self._held.update((c.task_id, c.step) for c in claims)
        self._tg.start_soon(self._start_claimed, self._tg, claims)

    async def _start_claimed(self, tg: anyio.abc.TaskGroup, claims: list[Claim]) -> None:
        self._inflight -= len(claims)  # _start counts them again
        await self._start(tg, claims)

    def _call_on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        if threading.get_ident() == self._loop_thread:
            fn(*args)
            return
        try:
            anyio.from_thread.run_sync(fn, *args, token=self._loop_token)
        except RuntimeError:  # the loop has stopped
            pass

    def cancel_running(self, task_id: str) -> None:
        for (tid, _), scope in list(self._running.items()):
            if tid == task_id:
                scope.cancel()

    async def run_until_idle(self) -> None:
        """Run until nothing is runnable now and nothing is running (tests drain with this)."""
        await self.run(until_idle=True)

    async def run(self, *, until_idle: bool = False, stop: anyio.Event | None = None,
                  grace_seconds: float = 30.0) -> None:
        """Claim and run steps until cancelled (or idle, with ``until_idle``). When ``stop`` is
        set: claim nothing more, let running steps finish for up to ``grace_seconds``, then
        release the rest (they run again elsewhere) and commit everything before returning."""
        self._wake, self._outcome_ready = anyio.Event(), anyio.Event()
        self._loop_token, self._loop_thread = anyio.lowlevel.current_token(), threading.get_ident()
        self._until_idle, self._stopping = until_idle, False
        listener = None if until_idle else await self._listen()
        try:
            await self._heartbeat.start()  # registered (and dead workers' steps freed) before claiming
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._commit_loop)
                tg.start_soon(self._heartbeat.run)
                if stop is not None:
                    tg.start_soon(self._stop_on, stop)
                await self._claim_loop(tg, until_idle)
                if self._stopping:
                    await self._drain(grace_seconds)
                tg.cancel_scope.cancel()
        finally:
            self._tg = None  # the final flush below claims nothing new
            with anyio.CancelScope(shield=True):
                await self._final_flush()  # final states survive cancellation
                await self._heartbeat.stop()  # deregistered: steps still held are released
                if listener is not None:
                    await anyio.to_thread.run_sync(listener.close)

    async def _final_flush(self) -> None:
        """Commit what is queued before returning, waiting out a database outage for at most
        :data:`FINAL_FLUSH_PATIENCE` seconds; steps whose outcomes are lost then run again once
        their leases expire (at-least-once)."""
        try:
            await self._commit_pending(patience=FINAL_FLUSH_PATIENCE)
        except StoreUnavailableError as exc:
            log.error("stopping with %d step outcomes unrecorded (%s); those steps run again later",
                      len(self._outcomes), exc)

    async def _listen(self) -> Any:
        """Wake-ups from other processes (PostgreSQL LISTEN/NOTIFY), if the store has them."""
        if self._calls.inline:  # an in-process store: answers at once
            return self.store.listen(self.nudge)
        return await anyio.to_thread.run_sync(self.store.listen, self.nudge)

    async def _stop_on(self, stop: anyio.Event) -> None:
        await stop.wait()
        self._stopping = True  # no claim of any kind from now on
        self.nudge()

    async def _drain(self, grace_seconds: float) -> None:
        deadline = self.clock.now() + grace_seconds
        while self._busy and self.clock.now() < deadline:
            self._wake = anyio.Event()
            await self.clock.wait(self._wake, deadline)
        # what still runs now is cancelled with the task group: released, then flushed

    async def wait_for_task(self, task_id: str) -> TaskState:
        """Wait until a task is final and return its status (woken by this runner's commits at
        once; by polling for other runners'). Raises :class:`TaskNotFoundError` for no such task."""

        async def read(tid: str) -> TaskState | None:
            task = await self.db(self.store.get_task, tid, with_steps=False)
            return None if task is None else task.status

        status = await self._waiters.until_final(
            task_id, read=read, final=FINAL_TASK_STATES, clock=self.clock, poll_seconds=self.config.poll_seconds,
            look_first=self._tg is None or self._cache.get(task_id) is None)
        if status is None:
            raise TaskNotFoundError(f"no task {task_id!r}")
        return status

    async def db(self, fn: Callable[..., Any], *args: Any, patience: float | None = None, **kwargs: Any) -> Any:
        """Call the (synchronous) store, riding out outages (see :class:`StoreCalls`)."""
        return await self._calls(fn, *args, patience=patience, **kwargs)

    @property
    def outage(self) -> Outage:
        return self._calls.outage

    # -- claiming ----------------------------------------------------------------------------
    async def _claim_loop(self, tg: anyio.abc.TaskGroup, until_idle: bool) -> None:
        alarm = self._alarm
        alarm.at = await self.db(self.store.next_ready_at)
        while not self._stopping:
            self._wake = anyio.Event()
            if await self._claim_round(tg):
                continue  # a full batch: there may be more
            if until_idle and not self._busy:
                return
            now = self.clock.now()
            if alarm.fell_due(now):
                continue  # due now: the next claim round takes it
            if alarm.reread:  # when is the next one (any runner's)?
                if alarm.read(await self.db(self.store.next_ready_at), self.clock.now()):
                    continue
                self._look_after_commit |= alarm.reread and self._commit_ahead
            warm = not self._calls.inline and now - self._last_full_claim_at < WARM_FOR_SECONDS
            poll_at = now + (min(WARM_POLL_SECONDS, self.config.poll_seconds) if warm else self.config.poll_seconds)
            await self.clock.wait(self._wake, alarm.sleep(poll_at))
            alarm.woke()
            if not self._wake.is_set() and self.clock.now() >= poll_at and not warm:
                # a quiet poll: other runners may have scheduled retries this one never saw
                alarm.at = await self.db(self.store.next_ready_at)

    @property
    def _limits(self) -> Mapping[str, int] | None:
        return self.config.namespace_limits or None

    @property
    def _commit_ahead(self) -> bool:
        """Outcomes wait for or ride in a commit, which claims for all the room there is."""
        return bool(self._outcomes or self._committing)

    @property
    def _busy(self) -> bool:
        return bool(self._inflight) or self._commit_ahead

    async def _claim_round(self, tg: anyio.abc.TaskGroup) -> bool:
        """Claim what fits; True when the batch was full (more may be waiting). Not while outcomes
        wait for or ride in a commit: that commit claims for all the room there is (claiming here
        too would fill the same room twice), and the claim loop looks again once it is done."""
        if self._commit_ahead:
            self._look_after_commit = True
            return False
        free = self.config.concurrency - self._inflight
        if free <= 0:
            return False
        claims: list[Claim] = await self._claiming(
            lambda found: found, self.store.claim, self.config.owner, min(free, self.config.claim_batch),
            self.clock.now(), self.config.lease_seconds, self._limits)
        if not claims:
            return False
        await self._start(tg, claims)
        return self._full(claims, min(free, self.config.claim_batch))

    async def _claiming(self, claims_of: Callable[[Any], list[Claim]], fn: Callable[..., Any], *args: Any,
                        **kwargs: Any) -> Any:
        return await self._calls.claiming(self.config.owner, lambda: self._held, self.clock.now, claims_of,
                                          fn, *args, **kwargs)

    def _full(self, claims: list[Claim], limit: int) -> bool:
        """Whether a claim took all it asked for: more work may be waiting (for this runner or
        others), so the runner stays "warm" for a while (see WARM_POLL_SECONDS)."""
        full = bool(limit) and len(claims) == limit
        if full:
            self._last_full_claim_at = self.clock.now()
        return full

    async def _start(self, tg: anyio.abc.TaskGroup, claims: list[Claim]) -> None:
        # counted before the first wait: while their tasks load, the runner must look busy (the
        # claim loop of a run --until-idle would otherwise end it with these steps claimed)
        self._inflight += len(claims)
        self._held.update((c.task_id, c.step) for c in claims)
        runtimes = await self._runtimes_for(claims)
        wakes = await self._wakes_for(claims)
        for claim in claims:
            tg.start_soon(self._run_step, claim, runtimes[claim.task_id], wakes.get((claim.task_id, claim.step)))

    async def _wakes_for(self, claims: list[Claim]) -> dict[tuple[str, str], WakeInfo]:
        """What steps that may have waited before learn of it (one read, for those only)."""
        resumed = [(c.task_id, c.step) for c in claims if c.resumed]
        if not resumed:
            return {}
        found = await self.db(self.store.wakes, resumed)
        return {key: wake_info(wake) for key, wake in found.items()}

    async def _runtimes_for(self, claims: list[Claim]) -> dict[str, TaskRuntime]:
        found: dict[str, TaskRuntime] = {}
        missing: set[str] = set()
        for c in claims:
            rt = self._cache.get(c.task_id)
            if rt is not None and rt.has_inputs_of(c.step):
                found[c.task_id] = rt
            else:
                missing.add(c.task_id)
        if missing:
            for task_id, inputs in (await self.db(self.store.run_inputs, sorted(missing))).items():
                found[task_id] = rt = TaskRuntime.from_inputs(inputs, self._templates)
                self._cache.put(task_id, rt)
        return found

    # -- running -----------------------------------------------------------------------------
    async def _run_step(self, claim: Claim, rt: TaskRuntime, wake: WakeInfo | None = None) -> None:
        step = rt.steps[claim.step]
        if lost := lost_attempts(claim.attempt, retryable=step.retryable, retry_limit=step.retry_limit):
            self._queue(self._executor.outcome(claim, StepState.ERROR, lost["message"], error=lost))
            return  # past its last attempt (earlier ones died with their workers): not run again
        key = (claim.task_id, claim.step)
        if claim.attempt == 1 and claim.step == rt.first_root:
            self.events.emit(lifecycle.started(EventKind.TASK_STARTED, rt, claim, self.clock.now()))
        self.events.emit(lifecycle.started(EventKind.STEP_STARTED, rt, claim, self.clock.now()))
        scope = anyio.CancelScope()
        self._running[key] = scope
        logs = StepLogBuffer(self.clock.now)
        outcome: StepOutcome
        failure: Exception | None = None
        span: Span = INVALID_SPAN
        try:  # (a retry's span may read the store: inside, so that a stopping runner counts it out)
            span = await self._spans.start(claim, rt)  # one short span per attempt
            with scope, current_span(span):
                results = await self._executor.execute(claim, rt, logs, wake, span)
            outcome = (self._executor.outcome(claim, StepState.CANCELLED, "task cancelled") if scope.cancelled_caught
                       else self._executor.finished(claim, results))
        except anyio.get_cancelled_exc_class():
            self._inflight -= 1  # the runner stops: deregistering releases the step (attempt not counted)
            attempt_ended(span, "released")
            raise
        except Exception as exc:  # a handler failure, classified by the retry rules
            outcome, failure = self._executor.failure(claim, rt, exc), exc
        finally:
            self._running.pop(key, None)
        outcome = self._spans.end(span, outcome, failure)
        if lines := logs.lines():
            outcome = dataclasses.replace(outcome, logs=lines)
        self._queue(outcome)

    async def _invoke(self, ctx: RunningStep, *args: Any) -> Any:
        if self.invoke is None:
            raise PermanentError("cross-namespace invocation is not configured on this host")
        return await self.invoke(ctx, *args)

    async def _send(self, ctx: RunningStep, *args: Any) -> Any:
        if self.send is None:
            raise PermanentError("sending events is not configured on this host")
        return await self.send(ctx, *args)

    # -- committing --------------------------------------------------------------------------
    def _queue(self, outcome: StepOutcome) -> None:
        self._outcomes.append(outcome)
        if self._outcome_ready is not None:
            self._outcome_ready.set()

    async def _commit_loop(self) -> None:
        while True:
            assert self._outcome_ready is not None  # set by run() before this loop starts
            await self._outcome_ready.wait()
            self._outcome_ready = anyio.Event()
            await self._commit_pending()

    async def _commit_pending(self, patience: float | None = None) -> None:
        """Record the finished steps in one transaction that also claims the steps they made
        ready (one round trip per batch); acknowledge them only once committed. A batch the
        database refuses for what it holds is recorded one outcome at a time (a poison outcome
        fails its own step, see :mod:`tasker_host.engine.poison`)."""
        batch, self._outcomes = self._outcomes, []
        if not batch:
            return
        tg = self._tg
        free = self.config.concurrency - self._inflight + len(batch) if tg and not self._stopping else 0
        limit = max(0, min(free, self.config.claim_batch))
        self._committing = True
        try:
            applied, result, claims = await self._record(batch, limit, patience)
        except BaseException:  # cancelled in a backoff, or out of patience: the next flush tries
            self._outcomes[:0] = batch
            raise
        finally:
            self._committing = False
        self._inflight -= len(batch)
        self._held.difference_update((o.task_id, o.step) for o in batch)
        rejected = {(o.task_id, o.step, o.attempt) for o in result.rejected}
        for o in applied:
            if (o.task_id, o.step, o.attempt) not in rejected:
                self._after_step(o)
        for change in result.changes:
            self._after_task(change)
        if claims and tg is not None:
            await self._start(tg, claims)
        look, self._look_after_commit = self._look_after_commit, False
        if look or self._full(claims, limit) or ((self._until_idle or self._stopping) and not self._inflight):
            self.nudge()  # a wake-up met this commit, a full batch (more may be ready), or maybe idle

    async def _record(self, batch: list[StepOutcome], limit: int, patience: float | None,
                      ) -> tuple[list[StepOutcome], StepResultBatch, list[Claim]]:
        try:
            result, claims = await self._claiming(
                lambda found: found[1], self.store.record_and_claim, batch, self.config.owner, limit,
                self.clock.now(), self.config.lease_seconds, self._limits, patience=patience)
            return batch, result, claims
        except StoreUnavailableError:
            raise
        except Exception as exc:  # noqa: BLE001 - the batch holds a value the database refuses
            log.warning("a batch of %d step outcomes was refused (%s: %s); recording them one by one",
                        len(batch), type(exc).__name__, str(exc)[:200])

        async def record(outcomes: Sequence[StepOutcome]) -> StepResultBatch:
            recorded: StepResultBatch = await self.db(self.store.record, outcomes, patience=patience)
            return recorded

        applied, result = await record_one_by_one(record, batch)
        return applied, result, []

    def _after_step(self, o: StepOutcome) -> None:
        if o.state in (StepState.WAITING_RETRY, StepState.WAITING) and o.ready_at is not None:
            if self._alarm.learn(o.ready_at):
                self.nudge()  # the claim loop sleeps past this backoff / timer: it sets its alarm again
        rt = self._cache.get(o.task_id)
        if rt is None:
            return
        if o.state is StepState.COMPLETE:
            rt.results[o.step] = o.results
        if event := lifecycle.step_ended(o, rt):
            self.events.emit(event)

    def _after_task(self, change: TaskChange) -> None:
        rt = self._cache.get(change.task_id)
        if rt is not None and (event := lifecycle.task_changed(change, rt, self.clock.now())):
            self.events.emit(event)
        if change.after in FINAL_TASK_STATES:
            self._cache.drop(change.task_id)
            self._waiters.ended(change.task_id, change.after)

    def running_steps(self) -> dict[tuple[str, str], anyio.CancelScope]:
        """The steps running now, each with the scope that cancels it (a copy)."""
        return dict(self._running)
