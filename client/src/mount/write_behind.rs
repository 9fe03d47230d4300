//! Write-behind for large sequential writers. A file written from its
//! first byte onwards in order (a `cp`, a `tar x`, a download) starts its
//! upload once `WRITE_BEHIND_START_BYTES` are staged: a streamed (chunked)
//! `PUT` on one of `WRITE_BEHIND_STREAMS` uploader threads, fed first with
//! the staged bytes and then with each write as it lands, so the close
//! waits for the tail only, not for the whole file. The staging file still
//! gets every byte, so reads see them and anything unusual (a write
//! elsewhere, a truncation, a failed stream) falls back to the whole-file
//! upload at close. An abandoned stream ends with a read error, never a
//! clean end of body, so the server drops it: a file appears whole or not
//! at all, as with every create.

use std::fs::File;
use std::io::{self, Read};
use std::sync::Mutex;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use fuser::Errno;

use super::open_files::lock;
use super::remote::Remote;
use super::staging::{StagedFile, StagedReader};

/// Staged bytes past which a sequential writer's upload begins: smaller
/// files are uploaded whole at close (one request, no stream).
pub const WRITE_BEHIND_START_BYTES: u64 = 8 << 20;

/// Uploads streaming at once per mount: each holds one of the naming
/// server's workers for as long as its writer writes.
pub const WRITE_BEHIND_STREAMS: usize = 2;

/// Writes queued for one stream (each at most one kernel write, 1 MiB).
const PIECES_IN_FLIGHT: usize = 8;

enum Piece {
    Data(Vec<u8>),
    End,
}

struct Job {
    path: String,
    body: StreamBody,
    done: Sender<Result<(), Errno>>,
}

/// The uploader threads' queue. Its channel holds nothing: a job is taken
/// only by an idle uploader, else the file is uploaded at close.
pub struct Uploaders {
    jobs: Mutex<Option<Sender<Job>>>,
    queue: Receiver<Job>,
}

/// One streaming upload, fed by the writes of one file.
pub struct Stream {
    pieces: Sender<Piece>,
    done: Receiver<Result<(), Errno>>,
    /// The file offset the next write must have to continue the stream.
    pub next: u64,
}

impl Uploaders {
    pub fn new() -> Uploaders {
        let (jobs, queue) = crossbeam_channel::bounded(0);
        Uploaders {
            jobs: Mutex::new(Some(jobs)),
            queue,
        }
    }

    /// An uploader thread's life: streams jobs until `close`.
    pub fn serve(&self, remote: &Remote) {
        for mut job in self.queue.iter() {
            let outcome = remote.upload(&job.path, &mut job.body, None);
            let _ = job.done.send(outcome);
        }
    }

    /// No more streams: the uploader threads end once theirs are done.
    pub fn close(&self) {
        lock(&self.jobs).take();
    }

    /// Starts streaming `staged` (all of it so far, then what `Stream::
    /// send` adds) to `path`, if an uploader is idle.
    pub fn start(&self, path: &str, staged: &StagedFile) -> Option<Stream> {
        let head = staged.file.try_clone().ok()?;
        let (pieces, queued) = crossbeam_channel::bounded(PIECES_IN_FLIGHT);
        let (done, outcome) = crossbeam_channel::bounded(1);
        let job = Job {
            path: path.to_owned(),
            body: StreamBody {
                head: StagedReader::new(head, staged.len),
                queued,
                current: Vec::new(),
                current_at: 0,
                ended: false,
            },
            done,
        };
        let jobs = lock(&self.jobs);
        match jobs.as_ref()?.try_send(job) {
            Ok(()) => Some(Stream {
                pieces,
                done: outcome,
                next: staged.len,
            }),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => None,
        }
    }
}

impl Stream {
    /// Adds the bytes of the write at `self.next`; false when the upload
    /// has ended (refused or broken), to be replaced by one at close.
    pub fn send(&mut self, data: &[u8]) -> bool {
        match self.pieces.send(Piece::Data(data.to_vec())) {
            Ok(()) => {
                self.next += data.len() as u64;
                true
            }
            Err(_) => false,
        }
    }

    /// Ends the body and waits for the server's answer.
    pub fn finish(self) -> Result<(), Errno> {
        let _ = self.pieces.send(Piece::End);
        self.done.recv().unwrap_or(Err(Errno::EIO))
    }
}

/// The body of a streamed upload: the staged head, then the queued writes;
/// an error if the stream is dropped before its end.
struct StreamBody {
    head: StagedReader<File>,
    queued: Receiver<Piece>,
    current: Vec<u8>,
    current_at: usize,
    ended: bool,
}

impl Read for StreamBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.ended {
            return Ok(0);
        }
        if !self.head.is_done() {
            return self.head.read(buf);
        }
        while self.current_at == self.current.len() {
            match self.queued.recv() {
                Ok(Piece::Data(bytes)) => {
                    self.current = bytes;
                    self.current_at = 0;
                }
                Ok(Piece::End) => {
                    self.ended = true;
                    return Ok(0);
                }
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the write-behind stream was abandoned",
                    ));
                }
            }
        }
        let take = (self.current.len() - self.current_at).min(buf.len());
        buf[..take].copy_from_slice(&self.current[self.current_at..self.current_at + take]);
        self.current_at += take;
        Ok(take)
    }
}
