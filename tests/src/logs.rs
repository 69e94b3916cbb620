//! Log capture for the redaction test (after str0m's `tests/pii.rs`): one global tracing
//! subscriber per test binary, at TRACE for every crate, that keeps every formatted line
//! (event, target, span context and fields) in memory.

use std::io;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::fmt::MakeWriter;

/// Every line logged since [`capture`] was first called in this process.
#[derive(Debug, Default)]
pub struct Captured {
    lines: Mutex<Vec<String>>,
}

impl Captured {
    /// A copy of the lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The lines that contain `needle`.
    pub fn containing(&self, needle: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect()
    }

    fn push(&self, text: &str) {
        if let Ok(mut lines) = self.lines.lock() {
            lines.extend(text.lines().map(str::to_owned));
        }
    }
}

static CAPTURED: OnceLock<Captured> = OnceLock::new();

/// Installs the capturing subscriber as the process's global default (once; later calls
/// return the same store) and returns the store.
///
/// # Panics
///
/// If another global subscriber was installed first: the capture would then see nothing,
/// and a redaction test that sees nothing proves nothing.
pub fn capture() -> &'static Captured {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let captured = CAPTURED.get_or_init(Captured::default);
    INSTALLED.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_target(true)
            .with_writer(CaptureWriter)
            .try_init()
            .expect("the log capture is the first global subscriber of this test binary");
    });
    captured
}

/// Hands the fmt layer one buffer per event.
#[derive(Debug, Clone, Copy)]
struct CaptureWriter;

impl<'a> MakeWriter<'a> for CaptureWriter {
    type Writer = LineBuffer;

    fn make_writer(&'a self) -> LineBuffer {
        LineBuffer(Vec::new())
    }
}

/// One event's formatted text; stored when the fmt layer drops it.
#[derive(Debug)]
struct LineBuffer(Vec<u8>);

impl io::Write for LineBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        if let Some(captured) = CAPTURED.get() {
            captured.push(&String::from_utf8_lossy(&self.0));
        }
    }
}
