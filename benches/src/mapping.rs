//! How a process's mapping of its store landed in memory: how much of it is
//! mapped, in what page sizes, and in how many physically separate pieces.
//! Identical code can run at different speeds from one process to the next
//! because of this placement; each single-process cell records it, so a
//! researcher can set a slow process beside its layout.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The layout of every mapping of files under one directory, in this process.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MappingInfo {
    /// Size of the mappings (KiB).
    pub size_kib: u64,
    /// Resident in this process's page tables (KiB): pages it touched or had faulted around.
    pub rss_kib: u64,
    /// Mapped with 2 MiB page-table entries (KiB): these pages cost no 4 KiB TLB entries.
    pub pmd_mapped_kib: u64,
    /// Of the resident pages examined, the share that belong to a large folio
    /// (a page-cache allocation bigger than 4 KiB). `None` without access to
    /// `/proc/kpageflags` (it needs root).
    pub large_folio_share: Option<f64>,
    /// Resident pages examined for the physical figures.
    pub pages_examined: u64,
    /// Distinct physical 2 MiB frames those pages occupy: few means the
    /// pages sit close together in physical memory.
    pub physical_2m_frames: Option<u64>,
}

/// Resident pages examined at most (evenly spaced), to keep this cheap at any store size.
const MAX_PAGES: u64 = 1 << 16;
const PAGE: u64 = 4096;

/// The layout of this process's mappings of files under `dir`; `None` if it
/// has none or `/proc` cannot be read.
pub fn of_files_under(dir: &Path) -> Option<MappingInfo> {
    let dir = dir.canonicalize().ok()?;
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut info = MappingInfo {
        size_kib: 0,
        rss_kib: 0,
        pmd_mapped_kib: 0,
        large_folio_share: None,
        pages_examined: 0,
        physical_2m_frames: None,
    };
    let mut ranges = Vec::new();
    let mut current: Option<(u64, u64)> = None;
    for line in smaps.lines() {
        if let Some((range, path)) = mapping_header(line) {
            current = path.filter(|p| Path::new(p).starts_with(&dir)).map(|_| range);
            if let Some(r) = current {
                ranges.push(r);
            }
            continue;
        }
        if current.is_none() {
            continue;
        }
        let field = |name: &str| {
            line.strip_prefix(name).and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        };
        if let Some(v) = field("Size:") {
            info.size_kib += v;
        } else if let Some(v) = field("Rss:") {
            info.rss_kib += v;
        } else if let Some(v) = field("FilePmdMapped:") {
            info.pmd_mapped_kib += v;
        }
    }
    if ranges.is_empty() {
        return None;
    }
    physical(&ranges, &mut info);
    Some(info)
}

/// `start-end perms offset dev inode [path]` → the range and the file's path
/// (`None` for anonymous and special mappings); `None` for other lines.
fn mapping_header(line: &str) -> Option<((u64, u64), Option<&str>)> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    let _perms = fields.next()?;
    let _offset = fields.next()?;
    let _dev = fields.next()?;
    let _inode = fields.next()?;
    Some(((start, end), fields.next().filter(|p| p.starts_with('/'))))
}

/// Fills the physical figures from `/proc/self/pagemap` and `/proc/kpageflags`.
fn physical(ranges: &[(u64, u64)], info: &mut MappingInfo) {
    let Ok(mut pagemap) = File::open("/proc/self/pagemap") else { return };
    let mut kpageflags = File::open("/proc/kpageflags").ok();
    let total: u64 = ranges.iter().map(|(s, e)| (e - s) / PAGE).sum();
    let step = total.div_ceil(MAX_PAGES).max(1);
    let (mut examined, mut large) = (0u64, 0u64);
    let mut frames = std::collections::BTreeSet::new();
    let mut pfn_seen = false;
    for &(start, end) in ranges {
        let mut page = start / PAGE;
        while page < end / PAGE {
            if let Some(entry) = read_u64(&mut pagemap, page * 8) {
                let present = entry >> 63 & 1 == 1;
                let pfn = entry & ((1 << 55) - 1);
                if present {
                    examined += 1;
                    if pfn != 0 {
                        pfn_seen = true;
                        frames.insert(pfn >> 9);
                        if let Some(flags) = kpageflags.as_mut().and_then(|k| read_u64(k, pfn * 8)) {
                            // KPF_COMPOUND_HEAD (15), KPF_COMPOUND_TAIL (16).
                            large += u64::from(flags & (1 << 15 | 1 << 16) != 0);
                        }
                    }
                }
            }
            page += step;
        }
    }
    info.pages_examined = examined;
    if pfn_seen {
        info.physical_2m_frames = Some(frames.len() as u64);
        if kpageflags.is_some() && examined > 0 {
            info.large_folio_share = Some(large as f64 / examined as f64);
        }
    }
}

fn read_u64(file: &mut File, offset: u64) -> Option<u64> {
    let mut buf = [0u8; 8];
    file.seek(SeekFrom::Start(offset)).ok()?;
    file.read_exact(&mut buf).ok()?;
    Some(u64::from_le_bytes(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_file_is_found_and_described() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        std::fs::write(&path, vec![1u8; 1 << 20]).unwrap();
        let file = std::fs::OpenOptions::new().read(true).open(&path).unwrap();
        // SAFETY: a private file of this test, mapped read-only and only read here.
        let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
        let sum: u64 = map.iter().step_by(4096).map(|&b| u64::from(b)).sum();
        assert_eq!(sum, 256);
        let info = of_files_under(dir.path()).expect("the mapping is listed");
        assert_eq!(info.size_kib, 1024);
        assert!(info.rss_kib > 0 && info.rss_kib <= 1024);
        assert!(info.pages_examined > 0);
        assert!(of_files_under(&dir.path().join("elsewhere")).is_none());
        drop(map);
    }

    #[test]
    fn headers_parse() {
        let line = "7f00-7f10 rw-s 00000000 fd:01 1234 /tmp/x/bench.maph";
        assert_eq!(mapping_header(line), Some(((0x7f00, 0x7f10), Some("/tmp/x/bench.maph"))));
        assert_eq!(mapping_header("7f00-7f10 rw-p 00000000 00:00 0"), Some(((0x7f00, 0x7f10), None)));
        assert_eq!(mapping_header("7f00-7f10 rw-p 00000000 00:00 0 [heap]"), Some(((0x7f00, 0x7f10), None)));
        assert_eq!(mapping_header("Rss:   4 kB"), None);
    }
}
