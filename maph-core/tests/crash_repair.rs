//! A writer that dies mid-write: readers do not hang, and repair cleans up.
//!
//! The repair logic is tested on slots put into the state a dead writer leaves
//! through the file (the layout is documented in docs/FORMAT.md); such a slot
//! has no write-intent lane, so `Store::repair` (which reads every slot) is what
//! finds it. A real SIGKILL loop checks that whatever state a kill leaves is
//! repaired, by the next writer through the dead writer's lane, to a clean
//! store; writers killed at exact steps are in `moved_keys.rs`,
//! `checksummed_reads.rs` and maph-testkit's hand-over scenario.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use maph_core::format::{HEADER_SIZE, SLOT_HEADER_SIZE};
use maph_core::{Config, Error, Mode, SingleWriter, Store};
use maph_testkit::CrashLoop;

const SLOT: u64 = 128;

fn slot_offset(i: u64) -> u64 {
    HEADER_SIZE as u64 + i * SLOT
}

/// The slot holding `key`, found by reading the file.
fn slot_of(path: &Path, key: &[u8]) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    (0..(bytes.len() as u64 - HEADER_SIZE as u64) / SLOT)
        .find(|&i| {
            let at = (slot_offset(i) + SLOT_HEADER_SIZE as u64) as usize;
            let key_len = u16::from_le_bytes([bytes[slot_offset(i) as usize + 8], bytes[slot_offset(i) as usize + 9]]);
            key_len as usize == key.len() && &bytes[at..at + key.len()] == key
        })
        .expect("key is in the file")
}

fn patch(path: &Path, offset: u64, f: impl FnOnce(&mut [u8; 8])) {
    let mut file = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut word = [0u8; 8];
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.read_exact(&mut word).unwrap();
    f(&mut word);
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(&word).unwrap();
}

/// Makes the slot's version odd: a writer "died" after its first store.
fn leave_mid_write(path: &Path, slot: u64) {
    patch(path, slot_offset(slot), |w| w[0] |= 1);
}

fn populated(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("crash.maph");
    Store::create(&path, Config::new(64).slot_size(SLOT as u32)).unwrap();
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let writer = SingleWriter::new(&store).unwrap();
    for i in 0..20 {
        store.set(&writer, format!("key-{i}").as_bytes(), format!("value-{i}").as_bytes()).unwrap();
    }
    path
}

#[test]
fn readers_give_up_on_an_abandoned_slot_instead_of_spinning() {
    let dir = maph_testkit::temp_dir();
    let path = populated(dir.path());
    leave_mid_write(&path, slot_of(&path, b"key-7"));
    let store = Store::open(&path, Mode::ReadOnly).unwrap().with_read_patience(Duration::from_millis(20));
    let started = std::time::Instant::now();
    let err = store.get(b"key-7").unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert!(matches!(err, Error::SlotBusy { .. }), "{err}");
    assert!(err.to_string().contains("repair"), "the error says what to do: {err}");
    // Other keys are unaffected, unless their probe passes the abandoned slot.
    let odd = slot_of(&path, b"key-7");
    for i in (0..20).filter(|&i| i != 7) {
        let key = format!("key-{i}");
        let maph_core::LockScope::Window { first, .. } = store.scope_of(key.as_bytes()) else { unreachable!() };
        let mine = slot_of(&path, key.as_bytes());
        let passes_odd = (0..).map(|d| (first + d) % 64).take_while(|&s| s != mine).any(|s| s == odd);
        match store.get(key.as_bytes()) {
            Ok(v) => assert_eq!(v, Some(format!("value-{i}").into_bytes()), "{key}"),
            Err(Error::SlotBusy { slot, .. }) => assert!(passes_odd && slot == odd, "{key} waited on slot {slot}"),
            Err(e) => panic!("{key}: {e}"),
        }
    }
    assert_eq!(store.verify().in_progress.len(), 1);
}

#[test]
fn a_whole_slot_left_odd_is_finished_by_repair() {
    let dir = maph_testkit::temp_dir();
    let path = populated(dir.path());
    let slot = slot_of(&path, b"key-3");
    leave_mid_write(&path, slot);
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let writer = SingleWriter::new(&store).unwrap();
    let report = store.repair(&writer).unwrap();
    assert_eq!((report.finished.as_slice(), report.cleared.as_slice()), (&[slot][..], &[][..]));
    assert_eq!(report.live, 20);
    assert_eq!(store.get(b"key-3").unwrap().as_deref(), Some(&b"value-3"[..]));
    assert!(store.verify().is_clean());
}

