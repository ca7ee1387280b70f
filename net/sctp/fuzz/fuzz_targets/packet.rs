//! Parses an SCTP packet, walks every chunk and every parameter and cause inside, re-emits
//! what parsed and checks that it parses back the same, chunk by chunk and as a rebuilt packet.
#![no_main]

use bulkhead_sctp::wire::{
    CauseRepr, ChunkRepr, Chunks, Packet, PacketBuilder, PacketRepr, ParamRepr, WireError,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The checksum as received: whatever it is, verifying must not panic.
    if let Ok(packet) = Packet::new_checked(data) {
        let _ = PacketRepr::parse(&packet);
    }
    // Then with a correct checksum, so the fuzzer gets past it to the chunks.
    let mut bytes = data.to_vec();
    let Ok(mut packet) = Packet::new_checked(&mut bytes[..]) else { return };
    packet.fill_checksum();
    let packet = Packet::new_checked(&bytes[..]).expect("checked above");
    let header = PacketRepr::parse(&packet).expect("checksum just filled");

    let mut reprs = Vec::new();
    for chunk in packet.chunks() {
        let Ok(chunk) = chunk else { break };
        let _ = (chunk.chunk_type(), chunk.flags(), chunk.bytes(), chunk.action());
        let Ok(repr) = ChunkRepr::parse(&chunk) else { continue };
        match repr {
            ChunkRepr::Init(init) | ChunkRepr::InitAck(init) => {
                for param in init.params.iter() {
                    let mut out = vec![0u8; param.buffer_len()];
                    param.emit(&mut out).expect("a parsed parameter re-emits");
                    assert_eq!(ParamRepr::parse(&out), Ok(param));
                }
                let _ = init.state_cookie();
            }
            ChunkRepr::Abort { causes, .. } | ChunkRepr::Error { causes } => {
                for cause in causes.iter() {
                    let mut out = vec![0u8; cause.buffer_len()];
                    cause.emit(&mut out).expect("a parsed cause re-emits");
                    assert_eq!(CauseRepr::parse(&out), Ok(cause));
                }
            }
            ChunkRepr::Sack(sack) => {
                assert_eq!(sack.gap_blocks.count() * 4, sack.gap_blocks.wire_len());
                assert_eq!(sack.duplicate_tsns.count() * 4, sack.duplicate_tsns.wire_len());
            }
            _ => {}
        }
        let mut out = vec![0u8; repr.buffer_len()];
        let len = repr.emit(&mut out).expect("a parsed chunk re-emits");
        let again = Chunks::new(&out[..len]).next().expect("one chunk").expect("re-emitted chunk walks");
        assert_eq!(ChunkRepr::parse(&again), Ok(repr));
        reprs.push(repr);
    }

    // Rebuild the packet from what parsed, as far as the bundling rules allow.
    let mut out = vec![0u8; bytes.len() + 64];
    let mut builder = PacketBuilder::new(&mut out, &header, usize::MAX).expect("room for the header");
    let mut pushed = Vec::new();
    for repr in &reprs {
        match builder.push(repr) {
            Ok(_) => pushed.push(*repr),
            Err(WireError::NotBundleable { .. }) => {}
            Err(error) => panic!("{error:?} rebuilding {repr:?}"),
        }
    }
    let len = builder.finish();
    let rebuilt = Packet::new_checked(&out[..len]).expect("a built packet has a header");
    assert_eq!(PacketRepr::parse(&rebuilt), Ok(header));
    let back: Vec<_> = rebuilt
        .chunks()
        .map(|chunk| ChunkRepr::parse(&chunk.expect("built chunks walk")).expect("built chunks parse"))
        .collect();
    assert_eq!(back, pushed);
});
