//! The manifest: a small text file that says how keys are routed and what every
//! shard looks like, checksummed so a damaged or hand-edited one is refused.
//!
//! ```text
//! maph-shard manifest
//! format_version = 1
//! shard_count = 4
//! routing = xxh3-64+jump
//! routing_seed = 0x000000000000002a
//! store_seed = 0x9e3779b97f4a7c15
//! slots_per_shard = 100000
//! slot_size = 512
//! max_probes = 10
//! strategy = single-writer
//! checksum = 0x0123456789abcdef
//! ```
//!
//! - The first line is the magic line; the second is the format version, read
//!   before anything else so a later format is reported as such.
//! - Every line ends with `\n` and has the form `name = value`; each field
//!   appears exactly once; unknown fields are refused. Seeds and the checksum
//!   are `0x` and 16 lower-case hex digits, counts are decimal.
//! - `checksum` is the last line: xxh3-64 (seed 0) of every byte before it.
//! - `routing` names the routing function ([`Router`]); `routing_seed` seeds it.
//! - Shard `i` lives in `shard-{i:04}.maph` and is a maph store whose header
//!   records `slots_per_shard`, `slot_size`, `max_probes`, `strategy`, and the
//!   hash seed `xxh3_64_with_seed(u64 i as 8 little-endian bytes, store_seed)`.
//!   A seed per shard makes a shard file of another store, or of another index
//!   of this one, detectable at open.
//!
//! The manifest is written once, after every shard file exists, under a
//! temporary name linked into place: a directory either has a complete layout
//! or no manifest at all.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use maph_core::{Layout, Strategy};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::config::{ShardConfig, MAX_SHARDS};
use crate::routing::{Router, ROUTING_XXH3_JUMP};
use crate::{Error, Result};

/// File name of the manifest inside a sharded store's directory.
pub const MANIFEST_FILE: &str = "shards.manifest";
/// The manifest format version this build reads and writes.
pub const MANIFEST_VERSION: u32 = 1;
/// The first line of every manifest.
const MAGIC_LINE: &str = "maph-shard manifest";
/// A manifest is a few hundred bytes; anything much larger is not one.
const MAX_MANIFEST_LEN: u64 = 4096;

/// The manifest path of the sharded store in `dir`.
pub fn manifest_path(dir: &Path) -> PathBuf {
    dir.join(MANIFEST_FILE)
}

/// The path of shard `shard` of the sharded store in `dir`.
///
/// ```
/// use std::path::Path;
/// assert_eq!(maph_shard::shard_path(Path::new("/data/users"), 7), Path::new("/data/users/shard-0007.maph"));
/// ```
pub fn shard_path(dir: &Path, shard: u32) -> PathBuf {
    dir.join(format!("shard-{shard:04}.maph"))
}

/// What a sharded store's manifest records (see the [module docs](self) for the file format).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Manifest {
    /// Number of shards.
    pub shard_count: u32,
    /// Seed of the routing hash.
    pub routing_seed: u64,
    /// Seed from which every shard's own hash seed is derived.
    pub store_seed: u64,
    /// Slots in each shard.
    pub slots_per_shard: u64,
    /// Bytes per slot.
    pub slot_size: u32,
    /// Probe window of each shard.
    pub max_probes: u32,
    /// Coordination strategy of every shard.
    pub strategy: Strategy,
}

impl Manifest {
    /// The manifest of a new store made with `config` (random seeds where it has none).
    pub(crate) fn for_new_store(config: &ShardConfig) -> Manifest {
        Manifest {
            shard_count: config.shard_count,
            routing_seed: config.routing_seed.unwrap_or_else(random_seed),
            store_seed: random_seed(),
            slots_per_shard: config.slots_per_shard,
            slot_size: config.slot_size,
            max_probes: config.max_probes,
            strategy: config.strategy,
        }
    }

    /// The manifest of a new layout of the same keys with `shard_count` shards of
    /// `slots_per_shard` slots: same routing seed (so jump hashing moves as few
    /// keys as possible), a fresh store seed (so no old shard file passes as new).
    pub(crate) fn resharded(&self, shard_count: u32, slots_per_shard: u64) -> Manifest {
        Manifest { shard_count, slots_per_shard, store_seed: random_seed(), ..*self }
    }

    /// The router every process derives from this manifest.
    pub fn router(&self) -> Router {
        Router::new(self.shard_count, self.routing_seed)
    }

    /// The hash seed recorded in shard `shard`'s header.
    pub fn shard_seed(&self, shard: u32) -> u64 {
        xxh3_64_with_seed(&u64::from(shard).to_le_bytes(), self.store_seed)
    }

