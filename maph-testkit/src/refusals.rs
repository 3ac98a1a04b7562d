//! Contract scenarios about refusing: writers that may not write, and lock
//! files that cannot be made. Each refusal is an error that names what is
//! wrong, and nothing is written.

use std::path::Path;

use maph_core::{lock_path, Error, Mode, Result, Store, Strategy, WriteCoordinator};

use crate::contract::Contract;
use crate::process::spawn_unprivileged;

impl<C, F> Contract<F>
where
    C: WriteCoordinator,
    F: Fn(&Store) -> Result<C>,
{
    /// A read-only handle (`ReadOnly`), a store created for another strategy
    /// (`StrategyMismatch`, naming both), and a store the coordinator was not
    /// made for (`WrongStore`, with nothing written) are all refused.
    pub fn writers_that_may_not_write_are_refused(&self) {
        let label = &self.label;
        let dir = crate::temp_dir();
        let path = self.new_store(dir.path(), "a.maph");

        let read_only = Store::open(&path, Mode::ReadOnly).expect("open read-only");
        match (self.make)(&read_only) {
            Err(Error::ReadOnly) => {}
            other => panic!("{label}: a read-only handle gave {:?}, not ReadOnly", other.map(|_| ())),
        }

        let mine = self.config.strategy;
        let theirs = if mine == Strategy::SINGLE_WRITER { Strategy::new("flock") } else { Strategy::SINGLE_WRITER };
        let foreign = dir.path().join("foreign.maph");
        Store::create(&foreign, self.config.strategy(theirs)).expect("create a store of another strategy");
        let foreign = Store::open(&foreign, Mode::ReadWrite).expect("open it");
        match (self.make)(&foreign) {
            Err(Error::StrategyMismatch { store, coordinator }) => {
                assert_eq!((store, coordinator), (theirs, mine), "{label}");
            }
            other => panic!("{label}: a {theirs} store gave {:?}, not StrategyMismatch", other.map(|_| ())),
        }

        let (_store_a, lock_for_a) = self.open(&path);
        let b = self.new_store(dir.path(), "b.maph");
        let store_b = Store::open(&b, Mode::ReadWrite).expect("open b");
        match store_b.set(&lock_for_a, b"k", b"v") {
            Err(Error::WrongStore) => {}
            other => panic!("{label}: writing b through a's coordinator gave {other:?}, not WrongStore"),
        }
        assert_eq!(store_b.get(b"k").unwrap(), None, "{label}: nothing was written");
    }

    /// For coordinators that keep a lock file beside the store
    /// ([`lock_path`]): when it cannot be made (its directory is gone, a
    /// directory stands in its place, permission is denied), making the
    /// coordinator fails with `Error::Io` naming the lock file (and, where the
    /// system says one, the cause).
    /// Permission is tested for real: in a child that runs as `nobody` when we
    /// are root (which CI runs as), since permission bits do not stop root.
    pub fn lock_file_errors_are_clear(&self) {
        const ROLE: &str = "unprivileged";
        if let Some(ctx) = self.my_child(ROLE) {
            let store = Store::open(&ctx.args()[1], Mode::ReadWrite).expect("open the store");
            match (self.make)(&store) {
                Err(e) => ctx.report("error", format!("{e:?}: {e}")),
                Ok(_) => ctx.report("error", "none"),
            }
            ctx.exit();
        }
        if crate::child(&self.test).is_some() {
            return;
        }
        let label = &self.label;
        let expect_io = |path: &str, result: Result<C>, cause: &str| match result {
            Err(e @ Error::Io { .. }) => {
                let text = format!("{e:?}: {e}");
                let named = lock_path(Path::new(path)).display().to_string();
                assert!(text.contains(&named) && text.contains(cause), "{label}: {text}");
            }
            other => panic!("{label}: expected an Io error ({cause}), got {:?}", other.map(|_| ())),
        };
        let dir = crate::temp_dir();

        // The store's directory renamed after opening: the lock file's directory is gone.
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let moved = self.new_store(&dir.path().join("data"), "s.maph");
        let store = Store::open(&moved, Mode::ReadWrite).expect("open");
        std::fs::rename(dir.path().join("data"), dir.path().join("moved")).unwrap();
        expect_io(&moved, (self.make)(&store), "directory does not exist");

        // A directory where the lock file belongs.
        let blocked = self.new_store(dir.path(), "blocked.maph");
        std::fs::create_dir(lock_path(Path::new(&blocked))).unwrap();
        let store = Store::open(&blocked, Mode::ReadWrite).expect("open");
        expect_io(&blocked, (self.make)(&store), "");

        // A store anyone may write, in a directory only root may write to.
        let denied = self.store_in_read_only_directory(dir.path());
        let done = spawn_unprivileged(&self.test, ROLE, &self.args(&denied, &[]), &self.env).finish_ok();
        set_mode(Path::new(&denied).parent().unwrap(), 0o755); // so that the directory can be removed
        let error: String = done.report("error");
        assert!(error.starts_with("Io"), "{label}: {error}");
        let named = lock_path(Path::new(&denied)).display().to_string();
        assert!(error.contains("permission denied") && error.contains(&named), "{label}: {error}");
    }

    fn store_in_read_only_directory(&self, dir: &Path) -> String {
        let data = dir.join("read-only");
        std::fs::create_dir(&data).unwrap();
        let path = self.new_store(&data, "s.maph");
        set_mode(Path::new(&path), 0o666);
        set_mode(&data, 0o555);
        set_mode(dir, 0o755);
        path
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
