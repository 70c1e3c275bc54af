//! Files lakesim saves for people: failure files, summaries, experiment results, traces.
//!
//! Guarantees: a file is written whole or not at all (a temporary file in the same directory,
//! fsynced, then linked or renamed into place, then the directory fsynced, so that a crash of
//! this machine leaves the old file or the new one, never half of one, and the name survives);
//! temporary names are unique per process and per call, so two writers never share one; and
//! [`write_new`] never replaces anything: it fails if the name is taken. Every error names the
//! file.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path`, replacing what is there atomically and durably.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = write_temp(path, bytes)?;
    std::fs::rename(&tmp, path)
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot write {}", path.display()))?;
    sync_dir(path)
}

/// Writes `bytes` to `path`, which must not exist: an existing file is never touched (the
/// error says so). Atomic and durable like [`replace`].
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = write_temp(path, bytes)?;
    // A hard link fails when the name exists, where a rename would replace it.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked.with_context(|| match path.exists() {
        true => format!("{} exists and is kept", path.display()),
        false => format!("cannot write {}", path.display()),
    })?;
    sync_dir(path)
}

/// Creates `path` for writing, failing if it exists: a file the user named is checked before
/// any work is done, and never overwritten.
pub fn create_new(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| match path.exists() {
            true => format!("{} exists; choose another name, it is kept", path.display()),
            false => format!("cannot create {}", path.display()),
        })
}

/// Flushes `file` to disk and then its directory entry.
pub fn sync_file_and_dir(file: &std::fs::File, path: &Path) -> Result<()> {
    file.sync_all()
        .with_context(|| format!("cannot sync {}", path.display()))?;
    sync_dir(path)
}

/// A temporary file beside `path` holding `bytes`, fsynced.
fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?
        .to_string_lossy();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = dir_of(path).join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let mut f = create_new(&tmp)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    Ok(tmp)
}

fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Makes the directory entries of `path` durable.
fn sync_dir(path: &Path) -> Result<()> {
    let dir = dir_of(path);
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_new_never_replaces_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("lakesim-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.toml");
        let _ = std::fs::remove_file(&path);
        write_new(&path, b"first").unwrap();
        let err = write_new(&path, b"second").unwrap_err();
        assert!(format!("{err:#}").contains("exists and is kept"), "{err:#}");
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        replace(&path, b"third").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"third");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "only the file itself: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
