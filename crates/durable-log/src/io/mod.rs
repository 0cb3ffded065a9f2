//! The file system seam. The log touches files only through [`Filesystem`], so tests can swap
//! in [`MemoryFs`], which injects torn writes, full disks and failing fsyncs, and simulates a
//! power cut (everything not yet synced is lost or torn).

mod memory;
mod std_fs;

use std::any::Any;
use std::io;
use std::path::Path;

pub use memory::{Fault, MemoryFs};
pub use std_fs::StdFs;
pub(crate) use std_fs::LOCK_FILE;

/// A file in a listed directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The file name (not the path), lossily converted to UTF-8.
    pub name: String,
    /// Its length in bytes.
    pub len: u64,
}

/// What the log needs from a file system. Paths are absolute or relative to the process.
pub trait Filesystem: Send + Sync + 'static {
    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The regular files directly in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>>;
    /// Opens an existing file for reading at offsets.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadAt>>;
    /// Creates a new file (failing if it exists) for appending.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn AppendFile>>;
    /// Cuts an existing file to `len` bytes and makes that durable.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Deletes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (files created or removed) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `dir` (held until the returned guard drops), failing at once
    /// with [`io::ErrorKind::WouldBlock`] if another process or log holds it.
    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn Any + Send + Sync>>;
}

/// A file opened for reading.
pub trait ReadAt: Send {
    /// Reads up to `buf.len()` bytes at `offset`; 0 at the end of the file.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// The file's current length.
    fn file_len(&self) -> io::Result<u64>;
}

/// A file opened for appending.
pub trait AppendFile: Send {
    /// Appends all of `data` (or fails; then part of it may have been written).
    fn write_all(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes everything written so far durable (fdatasync).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// Free bytes for this process on the file system holding `dir` (for a start-up warning).
pub fn available_space(dir: &Path) -> io::Result<u64> {
    fs4::available_space(dir)
}

/// Whether an I/O error means the disk (or its quota) is full. The standard library maps
/// ENOSPC and EDQUOT, and Windows' ERROR_DISK_FULL and ERROR_HANDLE_DISK_FULL, to these kinds.
pub fn is_storage_full(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}
