//! Creates a store, writes it through a single writer, and reads it back from a
//! second process that maps the same file read-only.
//!
//! Run: `cargo run --release -p maph-core --example hello_processes`

use std::process::Command;
use std::time::Instant;

use maph_core::{Config, Mode, SingleWriter, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if let (Some(role), Some(path)) = (args.next(), args.next()) {
        if role == "--reader" {
            return read(&path);
        }
    }

    let dir = std::env::temp_dir().join(format!("maph-hello-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("hello.maph");
    Store::create(&path, Config::new(100_000))?;
    let store = Store::open(&path, Mode::ReadWrite)?;
    let writer = SingleWriter::new(&store)?;

    let started = Instant::now();
    store.write(&writer, |tx| {
        for i in 0..10_000u32 {
            tx.set(format!("user:{i}").as_bytes(), format!("name-{i}").as_bytes())?;
        }
        Ok(())
    })?;
    println!("writer (pid {}): wrote 10000 keys in {:?}", std::process::id(), started.elapsed());

    let status = Command::new(std::env::current_exe()?).arg("--reader").arg(&path).status()?;
    std::fs::remove_dir_all(&dir)?;
    if !status.success() {
        return Err("the reader process failed".into());
    }
    Ok(())
}

fn read(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(path, Mode::ReadOnly)?;
    let started = Instant::now();
    let mut value = Vec::new();
    let mut found = 0;
    for i in 0..10_000u32 {
        if store.get_into(format!("user:{i}").as_bytes(), &mut value)? {
            found += 1;
        }
    }
    let per_read = started.elapsed() / 10_000;
    println!(
        "reader (pid {}): found {found} of 10000 keys through the shared mapping, {per_read:?} per read",
        std::process::id()
    );
    if found != 10_000 {
        return Err(format!("the reader saw only {found} keys").into());
    }
    Ok(())
}
