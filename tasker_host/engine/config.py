"""How a runner runs: its concurrency, batch size, lease and poll interval, and its name."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class EngineConfig:
    concurrency: int = 64  # steps running at once in this runner
    claim_batch: int = 256
    lease_seconds: float = 60.0
    poll_seconds: float = 1.0  # fallback wake-up when no nudge arrives (other processes)
    owner: str = field(default_factory=default_owner)
