//! Any bytes as a BGP message stream: frame them, parse each message, and check that what
//! parsed re-emits to bytes that parse back to the same value.
#![no_main]

use bulkhead_bgp::packet::attribute::SessionContext;
use bulkhead_bgp::packet::message::{
    Framer, Header, Message, MessageType, EXTENDED_MAX_LEN, HEADER_LEN, MAX_LEN,
};
use bulkhead_bgp::packet::update::Update;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else { return };
    let ctx = SessionContext { four_octet_as: mode & 1 != 0, external: mode & 2 != 0 };
    let max_len = if mode & 4 != 0 { EXTENDED_MAX_LEN } else { MAX_LEN };
    let mut framer = Framer::new(max_len);
    let mut rest = stream;
    loop {
        let taken = framer.feed(rest);
        rest = &rest[taken..];
        let mut any = false;
        while let Some(frame) = framer.next_message() {
            any = true;
            let Ok(bytes) = frame else { return };
            check(&bytes, ctx, max_len);
        }
        if rest.is_empty() || (!any && taken == 0) {
            break;
        }
    }
});

fn check(bytes: &[u8], ctx: SessionContext, max_len: usize) {
    let Ok(message) = Message::parse(bytes, ctx, max_len) else { return };
    // UPDATE: the RFC 7606 path too, and its corrected result must round-trip.
    if let Some(Ok(Header { kind: MessageType::Update, .. })) = Header::parse(bytes, max_len) {
        let parsed = Update::parse(&bytes[HEADER_LEN..], ctx).expect("Message::parse accepted it");
        assert_eq!(Message::Update(parsed.update.clone()), message);
        // The first-AS check (RFC 4271 6.3): an UPDATE that fails it announces nothing after.
        let mut checked = parsed.clone();
        if Update::check_first_as(&mut checked, 65001) {
            assert!(checked.update.announced().next().is_none());
            assert!(checked.update.attributes.is_none());
        }
    }
    // Re-encoding may grow (AS4_PATH for a 2-octet peer, Extended Length): too long is fine.
    let Ok(again) = message.to_bytes(ctx, EXTENDED_MAX_LEN) else { return };
    let back = Message::parse(&again, ctx, EXTENDED_MAX_LEN).expect("re-emitted message parses");
    assert_eq!(back, message);
}
