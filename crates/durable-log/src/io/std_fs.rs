//! The real file system.

use std::any::Any;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::{AppendFile, DirEntry, Filesystem, ReadAt};

/// The operating system's file system, through `std::fs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFs;

/// The lock file inside a log directory; held with an OS lock while a log is open.
pub(crate) const LOCK_FILE: &str = "LOCK";

impl Filesystem for StdFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let metadata = entry.metadata()?;
            if metadata.is_file() {
                entries.push(DirEntry {
                    name: entry.file_name().to_string_lossy().into_owned(),
                    len: metadata.len(),
                });
            }
        }
        Ok(entries)
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadAt>> {
        let mut options = OpenOptions::new();
        options.read(true);
        #[cfg(windows)]
        {
            use std::os::windows::fs::OpenOptionsExt;
            // FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE: a settled segment can be
            // deleted while a reader still has it open, as on Unix.
            options.share_mode(0x1 | 0x2 | 0x4);
        }
        Ok(Box::new(StdReader(options.open(path)?)))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        Ok(Box::new(StdAppender(file)))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    #[cfg(unix)]
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    #[cfg(not(unix))]
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        // Windows cannot open a directory as a file; NTFS journals its metadata.
        Ok(())
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))?;
        // Fully qualified: std's own File::try_lock (Rust 1.89) would shadow the trait method.
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => Ok(Box::new(file)),
            Err(fs4::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "another process has this log open",
            )),
            Err(fs4::TryLockError::Error(error)) => Err(error),
        }
    }
}

struct StdReader(File);

impl ReadAt for StdReader {
    #[cfg(unix)]
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(&self.0, buf, offset)
    }

    #[cfg(windows)]
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        std::os::windows::fs::FileExt::seek_read(&self.0, buf, offset)
    }

    fn file_len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

struct StdAppender(File);

impl AppendFile for StdAppender {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.write_all(data)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}
