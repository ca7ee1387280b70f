//! The serial console contract, as pure functions over console text: the ready line, the
//! prompt, command echo and answers. [`Console`] collects QEMU's output on a reader thread.

use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Instant;

/// Printed once all that is configured is up: `bulkhead: ready in N ms`.
pub const READY_MARK: &str = "bulkhead: ready in ";
/// The console prompt (no newline after it).
pub const PROMPT: &str = "bulkhead> ";
/// What the Enter key sends through a terminal in raw mode.
pub const ENTER: &str = "\r";

/// The ready line: the kernel's milliseconds from entry to ready, and where the line ends.
pub fn find_ready(text: &str) -> Option<(f64, usize)> {
    let start = text.find(READY_MARK)? + READY_MARK.len();
    let line_end = text[start..].find('\n').map(|i| start + i + 1)?;
    let figure = text[start..line_end].trim_end().strip_suffix("ms")?.trim();
    let ms = figure.parse::<f64>().ok()?;
    Some((ms, line_end))
}

/// Where the first prompt at the start of a line begins, at or after `from`.
pub fn find_prompt(text: &str, from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(i) = text.get(at..)?.find(PROMPT) {
        let pos = at + i;
        if pos == 0 || text.as_bytes()[pos - 1] == b'\n' {
            return Some(pos);
        }
        at = pos + 1;
    }
    None
}

