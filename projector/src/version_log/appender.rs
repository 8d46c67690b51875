//! The version log's writer: the records of a batch are written on a thread of their own
//! ([`LogAppender`]), through the page cache or, while the store catches up, straight to the
//! device ([`Direct`]).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::mpsc;

use crate::StoreError;

/// Writes the writer's records on a thread of its own, so that copying them into the page
/// cache (17 % of a replaying writer's time, measured with `perf`) overlaps DuckDB's work on the
/// writer thread instead of adding to it.
///
/// Writes are queued in order, at most [`LogAppender::QUEUE`] buffers deep (the writer waits
/// beyond that, so the bytes in flight are bounded); [`LogAppender::sync`] returns once every
/// queued write is done and durable, or with the first write's error since the last sync. The
/// written buffers come back for reuse ([`LogAppender::buffer`]), so steady writing touches no
/// fresh memory. While the store catches up ([`LogAppender::set_direct`]), writes bypass the
/// page cache ([`Direct`]).
pub(crate) struct LogAppender {
    jobs: Option<mpsc::SyncSender<Job>>,
    spare: mpsc::Receiver<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: String,
}

enum Job {
    Write { offset: u64, bytes: Vec<u8> },
    Sync(mpsc::SyncSender<Result<(), String>>),
    Truncate(u64, mpsc::SyncSender<Result<(), String>>),
    Direct(bool),
}

/// The log file as the appender's thread writes it: through the page cache, or straight to the
/// device ([`Direct`]).
struct Sink {
    file: File,
    direct: Option<Direct>,
    /// Bytes written through the page cache since the file was last made durable.
    unsynced: usize,
}

impl Sink {
    fn write(&mut self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        if let Some(direct) = &mut self.direct {
            match direct.write(&self.file, offset, bytes) {
                Err(e) if refused(&e) => self.fall_back(&e)?,
                done => return done,
            }
        }
        self.file.write_all_at(bytes, offset)?;
        self.unsynced += bytes.len();
        // Written pages are made durable as they pile up, here, while the writer works: the
        // sync before a commit then has only the last few to wait for (it waited 0.5-1.3 s per
        // 290 MB batch, measured).
        if self.unsynced >= LogAppender::SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.unsynced = 0;
        self.write_out()?;
        self.file.sync_data()
    }

    /// Writes what the direct window holds to the file (nothing to do when buffered).
    fn write_out(&mut self) -> std::io::Result<()> {
        if let Some(direct) = &mut self.direct {
            match direct.write_out(&self.file) {
                Err(e) if refused(&e) => self.fall_back(&e)?,
                done => done?,
            }
        }
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        // What the window holds before `len` reaches the file before it is cut.
        self.write_out()?;
        self.file.set_len(len)?;
        match &mut self.direct {
            Some(direct) => direct.seek(&self.file, len),
            None => Ok(()),
        }
    }

    fn set_direct(&mut self, on: bool) -> std::io::Result<()> {
        match (on, self.direct.is_some()) {
            (true, false) => match Direct::open(&self.file) {
                Ok(direct) => {
                    // What went through the page cache is durable before writes bypass it.
                    self.sync()?;
                    self.direct = Some(direct);
                }
                // Not every file system takes O_DIRECT (tmpfs does not): stay on the page cache.
                Err(e) => tracing::debug!(error = %e, "version log: writes stay buffered"),
            },
            (false, true) => {
                self.write_out()?;
                self.direct = None;
            }
            _ => {}
        }
        Ok(())
    }

    /// Leaves direct writes after the file system refused one (some take `O_DIRECT` at open
    /// and refuse its writes, or want a larger alignment): what the window holds is written
    /// through the page cache, and so is everything after it.
    fn fall_back(&mut self, refusal: &std::io::Error) -> std::io::Result<()> {
        tracing::debug!(error = %refusal, "version log: direct writes refused, back to the page cache");
        if let Some(direct) = self.direct.take() {
            if let Some((base, filled)) = direct.at {
                self.file
                    .write_all_at(&direct.mem[direct.start..][..filled], base)?;
            }
        }
        Ok(())
    }
}

/// Whether a direct write failed for what `O_DIRECT` asks (alignment), not for the device.
fn refused(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::InvalidInput
}

