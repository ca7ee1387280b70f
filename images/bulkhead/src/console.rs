//! The serial console's line editor: echo, backspace, one bounded line at a time. What a line
//! means is decided by the command set (`bulkhead_apps::console`).

/// The longest command line kept; further characters are refused with a bell.
const MAX_LINE: usize = 256;
pub const PROMPT: &str = "bulkhead> ";

pub struct LineEditor {
    line: heapless::String<MAX_LINE>,
    last: u8,
}

/// What a received byte did.
pub enum Input<'a> {
    /// Nothing to do yet.
    Pending,
    /// Echo these bytes back.
    Echo(&'a str),
    /// A line is complete: take it with `take_line`.
    Line,
}

impl LineEditor {
    pub const fn new() -> LineEditor {
        LineEditor { line: heapless::String::new(), last: 0 }
    }

    /// The text typed so far on the current line.
    pub fn current(&self) -> &str {
        &self.line
    }

    /// The completed line; the editor starts a new one.
    pub fn take_line(&mut self) -> heapless::String<MAX_LINE> {
        core::mem::take(&mut self.line)
    }

    pub fn feed(&mut self, byte: u8) -> Input<'static> {
        let previous = core::mem::replace(&mut self.last, byte);
        match byte {
            b'\n' if previous == b'\r' => Input::Pending,
            b'\r' | b'\n' => Input::Line,
            0x08 | 0x7f => {
                if self.line.pop().is_some() {
                    Input::Echo("\x08 \x08")
                } else {
                    Input::Pending
                }
            }
            0x20..=0x7e => {
                if self.line.push(byte as char).is_ok() {
                    Input::Echo(printable(byte))
                } else {
                    Input::Echo("\x07")
                }
            }
            _ => Input::Pending,
        }
    }
}

/// The one-character string for a printable ASCII byte.
fn printable(byte: u8) -> &'static str {
    const ASCII: &str =
        " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";
    let index = usize::from(byte.saturating_sub(0x20));
    ASCII.get(index..index + 1).unwrap_or("?")
}

/// `core::fmt::Write` onto the serial console, for the command formatters.
pub struct ConsoleWriter;

impl core::fmt::Write for ConsoleWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        bulkhead_kernel::print!("{}", s);
        Ok(())
    }
}
