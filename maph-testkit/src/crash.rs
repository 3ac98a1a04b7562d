//! The crash loop: a writer process doing random sets, deletes and multi-key
//! batches is killed with SIGKILL at random moments, again and again; after
//! each kill one hand-over (another writer's commit) must leave every key
//! readable at once, and the store is checked against what was acknowledged.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use maph_core::{Config, Error, Mode, Result, Store, WriteCoordinator};

use crate::process::{child, spawn_with_env};

const ROLE: &str = "crash-writer";
/// The key the hand-over writes: not one of the loop's keys.
const HANDOVER_KEY: &[u8] = b"crash-loop-hand-over";

/// Kills a writer `kills` times and checks the store after each kill.
///
/// The writer does single sets and deletes (`Store::set`, `Store::remove`, which
/// lock the key's window) and batches of 2 or 3 keys (`Store::write`, the whole
/// store). It prints `B <seq> <key> <op> ...` before each operation and `A
/// <seq>` after it returns, one line (one `write(2)`) each, so the lines survive
/// the kill in the pipe. The parent kills after a random number of
/// acknowledgements, reads what is left, and then:
///
/// 1. makes a coordinator and commits one write of another key (a lock
///    hand-over: `Store::write`, the whole store);
/// 2. reads every key with a 50 ms patience: none may be left mid-write
///    (`SlotBusy`), every value is whole (self-checking: key, sequence number,
///    checksum) and one some write wrote, no key went back to a value older
///    than its last acknowledged write, and only keys of the operation in
///    flight at the kill may differ: each holds its old value, its new value,
///    or (killed mid-write, slot torn and cleared) no value; keys of a batch
///    each on their own;
/// 3. runs `Store::repair` and requires it to find nothing the hand-over left,
///    and `verify` to be clean.
///
/// One `CrashLoop` per test function, as for [`crate::CounterRace`].
#[derive(Clone, Debug)]
pub struct CrashLoop {
    test: String,
    kills: usize,
    keys: u64,
    seed: u64,
    env: Vec<(String, String)>,
}

/// What a crash loop saw.
#[derive(Clone, Debug, Default)]
pub struct CrashReport {
    /// Writers killed.
    pub kills: usize,
    /// Operations the writers acknowledged before dying.
    pub acknowledged: u64,
    /// Of those, batches of several keys.
    pub batches: u64,
    /// Kills that landed with an operation in flight.
    pub in_flight: usize,
    /// Of those, kills in the middle of a batch of several keys.
    pub in_flight_batches: usize,
    /// Keys of in-flight operations that had nevertheless taken effect.
    pub in_flight_applied: usize,
    /// Keys of in-flight operations left torn, so that repair removed them.
    pub in_flight_torn: usize,
    /// Slots found mid-write after a kill, before the hand-over.
    pub left_mid_write: usize,
}

impl std::fmt::Display for CrashReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} kills, {} acknowledged operations ({} batches), {} kills mid-operation ({} mid-batch; keys: {} \
             applied, {} torn and cleared), {} slots left mid-write, all cleaned by the next hand-over; a full \
             repair after it found nothing",
            self.kills,
            self.acknowledged,
            self.batches,
            self.in_flight,
            self.in_flight_batches,
            self.in_flight_applied,
            self.in_flight_torn,
            self.left_mid_write
        )
    }
}

/// A value that names its key and sequence number and checks itself (16 to 76
/// bytes: with keys of the crash loop it fits a 128-byte slot).
pub fn self_checking_value(key: &[u8], seq: u64) -> Vec<u8> {
    let mut v = seq.to_le_bytes().to_vec();
    v.extend(std::iter::repeat_n((seq % 251) as u8, (seq % 61) as usize));
    let sum = checksum(key, &v);
    v.extend_from_slice(&sum.to_le_bytes());
    v
}

/// The sequence number of a whole self-checking value of `key`; `None` if the
/// value is torn, belongs to another key, or was never written by
/// [`self_checking_value`].
pub fn check_value(key: &[u8], value: &[u8]) -> Option<u64> {
    if value.len() < 16 {
        return None;
    }
    let (body, sum) = value.split_at(value.len() - 8);
    (checksum(key, body).to_le_bytes() == sum).then(|| u64::from_le_bytes(body[..8].try_into().expect("8 bytes")))
}

