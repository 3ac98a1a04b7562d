//! The store commands: create, get, set, del, stats, scan, verify.

use std::io::{Read, Write};
use std::path::Path;

use maph_core::{Config, Mode, Store};
use serde_json::json;

use crate::error::{CliError, CliResult};
use crate::output::{entry_json, printable, write_failed, Output};
use crate::strategy::{writer_for, StrategyName, WriterOptions};

fn open(path: &Path, mode: Mode) -> CliResult<Store> {
    Store::open(path, mode).map_err(CliError::from)
}

pub fn create(
    out: Output,
    path: &Path,
    slots: u64,
    slot_size: u32,
    max_probes: Option<u32>,
    strategy: StrategyName,
    sparse: bool,
) -> CliResult {
    let probes = max_probes.unwrap_or_else(|| maph_core::format::DEFAULT_MAX_PROBES.min(slots.max(1) as u32));
    let config = Config::new(slots).slot_size(slot_size).max_probes(probes).strategy(strategy.tag()).sparse(sparse);
    Store::create(path, config)?;
    let store = open(path, Mode::ReadOnly)?;
    let stats = store.stats();
    out.emit(
        json!({
            "path": path,
            "slots": stats.layout.slot_count,
            "slot_size": stats.layout.slot_size,
            "max_probes": stats.layout.max_probes,
            "max_key_bytes": store.max_key_len(),
            "strategy": stats.strategy().as_str(),
            "file_bytes": stats.file_bytes,
            "uuid": store.uuid().to_string(),
            "sparse": sparse,
        }),
        || {
            format!(
                "created {}: {} slots of {} bytes (key + value up to {} bytes), strategy {}, {} bytes {}",
                path.display(),
                stats.layout.slot_count,
                stats.layout.slot_size,
                store.max_value_len(0),
                stats.strategy(),
                stats.file_bytes,
                if sparse { "on disk at most (sparse)" } else { "reserved on disk" }
            )
        },
    )
}

pub fn new_id(out: Output, path: &Path) -> CliResult {
    let old = open(path, Mode::ReadOnly)?.uuid();
    let new = Store::assign_new_uuid(path)?;
    out.emit(json!({ "path": path, "old_uuid": old.to_string(), "uuid": new.to_string() }), || {
        format!("{}: id {old} replaced by {new}", path.display())
    })
}

pub fn migrate(out: Output, old: &Path, new: &Path) -> CliResult {
    let report = maph_core::migrate_v1(old, new)?;
    out.emit(json!({ "old": old, "new": new, "entries": report.entries, "skipped": report.skipped }), || {
        let mut text = format!("migrated {} entries from {} into {}", report.entries, old.display(), new.display());
        if !report.skipped.is_empty() {
            text += &format!(
                "\n{} slots left out (mid-write or damaged in the old file): {:?}",
                report.skipped.len(),
                report.skipped
            );
        }
        text
    })
}

pub fn get(out: Output, path: &Path, key: &str) -> CliResult {
    let store = open(path, Mode::ReadOnly)?;
    let value = store
        .get(key.as_bytes())?
        .ok_or_else(|| CliError::not_found(format!("key {key:?} not found in {}", path.display())))?;
    if out.json {
        return out.emit(entry_json(key.as_bytes(), &value), String::new);
    }
    // The value exactly as stored, then a newline for the terminal.
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&value).and_then(|()| stdout.write_all(b"\n")).map_err(write_failed)
}

pub fn set(out: Output, options: &WriterOptions, path: &Path, key: &str, value: Option<String>) -> CliResult {
    let value = match value {
        Some(v) => v.into_bytes(),
        None => {
            let mut buffer = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buffer)
                .map_err(|e| CliError::new(format!("could not read the value from standard input: {e}")))?;
            buffer
        }
    };
    let store = options.open(path)?;
    let writer = writer_for(&store, options)?;
    let mut existed = false;
    store.write(&writer, |tx| {
        existed = tx.get(key.as_bytes())?.is_some();
        tx.set(key.as_bytes(), &value)
    })?;
    let outcome = if existed { "updated" } else { "created" };
    out.emit(json!({ "key": key, "outcome": outcome, "bytes": value.len() }), || format!("{outcome} {key}"))
}

pub fn del(out: Output, options: &WriterOptions, path: &Path, key: &str) -> CliResult {
    let store = options.open(path)?;
    let writer = writer_for(&store, options)?;
    let mut existed = false;
    store.write(&writer, |tx| {
        existed = tx.get(key.as_bytes())?.is_some();
        tx.remove(key.as_bytes())
    })?;
    if !existed {
        return Err(CliError::not_found(format!("key {key:?} not found in {}", path.display())));
    }
    out.emit(json!({ "key": key, "outcome": "deleted" }), || format!("deleted {key}"))
}