/// Appends that bypass the page cache (`O_DIRECT`), for a store catching up with a long stream:
/// buffered, each byte of the log costs the kernel a copy into a fresh page-cache page and its
/// writeback later (1.3 s of system CPU per GB on the bench's VM, against 0.1 s direct;
/// BENCHMARKS.md), and those records are seldom read before the catch-up ends (the API is not
/// ready until then; a record that is read comes from the disk, as it would after a restart).
///
/// Records are gathered in a block-aligned window and written a whole window at a time; the
/// window's last, partial block is written padded with zeros when the log must be durable
/// ([`Direct::write_out`]), the padding cut off again at once, and the block kept to be written
/// again with what follows. So the file holds exactly what was written, as it would buffered.
struct Direct {
    /// A second handle on the file, opened with `O_DIRECT`.
    file: File,
    /// The window: [`Direct::WINDOW`] bytes from `start`, the first multiple of the block size
    /// in `mem` (aligned without unsafe code).
    mem: Vec<u8>,
    start: usize,
    /// Where the window is in the file (a multiple of the block size) and how much of it holds
    /// data; `None` until the first write.
    at: Option<(u64, usize)>,
}

impl Direct {
    /// The alignment `O_DIRECT` asks of offsets, lengths and memory: the largest logical block
    /// size of the devices it is used on.
    const BLOCK: usize = 4096;
    const WINDOW: usize = 4 << 20;

    fn open(file: &File) -> std::io::Result<Self> {
        let direct = open_direct(file)?;
        let mem = vec![0u8; Self::WINDOW + Self::BLOCK];
        let start = mem.as_ptr().align_offset(Self::BLOCK);
        if start > Self::BLOCK {
            return Err(std::io::Error::other(
                "cannot align the direct write window",
            ));
        }
        Ok(Self {
            file: direct,
            mem,
            start,
            at: None,
        })
    }

    /// Where the data in the window ends in the file.
    fn end(&self) -> Option<u64> {
        self.at.map(|(base, filled)| base + filled as u64)
    }

    fn window(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.start + Self::WINDOW]
    }

    /// Moves the window to `offset`: it starts at the block holding `offset`, with that block's
    /// bytes before `offset` read back from the file (through `buffered`).
    fn seek(&mut self, buffered: &File, offset: u64) -> std::io::Result<()> {
        let base = offset - offset % Self::BLOCK as u64;
        let kept = (offset - base) as usize;
        buffered.read_exact_at(&mut self.window()[..kept], base)?;
        self.at = Some((base, kept));
        Ok(())
    }

    /// Writes `bytes` at `offset` (most often where the last write ended).
    fn write(&mut self, buffered: &File, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        if self.end() != Some(offset) {
            self.write_out(buffered)?;
            self.seek(buffered, offset)?;
        }
        self.append(bytes)
    }

    fn append(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        let Some((mut base, mut filled)) = self.at else {
            return Err(std::io::Error::other("direct log write before a seek"));
        };
        while !bytes.is_empty() {
            let n = (Self::WINDOW - filled).min(bytes.len());
            self.window()[filled..filled + n].copy_from_slice(&bytes[..n]);
            filled += n;
            bytes = &bytes[n..];
            if filled == Self::WINDOW {
                let (file, window) = (&self.file, &self.mem[self.start..][..Self::WINDOW]);
                file.write_all_at(window, base)?;
                base += Self::WINDOW as u64;
                filled = 0;
            }
            self.at = Some((base, filled));
        }
        Ok(())
    }

    /// Writes the window's data (its last block padded with zeros) and cuts the file back to
    /// the data's end (through `buffered`); the window keeps only its last, partial block.
    fn write_out(&mut self, buffered: &File) -> std::io::Result<()> {
        let Some((base, filled)) = self.at else {
            return Ok(());
        };
        if filled == 0 {
            return Ok(());
        }
        let padded = filled.next_multiple_of(Self::BLOCK);
        self.window()[filled..padded].fill(0);
        let (file, window) = (&self.file, &self.mem[self.start..][..padded]);
        file.write_all_at(window, base)?;
        buffered.set_len(base + filled as u64)?;
        let whole = filled - filled % Self::BLOCK;
        self.window().copy_within(whole..filled, 0);
        self.at = Some((base + whole as u64, filled - whole));
        Ok(())
    }
}

/// A handle on `file` that writes with `O_DIRECT` (reopened through `/proc/self/fd`, so that an
/// unnamed temporary file has one too).
#[cfg(target_os = "linux")]
fn open_direct(file: &File) -> std::io::Result<File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_file: &File) -> std::io::Result<File> {
    Err(std::io::ErrorKind::Unsupported.into())
}

impl LogAppender {
    /// Buffers queued for writing before [`LogAppender::write`] waits.
    pub(crate) const QUEUE: usize = 4;
    /// Bytes written through the page cache before the thread makes them durable unasked.
    const SYNC_EVERY: usize = 32 << 20;

