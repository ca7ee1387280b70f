//! COM1: the console. Output through the `log` crate and `print!`-style writes; input is read
//! without blocking by the run loop. The UART raises IRQ 4 on received data so that a key press
//! wakes a sleeping appliance.

use crate::arch::{inb, outb};
use core::fmt::{self, Write};
use spin::Mutex;

const COM1: u16 = 0x3f8;
const DATA: u16 = COM1;
const INTERRUPT_ENABLE: u16 = COM1 + 1;
const FIFO_CONTROL: u16 = COM1 + 2;
const LINE_CONTROL: u16 = COM1 + 3;
const MODEM_CONTROL: u16 = COM1 + 4;
const LINE_STATUS: u16 = COM1 + 5;
const LSR_DATA_READY: u8 = 0x01;
const LSR_THR_EMPTY: u8 = 0x20;
/// Bytes the transmit FIFO takes once the holding register reports empty.
const TX_FIFO_DEPTH: usize = 16;

/// The longest prompt-and-input line kept for redrawing.
const MAX_INPUT_LINE: usize = 320;

pub struct Serial {
    initialised: bool,
    /// Whether the last byte written ended a line (log lines start on a fresh line).
    at_line_start: bool,
    /// What the operator sees on the input line (prompt and typed text): a log line that
    /// interrupts it is printed on a line of its own and the input line is drawn again below.
    input: [u8; MAX_INPUT_LINE],
    input_len: usize,
}

pub static CONSOLE: Mutex<Serial> =
    Mutex::new(Serial { initialised: false, at_line_start: true, input: [0; MAX_INPUT_LINE], input_len: 0 });

impl Serial {
    fn init(&mut self) {
        outb(INTERRUPT_ENABLE, 0x00);
        outb(LINE_CONTROL, 0x80); // DLAB
        outb(DATA, 0x01); // 115200 baud
        outb(INTERRUPT_ENABLE, 0x00);
        outb(LINE_CONTROL, 0x03); // 8N1
        outb(FIFO_CONTROL, 0xc7); // FIFO on, cleared, 14-byte threshold
        outb(MODEM_CONTROL, 0x0b); // DTR, RTS, OUT2 (routes the IRQ)
        outb(INTERRUPT_ENABLE, 0x01); // received-data interrupt
        self.initialised = true;
    }

    fn write_bytes(&mut self, bytes: &[u8]) {
        if let Some(&last) = bytes.last() {
            self.at_line_start = last == b'\n';
        }
        for chunk in bytes.chunks(TX_FIFO_DEPTH) {
            let mut spins = 0u32;
            while inb(LINE_STATUS) & LSR_THR_EMPTY == 0 && spins < 100_000 {
                spins += 1;
                core::hint::spin_loop();
            }
            for &b in chunk {
                outb(DATA, b);
            }
        }
    }

    /// One received byte, if any.
    pub fn read_byte(&mut self) -> Option<u8> {
        if inb(LINE_STATUS) & LSR_DATA_READY != 0 {
            Some(inb(DATA))
        } else {
            None
        }
    }
}

impl Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Terminals want CR LF.
        let mut rest = s.as_bytes();
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(pos);
            self.write_bytes(line);
            self.write_bytes(b"\r\n");
            rest = tail.get(1..).unwrap_or(&[]);
        }
        self.write_bytes(rest);
        Ok(())
    }
}

pub fn init() {
    CONSOLE.lock().init();
}

/// Writes formatted text to the console.
pub fn write_fmt(args: fmt::Arguments) {
    let _ = CONSOLE.lock().write_fmt(args);
}

/// Writes to the console even if the lock is held (panic path on a single core).
pub fn write_fmt_force(args: fmt::Arguments) {
    // SAFETY: only used when the system is going down; a torn line is acceptable there.
    unsafe { CONSOLE.force_unlock() };
    write_fmt(args);
}

/// Records the visible input line (empty while a command runs or prints).
pub fn set_input_line(parts: &[&str]) {
    let mut console = CONSOLE.lock();
    let mut len = 0;
    for part in parts {
        for &b in part.as_bytes() {
            if len < MAX_INPUT_LINE {
                console.input[len] = b;
                len += 1;
            }
        }
    }
    console.input_len = len;
}

pub fn read_byte() -> Option<u8> {
    CONSOLE.lock().read_byte()
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::serial::write_fmt(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::serial::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

/// The `log` backend: `[seconds.millis] LEVEL message` on the console.
struct ConsoleLogger;

static LOGGER: ConsoleLogger = ConsoleLogger;

impl log::Log for ConsoleLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Messages from dependencies below INFO are noise on a console.
        let ours = record.target().starts_with("bulkhead");
        if !ours && record.level() > log::Level::Warn {
            return;
        }
        let micros = crate::time::micros_since_boot();
        let level = match record.level() {
            log::Level::Error => "ERROR ",
            log::Level::Warn => "WARN ",
            _ => "",
        };
        let mut console = CONSOLE.lock();
        // A log line that arrives while the prompt (or a half-typed line) is shown starts on a
        // line of its own.
        let fresh = if console.at_line_start { "" } else { "\n" };
        let _ = console.write_fmt(format_args!(
            "{}[{:5}.{:03}] {}{}\n",
            fresh,
            micros / 1_000_000,
            (micros / 1000) % 1000,
            level,
            record.args()
        ));
        let (input, len) = (console.input, console.input_len);
        if let Some(line) = input.get(..len).filter(|l| !l.is_empty()) {
            console.write_bytes(line);
        }
    }

    fn flush(&self) {}
}

pub fn init_logger() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}