    /// The header every shard `shard` must have.
    pub fn shard_layout(&self, shard: u32) -> Layout {
        Layout {
            slot_count: self.slots_per_shard,
            slot_size: self.slot_size,
            max_probes: self.max_probes,
            hash_seed: self.shard_seed(shard),
            strategy: self.strategy,
        }
    }

    /// The configuration this manifest was created with (its routing seed fixed).
    pub fn config(&self) -> ShardConfig {
        ShardConfig {
            shard_count: self.shard_count,
            slots_per_shard: self.slots_per_shard,
            slot_size: self.slot_size,
            max_probes: self.max_probes,
            routing_seed: Some(self.routing_seed),
            strategy: self.strategy,
        }
    }

    /// The manifest file's text.
    pub fn encode(&self) -> String {
        let body = format!(
            "{MAGIC_LINE}\n\
             format_version = {MANIFEST_VERSION}\n\
             shard_count = {}\n\
             routing = {ROUTING_XXH3_JUMP}\n\
             routing_seed = {:#018x}\n\
             store_seed = {:#018x}\n\
             slots_per_shard = {}\n\
             slot_size = {}\n\
             max_probes = {}\n\
             strategy = {}\n",
            self.shard_count,
            self.routing_seed,
            self.store_seed,
            self.slots_per_shard,
            self.slot_size,
            self.max_probes,
            self.strategy
        );
        let checksum = xxh3_64(body.as_bytes());
        format!("{body}checksum = {checksum:#018x}\n")
    }

    /// Reads and checks the manifest of the sharded store in `dir`.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = manifest_path(dir);
        let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::ManifestMissing { path: path.clone() },
            _ => Error::io(format!("could not open {}", path.display()), e),
        })?;
        let mut bytes = Vec::new();
        // One byte past the limit tells an oversized file from one exactly at it.
        file.take(MAX_MANIFEST_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(format!("could not read {}", path.display()), e))?;
        Manifest::decode(&path, &bytes)
    }

    /// Decodes and checks manifest bytes; `path` is named in errors.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Manifest> {
        let corrupt = |detail: String| Error::ManifestCorrupt { path: path.to_path_buf(), detail };
        if bytes.len() as u64 > MAX_MANIFEST_LEN {
            return Err(corrupt(format!("it is larger than {MAX_MANIFEST_LEN} bytes, far more than a manifest")));
        }
        if bytes.is_empty() {
            return Err(corrupt("the file is empty".into()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| corrupt("it is not UTF-8 text".into()))?;
        let Some(text) = text.strip_suffix('\n') else {
            return Err(corrupt("its last line is incomplete (truncated?)".into()));
        };
        let lines: Vec<&str> = text.split('\n').collect();
        if lines[0] != MAGIC_LINE {
            return Err(corrupt(format!("it does not start with the line `{MAGIC_LINE}`")));
        }

        // The version comes before the checksum: another version may checksum differently.
        let version = lines
            .get(1)
            .and_then(|l| field(l, "format_version"))
            .ok_or_else(|| corrupt("its second line is not `format_version = <n>`".into()))?;
        let version: u32 =
            version.parse().map_err(|_| corrupt(format!("format_version `{version}` is not a number")))?;
        if version != MANIFEST_VERSION {
            return Err(Error::ManifestVersion {
                path: path.to_path_buf(),
                found: version,
                supported: MANIFEST_VERSION,
            });
        }

        let last = lines[lines.len() - 1];
        let stored = field(last, "checksum").ok_or_else(|| corrupt("its last line is not `checksum = 0x…`".into()))?;
        let stored =
            parse_hex(stored).ok_or_else(|| corrupt(format!("checksum `{stored}` is not 0x and 16 hex digits")))?;
        let body_len = text.len() - last.len();
        if xxh3_64(&bytes[..body_len]) != stored {
            return Err(corrupt("its checksum does not match its contents (damaged, or edited by hand)".into()));
        }

        let mut fields = Fields::default();
        for line in &lines[2..lines.len() - 1] {
            let (name, value) =
                line.split_once(" = ").ok_or_else(|| corrupt(format!("line `{line}` is not `name = value`")))?;
            fields.set(name, value).map_err(corrupt)?;
        }
        fields.finish(path)
    }

    /// Writes this manifest into `dir` under a temporary name, then links it into
    /// place; fails with [`Error::AlreadyExists`] if a manifest is already there.
    pub(crate) fn write_new(&self, dir: &Path) -> Result<()> {
        let path = manifest_path(dir);
        let text = self.encode();
        maph_core::create_new_atomically(&path, |file| file.write_all(text.as_bytes())).map_err(|e| match e {
            maph_core::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
                Error::AlreadyExists { path: path.clone() }
            }
            other => other.into(),
        })
    }

    /// Refuses, naming the first field that differs, a manifest other than the
    /// one `expected` describes. A `None` routing seed accepts any seed.
    pub(crate) fn check_expected(&self, path: &Path, expected: &ShardConfig) -> Result<()> {
        let mismatch = |field: &'static str, found: String, expected: String| {
            Err(Error::ManifestMismatch { path: path.to_path_buf(), field, found, expected })
        };
        if self.shard_count != expected.shard_count {
            return mismatch("shard_count", self.shard_count.to_string(), expected.shard_count.to_string());
        }
        if let Some(seed) = expected.routing_seed {
            if self.routing_seed != seed {
                return mismatch("routing_seed", format!("{:#018x}", self.routing_seed), format!("{seed:#018x}"));
            }
        }
        if self.slots_per_shard != expected.slots_per_shard {
            let (found, want) = (self.slots_per_shard.to_string(), expected.slots_per_shard.to_string());
            return mismatch("slots_per_shard", found, want);
        }
        if self.slot_size != expected.slot_size {
            return mismatch("slot_size", self.slot_size.to_string(), expected.slot_size.to_string());
        }
        if self.max_probes != expected.max_probes {
            return mismatch("max_probes", self.max_probes.to_string(), expected.max_probes.to_string());
        }
        if self.strategy != expected.strategy {
            return mismatch("strategy", self.strategy.to_string(), expected.strategy.to_string());
        }
        Ok(())
    }
}

