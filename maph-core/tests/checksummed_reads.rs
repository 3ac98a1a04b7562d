//! A reader never returns bytes that fail their slot's checksum, and a writer
//! that was overtaken while paused mid-write publishes nothing.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use maph_core::test_hooks::{pause_once, Pause};
use maph_core::{
    Access, Config, ContentionCounters, Error, LockScope, Mode, SingleWriter, Store, Strategy, Ticket, Wait,
    WriteCoordinator,
};
use maph_testkit::{check_value, child, self_checking_value, spawn};

/// The offset in the file of `key`'s bytes (the first slot that holds them).
fn offset_of(path: &Path, key: &[u8]) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    bytes.windows(key.len()).position(|w| w == key).expect("the key is in the file") as u64
}

fn flip_byte(path: &Path, at: u64) {
    let file = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x40], at).unwrap();
}

fn is_corrupt_slot(err: &Error) -> bool {
    matches!(err, Error::Corrupt { detail, .. } if detail.contains("slot"))
}

/// A value byte damaged while the slot's version is even (bit rot, a stray
/// write, a writer that was not excluded): every read reports the slot as
/// corrupt instead of returning the damaged bytes; other keys read normally.
#[test]
fn a_damaged_value_is_reported_never_returned() {
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("rot.maph");
    Store::create(&path, Config::new(64).slot_size(128)).unwrap();
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let writer = SingleWriter::new(&store).unwrap();
    store.set(&writer, b"damaged-key", b"a value of thirty-two bytes long").unwrap();
    store.set(&writer, b"other", b"intact").unwrap();
    drop(writer);

    flip_byte(&path, offset_of(&path, b"damaged-key") + 11 + 7);
    let reader = Store::open(&path, Mode::ReadOnly).unwrap();
    let got = reader.get(b"damaged-key");
    assert!(matches!(&got, Err(e) if is_corrupt_slot(e)), "get returned {got:?}");
    let mut buffer = Vec::new();
    let got = reader.get_into(b"damaged-key", &mut buffer);
    assert!(matches!(&got, Err(e) if is_corrupt_slot(e)), "get_into returned {got:?}");
    let got = reader.contains(b"damaged-key");
    assert!(matches!(&got, Err(e) if is_corrupt_slot(e)), "contains returned {got:?}");
    let items: Vec<_> = reader.iter().collect();
    assert!(items.iter().any(|i| matches!(i, Err(e) if is_corrupt_slot(e))), "iter returned {items:?}");
    assert!(items.iter().any(|i| matches!(i, Ok((k, _)) if k == b"other")), "iter still yields the others");
    assert_eq!(reader.get(b"other").unwrap().as_deref(), Some(&b"intact"[..]));
}

/// A lease that lapsed while its holder was paused: both holders believe they
/// hold the store (as after a Redis token expired under a stopped process).
/// It claims to exclude writers, so each repairs what it finds mid-write.
#[derive(Default)]
struct LapsedLease {
    counters: ContentionCounters,
}

const LAPSED: Strategy = Strategy::new("lapsed-lease");

impl WriteCoordinator for LapsedLease {
    fn strategy(&self) -> Strategy {
        LAPSED
    }
    fn acquire(&self, access: Access, scope: LockScope, _wait: Wait) -> maph_core::Result<Option<Ticket>> {
        Ok(Some(Ticket::new(access, scope)))
    }
    unsafe fn release(&self, _ticket: Ticket) {}
    fn counters(&self) -> &ContentionCounters {
        &self.counters
    }
}

const OVERTAKEN: &str = "an_overtaken_writer_publishes_nothing_torn";
const KEY: &[u8] = b"contested";

