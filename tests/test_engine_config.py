"""The runner's tuning: defaults, TASKER_* variables, command-line options, and bad values."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tasker_host.cli.engine_options import with_engine_options
from tasker_host.cli.main import build_cli
from tasker_host.cli.state import CliState
from tasker_host.engine.config import EngineConfig, parse_namespace_limits
from tasker_host.errors import ConfigurationError
from tasker_host.settings import HostSettings


def test_environment_sets_every_knob() -> None:
    config = EngineConfig.from_env({"TASKER_CONCURRENCY": "16", "TASKER_CLAIM_BATCH": "32",
                                    "TASKER_LEASE_SECONDS": "2.5", "TASKER_POLL_SECONDS": "0.2",
                                    "TASKER_NAMESPACE_LIMITS": "payments=4, inventory=2",
                                    "TASKER_WORKER_NAME": "worker-a", "TASKER_HEARTBEAT_SECONDS": "0.5"})
    assert (config.concurrency, config.claim_batch, config.lease_seconds, config.poll_seconds, config.owner) == (
        16, 32, 2.5, 0.2, "worker-a")
    assert (config.heartbeat_seconds, config.dead_after_seconds) == (0.5, 2.0)
    assert dict(config.namespace_limits) == {"payments": 4, "inventory": 2}


def test_settings_carry_an_engine_config_only_when_the_environment_tunes_it() -> None:
    assert HostSettings.from_env({}).engine is None
    assert HostSettings.from_env({"TASKER_CONCURRENCY": "3"}).engine.concurrency == 3  # type: ignore[union-attr]


@pytest.mark.parametrize(("env", "message"), [
    ({"TASKER_CONCURRENCY": "many"}, "TASKER_CONCURRENCY must be a number, not 'many'"),
    ({"TASKER_CONCURRENCY": "0"}, "concurrency must be positive, not 0"),
    ({"TASKER_LEASE_SECONDS": "-1"}, "lease_seconds must be positive"),
    ({"TASKER_HEARTBEAT_SECONDS": "0"}, "heartbeat_seconds must be positive, not 0.0"),
    ({"TASKER_HEARTBEAT_SECONDS": "often"}, "TASKER_HEARTBEAT_SECONDS must be a number, not 'often'"),
    ({"TASKER_NAMESPACE_LIMITS": "payments"}, "expected NAMESPACE=N"),
    ({"TASKER_NAMESPACE_LIMITS": "payments=0"}, "expected NAMESPACE=N with N a positive integer, not 'payments=0'"),
])
def test_bad_values_are_configuration_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        EngineConfig.from_env(env)


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(ConfigurationError) as caught:
        EngineConfig(concurrency=0, poll_seconds=0, namespace_limits={"a": -1})
    assert str(caught.value).count("must be positive") == 3


def test_options_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKER_CONCURRENCY", "16")
    monkeypatch.setenv("TASKER_LEASE_SECONDS", "9")
    monkeypatch.setenv("TASKER_HEARTBEAT_SECONDS", "3")
    settings = with_engine_options(HostSettings(), 4, None, None, ("payments=2", "inventory=1,shared=3"), 0.25)
    assert settings.engine is not None
    assert (settings.engine.concurrency, settings.engine.lease_seconds) == (4, 9.0)
    assert settings.engine.heartbeat_seconds == 0.25
    assert dict(settings.engine.namespace_limits) == {"payments": 2, "inventory": 1, "shared": 3}
    assert parse_namespace_limits("a=1,,b=2") == {"a": 1, "b": 2}


def test_worker_rejects_a_malformed_namespace_limit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(build_cli(), ["--database-url", f"sqlite:///{tmp_path / 't.db'}", "worker",
                                              "--until-idle", "--namespace-limit", "payments"], obj=CliState())
    assert result.exit_code == 2
    assert "--namespace-limit: expected NAMESPACE=N" in result.output


def test_the_defaults_take_a_dead_runners_steps_over_within_8_seconds() -> None:
    config = EngineConfig()
    assert (config.heartbeat_seconds, config.dead_after_seconds, config.lease_seconds) == (1.5, 6.0, 60.0)
    # dead after 6 s of silence, noticed at the next beat of a live runner: 7.5 s at worst
    assert config.dead_after_seconds + config.heartbeat_seconds <= 7.5


def test_worker_runs_with_its_options(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(build_cli(), ["--database-url", f"sqlite:///{tmp_path / 't.db'}", "worker",
                                              "--until-idle", "--concurrency", "2", "--namespace-limit",
                                              "payments=1", "--heartbeat-seconds", "0.5"], obj=CliState())
    assert result.exit_code == 0, result.output
    assert "worker stopped" in result.output
