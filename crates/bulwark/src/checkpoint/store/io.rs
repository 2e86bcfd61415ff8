//! The file operations the filesystem store uses, as a trait: the seam through which crash
//! tests inject faults.
//!
//! [`StdIo`] is the real implementation. A test implementation can track which writes were
//! synced and, at a simulated crash, lose or tear the others (see
//! `crates/bulwark/tests/checkpoint_crash.rs`). The store relies only on what POSIX
//! filesystems promise: data written and `fsync`ed survives; a `rename` within one folder is
//! atomic and survives once the folder is `fsync`ed.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::SystemTime;

/// What identifies a file's current version: its inode (or equivalent), length and mtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIdentity {
    /// Changes when the path is replaced by another file (inode number on Unix).
    pub id: u64,
    /// Length in bytes.
    pub len: u64,
    /// Last modification time.
    pub modified: SystemTime,
}

/// The file operations of the filesystem store.
pub trait StorageIo: Send + Sync + fmt::Debug + 'static {
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Creates `path`, which must not exist, and writes `data` to it; with `sync`, the data
    /// is on stable storage when this returns.
    fn write_new(&self, path: &Path, data: &[u8], sync: bool) -> io::Result<()>;
    /// Appends `data` to `path` in one write, creating it when missing. Not synced.
    fn append(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    /// Up to `max_len` bytes of `path` from `offset`, and the file's identity.
    fn read_at(
        &self,
        path: &Path,
        offset: u64,
        max_len: u64,
    ) -> io::Result<(Vec<u8>, FileIdentity)>;
    /// Atomically renames `from` to `to` (same folder), replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the folder's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Names of the entries of `dir` (names that are not UTF-8 are left out).
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The identity of `path`.
    fn identity(&self, path: &Path) -> io::Result<FileIdentity>;
    /// Opens (creating when missing) the lock file `path` and takes an exclusive lock on it,
    /// waiting for other holders; the lock is released when the returned guard is dropped.
    /// Fenced saves hold it across their check and their write, so that processes sharing the
    /// folder cannot both extend a workflow from the same checkpoint. The default takes no
    /// lock (`None`): a simulated disk lives in one process, where the store's own mutex is
    /// enough.
    fn lock_exclusive(&self, path: &Path) -> io::Result<Option<File>> {
        let _ = path;
        Ok(None)
    }
}

/// The real filesystem.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdIo;

fn identity_of(meta: &fs::Metadata) -> FileIdentity {
    #[cfg(unix)]
    let id = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let id = 0;
    FileIdentity {
        id,
        len: meta.len(),
        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

impl StorageIo for StdIo {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn write_new(&self, path: &Path, data: &[u8], sync: bool) -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
        file.write_all(data)?;
        if sync {
            // fdatasync: the data and what is needed to read it back (the length, the block
            // allocation) reach the disk; only timestamps may not. The name is made durable
            // separately, by `sync_dir` after the rename.
            file.sync_data()?;
        }
        Ok(())
    }

    fn append(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut file = OpenOptions::new().append(true).create(true).open(path)?;
        // One write call: O_APPEND places it at the end atomically, so concurrent appenders
        // (other processes) do not interleave within a record on a local filesystem.
        file.write_all(data)
    }

    fn read_at(
        &self,
        path: &Path,
        offset: u64,
        max_len: u64,
    ) -> io::Result<(Vec<u8>, FileIdentity)> {
        let mut file = File::open(path)?;
        let identity = identity_of(&file.metadata()?);
        let want = identity.len.saturating_sub(offset).min(max_len);
        let mut data = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))?;
        }
        file.take(max_len).read_to_end(&mut data)?;
        Ok((data, identity))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        #[cfg(unix)]
        {
            File::open(dir)?.sync_all()
        }
        #[cfg(not(unix))]
        {
            let _ = dir;
            Ok(())
        }
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn identity(&self, path: &Path) -> io::Result<FileIdentity> {
        Ok(identity_of(&fs::metadata(path)?))
    }

    fn lock_exclusive(&self, path: &Path) -> io::Result<Option<File>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        // `flock(LOCK_EX)`: held by this open file description, so two opens in one process
        // exclude each other too; the kernel releases it when the process dies.
        #[cfg(unix)]
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(Some(file))
    }
}