/// Writer A stops in the middle of its slot write (after 5 body words). Writer
/// B, believing the lease is its own, finds the slot mid-write, repairs it and
/// writes its own value. A resumes and stores the rest of its body over B's
/// value: its publish must fail (the version is no longer the one it made odd),
/// and no reader may ever get the mixed bytes; `verify` reports the slot and
/// `repair` clears it.
#[test]
fn an_overtaken_writer_publishes_nothing_torn() {
    if let Some(ctx) = child(OVERTAKEN) {
        let path = &ctx.args()[0];
        let store = Store::open(path, Mode::ReadWrite).unwrap();
        let lease = LapsedLease::default();
        match ctx.role() {
            "stale" => {
                pause_once(Pause::InSlotBody { words: 5 });
                let outcome = store.set(&lease, KEY, &self_checking_value(KEY, 1_000_000));
                ctx.report("outcome", format!("{outcome:?}").replace('\n', " "));
            }
            "next" => store.set(&lease, KEY, &self_checking_value(KEY, 2)).unwrap(),
            "reader" => {
                let stop = Path::new(path).with_extension("stop");
                let (mut reads, mut torn, mut corrupt) = (0u64, 0u64, 0u64);
                ctx.report("reading", 1);
                while !stop.exists() {
                    for _ in 0..1000 {
                        reads += 1;
                        match store.get(KEY) {
                            Ok(Some(v)) => torn += u64::from(check_value(KEY, &v).is_none()),
                            Ok(None) | Err(Error::SlotBusy { .. }) => {}
                            Err(ref e) if is_corrupt_slot(e) => corrupt += 1,
                            Err(e) => panic!("reader: {e}"),
                        }
                    }
                }
                ctx.report("reads", reads);
                ctx.report("torn", torn);
                ctx.report("corrupt", corrupt);
            }
            other => panic!("unknown role {other}"),
        }
        ctx.exit();
    }

    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("overtaken.maph");
    Store::create(&path, Config::new(64).slot_size(128).strategy(LAPSED)).unwrap();
    let args = vec![path.display().to_string()];
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    store.set(&LapsedLease::default(), KEY, &self_checking_value(KEY, 1)).unwrap();

    let mut readers: Vec<_> = (0..2).map(|_| spawn(OVERTAKEN, "reader", &args)).collect();
    for r in &mut readers {
        r.wait_for_report("reading");
    }
    let mut stale = spawn(OVERTAKEN, "stale", &args);
    stale.wait_until_stopped();
    spawn(OVERTAKEN, "next", &args).finish_ok();
    stale.resume();
    let stale = stale.finish_ok();
    let outcome: String = stale.report("outcome");
    println!("the overtaken writer's set returned {outcome}");

    // Whatever a read finds now, it is never the mixed bytes.
    let reader = Store::open(&path, Mode::ReadOnly).unwrap().with_read_patience(Duration::from_millis(50));
    match reader.get(KEY) {
        Ok(Some(v)) => assert!(check_value(KEY, &v).is_some(), "a torn value was returned: {v:?}"),
        Ok(None) => {}
        Err(e) => assert!(is_corrupt_slot(&e), "{e}"),
    }
    std::fs::write(path.with_extension("stop"), b"").unwrap();
    for r in readers {
        let done = r.finish_ok();
        let (reads, torn, corrupt): (u64, u64, u64) =
            (done.report("reads"), done.report("torn"), done.report("corrupt"));
        println!("reader: {reads} reads, {torn} torn, {corrupt} reported corrupt");
        assert_eq!(torn, 0, "a reader got a torn value");
    }
    assert!(outcome.starts_with("Err"), "the overtaken writer's publish must fail, got {outcome}");

    let report = reader.verify();
    assert!(!report.is_clean(), "verify must report the mixed slot: {report:?}");
    store.repair(&LapsedLease::default()).unwrap();
    let report = reader.verify();
    assert!(report.is_clean(), "{report:?}");
    store.set(&LapsedLease::default(), KEY, &self_checking_value(KEY, 3)).unwrap();
    assert_eq!(check_value(KEY, &reader.get(KEY).unwrap().unwrap()), Some(3));
}
