//! Where log lines go: a buffer in memory that a thread of its own writes to stdout in
//! batches.
//!
//! A request appends its line under a short lock and goes on; it never waits on a
//! `write`. The thread wakes when a line lands in an empty buffer, lets lines gather for
//! [`GATHER`], and writes them all with one system call. So a busy service makes a write
//! every few milliseconds instead of one per line, and an idle one makes none.
//! (`tracing-appender`'s non-blocking writer hands each line to its thread through a
//! channel, which wakes the thread once per line: as costly as the write it saves.)
//!
//! Past [`MAX_BUFFERED`] bytes a line waits for the thread to catch up: a log that drops
//! lines under load is no log.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer thread lets lines gather before it writes them.
const GATHER: Duration = Duration::from_millis(5);
/// The most bytes held before a line waits for the writer thread.
const MAX_BUFFERED: usize = 1 << 20;

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// A line landed in an empty buffer, or the writer is stopping.
    filled: Condvar,
    /// The writer took the buffer.
    drained: Condvar,
}

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    stopping: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writing side: cheap to clone, one per layer.
#[derive(Clone)]
pub struct LineWriter {
    shared: Arc<Shared>,
}

/// Stops the writer thread when dropped, after it wrote every line it was given.
pub struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A writer of lines to `out`, and the guard of its thread.
pub fn spawn(mut out: impl Write + Send + 'static) -> io::Result<(LineWriter, WriterGuard)> {
    let shared = Arc::new(Shared::default());
    let thread = {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new().name("log-writer".into()).spawn(move || {
            let mut batch = Vec::new();
            loop {
                let mut state = shared.lock();
                while state.lines.is_empty() && !state.stopping {
                    state = shared.filled.wait(state).unwrap_or_else(PoisonError::into_inner);
                }
                if state.lines.is_empty() {
                    return;
                }
                if !state.stopping {
                    drop(state);
                    std::thread::sleep(GATHER);
                    state = shared.lock();
                }
                std::mem::swap(&mut batch, &mut state.lines);
                drop(state);
                shared.drained.notify_all();
                // Nowhere to report a failed write to: the line is lost, the service goes on.
                let _ = out.write_all(&batch).and_then(|()| out.flush());
                batch.clear();
            }
        })?
    };
    Ok((LineWriter { shared: Arc::clone(&shared) }, WriterGuard { shared, thread: Some(thread) }))
}

impl Write for LineWriter {
    /// Takes whole lines: one call per line, as the log layer makes them.
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        while state.lines.len() >= MAX_BUFFERED && !state.stopping {
            state = self.shared.drained.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        let was_empty = state.lines.is_empty();
        state.lines.extend_from_slice(line);
        drop(state);
        if was_empty {
            self.shared.filled.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for LineWriter {
    type Writer = Self;

    fn make_writer(&'w self) -> Self {
        self.clone()
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.filled.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().map_err(|_| io::Error::other("poisoned"))?.push(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_written_at_once_leave_in_few_writes_and_none_is_lost_at_stop() {
        let sink = Sink::default();
        let (writer, guard) = spawn(sink.clone()).expect("writer thread");
        for n in 0..1000 {
            writer.clone().write_all(format!("line {n}\n").as_bytes()).expect("buffered");
        }
        drop(guard);
        let writes = sink.0.lock().expect("writes").clone();
        let text = String::from_utf8(writes.concat()).expect("UTF-8");
        assert_eq!(text.lines().count(), 1000);
        assert!(text.lines().enumerate().all(|(n, line)| line == format!("line {n}")));
        assert!(writes.len() < 10, "{} writes for 1000 lines", writes.len());
    }
}
