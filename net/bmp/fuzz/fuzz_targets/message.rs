//! The BMP decoder on arbitrary bytes: it must never panic, and whatever it accepts must be
//! written back by the encoder into bytes that decode to the same message.
#![no_main]

use bulkhead_bmp::packet::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((message, len)) = Message::parse_bytes(data) else { return };
    assert!(len <= data.len());
    let mut out = vec![0u8; message.buffer_len()];
    let written = message.emit(&mut out).expect("a parsed message emits");
    assert_eq!(written, out.len());
    let (again, again_len) = Message::parse_bytes(&out).expect("an emitted message parses");
    assert_eq!(again_len, out.len());
    assert_eq!(again, message);
});
