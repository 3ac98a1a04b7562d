//! The three Lua scripts. Redis runs a script atomically, so each one is a
//! single compare-and-act step no other client can interleave with.
//!
//! The token key holds `<owner>/<fence>`; the fence counter key holds the last
//! fencing token issued. Both keys share a Redis Cluster hash tag (`{name}`),
//! so one script may touch both.

use std::sync::LazyLock;

use redis::Script;

/// Takes the token if it is free, and only then issues the next fencing token.
///
/// KEYS: token, fence counter. ARGV: owner id, ttl in ms, floor, lowest
/// plausible counter (both decimal, below 2⁶³ − 1). Returns an array: `acquired`
/// and the fence, `busy` (another owner holds the token), `implausible` and
/// the counter (the floor is far above it), `exhausted` or `bad-counter` and
/// the counter (it is at 2⁶³ − 1, where `INCR` stops, or is not a decimal
/// integer at all).
///
/// - SET NX and INCR in one script: a fence is issued only to the winner, so
///   fences are dense and a failed attempt cannot raise the counter.
/// - Exact integers end to end: Lua's numbers are doubles, exact only below
///   2⁵³, so the script never does arithmetic on a fence. It compares decimal
///   strings (by length, then bytes), moves the counter up with `SET` and
///   `INCR` (Redis's own 64-bit integers) and returns the counter as a string.
/// - The floor is the highest fence the store has accepted. If Redis lost the
///   counter (restarted without persistence, or a replica promoted with a lower
///   one), INCR would issue fences the store refuses as stale; starting from
///   the floor keeps writers working. (Fences stay strictly increasing per Redis
///   lifetime; a holder from before the loss is covered by the store's check
///   only once a newer holder has written. Run Redis with persistence if that
///   matters.)
/// - A floor more than [`IMPLAUSIBLE_FENCE_GAP`](crate::IMPLAUSIBLE_FENCE_GAP)
///   above the counter is not followed: no Redis loses that many fences, so the
///   store's word is damaged, and following it would carry the damage into the
///   counter. The caller refuses with an error that names the repair. A counter
///   key that does not exist at all (a Redis that lost everything, or a new
///   one) says nothing about the floor, which is then followed.
/// - The token already holding *our* owner id means an earlier attempt of this
///   same acquisition succeeded but its reply was lost (a timeout, a dropped
///   connection): take it as ours and return its fence, rather than waiting a
///   whole ttl for our own orphan to expire.
pub(crate) static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local function below(a, b)
    if #a ~= #b then return #a < #b end
    return a < b
end
local current = redis.call('GET', KEYS[1])
if not current then
    local stored = redis.call('GET', KEYS[2])
    local counter = stored or '0'
    if not string.match(counter, '^[0-9]+$') or #counter > 19
        or (#counter > 1 and string.sub(counter, 1, 1) == '0') then
        return {'bad-counter', counter}
    end
    if not below(counter, '9223372036854775807') then
        return {'exhausted', counter}
    end
    if stored and below(counter, ARGV[4]) then
        return {'implausible', counter}
    end
    if below(counter, ARGV[3]) then
        redis.call('SET', KEYS[2], ARGV[3])
    end
    redis.call('INCR', KEYS[2])
    local fence = redis.call('GET', KEYS[2])
    redis.call('SET', KEYS[1], ARGV[1] .. '/' .. fence, 'PX', ARGV[2])
    return {'acquired', fence}
end
local prefix = ARGV[1] .. '/'
if string.sub(current, 1, #prefix) == prefix then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {'acquired', string.sub(current, #prefix + 1)}
end
return {'busy'}
",
    )
});

/// Extends the token's life, only if it still holds our value.
///
/// KEYS: token. ARGV: our value, ttl in ms. Returns 1 if renewed, 0 if the
/// token is gone or belongs to someone else.
pub(crate) static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// Deletes the token, only if it still holds our value: a holder whose lease
/// expired must not delete the next holder's token.
///
/// KEYS: token. ARGV: our value. Returns 1 if deleted, 0 otherwise.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});
