//! Contract scenario (with the `test-hooks` feature): a writer killed in the
//! middle of a slot write is cleaned up by the next holder of the lock, so that
//! readers of keys nobody writes are not left waiting on its slot.

use std::time::Duration;

use maph_core::test_hooks::{pause_once, Pause};
use maph_core::{Error, LockScope, Mode, Result, Store, WriteCoordinator};

use crate::contract::Contract;
use crate::process::child;

/// Two keys of `store` with the same home slot: a reader of the second probes
/// the first one's slot on its way.
pub(crate) fn keys_sharing_a_home(store: &Store) -> (Vec<u8>, Vec<u8>) {
    let home = |key: &[u8]| match store.scope_of(key) {
        LockScope::Window { first, .. } => first,
        LockScope::Whole => unreachable!("a key's scope is a window"),
    };
    let mut seen = std::collections::HashMap::new();
    for i in 0u64.. {
        let key = format!("handover-{i}").into_bytes();
        if let Some(other) = seen.insert(home(&key), key.clone()) {
            return (other, key);
        }
    }
    unreachable!()
}

impl<C, F> Contract<F>
where
    C: WriteCoordinator,
    F: Fn(&Store) -> Result<C>,
{
    /// A writer is stopped in the middle of a slot write (key A) and killed
    /// there (SIGKILL). Another process then takes the lock once and writes one
    /// unrelated key: that hand-over must leave no slot mid-write, so a reader
    /// of key B (nobody writes it; its probe passes A's slot) gets B's value at
    /// once (a 50 ms patience, not the 500 ms `SlotBusy`), A holds its old value
    /// or nothing (torn and cleared), and the store verifies clean.
    pub fn a_dead_writers_slot_is_repaired_by_the_next_holder(&self) {
        const DOOMED: &str = "doomed-mid-write";
        const NEXT: &str = "next-holder";
        if let Some(ctx) = self.my_child(DOOMED) {
            let (store, lock) = self.open(&ctx.args()[1]);
            pause_once(Pause::InSlotBody { words: 2 });
            store.set(&lock, ctx.args()[2].as_bytes(), &[b'n'; 40]).expect("write a");
            unreachable!("the parent kills this writer while it is stopped mid-write");
        }
        if let Some(ctx) = self.my_child(NEXT) {
            let (store, lock) = self.open(&ctx.args()[1]);
            store.set(&lock, b"unrelated key", b"x").expect("the next holder writes");
            ctx.exit();
        }
        if child(&self.test).is_some() {
            return;
        }
        let label = &self.label;
        let dir = crate::temp_dir();
        let path = self.new_store(dir.path(), "handover.maph");
        {
            let (store, lock) = self.open(&path);
            let (a, b) = keys_sharing_a_home(&store);
            store.set(&lock, &a, b"old a").unwrap();
            store.set(&lock, &b, b"value of b").unwrap();
        }
        let reader = Store::open(&path, Mode::ReadOnly).unwrap().with_read_patience(Duration::from_millis(50));
        let (a, b) = keys_sharing_a_home(&reader);

        let mut doomed = self.spawn(DOOMED, &self.args(&path, &[std::str::from_utf8(&a).unwrap()]));
        doomed.wait_until_stopped();
        assert!(matches!(reader.get(&b), Err(Error::SlotBusy { .. })), "{label}: a's slot is mid-write");
        doomed.kill();
        drop(doomed.finish());

        self.spawn(NEXT, &self.args(&path, &[])).finish_ok();
        match reader.get(&b) {
            Ok(Some(v)) => assert_eq!(v, b"value of b", "{label}"),
            other => panic!("{label}: b after one hand-over: {other:?}"),
        }
        match reader.get(&a) {
            Ok(None) => {}
            Ok(Some(v)) => assert_eq!(v, b"old a", "{label}: a holds a value no commit left"),
            Err(e) => panic!("{label}: a after one hand-over: {e}"),
        }
        let report = reader.verify();
        assert!(report.is_clean(), "{label}: {report:?}");
    }
}
