//! Where the process's log lines go: stderr, or, while `harness gate` plays a case, that
//! case's own buffer. The functions run in this process and log what the scenarios' faults
//! make them do (a notifier retrying a throttled publish logs ERROR); in a gate those lines
//! belong to their case, in its JUnit `<system-err>` and its report section, not between
//! the console's one line per case.
//!
//! [`LogSink`] is the `MakeWriter` the subscriber writes through; [`Capture`] routes the
//! lines to a buffer until [`Capture::finish`]. One capture at a time: the gate plays its
//! cases one after another.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use tracing_subscriber::fmt::MakeWriter;

/// The most a case keeps of its log; past it, lines are counted, not kept.
pub const CAPTURE_LIMIT: usize = 256 << 10;

struct Buffer {
    text: Vec<u8>,
    dropped: usize,
}

static CAPTURE: Mutex<Option<Buffer>> = Mutex::new(None);

/// The subscriber's writer: stderr, or the active [`Capture`].
#[derive(Clone, Copy, Default)]
pub struct LogSink;

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = LogSink;

    fn make_writer(&'a self) -> Self::Writer {
        LogSink
    }
}

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut capture = CAPTURE.lock().unwrap_or_else(|p| p.into_inner());
        match capture.as_mut() {
            Some(b) => {
                // Once a line is left out, so are all after it: the kept text is a prefix.
                if b.dropped == 0 && b.text.len() + buf.len() <= CAPTURE_LIMIT {
                    b.text.extend_from_slice(buf);
                } else {
                    b.dropped += buf.iter().filter(|&&c| c == b'\n').count().max(1);
                }
                Ok(buf.len())
            }
            None => {
                drop(capture);
                std::io::stderr().write(buf)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Whether log lines should carry colours: only when they go to a terminal.
pub fn ansi() -> bool {
    std::io::stderr().is_terminal()
}

/// Routes every log line to a buffer until [`Capture::finish`] (or drop, which goes back
/// to stderr and throws the lines away).
pub struct Capture(());

impl Capture {
    /// Starts capturing; a capture already running is ended and its lines lost.
    pub fn start() -> Capture {
        *CAPTURE.lock().unwrap_or_else(|p| p.into_inner()) = Some(Buffer {
            text: Vec::new(),
            dropped: 0,
        });
        Capture(())
    }

    /// Stops capturing and returns the lines, without terminal colour codes, and a last
    /// line saying how many were left out past [`CAPTURE_LIMIT`].
    pub fn finish(self) -> String {
        let b = CAPTURE.lock().unwrap_or_else(|p| p.into_inner()).take();
        std::mem::forget(self);
        let Some(b) = b else {
            return String::new();
        };
        let mut text = strip_ansi(&String::from_utf8_lossy(&b.text));
        if b.dropped > 0 {
            text.push_str(&format!(
                "... {} more line(s) past the {} KiB kept per case\n",
                b.dropped,
                CAPTURE_LIMIT >> 10
            ));
        }
        text
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURE.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// `s` without ANSI CSI sequences (`ESC [ ... final-byte`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.clone().next() == Some('[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one test that touches the process-wide capture (tests run in parallel).
    #[test]
    fn a_capture_keeps_its_lines_caps_them_and_hands_stderr_back() {
        let c = Capture::start();
        LogSink.write_all(b"\x1b[31mERROR\x1b[0m one\n").unwrap();
        LogSink.write_all(b"two\n").unwrap();
        assert_eq!(c.finish(), "ERROR one\ntwo\n");
        // A new capture starts empty.
        let c = Capture::start();
        assert_eq!(c.finish(), "");

        let c = Capture::start();
        // The subscriber writes each formatted line with one call.
        let mut line = vec![b'x'; 1023];
        line.push(b'\n');
        for _ in 0..(CAPTURE_LIMIT / 1024 + 3) {
            LogSink.write_all(&line).unwrap();
        }
        LogSink.write_all(b"short\n").unwrap();
        let text = c.finish();
        assert!(text.len() <= CAPTURE_LIMIT + 100, "{}", text.len());
        assert!(
            text.ends_with("... 4 more line(s) past the 256 KiB kept per case\n"),
            "{}",
            &text[text.len() - 80..]
        );

        // A dropped capture hands back stderr too.
        drop(Capture::start());
        assert!(CAPTURE.lock().unwrap().is_none());
    }

    #[test]
    fn colour_codes_go_and_text_stays() {
        assert_eq!(
            strip_ansi("\x1b[2m2026\x1b[0m \x1b[31mERROR\x1b[0m é ok"),
            "2026 ERROR é ok"
        );
        assert_eq!(strip_ansi("no codes\n"), "no codes\n");
    }
}
