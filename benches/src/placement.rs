//! `maph-bench placement`: the experiment behind "Identical code, different
//! processes" in docs/BENCHMARKS.md. Does where a store's pages sit in the page
//! cache change what an identical read costs?
//!
//! Two copies of one store, with the same keys and values, are made in one
//! process. Before they are filled, one copy's pages are first touched front
//! to back (the kernel's readahead then gives it large folios, physically
//! together) and the other's in a random order under `MADV_RANDOM` (4 KiB
//! folios, scattered): the two histories a store can have (a scan of the
//! whole store; random writes). Then the same keys are read from both,
//! alternately, one walk of every key at a time, so any drift of the machine
//! hits both alike; the median walk of each is compared.

use std::path::Path;
use std::time::Instant;

use maph_core::{Mode, Store, Strategy, Uncoordinated};

use crate::keys::Rng;
use crate::mapping::{self, MappingInfo};
use crate::rows::create_maph_at;
use crate::stats;
use crate::workload::Keyspace;

/// One experiment's outcome.
#[derive(Clone, Debug)]
pub struct Placement {
    /// Keys in each copy.
    pub keys: usize,
    /// Median time per read of the copy touched in order (ns).
    pub in_order_ns: f64,
    /// Median time per read of the copy touched at random (ns).
    pub scattered_ns: f64,
    /// Where the copy touched in order landed.
    pub in_order: Option<MappingInfo>,
    /// Where the scattered copy landed.
    pub scattered: Option<MappingInfo>,
}

/// Runs the experiment with `keys` keys in `slots`-slot stores under `dir`,
/// alternating `walks` walks of each.
pub fn run(dir: &Path, keys: usize, slots: u64, walks: usize) -> anyhow::Result<Placement> {
    let keyspace = Keyspace::new(keys, 64, 1);
    let mut copies = Vec::new();
    for (name, in_order) in [("in-order", true), ("scattered", false)] {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub)?;
        let path = sub.join("store.maph");
        create_maph_at(&path, Strategy::UNCOORDINATED, slots)?;
        first_touch(&path, in_order)?;
        let store = Store::open(&path, Mode::ReadWrite)?;
        let writer = Uncoordinated::new();
        for key in keyspace.keys() {
            store.set(&writer, key, keyspace.value())?;
        }
        copies.push((sub, store));
    }
    let walk: Vec<&[u8]> = keyspace.walk().collect();
    let mut out = Vec::with_capacity(64);
    let mut times = [Vec::new(), Vec::new()];
    for i in 0..walks.max(1) {
        for j in [i % 2, 1 - i % 2] {
            let started = Instant::now();
            for key in &walk {
                std::hint::black_box(copies[j].1.get_into(key, &mut out)?);
            }
            times[j].push(started.elapsed().as_nanos() as f64 / walk.len() as f64);
        }
    }
    Ok(Placement {
        keys,
        in_order_ns: stats::median(&times[0]).unwrap_or(f64::NAN),
        scattered_ns: stats::median(&times[1]).unwrap_or(f64::NAN),
        in_order: mapping::of_files_under(&copies[0].0),
        scattered: mapping::of_files_under(&copies[1].0),
    })
}

/// Touches every page of the file at `path` once, through a mapping of its
/// own: in order, or in a random order with readahead turned off.
fn first_touch(path: &Path, in_order: bool) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new().read(true).open(path)?;
    // SAFETY: the file was just created by this process in a private
    // directory; nothing else writes it while this read-only mapping lives.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let pages = map.len() / 4096;
    let mut order: Vec<usize> = (0..pages).collect();
    if !in_order {
        map.advise(memmap2::Advice::Random)?;
        Rng::new(7).shuffle(&mut order);
    }
    let mut sum = 0u64;
    for page in order {
        sum = sum.wrapping_add(u64::from(map[page * 4096]));
    }
    std::hint::black_box(sum);
    Ok(())
}

/// The experiment at several key counts, printed as a table.
pub fn main(keys: &[usize], walks: usize) -> anyhow::Result<()> {
    println!("keys    in order   scattered  scattered ÷ in order   large folios (in order / scattered)   2 MiB frames");
    for &k in keys {
        let dir = tempfile::Builder::new().prefix("maph-bench-placement-").tempdir()?;
        let slots = crate::plan::Dataset::for_keys(k).slots;
        let p = run(dir.path(), k, slots, walks)?;
        let folios =
            |m: &Option<MappingInfo>| m.and_then(|m| m.large_folio_share).map_or("?".into(), crate::format::percent);
        let frames =
            |m: &Option<MappingInfo>| m.and_then(|m| m.physical_2m_frames).map_or("?".into(), |n| n.to_string());
        println!(
            "{:<7} {:>9}  {:>9}  {:>20.3}   {:>18} / {:<16} {} / {}",
            k,
            crate::format::ns(p.in_order_ns),
            crate::format::ns(p.scattered_ns),
            p.scattered_ns / p.in_order_ns,
            folios(&p.in_order),
            folios(&p.scattered),
            frames(&p.in_order),
            frames(&p.scattered)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_copies_are_read_and_described() {
        let dir = tempfile::tempdir().unwrap();
        let p = run(dir.path(), 200, 1024, 4).unwrap();
        assert!(p.in_order_ns > 0.0 && p.scattered_ns > 0.0);
        let (a, b) = (p.in_order.unwrap(), p.scattered.unwrap());
        assert_eq!(a.size_kib, b.size_kib, "two copies of one store");
    }
}
