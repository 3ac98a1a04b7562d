//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use maph_core::{Config, Store};
use maph_lock_futex::{region, FutexCoordinator};

/// A store coordinated by the futex lock.
pub fn futex_config(slots: u64) -> Config {
    Config::new(slots).strategy(FutexCoordinator::STRATEGY)
}

/// Filler bytes in a checked value: long enough that a torn write would show.
const FILLER: usize = 280;

/// A value that carries its own checksum: `n`, filler derived from `n`, and a
/// 64-bit FNV-1a of both. A torn read (halves of two writes) fails [`check`].
pub fn checked(n: u64) -> Vec<u8> {
    let mut v = n.to_le_bytes().to_vec();
    v.extend((0..FILLER).map(|i| (n.wrapping_mul(31).wrapping_add(i as u64) % 251) as u8));
    let sum = fnv(&v);
    v.extend_from_slice(&sum.to_le_bytes());
    v
}

/// The number inside a checked value; panics, naming `what`, if it is torn.
pub fn check(value: &[u8], what: &str) -> u64 {
    assert_eq!(value.len(), 8 + FILLER + 8, "{what}: a value of the wrong length ({} bytes)", value.len());
    let (body, sum) = value.split_at(value.len() - 8);
    assert_eq!(fnv(body), u64::from_le_bytes(sum.try_into().unwrap()), "{what}: torn value read");
    let n = u64::from_le_bytes(body[..8].try_into().unwrap());
    assert_eq!(body, &checked(n)[..body.len()], "{what}: filler does not match its number");
    n
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Reads a checked counter (0 if absent).
pub fn read_counter(store: &Store, key: &[u8]) -> u64 {
    store.get(key).expect("read a counter").map_or(0, |v| check(&v, &String::from_utf8_lossy(key)))
}

/// Plants the lock word of stripe `s` as a holder that never released would
/// have left it: low half `state` (pid, waiters bit, epoch), high half the
/// holder's start tag `start`.
pub fn plant_holder(store: &Store, stripe: u32, state: u32, start: u32) {
    let word = store.coordinator_word64(region::lock_word64_index(stripe)).unwrap().unwrap();
    word.store((u64::from(start) << 32) | u64::from(state), Ordering::Release);
}

/// The low half of the lock word of stripe `s` (pid, waiters bit, epoch).
pub fn lock_word(store: &Store, stripe: u32) -> u32 {
    maph_lock_futex::state_of(lock_word64(store, stripe))
}

/// The whole lock word of stripe `s`.
pub fn lock_word64(store: &Store, stripe: u32) -> u64 {
    store.coordinator_word64(region::lock_word64_index(stripe)).unwrap().unwrap().load(Ordering::Acquire)
}

/// Slot geometry of the default config (from docs/FORMAT.md).
pub const HEADER: u64 = maph_core::format::HEADER_SIZE as u64;
pub const SLOT_SIZE: u64 = 512;

/// Finds the slot holding `key` by reading the file with read(2) (never
/// through the mapping), per the documented slot layout.
pub fn slot_of(path: &Path, slots: u64, key: &[u8]) -> u64 {
    let file = std::fs::File::open(path).unwrap();
    for i in 0..slots {
        let mut head = [0u8; 32];
        file.read_exact_at(&mut head, HEADER + i * SLOT_SIZE).unwrap();
        let meta = u64::from_le_bytes(head[8..16].try_into().unwrap());
        let (key_len, state) = ((meta & 0xffff) as usize, (meta >> 16) & 0xff);
        if state == 1 && key_len == key.len() {
            let mut stored = vec![0u8; key_len];
            file.read_exact_at(&mut stored, HEADER + i * SLOT_SIZE + 32).unwrap();
            if stored == key {
                return i;
            }
        }
    }
    panic!("{} is not stored", String::from_utf8_lossy(key));
}

/// Leaves slot `index` as a writer killed mid-write would: version odd, and
/// (if `tear`) its value bytes no longer matching its checksum.
pub fn leave_mid_write(path: &Path, index: u64, tear: bool) {
    let file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let at = HEADER + index * SLOT_SIZE;
    let mut word = [0u8; 8];
    file.read_exact_at(&mut word, at).unwrap();
    let hash_version = u64::from_le_bytes(word) | 1;
    file.write_all_at(&hash_version.to_le_bytes(), at).unwrap();
    if tear {
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, at + 40).unwrap();
        file.write_all_at(&[byte[0] ^ 0xff], at + 40).unwrap();
    }
}

/// A pid that no process has: a child that has exited and been reaped.
pub fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().expect("run `true`");
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Why tests that need `wrapper` (an `unshare` command line, which needs
/// root) cannot run here, or `None` if they can: it runs `wrapper true` once.
pub fn cannot_run_under(wrapper: &[&str]) -> Option<String> {
    // SAFETY: geteuid takes no arguments and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: new namespaces need CAP_SYS_ADMIN (CI runs as root)".into());
    }
    match std::process::Command::new(wrapper[0]).args(&wrapper[1..]).arg("true").output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`{} true` failed ({}): {}",
            wrapper.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run {}: {e}", wrapper[0])),
    }
}

/// The inode of this process's namespace of `kind` (`pid`, `mnt`), from
/// `/proc/self/ns/<kind>`.
pub fn namespace_of_self(kind: &str) -> u64 {
    let link = std::fs::read_link(format!("/proc/self/ns/{kind}")).expect("read /proc/self/ns");
    let text = link.to_str().unwrap();
    text[text.find('[').unwrap() + 1..text.len() - 1].parse().unwrap()
}

/// This process's pid as `/proc` shows it (in the namespace /proc was mounted
/// for: the host's, in a child of `unshare --pid --fork` without `--mount-proc`).
pub fn pid_as_proc_shows_it() -> u32 {
    std::fs::read_link("/proc/self").unwrap().to_str().unwrap().parse().unwrap()
}

/// Waits, checking every millisecond, until `path` exists. Panics, naming
/// `what`, after a bound only a stuck test reaches.
pub fn wait_for_file(path: &Path, what: &str) {
    let started = std::time::Instant::now();
    while !path.exists() {
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "{what}: {} never appeared", path.display());
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// The state letter (field 3) of `/proc/<pid>/stat`, `None` if unreadable.
pub fn proc_state(pid: u32) -> Option<char> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 1..].split_ascii_whitespace().next()?.chars().next()
}
