//! An in-memory file system for tests: full disks, failing fsyncs, torn writes, power cuts.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{AppendFile, DirEntry, Filesystem, ReadAt};

/// A fault to inject into a [`MemoryFs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The disk holds at most this many bytes in all: a write that does not fit writes what
    /// fits (a torn write) and fails with "no space left on device". Removing files frees
    /// space.
    Capacity(u64),
    /// The next `n` fsyncs (of files or directories) fail with an I/O error; what they should
    /// have made durable stays volatile.
    FailSyncs(u32),
    /// The next write stores only its first `n` bytes and then fails with an I/O error.
    TornWrite(usize),
    /// Every read fails with an I/O error.
    FailReads,
}

/// A file system in memory that tests can break on purpose. Clones share the same files.
///
/// Durability is modelled as a disk would: written bytes are volatile until the file is
/// synced, a new file's name is volatile until its directory is synced, and [`crash`]
/// (a power cut) keeps only what is durable plus a random part of what was not.
///
/// [`crash`]: MemoryFs::crash
#[derive(Clone, Default)]
pub struct MemoryFs {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    names: BTreeMap<PathBuf, u64>,
    files: HashMap<u64, FileData>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    next_file: u64,
    capacity: Option<u64>,
    fail_syncs: u32,
    torn_write: Option<usize>,
    fail_reads: bool,
    crashed: bool,
    syncs: u64,
    bytes_written: u64,
}

#[derive(Clone, Default)]
struct FileData {
    data: Vec<u8>,
    /// Bytes that survive a crash.
    synced: usize,
    /// The name survives a crash.
    name_durable: bool,
}

impl State {
    fn used(&self) -> u64 {
        self.names
            .values()
            .filter_map(|id| self.files.get(id))
            .map(|file| file.data.len() as u64)
            .sum()
    }

    fn alive(&self) -> io::Result<()> {
        if self.crashed {
            Err(io::Error::other("this MemoryFs has crashed"))
        } else {
            Ok(())
        }
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

impl MemoryFs {
    /// An empty file system.
    pub fn new() -> Self {
        MemoryFs::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Injects a fault (see [`Fault`]).
    pub fn inject(&self, fault: Fault) {
        let mut state = self.lock();
        match fault {
            Fault::Capacity(bytes) => state.capacity = Some(bytes),
            Fault::FailSyncs(n) => state.fail_syncs = n,
            Fault::TornWrite(n) => state.torn_write = Some(n),
            Fault::FailReads => state.fail_reads = true,
        }
    }

    /// Removes every injected fault: unlimited space, syncs and reads succeed.
    pub fn clear_faults(&self) {
        let mut state = self.lock();
        state.capacity = None;
        state.fail_syncs = 0;
        state.torn_write = None;
        state.fail_reads = false;
    }

    /// Simulates a power cut: returns the file system as it is after reboot. This one stops
    /// working (every call fails), as the crashed process would.
    ///
    /// Durable bytes survive. Of each file's volatile tail a random prefix survives, chosen by
    /// `seed`, and one time in four the end of that prefix reads as zeros (the size was
    /// updated, the data blocks were not). Files whose directory was not synced after their
    /// creation may vanish.
    pub fn crash(&self, seed: u64) -> MemoryFs {
        let mut state = self.lock();
        state.crashed = true;
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut after = State {
            dirs: state.dirs.clone(),
            ..State::default()
        };
        for (path, id) in &state.names {
            let Some(file) = state.files.get(id) else {
                continue;
            };
            if !file.name_durable && rng.bool() {
                continue;
            }
            let volatile = file.data.len() - file.synced.min(file.data.len());
            let kept = if volatile == 0 {
                0
            } else {
                rng.usize(0..=volatile)
            };
            let mut data = file.data[..file.synced.min(file.data.len()) + kept].to_vec();
            if kept > 0 && rng.u8(0..4) == 0 {
                let zeros = rng.usize(1..=kept);
                let len = data.len();
                data[len - zeros..].fill(0);
            }
            let new_id = after.next_file;
            after.next_file += 1;
            after.names.insert(path.clone(), new_id);
            let synced = data.len();
            after.files.insert(
                new_id,
                FileData {
                    data,
                    synced,
                    name_durable: true,
                },
            );
        }
        MemoryFs {
            state: Arc::new(Mutex::new(after)),
        }
    }

    /// The contents of a file, if it exists.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let id = state.names.get(path)?;
        state.files.get(id).map(|file| file.data.clone())
    }

    /// Overwrites bytes of an existing file at `offset` (extending it if needed), durably:
    /// for tests that damage a log.
    pub fn overwrite(&self, path: &Path, offset: usize, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.lock();
        let id = *state.names.get(path).ok_or_else(|| not_found(path))?;
        let file = state.files.get_mut(&id).ok_or_else(|| not_found(path))?;
        if file.data.len() < offset + bytes.len() {
            file.data.resize(offset + bytes.len(), 0);
        }
        file.data[offset..offset + bytes.len()].copy_from_slice(bytes);
        file.synced = file.data.len();
        Ok(())
    }

    /// Writes a whole file durably (creating or replacing it).
    pub fn put(&self, path: &Path, bytes: &[u8]) {
        let mut state = self.lock();
        if let Some(parent) = path.parent() {
            state.dirs.insert(parent.to_path_buf());
        }
        let id = state.next_file;
        state.next_file += 1;
        state.names.insert(path.to_path_buf(), id);
        state.files.insert(
            id,
            FileData {
                data: bytes.to_vec(),
                synced: bytes.len(),
                name_durable: true,
            },
        );
    }

    /// The files in `dir`, sorted by name.
    pub fn files(&self, dir: &Path) -> Vec<PathBuf> {
        let state = self.lock();
        state
            .names
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .cloned()
            .collect()
    }

    /// Successful fsyncs so far (files and directories).
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Bytes written through [`AppendFile::write_all`] so far.
    pub fn bytes_written(&self) -> u64 {
        self.lock().bytes_written
    }

    /// Bytes in all files.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used()
    }

    fn take_sync_failure(state: &mut State) -> io::Result<()> {
        if state.fail_syncs > 0 {
            state.fail_syncs -= 1;
            return Err(io::Error::other("injected fsync failure (EIO)"));
        }
        state.syncs += 1;
        Ok(())
    }
}

impl std::fmt::Debug for MemoryFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryFs")
            .field("files", &state.names.keys().collect::<Vec<_>>())
            .field("used", &state.used())
            .finish()
    }
}

