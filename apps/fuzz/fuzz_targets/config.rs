//! Any text as a configuration: a typed error with a line and a key, or a configuration whose
//! memory plan can be computed for any heap — never a panic.
#![no_main]

use bulkhead_apps::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::parse(text) {
        Ok(config) => {
            for heap in [1usize << 20, 64 << 20, 1 << 30] {
                let _ = config.memory_plan(heap);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
