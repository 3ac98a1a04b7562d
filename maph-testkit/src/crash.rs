//! The crash loop: a writer process doing random sets and deletes is killed with
//! SIGKILL at random moments, again and again; after each kill the store is
//! repaired and checked against what the writer had acknowledged.

use std::collections::HashMap;
use std::path::Path;

use maph_core::{Config, Mode, Result, Store, WriteCoordinator};

use crate::process::{child, spawn_with_env};

const ROLE: &str = "crash-writer";

/// Kills a writer `kills` times and checks the store after each kill.
///
/// The writer prints `B <key> <seq> <op>` before each operation and
/// `A <key> <seq>` after it returns, one line (one `write(2)`) each, so the
/// lines survive the kill in the pipe. The parent kills after a random number of
/// acknowledgements, reads what is left, and then checks, after a repair, that:
/// every key holds a whole value (self-checking: key, sequence number and a
/// checksum) that some write wrote; no key went back to a value older than its
/// last acknowledged write; and only the one key in flight at the kill may differ:
/// it holds its old value, its new value, or (killed mid-write, slot torn and
/// cleared by repair) no value.
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
    /// Kills that landed with an operation in flight.
    pub in_flight: usize,
    /// Of those, how many operations had nevertheless taken effect.
    pub in_flight_applied: usize,
    /// Of those, how many left the key torn, so that repair removed it.
    pub in_flight_torn: usize,
    /// Slots found mid-write after a kill, before repair.
    pub left_mid_write: usize,
    /// Slots `Store::repair` completed (whole content left odd); coordinators
    /// that repair when made (SingleWriter) leave nothing for it.
    pub repaired_finished: usize,
    /// Slots `Store::repair` cleared (torn content).
    pub repaired_cleared: usize,
}

impl std::fmt::Display for CrashReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} kills, {} acknowledged operations, {} kills mid-operation ({} applied, {} torn and cleared), \
             {} slots left mid-write; Store::repair then finished {} and cleared {}",
            self.kills,
            self.acknowledged,
            self.in_flight,
            self.in_flight_applied,
            self.in_flight_torn,
            self.left_mid_write,
            self.repaired_finished,
            self.repaired_cleared
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
    /// child) and the checker (here) make their coordinator with `make`, and the
    /// checker repairs with [`Store::repair`]. In a child this never returns.
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
                let k = next(&mut rng) % self.keys;
                let key = Self::key(k);
                let remove = next(&mut rng) % 5 == 0;
                writeln!(out, "B {k} {seq} {}", if remove { "del" } else { "set" }).unwrap();
                out.flush().unwrap();
                if remove {
                    store.remove(&coordinator, &key).expect("remove");
                } else {
                    store.set(&coordinator, &key, &self_checking_value(&key, seq)).expect("set");
                }
                writeln!(out, "A {k} {seq}").unwrap();
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
            let mut in_flight: Option<(u64, u64, bool)> = None;
            let mut killed = false;
            while let Some(line) = writer.read_line() {
                let parts: Vec<&str> = line.split(' ').collect();
                match parts.as_slice() {
                    ["B", k, s, op] => in_flight = Some((k.parse().unwrap(), s.parse().unwrap(), *op == "del")),
                    ["A", k, s] => {
                        let (k, s): (u64, u64) = (k.parse().unwrap(), s.parse().unwrap());
                        let (fk, fs, del) = in_flight.take().expect("an acknowledgement follows its start");
                        assert_eq!((fk, fs), (k, s));
                        known.insert(k, if del { Known::Removed } else { Known::Set(s) });
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
            if let Some((_, s, _)) = in_flight {
                seq = s + 1;
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
        in_flight: Option<(u64, u64, bool)>,
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
        report.left_mid_write +=
            before.with_read_patience(std::time::Duration::from_millis(1)).verify().in_progress.len();
        let store = Store::open(path, Mode::ReadWrite).expect("reopen after the kill");
        let coordinator = make(&store).expect("make a coordinator after the kill");
        let repaired = store.repair(&coordinator).expect("repair after the kill");
        report.repaired_finished += repaired.finished.len();
        report.repaired_cleared += repaired.cleared.len();
        let verify = store.verify();
        assert!(verify.is_clean(), "round {round}: store not clean after repair: {verify:?}");
        if in_flight.is_some() {
            report.in_flight += 1;
        }
        for k in 0..self.keys {
            let key = Self::key(k);
            let found = store.get(&key).expect("read after repair");
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
            match in_flight {
                Some((fk, fs, del)) if fk == k && seen == if del { Known::Removed } else { Known::Set(fs) } => {
                    report.in_flight_applied += 1;
                    known.insert(k, seen);
                }
                // Killed between the odd and even version stores with the slot
                // half rewritten: repair cleared it, so the key lost its old value
                // too. This is what in-place writes promise (docs/FORMAT.md).
                Some((fk, _, false)) if fk == k && seen == Known::Removed => {
                    report.in_flight_torn += 1;
                    known.insert(k, seen);
                }
                _ => panic!(
                    "round {round}: key {k} is {seen:?} but the last acknowledged write left {expected:?} \
                     (in flight: {in_flight:?})"
                ),
            }
        }
    }
}