/// The value of `line` if it reads `name = value`.
fn field<'l>(line: &'l str, name: &str) -> Option<&'l str> {
    line.strip_prefix(name)?.strip_prefix(" = ")
}

/// `0x` and exactly 16 lower-case hex digits, as the manifest writes them.
fn parse_hex(value: &str) -> Option<u64> {
    let digits = value.strip_prefix("0x")?;
    let canonical = digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    canonical.then(|| u64::from_str_radix(digits, 16).ok()).flatten()
}

/// A decimal number without sign, leading `+` or leading zeros, as the manifest writes them.
fn parse_decimal<T: std::str::FromStr>(value: &str) -> Option<T> {
    let canonical =
        !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) && (value == "0" || !value.starts_with('0'));
    canonical.then(|| value.parse().ok()).flatten()
}

/// The fields after the version line, each seen at most once.
#[derive(Default)]
struct Fields {
    shard_count: Option<u32>,
    routing: Option<()>,
    routing_seed: Option<u64>,
    store_seed: Option<u64>,
    slots_per_shard: Option<u64>,
    slot_size: Option<u32>,
    max_probes: Option<u32>,
    strategy: Option<Strategy>,
}

impl Fields {
    fn set(&mut self, name: &str, value: &str) -> std::result::Result<(), String> {
        fn put<T>(slot: &mut Option<T>, name: &str, value: Option<T>, raw: &str) -> std::result::Result<(), String> {
            if slot.is_some() {
                return Err(format!("field `{name}` appears twice"));
            }
            *slot = Some(value.ok_or_else(|| format!("field `{name}` has an invalid value `{raw}`"))?);
            Ok(())
        }
        match name {
            "shard_count" => put(&mut self.shard_count, name, parse_decimal(value), value),
            "routing" => {
                if value != ROUTING_XXH3_JUMP {
                    return Err(format!("routing `{value}` is unknown; this build routes by `{ROUTING_XXH3_JUMP}`"));
                }
                put(&mut self.routing, name, Some(()), value)
            }
            "routing_seed" => put(&mut self.routing_seed, name, parse_hex(value), value),
            "store_seed" => put(&mut self.store_seed, name, parse_hex(value), value),
            "slots_per_shard" => put(&mut self.slots_per_shard, name, parse_decimal(value), value),
            "slot_size" => put(&mut self.slot_size, name, parse_decimal(value), value),
            "max_probes" => put(&mut self.max_probes, name, parse_decimal(value), value),
            "strategy" => put(&mut self.strategy, name, parse_strategy(value), value),
            _ => Err(format!("field `{name}` is unknown")),
        }
    }

