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
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}