pub fn stats(out: Output, path: &Path) -> CliResult {
    let store = open(path, Mode::ReadOnly)?;
    let s = store.stats();
    out.emit(
        json!({
            "path": path,
            "size": s.len,
            "load_factor": s.load_factor,
            "slots": s.layout.slot_count,
            "slot_size": s.layout.slot_size,
            "max_probes": s.layout.max_probes,
            "max_key_bytes": store.max_key_len(),
            "strategy": s.strategy().as_str(),
            "generation": s.generation,
            "highest_fence": s.highest_fence,
            "file_bytes": s.file_bytes,
            "retired": store.is_retired(),
        }),
        || {
            format!(
                "path          {}\n\
                 strategy      {}\n\
                 keys          {} in {} slots (load {:.2}%)\n\
                 slot size     {} bytes (key + value up to {} bytes), probe window {}\n\
                 generation    {} committed writes\n\
                 fence         {}\n\
                 file size     {} bytes",
                path.display(),
                s.strategy(),
                s.len,
                s.layout.slot_count,
                s.load_factor * 100.0,
                s.layout.slot_size,
                store.max_value_len(0),
                s.layout.max_probes,
                s.generation,
                s.highest_fence,
                s.file_bytes
            )
        },
    )
}

pub fn scan(out: Output, path: &Path, limit: Option<u64>) -> CliResult {
    let store = open(path, Mode::ReadOnly)?;
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    for entry in store.iter().take(limit.map_or(usize::MAX, |l| l as usize)) {
        let (key, value) = entry?;
        let line = if out.json {
            entry_json(&key, &value).to_string()
        } else {
            format!("{}\t{}", printable(&key), printable(&value))
        };
        writeln!(stdout, "{line}").map_err(write_failed)?;
    }
    stdout.flush().map_err(write_failed)
}

pub fn verify(out: Output, options: &WriterOptions, path: &Path, repair: bool) -> CliResult {
    let repaired = if repair {
        let store = options.open(path)?;
        let writer = writer_for(&store, options)?;
        Some(store.repair(&writer)?)
    } else {
        None
    };
    let store = open(path, Mode::ReadOnly)?;
    let report = store.verify();
    let clean = report.is_clean();
    out.emit(
        json!({
            "path": path,
            "clean": clean,
            "slots": report.slots,
            "live": report.live,
            "tombstones": report.tombstones,
            "in_progress": report.in_progress,
            "corrupt": report.corrupt,
            "misplaced": report.misplaced,
            "duplicates": report.duplicates,
            "abandoned_lanes": report.abandoned_lanes,
            "repaired": repaired.as_ref().map(|r| json!({
                "finished": r.finished, "cleared": r.cleared, "damaged": r.damaged, "duplicates": r.duplicates,
            })),
        }),
        || {
            let mut text = format!(
                "{}: {} slots checked, {} live, {} tombstones",
                path.display(),
                report.slots,
                report.live,
                report.tombstones
            );
            if let Some(r) = &repaired {
                text += &format!(
                    "\nrepaired {} slots (writes completed: {}, torn and cleared: {}, damaged and cleared: {}, \
                     older copies of a key cleared: {})",
                    r.finished.len() + r.cleared.len() + r.damaged.len() + r.duplicates.len(),
                    r.finished.len(),
                    r.cleared.len(),
                    r.damaged.len(),
                    r.duplicates.len()
                );
            }
            let list = |slots: &[u64]| slots.iter().take(20).map(u64::to_string).collect::<Vec<_>>().join(", ");
            if !report.in_progress.is_empty() {
                text += &format!(
                    "\n{} slots left mid-write by a writer that died: {} (fix: maph verify --repair)",
                    report.in_progress.len(),
                    list(&report.in_progress)
                );
            }
            if !report.corrupt.is_empty() {
                text += &format!("\n{} damaged slots: {}", report.corrupt.len(), list(&report.corrupt));
            }
            if !report.duplicates.is_empty() {
                text += &format!(
                    "\n{} keys stored twice (older copies): {} (fix: maph verify --repair)",
                    report.duplicates.len(),
                    list(&report.duplicates)
                );
            }
            if report.abandoned_lanes > 0 {
                text += &format!(
                    "\n{} write-intent lanes of writers that died (the next writer repairs them; or maph verify --repair)",
                    report.abandoned_lanes
                );
            }
            if !report.misplaced.is_empty() {
                text += &format!(
                    "\n{} keys outside their probe window: {}",
                    report.misplaced.len(),
                    list(&report.misplaced)
                );
            }
            if clean {
                text += "\nclean";
            }
            text
        },
    )?;
    if clean {
        Ok(())
    } else {
        Err(CliError::not_found(format!("{} has damaged or unfinished slots (see above)", path.display())))
    }
}
