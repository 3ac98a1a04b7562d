//! Contract scenario: one file, one lock, whatever path reaches it. A store
//! opened through a symlink, a hard link or a non-canonical path is the same
//! store, and its writers must coordinate as one.

use std::path::{Path, PathBuf};

use maph_core::{Error, LockScope, Mode, Result, Store, WriteCoordinator};

use crate::contract::Contract;
use crate::process::child;

/// The names a test gives one store file: its own, and three others that reach it.
pub(crate) struct Aliases {
    pub others: Vec<(&'static str, PathBuf)>,
}

impl Aliases {
    /// Makes `dir/data/x.maph`'s aliases: a symlink `dir/current.maph ->
    /// data/x.maph` (the `current -> v7` pattern), a hard link
    /// `dir/data/hard.maph`, and the path `dir/data/../data/x.maph`.
    pub fn make(dir: &Path, canonical: &Path) -> Aliases {
        let symlink = dir.join("current.maph");
        std::os::unix::fs::symlink(canonical.strip_prefix(dir).expect("the store lies in dir"), &symlink)
            .expect("make a symlink");
        let hard = canonical.with_file_name("hard.maph");
        std::fs::hard_link(canonical, &hard).expect("make a hard link");
        let parent = canonical.parent().expect("a parent directory");
        let dotdot =
            parent.join("..").join(parent.file_name().expect("a named directory")).join(canonical.file_name().unwrap());
        Aliases { others: vec![("symlink", symlink), ("hard link", hard), ("../", dotdot)] }
    }
}

impl<C, F> Contract<F>
where
    C: WriteCoordinator,
    F: Fn(&Store) -> Result<C>,
{
    /// Two processes that reach one store file by different paths (a symlink,
    /// a hard link, `dir/../dir/x.maph`) exclude each other: while one holds the
    /// whole store, the other can neither make a writer (single writer:
    /// `WriterBusy`, naming the holder) nor take exclusive or shared access;
    /// once the holder lets go, the other gets it. Each alias is tried in both
    /// directions (holder on the alias, or on the file's own name).
    pub fn every_path_to_the_file_is_one_lock(&self) {
        const ROLE: &str = "alias-holder";
        if let Some(ctx) = self.my_child(ROLE) {
            let (_store, lock) = self.open(&ctx.args()[1]);
            let guard = lock.lock_exclusive(LockScope::Whole).expect("lock");
            ctx.report("locked", std::process::id());
            ctx.wait_for_start(); // hold until the parent has tried its alias
            drop(guard);
            ctx.exit();
        }
        if child(&self.test).is_some() {
            return;
        }
        let label = &self.label;
        let dir = crate::temp_dir();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let canonical = self.new_store(&dir.path().join("data"), "x.maph");
        let aliases = Aliases::make(dir.path(), Path::new(&canonical));
        for (name, alias) in &aliases.others {
            let alias = alias.display().to_string();
            for (holder_path, my_path) in [(&canonical, &alias), (&alias, &canonical)] {
                let what = format!("{label}: holder on {holder_path}, other on {my_path} ({name})");
                let mut holder = self.spawn(ROLE, &self.args(holder_path, &[]));
                let holder_pid: u32 = holder.wait_for_report("locked").parse().unwrap();
                let store = Store::open(my_path, Mode::ReadWrite).expect("open through the other path");
                match (self.make)(&store) {
                    Err(Error::WriterBusy { pid }) => assert_eq!(pid, Some(holder_pid), "{what}"),
                    Err(e) => panic!("{what}: making the coordinator failed: {e}"),
                    Ok(lock) => {
                        assert!(lock.try_lock_exclusive(LockScope::Whole).unwrap().is_none(), "{what}: two holders");
                        assert!(
                            lock.try_lock_shared(LockScope::Whole).unwrap().is_none(),
                            "{what}: shared beside exclusive"
                        );
                    }
                }
                holder.start();
                holder.finish_ok();
                let lock = (self.make)(&store).unwrap_or_else(|e| panic!("{what}: after the holder left: {e}"));
                let guard = lock.lock_exclusive_for(LockScope::Whole, crate::GENEROUS).expect("free once released");
                store.write_with(&guard, |tx| tx.set(name.as_bytes(), my_path.as_bytes())).expect("write");
            }
        }
        let reader = Store::open(&canonical, Mode::ReadOnly).unwrap();
        assert_eq!(reader.len(), aliases.others.len() as u64, "{label}");
    }
}
