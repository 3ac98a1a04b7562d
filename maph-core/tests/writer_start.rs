//! A writer starts in O(1) after a clean close: it does not read the store.

use maph_core::{Config, Mode, SingleWriter, Store};

/// Page faults taken by the calling thread so far (RUSAGE_THREAD: other test
/// threads of this process do not count).
fn faults_of_this_thread() -> u64 {
    // SAFETY: getrusage writes one struct rusage, which all-zero initialises.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to that struct.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) }, 0);
    (usage.ru_minflt + usage.ru_majflt) as u64
}

/// A store of 200,000 slots (100 MB) whose last writer closed cleanly: the next
/// `SingleWriter::new` touches a handful of pages (the header), not the slots.
/// (Reading every slot takes one fault per 16 pages at best: about 1,500 here.)
#[test]
fn a_writer_after_a_clean_close_does_not_read_the_slots() {
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("big.maph");
    Store::create(&path, Config::new(200_000)).unwrap();
    {
        let store = Store::open(&path, Mode::ReadWrite).unwrap();
        let writer = SingleWriter::new(&store).unwrap();
        store.set(&writer, b"k", b"v").unwrap();
    }
    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let before = faults_of_this_thread();
    let writer = SingleWriter::new(&store).unwrap();
    let faults = faults_of_this_thread() - before;
    println!("SingleWriter::new took {faults} page faults on a 200,000-slot store");
    assert!(faults < 64, "the writer start read the store: {faults} page faults");
    assert!(writer.repair_report().is_clean());
    assert_eq!(writer.repair_report().scanned, 0, "no slot was examined");
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

const DIED: &str = "a_writer_after_one_that_died_repairs_only_what_it_was_writing";

/// A writer killed in the middle of a slot write (stopped there, then
/// SIGKILL): the next `SingleWriter::new` repairs exactly the slots its lane
/// lists (one here) and reads nothing else of the 200,000-slot store.
#[test]
fn a_writer_after_one_that_died_repairs_only_what_it_was_writing() {
    use maph_core::test_hooks::{pause_once, Pause};
    if let Some(ctx) = maph_testkit::child(DIED) {
        let store = Store::open(&ctx.args()[0], Mode::ReadWrite).unwrap();
        let writer = SingleWriter::new(&store).unwrap();
        pause_once(Pause::InSlotBody { words: 2 });
        store.set(&writer, b"k", b"a new value").unwrap();
        unreachable!("killed while stopped");
    }
    let dir = maph_testkit::temp_dir();
    let path = dir.path().join("big.maph");
    Store::create(&path, Config::new(200_000)).unwrap();
    {
        let store = Store::open(&path, Mode::ReadWrite).unwrap();
        store.set(&SingleWriter::new(&store).unwrap(), b"k", b"v").unwrap();
    }
    let mut doomed = maph_testkit::spawn(DIED, "writer", &[path.display().to_string()]);
    doomed.wait_until_stopped();
    doomed.kill();
    drop(doomed.finish());

    let store = Store::open(&path, Mode::ReadWrite).unwrap();
    let before = faults_of_this_thread();
    let writer = SingleWriter::new(&store).unwrap();
    let faults = faults_of_this_thread() - before;
    let report = writer.repair_report();
    println!("SingleWriter::new after a death: {faults} page faults, {report:?}");
    assert_eq!((report.lanes, report.scanned, report.cleared.len()), (1, 1, 1), "{report:?}");
    assert!(faults < 64, "the writer start read the store: {faults} page faults");
    assert_eq!(store.get(b"k").unwrap(), None, "the torn slot was cleared");
    assert!(store.verify().is_clean());
}