    fn finish(self, path: &Path) -> Result<Manifest> {
        let corrupt = |detail: String| Error::ManifestCorrupt { path: path.to_path_buf(), detail };
        let missing = |name: &str| corrupt(format!("field `{name}` is missing"));
        self.routing.ok_or_else(|| missing("routing"))?;
        let manifest = Manifest {
            shard_count: self.shard_count.ok_or_else(|| missing("shard_count"))?,
            routing_seed: self.routing_seed.ok_or_else(|| missing("routing_seed"))?,
            store_seed: self.store_seed.ok_or_else(|| missing("store_seed"))?,
            slots_per_shard: self.slots_per_shard.ok_or_else(|| missing("slots_per_shard"))?,
            slot_size: self.slot_size.ok_or_else(|| missing("slot_size"))?,
            max_probes: self.max_probes.ok_or_else(|| missing("max_probes"))?,
            strategy: self.strategy.ok_or_else(|| missing("strategy"))?,
        };
        if manifest.shard_count == 0 {
            return Err(Error::ZeroShards { path: path.to_path_buf() });
        }
        if manifest.shard_count > MAX_SHARDS {
            return Err(corrupt(format!("shard_count {} exceeds the limit of {MAX_SHARDS}", manifest.shard_count)));
        }
        manifest.shard_layout(0).validate().map_err(|e| corrupt(format!("its slot configuration is invalid: {e}")))?;
        Ok(manifest)
    }
}

fn parse_strategy(value: &str) -> Option<Strategy> {
    // A strategy tag is 16 NUL-padded bytes in a store header (maph-core's format).
    let mut tag = [0u8; 16];
    if value.is_empty() || value.len() > tag.len() {
        return None;
    }
    tag[..value.len()].copy_from_slice(value.as_bytes());
    Strategy::from_bytes(tag)
}

/// A seed that differs between stores created at different times or by
/// different processes (not secret: it only has to tell stores apart).
fn random_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    // Relaxed: only uniqueness of the value matters.
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let mut input = [0u8; 24];
    input[..8].copy_from_slice(&clock.to_le_bytes());
    input[8..16].copy_from_slice(&u64::from(std::process::id()).to_le_bytes());
    input[16..].copy_from_slice(&call.to_le_bytes());
    xxh3_64(&input)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            shard_count: 4,
            routing_seed: 42,
            store_seed: 0x9e37_79b9_7f4a_7c15,
            slots_per_shard: 1000,
            slot_size: 512,
            max_probes: 10,
            strategy: Strategy::SINGLE_WRITER,
        }
    }

    #[test]
    fn round_trips() {
        let m = manifest();
        let text = m.encode();
        assert!(text.starts_with("maph-shard manifest\nformat_version = 1\nshard_count = 4\n"), "{text}");
        assert!(text.contains("\nrouting_seed = 0x000000000000002a\n"), "{text}");
        assert_eq!(Manifest::decode(Path::new("m"), text.as_bytes()).unwrap(), m);
    }

    #[test]
    fn every_changed_byte_is_refused() {
        let text = manifest().encode().into_bytes();
        for i in 0..text.len() {
            for replacement in [b'0', b'x', b' ', b'\n'] {
                if text[i] == replacement {
                    continue;
                }
                let mut bad = text.clone();
                bad[i] = replacement;
                assert!(
                    Manifest::decode(Path::new("m"), &bad).is_err(),
                    "byte {i} changed to {:?} went unnoticed:\n{}",
                    replacement as char,
                    String::from_utf8_lossy(&bad)
                );
            }
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let text = manifest().encode().into_bytes();
        for len in 0..text.len() {
            assert!(Manifest::decode(Path::new("m"), &text[..len]).is_err(), "truncated to {len} went unnoticed");
        }
    }

    #[test]
    fn shard_seeds_differ_per_shard_and_per_store() {
        let a = manifest();
        let b = Manifest { store_seed: a.store_seed + 1, ..a };
        assert_ne!(a.shard_seed(0), a.shard_seed(1));
        assert_ne!(a.shard_seed(0), b.shard_seed(0));
    }

    #[test]
    fn canonical_numbers_only() {
        assert_eq!(parse_hex("0x000000000000002a"), Some(42));
        assert_eq!(parse_hex("0x2a"), None);
        assert_eq!(parse_hex("0x000000000000002A"), None);
        assert_eq!(parse_decimal::<u32>("42"), Some(42));
        assert_eq!(parse_decimal::<u32>("042"), None);
        assert_eq!(parse_decimal::<u32>("+42"), None);
        assert_eq!(parse_decimal::<u32>("99999999999"), None);
    }
}
