//! A full disk is an error, never a crash: `Store::create` reserves the file's
//! blocks, so writes through the mapping never need a block the filesystem
//! cannot give (which the kernel reports as SIGBUS, killing the process).
//!
//! The tests mount a 4 MiB tmpfs of their own, which needs root (CI runs as
//! root); elsewhere they print why they are skipped.

use std::ffi::CString;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;

use maph_core::{Config, Error, Mode, SingleWriter, Store};
use maph_testkit::{child, spawn};

/// A small tmpfs mounted for one test, unmounted on drop.
struct SmallFilesystem {
    _dir: tempfile::TempDir,
    mount_point: PathBuf,
}

impl SmallFilesystem {
    /// Mounts a tmpfs of `bytes` bytes; `None` (with the reason printed) where
    /// this process may not mount.
    fn mount(bytes: u64) -> Option<SmallFilesystem> {
        let dir = maph_testkit::temp_dir();
        let mount_point = dir.path().join("small");
        std::fs::create_dir(&mount_point).unwrap();
        let target = CString::new(mount_point.as_os_str().as_encoded_bytes()).unwrap();
        let options = CString::new(format!("size={bytes}")).unwrap();
        // SAFETY: NUL-terminated strings that outlive the call; no other memory.
        let rc =
            unsafe { libc::mount(c"tmpfs".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, options.as_ptr().cast()) };
        if rc != 0 {
            println!(
                "SKIPPED: cannot mount a small tmpfs here ({}); this test needs root, as in CI",
                std::io::Error::last_os_error()
            );
            return None;
        }
        Some(SmallFilesystem { _dir: dir, mount_point })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.mount_point.join(name)
    }

    fn entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.mount_point).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect()
    }

    /// Fills the free space with a file, until the filesystem refuses.
    fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path("filler")).unwrap();
        let block = vec![7u8; 4096];
        while file.write_all(&block).is_ok() {}
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let target = CString::new(self.mount_point.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path; MNT_DETACH so a lingering user cannot keep it mounted.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

const MIB: u64 = 1 << 20;

/// An 8 MiB store on a 4 MiB filesystem: `create` fails with an error that
/// says the space is missing, and leaves no file behind.
#[test]
fn creating_a_store_larger_than_the_free_space_fails_cleanly() {
    let Some(fs) = SmallFilesystem::mount(4 * MIB) else { return };
    let path = fs.path("big.maph");
    let err = Store::create(&path, Config::new(8 * MIB / 512)).unwrap_err();
    let text = err.to_string();
    println!("{text}");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(text.contains("space") && text.contains(&path.display().to_string()), "{text}");
    assert_eq!(fs.entries(), Vec::<String>::new(), "a failed create leaves nothing behind");
}

const WRITES_ON_FULL: &str = "a_store_on_a_full_filesystem_takes_every_write";

/// A 2 MiB store, then the filesystem filled to the last block: a writer in
/// another process still writes every slot (its blocks were reserved at
/// create), where a sparse store's first write would have died of SIGBUS.
#[test]
fn a_store_on_a_full_filesystem_takes_every_write() {
    if let Some(ctx) = child(WRITES_ON_FULL) {
        let store = Store::open(&ctx.args()[0], Mode::ReadWrite).unwrap();
        let writer = SingleWriter::new(&store).unwrap();
        let mut written = 0u64;
        for i in 0..store.slot_count() {
            match store.set(&writer, format!("key-{i}").as_bytes(), &[b'v'; 400]) {
                Ok(()) => written += 1,
                Err(Error::TableFull { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        ctx.report("written", written);
        ctx.exit();
    }
    let Some(fs) = SmallFilesystem::mount(4 * MIB) else { return };
    let path = fs.path("s.maph");
    Store::create(&path, Config::new(2 * MIB / 512)).unwrap();
    fs.fill();
    let done = spawn(WRITES_ON_FULL, "writer", &[path.display().to_string()]).finish();
    assert!(done.status.success(), "the writer died (signal {:?}):\n{}", done.status.signal(), done.describe());
    let written: u64 = done.report("written");
    println!("{written} keys written on a full filesystem");
    assert!(written > 1000, "{written}");
    assert!(Store::open(&path, Mode::ReadOnly).unwrap().verify().is_clean());
}

/// `Config::sparse` keeps the old behaviour on request: the 8 MiB store is
/// created on the 4 MiB filesystem (no block reserved), with the SIGBUS risk
/// its documentation states. (Not even read here: on tmpfs a read of a hole
/// through a shared mapping allocates a page too.)
#[test]
fn a_sparse_store_is_created_without_its_blocks() {
    let Some(fs) = SmallFilesystem::mount(4 * MIB) else { return };
    let path = fs.path("sparse.maph");
    Store::create(&path, Config::new(8 * MIB / 512).sparse(true)).unwrap();
    let store = Store::open(&path, Mode::ReadOnly).unwrap();
    assert_eq!((store.slot_count(), store.len()), (8 * MIB / 512, 0));
}
