"""The value rule's cost (tasker_host.values.value_problems, run on every create and every step
result) against the naive check, a json.dumps + json.loads round trip, and against json.dumps
alone (what the runner did before), on a typical 1 KB context and a 100 KB step result.

    .venv/bin/python bench/values_check.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import random
import timeit
from collections.abc import Callable
from typing import Any

from tasker_host.values import value_problems


def context_1kb() -> dict[str, Any]:
    return {"payment_id": "pay_1234567890", "refund_amount": 4999, "refund_reason": "customer_request",
            "partial_refund": False, "correlation_id": "c0ffee-1234", "requires_approval": True,
            "notes": "Customer very upset, expedite refund please",
            "customer": {"id": "cust_789", "email": "jane.doe@example.com", "name": "Jane Doé",
                         "tags": ["vip", "eu", "newsletter"]},
            "items": [{"sku": f"SKU-{i:05d}", "qty": i, "price": 12.5 * i, "name": f"Widget number {i}"}
                      for i in range(8)]}


def result_100kb() -> dict[str, Any]:
    rnd = random.Random(1)
    return {"rows": [{"id": i, "name": f"row {i} ünïcode" if i % 7 == 0 else f"row {i}", "value": rnd.random(),
                      "ok": i % 2 == 0, "tags": ["a", "b"], "meta": {"x": i, "y": None}} for i in range(900)]}


def best(fn: Callable[[], Any], number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print("| value | JSON size | value_problems | dumps+loads | dumps | vs round trip | vs dumps |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, value, number in (("context", context_1kb(), 2000), ("step result", result_100kb(), 30)):
        assert value_problems(value) == []
        walk = best(lambda: value_problems(value, "results"), number, args.repeat)
        trip = best(lambda: json.loads(json.dumps(value)), number, args.repeat)
        dumps = best(lambda: json.dumps(value), number, args.repeat)
        print(f"| {name} | {len(json.dumps(value)):,} B | {walk * 1e6:,.1f} µs | {trip * 1e6:,.1f} µs | "
              f"{dumps * 1e6:,.1f} µs | {walk / trip:.2f} | {walk / dumps:.2f} |")


if __name__ == "__main__":
    main()
