//! A key present before and after a commit is never absent during it, even
//! when the commit moves it to another slot; a crash in the middle leaves it
//! old or new, and never brings a stale copy back.
//!
//! The store has 4 slots, each key's window all of them. `K` sits in slot `o`,
//! two fillers in two others, one slot `f` is free. The commit `remove K; set J;
//! set K` puts `J` into `o` (the first free slot in `J`'s probe order) and so
//! moves `K` to `f`; `remove J; remove K; set K` moves it back.

use std::path::Path;

use maph_core::test_hooks::{pause_once, Pause};
use maph_core::{Config, LockScope, Mode, SingleWriter, Store};
use maph_testkit::{child, spawn};

const SLOTS: u64 = 4;
const K: &[u8] = b"moving";
const FILLERS: [&[u8]; 2] = [b"filler-1", b"filler-2"];

fn home(store: &Store, key: &[u8]) -> u64 {
    match store.scope_of(key) {
        LockScope::Window { first, .. } => first,
        LockScope::Whole => unreachable!(),
    }
}

/// The probe order of `key`: its home slot, then the next ones, wrapping.
fn order(store: &Store, key: &[u8]) -> Vec<u64> {
    (0..SLOTS).map(|i| (home(store, key) + i) % SLOTS).collect()
}

/// Sets up K and the fillers; returns a key J whose probe order reaches K's
/// slot before the free one.
fn prepare(path: &Path) -> Vec<u8> {
    Store::create(path, Config::new(SLOTS).max_probes(SLOTS as u32).slot_size(128).hash_seed(7)).unwrap();
    let store = Store::open(path, Mode::ReadWrite).unwrap();
    let writer = SingleWriter::new(&store).unwrap();
    let mut taken = [false; SLOTS as usize];
    let mut place = |key: &[u8]| {
        let slot = order(&store, key).into_iter().find(|&s| !taken[s as usize]).unwrap();
        taken[slot as usize] = true;
        slot
    };
    let o = place(K);
    FILLERS.iter().for_each(|f| {
        place(f);
    });
    let f = (0..SLOTS).find(|&s| !taken[s as usize]).unwrap();
    store.set(&writer, K, b"value 0").unwrap();
    FILLERS.iter().for_each(|key| store.set(&writer, key, b"filler").unwrap());
    (0..)
        .map(|i| format!("j-{i}").into_bytes())
        .find(|j| {
            let order = order(&store, j);
            order.iter().position(|&s| s == o) < order.iter().position(|&s| s == f)
        })
        .unwrap()
}

/// Moves K away from its slot (and J in): the commit whose old order of
/// writes left K absent for a moment.
fn move_away(store: &Store, writer: &SingleWriter, j: &[u8], value: &[u8]) -> maph_core::Result<()> {
    store.write(writer, |tx| {
        tx.remove(K)?;
        tx.set(j, b"j")?;
        tx.set(K, value)
    })
}

fn move_back(store: &Store, writer: &SingleWriter, j: &[u8], value: &[u8]) -> maph_core::Result<()> {
    store.write(writer, |tx| {
        tx.remove(j)?;
        tx.remove(K)?;
        tx.set(K, value)
    })
}

const NEVER_ABSENT: &str = "a_moved_key_is_never_absent_to_readers";
const READS: u64 = 3_000_000;

/// One process moves K back and forth while two others read it: every read
/// finds it.
#[test]
fn a_moved_key_is_never_absent_to_readers() {
    if let Some(ctx) = child(NEVER_ABSENT) {
        let path = Path::new(&ctx.args()[0]);
        let j = ctx.args()[1].as_bytes();
        match ctx.role() {
            "mover" => {
                let store = Store::open(path, Mode::ReadWrite).unwrap();
                let writer = SingleWriter::new(&store).unwrap();
                let stop = path.with_extension("stop");
                let mut moves = 0u64;
                ctx.report("ready", 1);
                while moves % 1000 != 0 || !stop.exists() {
                    let value = format!("value {moves}");
                    if moves % 2 == 0 {
                        move_away(&store, &writer, j, value.as_bytes()).unwrap();
                    } else {
                        move_back(&store, &writer, j, value.as_bytes()).unwrap();
                    }
                    moves += 1;
                }
                ctx.report("moves", moves);
            }
            "reader" => {
                let store = Store::open(path, Mode::ReadOnly).unwrap();
                ctx.wait_for_start();
                let mut missed = 0u64;
                let mut value = Vec::new();
                for _ in 0..READS {
                    missed += u64::from(!store.get_into(K, &mut value).unwrap());
                }
                ctx.report("missed", missed);
            }
            other => panic!("unknown role {other}"),
        }
        ctx.exit();
    }
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("moving.maph");
    let j = prepare(&path);
    let args = vec![path.display().to_string(), String::from_utf8(j).unwrap()];
    let mut mover = spawn(NEVER_ABSENT, "mover", &args);
    mover.wait_for_report("ready");
    let mut readers: Vec<_> = (0..2).map(|_| spawn(NEVER_ABSENT, "reader", &args)).collect();
    maph_testkit::start_all(&mut readers);
    let missed: u64 = readers.into_iter().map(|r| r.finish_ok().report::<u64>("missed")).sum();
    std::fs::write(path.with_extension("stop"), b"").unwrap();
    let moves: u64 = mover.finish_ok().report("moves");
    println!("{moves} moves, {} reads, {missed} missed", 2 * READS);
    assert!(moves > 1000, "the mover barely ran: {moves} moves");
    assert_eq!(missed, 0, "readers missed a key that every commit kept");
}

const CRASH: &str = "a_crash_in_the_middle_of_a_move_leaves_the_key_old_or_new";

/// The mover is killed after the first slot of the move is written. K reads
/// as its old or its new value (never absent); the next writer's first commit
/// (`remove K`) removes it for good: no stale copy comes back, and the store
/// verifies clean.
#[test]
fn a_crash_in_the_middle_of_a_move_leaves_the_key_old_or_new() {
    if let Some(ctx) = child(CRASH) {
        let store = Store::open(&ctx.args()[0], Mode::ReadWrite).unwrap();
        let writer = SingleWriter::new(&store).unwrap();
        pause_once(Pause::BetweenSlots { slots: 1 });
        move_away(&store, &writer, ctx.args()[1].as_bytes(), b"value 1").unwrap();
        unreachable!("killed while stopped");
    }
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("crash.maph");
    let j = prepare(&path);
    let args = vec![path.display().to_string(), String::from_utf8(j).unwrap()];
    let mut mover = spawn(CRASH, "mover", &args);
    mover.wait_until_stopped();
    mover.kill();
    drop(mover.finish());

    let reader = Store::open(&path, Mode::ReadOnly).unwrap();
    let k = reader.get(K).unwrap();
    assert!(matches!(k.as_deref(), Some(b"value 0" | b"value 1")), "after the crash K is {k:?}");

    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let writer = SingleWriter::new(&store).unwrap();
    store.remove(&writer, K).unwrap();
    assert_eq!(reader.get(K).unwrap(), None, "a stale copy of K came back after remove");
    let report = reader.verify();
    assert!(report.is_clean(), "{report:?}");
}
