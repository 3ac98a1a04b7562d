//! Which filesystem a store lives on: maph coordinates processes on one host.
//!
//! A store is shared through a `MAP_SHARED` mapping, and a network filesystem
//! (NFS, SMB, 9p, Ceph, …) does not keep the mappings of one file coherent
//! between the machines that mount it: a writer on host A changes slot 5, a
//! writer on host B writes back its stale copy of the same page while changing
//! slot 7, and A's update is lost, whatever lock the two took. FUSE filesystems
//! are in the same class (the daemon behind one may be a network client, and
//! their page cache rules are their own). So a store on one of them is refused
//! for writing unless the caller states that every process using it runs on
//! this one host (`OpenOptions::allow_network_filesystem`).

use std::fs::File;
use std::os::fd::AsRawFd;

/// `statfs` magic numbers of filesystems that are shared between hosts or run
/// in user space (linux/magic.h, and the filesystems' own sources for those it
/// does not list).
const SHARED_OR_USER_SPACE: &[(u64, &str)] = &[
    (0x6969, "NFS"),
    (0x517B, "SMB"),
    (0xFF53_4D42, "CIFS"),
    (0xFE53_4D42, "SMB2"),
    (0x0102_1997, "9p (v9fs)"),
    (0x00C3_6400, "Ceph"),
    (0x5346_414F, "AFS"),
    (0x6B41_4653, "kAFS"),
    (0x7375_7245, "Coda"),
    (0x564C, "NCP"),
    (0x7461_636F, "OCFS2"),
    (0x0116_1970, "GFS2"),
    (0x0BD0_0BD0, "Lustre"),
    (0x4750_4653, "GPFS"),
    (0x2003_0528, "OrangeFS (PVFS2)"),
    (0x1983_0326, "BeeGFS"),
    (0x6573_5546, "fuse"),
];

/// The name of the network or user-space filesystem with `statfs` magic
/// `magic`, or `None` for a local one.
pub(crate) fn shared_filesystem_name(magic: u64) -> Option<&'static str> {
    // f_type is a signed word on some targets: compare its low 32 bits.
    let magic = magic & 0xffff_ffff;
    SHARED_OR_USER_SPACE.iter().find(|&&(m, _)| m == magic).map(|&(_, name)| name)
}

/// The `statfs` magic number of the filesystem `file` is on.
pub(crate) fn magic_of(file: &File) -> std::io::Result<u64> {
    // SAFETY: fstatfs writes one struct statfs, which all-zero initialises.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a descriptor we own and a valid pointer to that struct.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut buf) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
    Ok(buf.f_type as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_and_fuse_filesystems_are_recognised() {
        for (magic, name) in [
            (0x6969, "NFS"),
            (0xFF53_4D42, "CIFS"),
            (0xFE53_4D42, "SMB2"),
            (0x517B, "SMB"),
            (0x6573_5546, "fuse"),
            (0x0102_1997, "9p (v9fs)"),
            (0x00C3_6400, "Ceph"),
        ] {
            assert_eq!(shared_filesystem_name(magic), Some(name), "{magic:#x}");
        }
        // A signed 64-bit f_type holding CIFS's magic sign-extended.
        assert_eq!(shared_filesystem_name(0xFFFF_FFFF_FF53_4D42), Some("CIFS"));
    }

    #[test]
    fn local_filesystems_are_not() {
        // ext4, xfs, btrfs, tmpfs, overlayfs, zfs
        for magic in [0xEF53, 0x5846_5342, 0x9123_683E, 0x0102_1994, 0x794C_7630, 0x2FC1_2FC1] {
            assert_eq!(shared_filesystem_name(magic), None, "{magic:#x}");
        }
    }

    #[test]
    fn the_temporary_directory_is_local_here() {
        let file = tempfile::tempfile().unwrap();
        let magic = magic_of(&file).unwrap();
        assert_eq!(shared_filesystem_name(magic), None, "{magic:#x}");
    }
}
