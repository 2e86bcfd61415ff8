"""LiteLLM's router pre-call check for the same limits the Rust budget bench uses.

The peer of `benches/budget.rs`: LowestTPMLoggingHandler_v2 (the router's
usage-based-routing-v2 strategy) checks and increments a deployment's per-minute request
count before a call (`pre_call_check`) and adds the call's tokens after it
(`log_success_event`); one pair is the peer of one reserve + settle. Timed with an in-memory
DualCache and with a DualCache over Redis. Prints one line per case: `NAME ns_per_op`.
Usage: python litellm_budget.py [--redis redis://127.0.0.1:6379] [--iterations N]
"""

import argparse
import time
import uuid
from urllib.parse import urlparse

from litellm.caching.caching import DualCache, RedisCache
from litellm.router_strategy.lowest_tpm_rpm_v2 import LowestTPMLoggingHandler_v2


def deployment(model_id):
    return {
        "model_name": "gpt-4o",
        "litellm_params": {"model": "openai/gpt-4o", "rpm": 10**12, "tpm": 10**15},
        "model_info": {"id": model_id},
    }


def success_kwargs(model_id):
    return {
        "standard_logging_object": {
            "model_group": "gpt-4o",
            "model_id": model_id,
            "hidden_params": {"litellm_model_name": "openai/gpt-4o"},
            "total_tokens": 1300,
        }
    }


def time_pairs(handler, iterations):
    model_id = str(uuid.uuid4())
    dep, kwargs = deployment(model_id), success_kwargs(model_id)
    for _ in range(min(iterations, 1000)):  # warm-up
        handler.pre_call_check(dep)
        handler.log_success_event(kwargs, None, None, None)
    start = time.perf_counter_ns()
    for _ in range(iterations):
        handler.pre_call_check(dep)
        handler.log_success_event(kwargs, None, None, None)
    return (time.perf_counter_ns() - start) / iterations


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis")
    parser.add_argument("--iterations", type=int, default=20000)
    args = parser.parse_args()
    memory = LowestTPMLoggingHandler_v2(router_cache=DualCache())
    print(f"litellm/pre_call_check+log_success/memory {time_pairs(memory, args.iterations):.0f}")
    if args.redis:
        url = urlparse(args.redis)
        cache = DualCache(redis_cache=RedisCache(host=url.hostname, port=url.port or 6379))
        shared = LowestTPMLoggingHandler_v2(router_cache=cache)
        n = max(args.iterations // 10, 200)
        print(f"litellm/pre_call_check+log_success/redis {time_pairs(shared, n):.0f}")


if __name__ == "__main__":
    main()