fn checksum(key: &[u8], body: &[u8]) -> u64 {
    // FNV-1a: dependency-free and plenty to catch a torn or foreign value.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key.iter().chain([0xffu8].iter()).chain(body) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn next(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

/// The last operation on a key the parent knows of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    Set(u64),
    Removed,
}

/// An operation of the writer: its sequence number and its keys, each set
/// (to the value of that sequence number) or removed.
#[derive(Clone, Debug)]
struct Operation {
    seq: u64,
    keys: Vec<(u64, bool)>,
}

impl CrashLoop {
    /// A loop of `kills` kills for the test whose full libtest name is `test`,
    /// over 64 keys.
    pub fn new(test: &str, kills: usize) -> CrashLoop {
        CrashLoop { test: test.to_string(), kills, keys: 64, seed: 0x9e37_79b9_7f4a_7c15, env: Vec::new() }
    }

    /// Sets an environment variable in every writer child (for example the
    /// address of a coordination service), where `make` can read it.
    pub fn env(mut self, key: &str, value: &str) -> CrashLoop {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The key of index `i`.
    pub fn key(i: u64) -> Vec<u8> {
        format!("crash-key-{i}").into_bytes()
    }

    /// Runs the loop on a fresh store made with `config`; the writer (in each
    /// child) and the checker (here) make their coordinator with `make`. In a
    /// child this never returns.
    pub fn run<C, F>(&self, config: Config, make: F) -> CrashReport
    where
        C: WriteCoordinator,
        F: Fn(&Store) -> Result<C>,
    {
        if let Some(ctx) = child(&self.test) {
            assert_eq!(ctx.role(), ROLE, "one CrashLoop per test function");
            let store = Store::open(&ctx.args()[0], Mode::ReadWrite).expect("child opens the store");
            let coordinator = make(&store).expect("child makes its coordinator");
            let mut seq: u64 = ctx.arg(1);
            let mut rng: u64 = ctx.arg::<u64>(2) | 1;
            let mut out = std::io::stdout().lock();
            use std::io::Write;
            loop {
                let size = match next(&mut rng) % 4 {
                    0 => 2,
                    1 => 3,
                    _ => 1,
                };
                let mut op = Operation { seq, keys: Vec::new() };
                while op.keys.len() < size {
                    let k = next(&mut rng) % self.keys;
                    if !op.keys.iter().any(|&(other, _)| other == k) {
                        op.keys.push((k, next(&mut rng) % 5 == 0));
                    }
                }
                let line: Vec<String> =
                    op.keys.iter().map(|&(k, del)| format!("{k} {}", if del { "del" } else { "set" })).collect();
                writeln!(out, "B {seq} {}", line.join(" ")).unwrap();
                out.flush().unwrap();
                if let [(k, del)] = op.keys[..] {
                    let key = Self::key(k);
                    if del {
                        store.remove(&coordinator, &key).expect("remove");
                    } else {
                        store.set(&coordinator, &key, &self_checking_value(&key, seq)).expect("set");
                    }
                } else {
                    store
                        .write(&coordinator, |tx| {
                            op.keys.iter().try_for_each(|&(k, del)| {
                                let key = Self::key(k);
                                if del {
                                    tx.remove(&key)
                                } else {
                                    tx.set(&key, &self_checking_value(&key, seq))
                                }
                            })
                        })
                        .expect("batch");
                }
                writeln!(out, "A {seq}").unwrap();
                out.flush().unwrap();
                seq += 1;
            }
        }

        let dir = crate::temp_dir();
        let path = dir.path().join("crash.maph");
        Store::create(&path, config).expect("create the crash store");
        let mut known: HashMap<u64, Known> = HashMap::new();
        let mut report = CrashReport::default();
        let mut rng = self.seed;
        let mut seq = 1u64;
        for round in 0..self.kills {
            let args = vec![path.display().to_string(), seq.to_string(), next(&mut rng).to_string()];
            let mut writer = spawn_with_env(&self.test, ROLE, &args, &self.env);
            writer.start();
            let kill_after = 1 + next(&mut rng) % 400;
            let mut acked = 0;
            let mut in_flight: Option<Operation> = None;
            let mut killed = false;
            while let Some(line) = writer.read_line() {
                let parts: Vec<&str> = line.split(' ').collect();
                match parts.as_slice() {
                    ["B", s, rest @ ..] => {
                        let keys = rest.chunks(2).map(|kv| (kv[0].parse().unwrap(), kv[1] == "del")).collect();
                        in_flight = Some(Operation { seq: s.parse().unwrap(), keys });
                    }
                    ["A", s] => {
                        let s: u64 = s.parse().unwrap();
                        let op = in_flight.take().expect("an acknowledgement follows its start");
                        assert_eq!(op.seq, s);
                        for &(k, del) in &op.keys {
                            known.insert(k, if del { Known::Removed } else { Known::Set(s) });
                        }
                        report.batches += u64::from(op.keys.len() > 1);
                        seq = s + 1;
                        acked += 1;
                        report.acknowledged += 1;
                        if acked == kill_after && !killed {
                            writer.kill();
                            killed = true;
                        }
                    }
                    _ => {}
                }
            }
            let done = writer.finish();
            assert!(killed, "round {round}: the writer ended on its own:\n{}", done.describe());
            report.kills += 1;
            if let Some(op) = &in_flight {
                seq = op.seq + 1;
            }
            self.check(&path, &make, &mut known, in_flight, &mut report, round);
        }
        report
    }

    fn check<C, F>(
        &self,
        path: &Path,
        make: &F,
        known: &mut HashMap<u64, Known>,
        in_flight: Option<Operation>,
        report: &mut CrashReport,
        round: usize,
    ) where
        C: WriteCoordinator,
        F: Fn(&Store) -> Result<C>,
    {
        // Slots the kill left mid-write (the writer is dead: an odd slot stays odd,
        // so a short patience suffices). Counted before any coordinator is made,
        // since some (SingleWriter) repair as they are made.
        let before = Store::open(path, Mode::ReadOnly).expect("reopen after the kill");
        report.left_mid_write += before.with_read_patience(Duration::from_millis(1)).verify().in_progress.len();

        // One hand-over: the next writer's first commit, of another key.
        let store = Store::open(path, Mode::ReadWrite).expect("reopen after the kill");
        let coordinator = make(&store).expect("make a coordinator after the kill");
        store.write(&coordinator, |tx| tx.set(HANDOVER_KEY, b"x")).expect("the hand-over commit");

        // Every key readable at once, each as the rules say.
        let reader = Store::open(path, Mode::ReadOnly).unwrap().with_read_patience(Duration::from_millis(50));
        if let Some(op) = &in_flight {
            report.in_flight += 1;
            report.in_flight_batches += usize::from(op.keys.len() > 1);
        }
        for k in 0..self.keys {
            let key = Self::key(k);
            let found = match reader.get(&key) {
                Ok(found) => found,
                Err(e @ Error::SlotBusy { .. }) => {
                    panic!("round {round}: key {k} still mid-write after a hand-over: {e}")
                }
                Err(e) => panic!("round {round}: key {k}: {e}"),
            };
            let seen = match &found {
                None => Known::Removed,
                Some(v) => Known::Set(
                    check_value(&key, v)
                        .unwrap_or_else(|| panic!("round {round}: key {k} holds a value no writer wrote")),
                ),
            };
            let expected = known.get(&k).copied().unwrap_or(Known::Removed);
            if seen == expected {
                continue;
            }
            let flight =
                in_flight.as_ref().and_then(|op| op.keys.iter().find(|&&(fk, _)| fk == k).map(|&(_, d)| (op.seq, d)));
            match flight {
                Some((fs, del)) if seen == if del { Known::Removed } else { Known::Set(fs) } => {
                    report.in_flight_applied += 1;
                    known.insert(k, seen);
                }
                // Killed between the odd and even version stores with the slot
                // half rewritten: repair cleared it, so the key lost its old value
                // too. This is what in-place writes promise (docs/FORMAT.md).
                Some((_, false)) if seen == Known::Removed => {
                    report.in_flight_torn += 1;
                    known.insert(k, seen);
                }
                _ => panic!(
                    "round {round}: key {k} is {seen:?} but the last acknowledged write left {expected:?} \
                     (in flight: {in_flight:?})"
                ),
            }
        }

        // The hand-over left nothing for a full repair to do.
        let repaired = store.repair(&coordinator).expect("repair after the hand-over");
        assert!(
            repaired.is_clean(),
            "round {round}: the hand-over left work for a full repair: {repaired:?} (in flight: {in_flight:?})"
        );
        let verify = store.verify();
        assert!(verify.is_clean(), "round {round}: store not clean: {verify:?}");
    }
}
