"""Contracts between teams: result schemas, declared calls and the compatibility checks that
compare them (docs/contracts.md). Everything here is pure (no I/O): start-up, ``tasker-host
check``, ``tasker-host contracts diff`` and the remote check feed it documents."""
