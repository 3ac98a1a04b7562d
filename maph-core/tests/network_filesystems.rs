//! maph coordinates processes on one host: a store on a network or FUSE
//! filesystem is refused for writing (shared mappings of such a file are not
//! kept coherent between the hosts that mount it), unless the caller says that
//! every process runs on this one host.
//!
//! The filesystem here is FUSE (bindfs, a passthrough, mounted by the test; it
//! needs root and the Debian package `bindfs`, which `scripts/test` installs).
//! NFS, SMB, 9p and Ceph are recognised by the same `statfs` check, tested on
//! their magic numbers (`maph-core/src/filesystem.rs`), not on real mounts.

use std::path::{Path, PathBuf};
use std::process::Command;

use maph_core::{Config, Error, Mode, OpenOptions, SingleWriter, Store};

/// A bindfs mount of a local directory, unmounted on drop.
struct Fuse {
    _dir: tempfile::TempDir,
    local: PathBuf,
    mounted: PathBuf,
}

impl Fuse {
    fn mount() -> Option<Fuse> {
        let dir = maph_testkit::temp_dir();
        let (local, mounted) = (dir.path().join("local"), dir.path().join("fuse"));
        std::fs::create_dir(&local).unwrap();
        std::fs::create_dir(&mounted).unwrap();
        match Command::new("bindfs").arg(&local).arg(&mounted).output() {
            Ok(out) if out.status.success() => Some(Fuse { _dir: dir, local, mounted }),
            Ok(out) => {
                println!(
                    "SKIPPED: bindfs could not mount ({}); this test needs root",
                    String::from_utf8_lossy(&out.stderr)
                );
                None
            }
            Err(e) => {
                println!("SKIPPED: bindfs is not installed ({e}); scripts/test installs it (Debian package bindfs)");
                None
            }
        }
    }
}

impl Drop for Fuse {
    fn drop(&mut self) {
        let target = std::ffi::CString::new(self.mounted.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path; no other memory.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

fn create(fuse: &Fuse) -> (PathBuf, PathBuf) {
    Store::create(fuse.local.join("s.maph"), Config::new(64)).unwrap();
    (fuse.local.join("s.maph"), fuse.mounted.join("s.maph"))
}

/// Opening for writing through the FUSE mount is refused with an error that
/// says why and what to do; the same file through its local path opens.
#[test]
fn a_store_on_fuse_is_refused_for_writing() {
    let Some(fuse) = Fuse::mount() else { return };
    let (local, remote) = create(&fuse);
    let err = Store::open(&remote, Mode::ReadWrite).unwrap_err();
    let text = err.to_string();
    println!("{text}");
    assert!(matches!(err, Error::NetworkFilesystem { .. }), "{err:?}");
    assert!(text.contains("fuse") && text.contains("one host") && text.contains("maph-server"), "{text}");
    assert!(Store::open(&local, Mode::ReadWrite).is_ok());
    assert!(Store::open(&remote, Mode::ReadOnly).is_ok(), "reading is allowed");
}

/// With the single-host opt-in the store opens for writing through FUSE, and
/// what is written there is what the local path reads.
#[test]
fn the_single_host_opt_in_opens_it() {
    let Some(fuse) = Fuse::mount() else { return };
    let (local, remote) = create(&fuse);
    let store = OpenOptions::new(Mode::ReadWrite).allow_network_filesystem(true).open(&remote).unwrap();
    let writer = SingleWriter::new(&store).unwrap();
    store.set(&writer, b"k", b"written through fuse").unwrap();
    store.flush().unwrap();
    drop((writer, store));
    let reader = Store::open(Path::new(&local), Mode::ReadOnly).unwrap();
    assert_eq!(reader.get(b"k").unwrap().as_deref(), Some(&b"written through fuse"[..]));
}