    pub(super) fn start(file: File, path: String) -> Result<Self, StoreError> {
        let (jobs, rx) = mpsc::sync_channel::<Job>(Self::QUEUE);
        let (spare_tx, spare) = mpsc::sync_channel::<Vec<u8>>(Self::QUEUE + 1);
        let thread = std::thread::Builder::new()
            .name("version-log".into())
            .spawn(move || {
                let mut sink = Sink {
                    file,
                    direct: None,
                    unsynced: 0,
                };
                // The first failed write since the last sync; later writes of the batch are
                // skipped (the batch cannot commit).
                let mut failed: Option<String> = None;
                for job in rx {
                    match job {
                        Job::Write { offset, mut bytes } => {
                            if failed.is_none() {
                                if let Err(e) = sink.write(offset, &bytes) {
                                    failed = Some(e.to_string());
                                }
                            }
                            bytes.clear();
                            let _ = spare_tx.try_send(bytes);
                        }
                        Job::Sync(reply) => {
                            let r = match failed.take() {
                                Some(e) => Err(e),
                                None => sink.sync().map_err(|e| e.to_string()),
                            };
                            let _ = reply.send(r);
                        }
                        Job::Truncate(len, reply) => {
                            failed = None;
                            let _ = reply.send(sink.truncate(len).map_err(|e| e.to_string()));
                        }
                        Job::Direct(on) => {
                            if let Err(e) = sink.set_direct(on) {
                                failed.get_or_insert(e.to_string());
                            }
                        }
                    }
                }
                // The queue closed: what the window still holds goes to the file, as it would
                // have gone to the page cache.
                if let Err(e) = sink.set_direct(false) {
                    tracing::warn!(error = %e, "version log: writing out the last records");
                }
            })
            .map_err(|e| StoreError::Log {
                path: path.clone(),
                reason: format!("cannot start the log writer thread: {e}"),
            })?;
        Ok(Self {
            jobs: Some(jobs),
            spare,
            thread: Some(thread),
            path,
        })
    }

    fn error(&self, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Log {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| self.error("the log writer thread stopped"))
    }

    fn call(
        &self,
        job: impl FnOnce(mpsc::SyncSender<Result<(), String>>) -> Job,
    ) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(job(tx))?;
        rx.recv()
            .map_err(|_| self.error("the log writer thread stopped"))?
            .map_err(|e| self.error(e))
    }

    /// An empty buffer to encode records into (one written before, when there is one).
    pub(crate) fn buffer(&self) -> Vec<u8> {
        self.spare.try_recv().unwrap_or_default()
    }

    /// Queues `bytes` to be written at `offset`.
    pub(crate) fn write(&self, offset: u64, bytes: Vec<u8>) -> Result<(), StoreError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.send(Job::Write { offset, bytes })
    }

    /// Waits for every queued write and makes them durable; the first failed write's error.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        self.call(Job::Sync)
    }

    /// Writes from now on bypass the page cache (`true`, where the file system allows it) or go
    /// through it again (`false`): for a store catching up, whose records are seldom read before
    /// it is done ([`Direct`]). Queued in order with the writes; an error comes with the next sync.
    pub(crate) fn set_direct(&self, on: bool) -> Result<(), StoreError> {
        self.send(Job::Direct(on))
    }

    /// Waits for every queued write, then cuts the file to `len` bytes (forgetting a failed write:
    /// what it was writing is cut off).
    pub(crate) fn truncate(&self, len: u64) -> Result<(), StoreError> {
        self.call(|reply| Job::Truncate(len, reply))
    }
}

