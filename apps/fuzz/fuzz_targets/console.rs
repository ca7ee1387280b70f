//! Any line typed on the console parses into a command or a typed error that prints.
#![no_main]

use bulkhead_apps::console::Command;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    if let Err(e) = Command::parse(line) {
        let _ = e.to_string();
    }
});