#[test]
fn a_torn_slot_is_cleared_and_every_other_key_survives() {
    let dir = maph_testkit::temp_dir();
    let path = populated(dir.path());
    let slot = slot_of(&path, b"key-5");
    leave_mid_write(&path, slot);
    // Half of a new value landed before the writer died.
    patch(&path, slot_offset(slot) + SLOT_HEADER_SIZE as u64, |w| w[6] ^= 0xff);
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let writer = SingleWriter::new(&store).unwrap();
    assert_eq!(store.repair(&writer).unwrap().cleared, vec![slot]);
    assert_eq!(store.get(b"key-5").unwrap(), None);
    assert_eq!(store.len(), 19, "repair recounts the live keys");
    for i in (0..20).filter(|&i| i != 5) {
        assert_eq!(store.get(format!("key-{i}").as_bytes()).unwrap().unwrap(), format!("value-{i}").into_bytes());
    }
    // The tombstone keeps later keys of the window findable and is reused.
    store.set(&writer, b"key-5", b"again").unwrap();
    assert_eq!(store.get(b"key-5").unwrap().as_deref(), Some(&b"again"[..]));
    assert!(store.verify().is_clean());
}

#[test]
fn a_writer_repairs_an_abandoned_slot_in_its_window_on_the_way() {
    let dir = maph_testkit::temp_dir();
    let path = populated(dir.path());
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let writer = SingleWriter::new(&store).unwrap();
    // Another writer "dies" after this one opened (possible with multi-writer strategies).
    let slot = slot_of(&path, b"key-9");
    leave_mid_write(&path, slot);
    store.update(&writer, b"key-9", |old| Some([old.unwrap(), b"+1"].concat())).unwrap();
    assert_eq!(store.get(b"key-9").unwrap().as_deref(), Some(&b"value-9+1"[..]));
    assert!(store.verify().is_clean());
}

/// Real kills, through the shared crash loop: a writer doing random sets and
/// deletes is SIGKILLed 100 times at random points; after each kill the next
/// writer repairs and every key holds its last acknowledged value (or, for the
/// one key in flight, the new one).
#[test]
fn sigkilled_writers_leave_a_repairable_store() {
    let report = CrashLoop::new("sigkilled_writers_leave_a_repairable_store", 100)
        .run(Config::new(256).slot_size(SLOT as u32), SingleWriter::new);
    println!("{report}");
    assert_eq!(report.kills, 100);
}

/// An uncoordinated store can be repaired too: `Store::repair` keeps its
/// writers out while it runs (they get `UnderRepair`) and clears what a writer
/// left mid-write, so a torn slot is not served forever.
#[test]
fn an_uncoordinated_store_can_be_repaired() {
    use maph_core::{Strategy, Uncoordinated};
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("uncoordinated.maph");
    Store::create(&path, Config::new(64).slot_size(SLOT as u32).strategy(Strategy::UNCOORDINATED)).unwrap();
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let writer = Uncoordinated::new();
    for i in 0..20 {
        store.set(&writer, format!("key-{i}").as_bytes(), format!("value-{i}").as_bytes()).unwrap();
    }
    let slot = slot_of(&path, b"key-5");
    leave_mid_write(&path, slot);
    patch(&path, slot_offset(slot) + SLOT_HEADER_SIZE as u64, |w| w[6] ^= 0xff);
    let report = store.repair(&writer).unwrap();
    assert_eq!(report.cleared, vec![slot], "{report:?}");
    assert!(store.verify().is_clean());
    assert_eq!(store.get(b"key-5").unwrap(), None);
    assert_eq!(store.len(), 19);
}

const KEPT_OUT: &str = "a_repair_of_an_uncoordinated_store_keeps_its_writers_out";

/// How an uncoordinated store's writers are kept out of a repair: a writer
/// stopped in the middle of its commit makes the repair wait for it and, past
/// 5 s, fail without touching anything; once the writer is gone (killed), the
/// repair runs and cleans its slot up. During a repair, writers of the store
/// are refused with `UnderRepair` (checked in `maph-core/src/intent.rs`'s
/// unit test of the mark).
#[test]
fn a_repair_of_an_uncoordinated_store_keeps_its_writers_out() {
    use maph_core::test_hooks::{pause_once, Pause};
    use maph_core::{Strategy, Uncoordinated};
    if let Some(ctx) = maph_testkit::child(KEPT_OUT) {
        let store = Store::open(&ctx.args()[0], Mode::ReadWrite).unwrap();
        pause_once(Pause::InSlotBody { words: 4 });
        store.set(&Uncoordinated::new(), b"key-3", b"a new value for key 3").unwrap();
        unreachable!("killed while stopped");
    }
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("kept-out.maph");
    Store::create(&path, Config::new(64).slot_size(SLOT as u32).strategy(Strategy::UNCOORDINATED)).unwrap();
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    for i in 0..20 {
        store.set(&Uncoordinated::new(), format!("key-{i}").as_bytes(), b"v").unwrap();
    }
    let mut writer = maph_testkit::spawn(KEPT_OUT, "writer", &[path.display().to_string()]);
    writer.wait_until_stopped();
    let err = store.repair(&Uncoordinated::new()).unwrap_err();
    assert!(err.to_string().contains(&format!("process {}", writer.pid())), "{err}");
    assert_eq!(store.verify().in_progress.len(), 1, "the repair touched nothing");
    writer.kill();
    drop(writer.finish());
    let report = store.repair(&Uncoordinated::new()).unwrap();
    assert_eq!(report.cleared.len(), 1, "{report:?}");
    assert!(store.verify().is_clean());
}