impl Drop for LogAppender {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has written what was queued.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;
    #[test]
    fn the_appender_writes_in_order_and_a_failed_write_fails_the_next_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, b"0123456789").unwrap();
        let rw = open_rw(&path);
        let appender = LogAppender::start(rw, "log".into()).unwrap();
        let mut buf = appender.buffer();
        buf.extend_from_slice(b"abc");
        appender.write(10, buf).unwrap();
        appender.write(13, b"def".to_vec()).unwrap();
        appender.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789abcdef");
        // A written buffer comes back empty for reuse.
        let reused = appender.buffer();
        assert!(reused.is_empty() && reused.capacity() >= 3);
        appender.write(16, b"ghi".to_vec()).unwrap();
        appender.truncate(12).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789ab");
        drop(appender);

        // A handle that cannot write: the error comes with the next sync, naming the file, and
        // a truncate (the batch abandoned) forgets it.
        let read_only = File::open(&path).unwrap();
        let appender = LogAppender::start(read_only, "the-log".into()).unwrap();
        appender.write(12, b"xyz".to_vec()).unwrap();
        let e = appender.sync().unwrap_err().to_string();
        assert!(e.contains("the-log"), "{e}");
        appender.write(12, b"xyz".to_vec()).unwrap();
        assert!(
            appender.truncate(12).is_err(),
            "set_len needs a writable handle"
        );
        appender.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789ab");
    }

    /// The file at `path` for reading and writing (created if missing, kept if not).
    fn open_rw(path: &Path) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap()
    }

    #[test]
    fn writes_beyond_the_sync_interval_land_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let rw = open_rw(&path);
        let appender = LogAppender::start(rw, "log".into()).unwrap();
        // Four writes of 40 % of the interval each: the thread syncs on its own after the third,
        // and the last write comes after that sync.
        let piece = LogAppender::SYNC_EVERY * 2 / 5;
        let mut expected = Vec::new();
        for (i, byte) in [b'a', b'b', b'c', b'd'].into_iter().enumerate() {
            let bytes = vec![byte; piece];
            expected.extend_from_slice(&bytes);
            appender.write((i * piece) as u64, bytes).unwrap();
        }
        appender.sync().unwrap();
        assert!(std::fs::read(&path).unwrap() == expected);
    }

    #[test]
    fn direct_writes_leave_the_file_as_buffered_ones_would() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let rw = || open_rw(&path);
        // Where the file system does not take O_DIRECT (tmpfs), the appender stays buffered and
        // the same checks cover that.
        std::fs::write(&path, b"committed").unwrap();
        let appender = LogAppender::start(rw(), "log".into()).unwrap();
        appender.set_direct(true).unwrap();
        let mut expected = b"committed".to_vec();
        let check = |expected: &[u8]| {
            appender.sync().unwrap();
            let on_disk = std::fs::read(&path).unwrap();
            assert_eq!(on_disk.len(), expected.len());
            assert!(on_disk == expected, "content differs");
        };
        // Pieces of every size about the block and the window: unaligned ends, a piece larger
        // than the window, syncs in the middle of a block.
        let sizes = [
            1,
            4095,
            4096,
            4097,
            100,
            Direct::WINDOW - 7,
            3 * Direct::WINDOW + 5,
            13,
        ];
        for (i, len) in sizes.into_iter().enumerate() {
            let bytes: Vec<u8> = (0..len).map(|j| (i * 31 + j % 251) as u8).collect();
            appender
                .write(expected.len() as u64, bytes.clone())
                .unwrap();
            expected.extend_from_slice(&bytes);
            if i % 2 == 1 {
                check(&expected);
            }
        }
        check(&expected);
        // An abandoned batch: what it wrote is cut off, the next one writes from there.
        let keep = expected.len() - 5000;
        appender
            .write(expected.len() as u64, vec![b'x'; 10_000])
            .unwrap();
        appender.truncate(keep as u64).unwrap();
        expected.truncate(keep);
        check(&expected);
        appender
            .write(keep as u64, b"after the cut".to_vec())
            .unwrap();
        expected.extend_from_slice(b"after the cut");
        check(&expected);
        // Back to the page cache, mid-block: the next writes continue where the last ended.
        appender
            .write(expected.len() as u64, b"unsynced".to_vec())
            .unwrap();
        expected.extend_from_slice(b"unsynced");
        appender.set_direct(false).unwrap();
        appender
            .write(expected.len() as u64, b" and buffered".to_vec())
            .unwrap();
        expected.extend_from_slice(b" and buffered");
        check(&expected);
        // What is queued when the appender goes is written, in either mode.
        appender.set_direct(true).unwrap();
        appender
            .write(expected.len() as u64, b" last".to_vec())
            .unwrap();
        expected.extend_from_slice(b" last");
        drop(appender);
        assert!(std::fs::read(&path).unwrap() == expected);
    }

    #[test]
    fn a_refused_direct_write_falls_back_to_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let file = open_rw(&path);
        // A file system without O_DIRECT (tmpfs) has no direct write to refuse.
        let Ok(mut direct) = Direct::open(&file) else {
            return;
        };
        // A window a byte off the alignment O_DIRECT asks: the kernel refuses its writes.
        direct.start += 1;
        let mut sink = Sink {
            file,
            direct: Some(direct),
            unsynced: 0,
        };
        sink.set_direct(true).unwrap();
        let bytes: Vec<u8> = (0..Direct::WINDOW + 10).map(|i| (i % 253) as u8).collect();
        sink.write(0, &bytes).unwrap();
        assert!(sink.direct.is_none(), "the refused window fell back");
        sink.write(bytes.len() as u64, b"tail").unwrap();
        sink.sync().unwrap();
        let mut expected = bytes;
        expected.extend_from_slice(b"tail");
        assert!(std::fs::read(&path).unwrap() == expected);
    }
}
