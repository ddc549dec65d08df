"""Per-key rate limits: a token bucket in Redis, updated by one atomic Lua script.

Every API process shares the same bucket per key, and the script reads Redis's
own clock (TIME), so API hosts with skewed clocks still refill at one rate.
"""

import math
from dataclasses import dataclass

import redis

from cie.settings import Settings

# KEYS[1]: the bucket, a hash {tokens: float, updated: seconds since the epoch as a float}.
# ARGV[1]: refill rate in tokens per second, ARGV[2]: capacity (burst).
# Returns {1, "0"} when a token was taken, or {0, seconds until one token is available}.
# Floats are returned as strings because Redis truncates Lua numbers to integers.
TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000

local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)

local allowed = 0
local wait = 0
if tokens >= 1 then
    tokens = tokens - 1
    allowed = 1
else
    wait = (1 - tokens) / rate
end

redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, tostring(wait)}
"""


class RateLimiterUnavailable(Exception):
    """Redis did not respond, so the limit cannot be checked."""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after: int  # whole seconds until the next request can pass; 0 when allowed


class RateLimiter:
    """Token buckets named ``<topic prefix>:ratelimit:<key id>`` in Redis."""

    def __init__(self, settings: Settings):
        self.prefix = f"{settings.topic_prefix}:ratelimit:"
        # Short timeouts: a request waits at most about a second for a Redis that is down.
        self.redis = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=1)
        self._script = self.redis.register_script(TOKEN_BUCKET_LUA)

    def take(self, key_id: str, rate_per_second: float, burst: int) -> RateDecision:
        """Take one token from the key's bucket, or return how long to wait for one."""
        try:
            allowed, wait = self._script(keys=[self.prefix + key_id], args=[rate_per_second, burst])
        except redis.RedisError as error:
            raise RateLimiterUnavailable(f"{type(error).__name__}: {error}") from error
        if int(allowed):
            return RateDecision(True, 0)
        return RateDecision(False, max(1, math.ceil(float(wait))))

    def close(self) -> None:
        self.redis.close()