/// The answer to `command` in console text that starts where the command was sent: the
/// lines after the echoed command line and before the next prompt (line ends stripped, empty
/// lines dropped), and how much of the text the exchange used. `None` until the prompt is back.
///
/// A log line that arrives while the command is being typed is printed on a line of its own,
/// and the console then draws the input line again (the prompt and what was typed): that
/// prompt is not the answer's end, the answer starts after it.
pub fn answer(text: &str, command: &str) -> Option<(Vec<String>, usize)> {
    let echo = text.find(command)?;
    let mut after_echo = echo + text[echo..].find('\n')? + 1;
    let prompt = loop {
        let prompt = find_prompt(text, after_echo)?;
        let rest = &text[prompt + PROMPT.len()..];
        let typed = rest.split('\n').next().unwrap_or_default().trim_end_matches('\r');
        if typed.is_empty() || !command.starts_with(typed) {
            break prompt;
        }
        after_echo = prompt + PROMPT.len() + rest.find('\n')? + 1;
    };
    let lines = text[after_echo..prompt]
        .split('\n')
        .map(|l| l.trim_end_matches('\r').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    Some((lines, prompt + PROMPT.len()))
}

/// The one line of a `show X json` answer that starts with `{`.
pub fn json_line(lines: &[String]) -> Result<&str, String> {
    let mut json = lines.iter().filter(|l| l.starts_with('{'));
    match (json.next(), json.next()) {
        (Some(line), None) => Ok(line),
        (None, _) => Err(format!("no line starting with '{{' in {lines:?}")),
        (Some(_), Some(_)) => Err(format!("more than one line starting with '{{' in {lines:?}")),
    }
}

/// Output of a QEMU pipe, gathered by a reader thread; waiters are woken on every chunk.
#[derive(Clone)]
pub struct Console {
    shared: Arc<(Mutex<Gathered>, Condvar)>,
}

#[derive(Default)]
struct Gathered {
    bytes: Vec<u8>,
    closed: bool,
}

/// Why a wait on the console ended without a match.
#[derive(Debug, PartialEq, Eq)]
pub enum WaitEnd {
    Deadline,
    Closed,
}

impl Console {
    /// Starts a thread that reads `pipe` to its end; with `mirror`, every chunk is also copied
    /// to this process's standard error (for watching a boot live).
    pub fn gather(mut pipe: impl Read + Send + 'static, mirror: bool) -> Console {
        let console = Console { shared: Arc::default() };
        let shared = Arc::clone(&console.shared);
        thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                let n = pipe.read(&mut chunk).unwrap_or(0);
                let (lock, wake) = &*shared;
                let mut gathered = lock.lock().unwrap_or_else(|p| p.into_inner());
                if n == 0 {
                    gathered.closed = true;
                    wake.notify_all();
                    return;
                }
                gathered.bytes.extend_from_slice(&chunk[..n]);
                if mirror {
                    let _ = std::io::stderr().write_all(&chunk[..n]);
                }
                wake.notify_all();
            }
        });
        console
    }

    fn lock(&self) -> MutexGuard<'_, Gathered> {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Everything so far (the guest writes ASCII; anything else is replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lock().bytes).into_owned()
    }

    pub fn len(&self) -> usize {
        self.lock().bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `found` on the text from byte `from` on, after every new chunk, until it returns
    /// `Some`, the pipe closes or `deadline` passes.
    pub fn wait_for<T>(
        &self,
        from: usize,
        deadline: Instant,
        mut found: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, WaitEnd> {
        let (_, wake) = &*self.shared;
        let mut gathered = self.lock();
        loop {
            let text = String::from_utf8_lossy(gathered.bytes.get(from..).unwrap_or_default());
            if let Some(hit) = found(&text) {
                return Ok(hit);
            }
            if gathered.closed {
                return Err(WaitEnd::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(WaitEnd::Deadline);
            }
            gathered = wake.wait_timeout(gathered, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ready_line_is_found_only_when_complete() {
        let log = "boot\r\nnic0 up\r\nbulkhead: ready in 7 ms\r\nbulkhead> ";
        let (ms, end) = find_ready(log).unwrap();
        assert_eq!(ms, 7.0);
        assert_eq!(&log[end..], "bulkhead> ");
        assert_eq!(find_ready("bulkhead: ready in 7 m"), None);
        assert_eq!(find_ready("bulkhead: ready in 2.5 ms\n").map(|r| r.0), Some(2.5));
        assert_eq!(find_ready("bulkhead: ready in soon ms\n"), None);
    }

    #[test]
    fn answer_strips_echo_and_waits_for_prompt() {
        let cmd = "show memory json";
        let partial = "show memory json\r\n{\"domains\":[]}\r\n";
        assert_eq!(answer(partial, cmd), None);
        let full = format!("{partial}LEAK domain=bmp bytes=64 blocks=1\r\nbulkhead> ");
        let (lines, used) = answer(&full, cmd).unwrap();
        assert_eq!(lines, ["{\"domains\":[]}", "LEAK domain=bmp bytes=64 blocks=1"]);
        assert_eq!(used, full.len());
        assert_eq!(json_line(&lines).unwrap(), "{\"domains\":[]}");
        let (lines, _) = answer("help\r\nbulkhead> ", "help").unwrap();
        assert!(lines.is_empty());
        assert!(json_line(&lines).is_err());
    }

    /// A log line while the command was typed: the console drew the input line again, whole
    /// or in part (the rest of the typing echoed after it); the answer is what follows it.
    #[test]
    fn answer_skips_the_input_line_drawn_again_after_a_log_line() {
        let cmd = "show memory json";
        let log = "[    0.388] WARN shed bmp: domain bmp over its hard quota";
        let text = format!("{cmd}\r\n{log}\r\nbulkhead> show mem");
        assert_eq!(answer(&text, cmd), None, "the input line is still being typed");
        let text = format!("{text}ory json\r\n{{\"domains\":[]}}\r\nbulkhead> ");
        let (lines, used) = answer(&text, cmd).unwrap();
        assert_eq!(lines, ["{\"domains\":[]}"]);
        assert_eq!(used, text.len());
        // The log line landed after Enter: the answer's lines include it, the end is the prompt.
        let text = format!("{cmd}\r\n{log}\r\n{{\"domains\":[]}}\r\nbulkhead> ");
        assert_eq!(answer(&text, cmd).unwrap().0, [log, "{\"domains\":[]}"]);
    }

    #[test]
    fn prompt_must_start_a_line() {
        assert_eq!(find_prompt("say bulkhead> \r\nbulkhead> ", 0), Some(16));
        assert_eq!(find_prompt("bulkhead> ", 0), Some(0));
        assert_eq!(find_prompt("x bulkhead> ", 0), None);
    }

    #[test]
    fn console_wakes_waiters_and_reports_close() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let console = Console::gather(reader, false);
        let deadline = Instant::now() + Duration::from_secs(5);
        let waiter = {
            let console = console.clone();
            thread::spawn(move || console.wait_for(0, deadline, |t| t.find("ready").map(|_| t.len())))
        };
        writer.write_all(b"not yet\n").unwrap();
        writer.write_all(b"ready\n").unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(14));
        drop(writer);
        assert_eq!(console.wait_for(0, deadline, |t| t.find("never")), Err(WaitEnd::Closed));
        let short = Instant::now() + Duration::from_millis(10);
        assert_eq!(console.wait_for(0, short, |_| None::<()>), Err(WaitEnd::Closed));
    }
}
