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
/// KEYS: token, fence counter. ARGV: owner id, ttl in ms, floor.
/// Returns the fence (≥ 1) on success, 0 if another owner holds the token.
///
/// - SET NX and INCR in one script: a fence is issued only to the winner, so
///   fences are dense and a failed attempt cannot raise the counter.
/// - The floor is the highest fence the store has accepted. If Redis lost the
///   counter (restarted without persistence), INCR would restart at 1 and the
///   store would refuse every write as stale; jumping past the floor keeps
///   writers working. (Fences stay strictly increasing per Redis lifetime; a
///   holder from before the restart is covered by the store's check only once
///   a newer holder has written. Run Redis with persistence if that matters.)
/// - The token already holding *our* owner id means an earlier attempt of this
///   same acquisition succeeded but its reply was lost (a timeout, a dropped
///   connection): take it as ours and return its fence, rather than waiting a
///   whole ttl for our own orphan to expire.
pub(crate) static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if not current then
    local fence = redis.call('INCR', KEYS[2])
    local floor = tonumber(ARGV[3])
    if fence <= floor then
        fence = floor + 1
        redis.call('SET', KEYS[2], string.format('%d', fence))
    end
    redis.call('SET', KEYS[1], ARGV[1] .. '/' .. string.format('%d', fence), 'PX', ARGV[2])
    return fence
end
local prefix = ARGV[1] .. '/'
if string.sub(current, 1, #prefix) == prefix then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(current, #prefix + 1))
end
return 0
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