impl Filesystem for MemoryFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.alive()?;
        for ancestor in dir.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        let state = self.lock();
        state.alive()?;
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(state
            .names
            .iter()
            .filter(|(path, _)| path.parent() == Some(dir))
            .filter_map(|(path, id)| {
                let file = state.files.get(id)?;
                Some(DirEntry {
                    name: path.file_name()?.to_string_lossy().into_owned(),
                    len: file.data.len() as u64,
                })
            })
            .collect())
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadAt>> {
        let state = self.lock();
        state.alive()?;
        let id = *state.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(Box::new(MemoryFile {
            fs: self.clone(),
            id,
        }))
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let mut state = self.lock();
        state.alive()?;
        if state.names.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        let parent = path.parent().unwrap_or(Path::new(""));
        if !state.dirs.contains(parent) {
            return Err(not_found(parent));
        }
        let id = state.next_file;
        state.next_file += 1;
        state.names.insert(path.to_path_buf(), id);
        state.files.insert(id, FileData::default());
        Ok(Box::new(MemoryFile {
            fs: self.clone(),
            id,
        }))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut state = self.lock();
        state.alive()?;
        let id = *state.names.get(path).ok_or_else(|| not_found(path))?;
        MemoryFs::take_sync_failure(&mut state)?;
        let file = state.files.get_mut(&id).ok_or_else(|| not_found(path))?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        file.data.truncate(len);
        file.synced = file.data.len();
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.alive()?;
        state
            .names
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.alive()?;
        MemoryFs::take_sync_failure(&mut state)?;
        let ids: Vec<u64> = state
            .names
            .iter()
            .filter(|(path, _)| path.parent() == Some(dir))
            .map(|(_, id)| *id)
            .collect();
        for id in ids {
            if let Some(file) = state.files.get_mut(&id) {
                file.name_durable = true;
            }
        }
        Ok(())
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        let mut state = self.lock();
        state.alive()?;
        if !state.locks.insert(dir.to_path_buf()) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "another log has this directory open",
            ));
        }
        Ok(Box::new(DirLock {
            fs: self.clone(),
            dir: dir.to_path_buf(),
        }))
    }
}

struct DirLock {
    fs: MemoryFs,
    dir: PathBuf,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        self.fs.lock().locks.remove(&self.dir);
    }
}

struct MemoryFile {
    fs: MemoryFs,
    id: u64,
}

