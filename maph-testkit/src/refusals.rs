//! Contract scenarios about refusing: writers that may not write, and lock
//! files that cannot be made. Each refusal is an error that names what is
//! wrong, and nothing is written.

use std::path::{Path, PathBuf};

use maph_core::{Error, Mode, Result, Store, Strategy, WriteCoordinator};

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

    /// For coordinators that keep a lock file beside the store (classic
    /// `fcntl` locks), at the path `lock_file` gives: when it cannot be made
    /// (the store's directory was moved away, a directory stands in its place,
    /// permission is denied), making the coordinator fails with `Error::Io`
    /// naming the file and the cause, never a panic. Permission is tested for
    /// real: in a child that runs as `nobody` when we are root (which CI runs
    /// as), since permission bits do not stop root.
    pub fn lock_file_errors_are_clear(&self, lock_file: impl Fn(&Store) -> PathBuf) {
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
        let expect_io = |named: &Path, result: Result<C>, cause: &str| match result {
            Err(e @ Error::Io { .. }) => {
                let text = format!("{e:?}: {e}");
                assert!(text.contains(&named.display().to_string()) && text.contains(cause), "{label}: {text}");
            }
            other => panic!("{label}: expected an Io error ({cause}), got {:?}", other.map(|_| ())),
        };
        let dir = crate::temp_dir();

        // The store's directory renamed after opening: the lock file's directory is gone.
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let moved = self.new_store(&dir.path().join("data"), "s.maph");
        let store = Store::open(&moved, Mode::ReadWrite).expect("open");
        std::fs::rename(dir.path().join("data"), dir.path().join("moved")).unwrap();
        expect_io(Path::new(&moved), (self.make)(&store), "No such file");

        // A directory where the lock file belongs.
        let blocked = self.new_store(dir.path(), "blocked.maph");
        let store = Store::open(&blocked, Mode::ReadWrite).expect("open");
        let lock = lock_file(&store);
        std::fs::create_dir(&lock).unwrap();
        expect_io(&lock, (self.make)(&store), "");

        // A store anyone may write, in a directory only root may write to.
        let denied = self.store_in_read_only_directory(dir.path());
        let lock = lock_file(&Store::open(&denied, Mode::ReadOnly).unwrap());
        let done = spawn_unprivileged(&self.test, ROLE, &self.args(&denied, &[]), &self.env).finish_ok();
        set_mode(Path::new(&denied).parent().unwrap(), 0o755); // so that the directory can be removed
        let error: String = done.report("error");
        assert!(error.starts_with("Io"), "{label}: {error}");
        assert!(error.contains("permission denied") && error.contains(&lock.display().to_string()), "{label}: {error}");
    }

    /// For coordinators that lock the store file itself (single writer, flock,
    /// OFD fcntl): no lock file is made beside the store. A store whose
    /// directory was moved after it was opened can still be written, and so can
    /// a store anyone may write in a directory only root may write to (by a
    /// child running as `nobody` when we are root); nothing but the store is
    /// ever in its directory.
    pub fn no_lock_file_is_needed_beside_the_store(&self) {
        const ROLE: &str = "unprivileged-writer";
        if let Some(ctx) = self.my_child(ROLE) {
            let store = Store::open(&ctx.args()[1], Mode::ReadWrite).expect("open the store");
            let outcome = (self.make)(&store).and_then(|lock| store.set(&lock, b"written by", b"nobody"));
            ctx.report("outcome", format!("{outcome:?}"));
            ctx.exit();
        }
        if crate::child(&self.test).is_some() {
            return;
        }
        let label = &self.label;
        let dir = crate::temp_dir();
        let entries = |d: &Path| -> Vec<String> {
            let mut names: Vec<String> =
                std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            names.sort();
            names
        };

        std::fs::create_dir(dir.path().join("data")).unwrap();
        let moved = self.new_store(&dir.path().join("data"), "s.maph");
        let store = Store::open(&moved, Mode::ReadWrite).expect("open");
        std::fs::rename(dir.path().join("data"), dir.path().join("moved")).unwrap();
        let lock = (self.make)(&store).unwrap_or_else(|e| panic!("{label}: after the directory moved: {e}"));
        store.set(&lock, b"k", b"v").expect("write");
        drop((lock, store));
        assert_eq!(entries(&dir.path().join("moved")), vec!["s.maph".to_string()], "{label}");

        let denied = self.store_in_read_only_directory(dir.path());
        let done = spawn_unprivileged(&self.test, ROLE, &self.args(&denied, &[]), &self.env).finish_ok();
        set_mode(Path::new(&denied).parent().unwrap(), 0o755);
        let outcome: String = done.report("outcome");
        assert_eq!(outcome, "Ok(())", "{label}");
        assert_eq!(entries(Path::new(&denied).parent().unwrap()), vec!["s.maph".to_string()], "{label}");
        let reader = Store::open(&denied, Mode::ReadOnly).unwrap();
        assert_eq!(reader.get(b"written by").unwrap().as_deref(), Some(&b"nobody"[..]), "{label}");
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