impl ReadAt for MemoryFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let state = self.fs.lock();
        state.alive()?;
        if state.fail_reads {
            return Err(io::Error::other("injected read failure (EIO)"));
        }
        let file = state
            .files
            .get(&self.id)
            .ok_or_else(|| io::Error::other("file vanished"))?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(file.data.len());
        let n = buf.len().min(file.data.len() - start);
        buf[..n].copy_from_slice(&file.data[start..start + n]);
        Ok(n)
    }

    fn file_len(&self) -> io::Result<u64> {
        let state = self.fs.lock();
        state.alive()?;
        Ok(state
            .files
            .get(&self.id)
            .map_or(0, |file| file.data.len() as u64))
    }
}

impl AppendFile for MemoryFile {
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut state = self.fs.lock();
        state.alive()?;
        let mut fits = data.len();
        let mut error = None;
        if let Some(torn) = state.torn_write.take() {
            fits = fits.min(torn);
            error = Some(io::Error::other("injected torn write (EIO)"));
        }
        if let Some(capacity) = state.capacity {
            let free = usize::try_from(capacity.saturating_sub(state.used())).unwrap_or(usize::MAX);
            if free < fits {
                fits = free;
                error = Some(io::Error::from(io::ErrorKind::StorageFull));
            }
        }
        state.bytes_written += fits as u64;
        let file = state
            .files
            .get_mut(&self.id)
            .ok_or_else(|| io::Error::other("file vanished"))?;
        file.data.extend_from_slice(&data[..fits]);
        match error {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut state = self.fs.lock();
        state.alive()?;
        MemoryFs::take_sync_failure(&mut state)?;
        if let Some(file) = state.files.get_mut(&self.id) {
            file.synced = file.data.len();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from("/log")
    }

    #[test]
    fn unsynced_bytes_may_be_lost_in_a_crash_synced_ones_never() {
        for seed in 0..50 {
            let fs = MemoryFs::new();
            fs.create_dir_all(&dir()).unwrap();
            let path = dir().join("a");
            let mut file = fs.create_new(&path).unwrap();
            file.write_all(b"durable").unwrap();
            file.sync_data().unwrap();
            fs.sync_dir(&dir()).unwrap();
            file.write_all(b" volatile").unwrap();
            let after = fs.crash(seed);
            let data = after.read(&path).unwrap();
            assert!(data.starts_with(b"durable"), "seed {seed}");
            assert!(data.len() <= b"durable volatile".len());
            assert!(
                file.write_all(b"x").is_err(),
                "the crashed fs refuses writes"
            );
        }
    }

    #[test]
    fn capacity_tears_the_write_that_does_not_fit() {
        let fs = MemoryFs::new();
        fs.create_dir_all(&dir()).unwrap();
        fs.inject(Fault::Capacity(10));
        let mut file = fs.create_new(&dir().join("a")).unwrap();
        file.write_all(b"123456").unwrap();
        let error = file.write_all(b"789abc").unwrap_err();
        assert!(super::super::is_storage_full(&error), "{error}");
        assert_eq!(fs.read(&dir().join("a")).unwrap(), b"123456789a");
        fs.remove(&dir().join("a")).unwrap();
        assert_eq!(fs.used_bytes(), 0);
    }

    #[test]
    fn failed_syncs_leave_data_volatile() {
        let fs = MemoryFs::new();
        fs.create_dir_all(&dir()).unwrap();
        let path = dir().join("a");
        let mut file = fs.create_new(&path).unwrap();
        fs.sync_dir(&dir()).unwrap();
        file.write_all(b"data").unwrap();
        fs.inject(Fault::FailSyncs(1));
        assert!(file.sync_data().is_err());
        // Seed chosen so that the crash keeps nothing volatile.
        let lost = (0..100)
            .map(|seed| fs.clone().crash_copy(seed).read(&path).unwrap().len())
            .any(|len| len == 0);
        assert!(lost);
        file.sync_data().unwrap();
    }

    impl MemoryFs {
        /// A crash that leaves this one working (for tests that try many seeds).
        fn crash_copy(&self, seed: u64) -> MemoryFs {
            let after = self.crash(seed);
            self.lock().crashed = false;
            after
        }
    }

    #[test]
    fn a_second_lock_on_a_directory_is_refused_until_the_first_drops() {
        let fs = MemoryFs::new();
        let first = fs.lock_dir(&dir()).unwrap();
        let error = fs.lock_dir(&dir()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        drop(first);
        assert!(fs.lock_dir(&dir()).is_ok());
    }
}
