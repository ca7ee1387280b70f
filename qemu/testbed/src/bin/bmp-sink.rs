//! `bmp-sink`: a BMP collector for the BMP bench: takes one session, counts what it carries.
//!
//! ```text
//! bmp-sink ADDRESS PORT PREFIXES
//! ```
//!
//! Listens on ADDRESS:PORT and prints `listening`; accepts one BMP session (RFC 7854) and prints
//! `accepted`; reads it whole, framing messages by their common header, and counts bytes,
//! messages, Route Monitoring messages and unique IPv4 prefixes announced in them (NLRI and
//! MP_REACH_NLRI of IPv4 unicast; a prefix seen twice counts once). When PREFIXES unique
//! prefixes have arrived it prints
//! `done prefixes=N messages=M route_monitoring=R bytes=B seconds=S` (bytes are the TCP payload
//! from the first byte up to and including the message that completed the count; seconds since
//! the accept), then keeps reading until the exporter closes or it is killed, so that the
//! exporter is never held up. If the session ends first it prints `closed ...` with the same
//! fields and exits 1; a message it cannot frame ends it with `error ...` and exit 1.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::process::ExitCode;
use std::time::Instant;

/// BMP common header: version (1), message length (4), message type (1).
const COMMON_HEADER: usize = 6;
/// The per-peer header that precedes the BGP message of a Route Monitoring message.
const PER_PEER_HEADER: usize = 42;
const BGP_HEADER: usize = 19;
const ROUTE_MONITORING: u8 = 0;
const BGP_UPDATE: u8 = 2;
const MP_REACH_NLRI: u8 = 14;
/// A BMP message longer than this is taken as a framing error (RFC 7854 sets no maximum; the
/// BGP messages inside are at most 65535 octets).
const MAX_MESSAGE: usize = 1 << 20;

/// Counts so far.
#[derive(Default)]
struct Counts {
    bytes: u64,
    messages: u64,
    route_monitoring: u64,
    prefixes: HashSet<u64>,
}

impl Counts {
    fn line(&self, word: &str, since: Instant) -> String {
        format!(
            "{word} prefixes={} messages={} route_monitoring={} bytes={} seconds={:.3}",
            self.prefixes.len(),
            self.messages,
            self.route_monitoring,
            self.bytes,
            since.elapsed().as_secs_f64()
        )
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(address), Some(port), Some(want)) = (
        args.first().and_then(|a| a.parse::<Ipv4Addr>().ok()),
        args.get(1).and_then(|p| p.parse::<u16>().ok()),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: bmp-sink ADDRESS PORT PREFIXES");
        return ExitCode::from(2);
    };
    let listener = match TcpListener::bind((address, port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bmp-sink: bind {address}:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    say("listening");
    let mut stream = match listener.accept() {
        Ok((s, _)) => s,
        Err(e) => {
            eprintln!("bmp-sink: accept: {e}");
            return ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    say("accepted");
    let mut counts = Counts::default();
    let mut pending: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut buf = vec![0u8; 1 << 16];
    let mut done = false;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("bmp-sink: read: {e}");
                break;
            }
        };
        if done {
            continue;
        }
        pending.extend_from_slice(buf.get(..n).unwrap_or_default());
        let mut at = 0;
        loop {
            let rest = pending.get(at..).unwrap_or_default();
            let framed = frame(rest).and_then(|len| match len.and_then(|len| rest.get(..len)) {
                Some(message) => count(message, &mut counts).map(|()| Some(message.len())),
                None => Ok(None),
            });
            match framed {
                Ok(Some(len)) => at += len,
                Ok(None) => break,
                Err(why) => {
                    say(&format!("error {why}; {}", counts.line("after", start)));
                    return ExitCode::FAILURE;
                }
            }
            if counts.prefixes.len() >= want {
                say(&counts.line("done", start));
                done = true;
                break;
            }
        }
        pending.drain(..at);
    }
    if done {
        return ExitCode::SUCCESS;
    }
    say(&counts.line("closed", start));
    ExitCode::FAILURE
}

fn say(line: &str) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

/// The length of the message at the start of `bytes` when it is all there, `None` while more
/// is needed; an error when its common header cannot be a BMP v3 message's.
fn frame(bytes: &[u8]) -> Result<Option<usize>, &'static str> {
    let Some(&[version, a, b, c, d, _]) = bytes.get(..COMMON_HEADER) else { return Ok(None) };
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    if version != 3 {
        return Err("not BMP version 3");
    }
    if !(COMMON_HEADER..=MAX_MESSAGE).contains(&len) {
        return Err("message length out of range");
    }
    Ok((bytes.len() >= len).then_some(len))
}

/// Counts one whole BMP message.
fn count(message: &[u8], counts: &mut Counts) -> Result<(), &'static str> {
    counts.bytes += message.len() as u64;
    counts.messages += 1;
    if message.get(5) != Some(&ROUTE_MONITORING) {
        return Ok(());
    }
    counts.route_monitoring += 1;
    let bgp = message.get(COMMON_HEADER + PER_PEER_HEADER..).ok_or("short Route Monitoring")?;
    if bgp.get(18) != Some(&BGP_UPDATE) {
        return Err("Route Monitoring without an UPDATE");
    }
    let body = bgp.get(BGP_HEADER..).ok_or("short UPDATE")?;
    let withdrawn = be16(body, 0)?;
    let attrs_at = 2 + withdrawn + 2;
    let attrs_len = be16(body, 2 + withdrawn)?;
    let attrs = body.get(attrs_at..attrs_at + attrs_len).ok_or("attributes past the end")?;
    let nlri = body.get(attrs_at + attrs_len..).ok_or("NLRI past the end")?;
    ipv4_prefixes(nlri, &mut counts.prefixes)?;
    let mut at = 0;
    while at < attrs.len() {
        let flags = *attrs.get(at).ok_or("attribute flags")?;
        let code = *attrs.get(at + 1).ok_or("attribute type")?;
        let (len, value_at) = if flags & 0x10 != 0 {
            (be16(attrs, at + 2)?, at + 4)
        } else {
            (usize::from(*attrs.get(at + 2).ok_or("attribute length")?), at + 3)
        };
        let value = attrs.get(value_at..value_at + len).ok_or("attribute past the end")?;
        if code == MP_REACH_NLRI && value.get(..3) == Some(&[0, 1, 1]) {
            let next_hop_len = usize::from(*value.get(3).ok_or("MP_REACH next hop")?);
            let nlri = value.get(4 + next_hop_len + 1..).ok_or("MP_REACH past the end")?;
            ipv4_prefixes(nlri, &mut counts.prefixes)?;
        }
        at = value_at + len;
    }
    Ok(())
}

/// Adds the IPv4 prefixes of an NLRI field (length in bits, then the significant octets).
fn ipv4_prefixes(mut nlri: &[u8], into: &mut HashSet<u64>) -> Result<(), &'static str> {
    while let Some((&bits, rest)) = nlri.split_first() {
        if bits > 32 {
            return Err("IPv4 prefix longer than 32 bits");
        }
        let octets = usize::from(bits).div_ceil(8);
        let significant = rest.get(..octets).ok_or("prefix past the end")?;
        let mut addr = [0u8; 4];
        addr[..octets].copy_from_slice(significant);
        into.insert(u64::from(bits) << 32 | u64::from(u32::from_be_bytes(addr)));
        nlri = rest.get(octets..).unwrap_or_default();
    }
    Ok(())
}

fn be16(bytes: &[u8], at: usize) -> Result<usize, &'static str> {
    match bytes.get(at..at + 2) {
        Some(&[a, b]) => Ok(usize::from(u16::from_be_bytes([a, b]))),
        _ => Err("field past the end"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Route Monitoring message around one UPDATE with `nlri`, and `mp_nlri` in an
    /// MP_REACH_NLRI of IPv4 unicast when given.
    fn route_monitoring(nlri: &[u8], mp_nlri: Option<&[u8]>) -> Vec<u8> {
        let mut attrs = vec![0x40, 1, 1, 0]; // ORIGIN IGP
        if let Some(mp) = mp_nlri {
            let mut value = vec![0, 1, 1, 4, 192, 0, 2, 2, 0];
            value.extend_from_slice(mp);
            attrs.extend_from_slice(&[0x90, MP_REACH_NLRI]);
            attrs.extend_from_slice(&(value.len() as u16).to_be_bytes());
            attrs.extend_from_slice(&value);
        }
        let mut body = vec![0, 0];
        body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        body.extend_from_slice(&attrs);
        body.extend_from_slice(nlri);
        let mut bgp = vec![0xff; 16];
        bgp.extend_from_slice(&((BGP_HEADER + body.len()) as u16).to_be_bytes());
        bgp.push(BGP_UPDATE);
        bgp.extend_from_slice(&body);
        let len = COMMON_HEADER + PER_PEER_HEADER + bgp.len();
        let mut m = vec![3];
        m.extend_from_slice(&(len as u32).to_be_bytes());
        m.push(ROUTE_MONITORING);
        m.extend_from_slice(&[0; PER_PEER_HEADER]);
        m.extend_from_slice(&bgp);
        m
    }

    #[test]
    fn counts_unique_prefixes_of_nlri_and_mp_reach() {
        let mut counts = Counts::default();
        // 16.0.0.0/24 and 16.0.1.0/24; then 16.0.1.0/24 again and 10.0.0.0/8 in MP_REACH.
        let first = route_monitoring(&[24, 16, 0, 0, 24, 16, 0, 1], None);
        let second = route_monitoring(&[], Some(&[24, 16, 0, 1, 8, 10]));
        assert_eq!(frame(&first), Ok(Some(first.len())));
        count(&first, &mut counts).unwrap();
        count(&second, &mut counts).unwrap();
        assert_eq!(counts.prefixes.len(), 3);
        assert_eq!((counts.messages, counts.route_monitoring), (2, 2));
        assert_eq!(counts.bytes, (first.len() + second.len()) as u64);
    }

    #[test]
    fn frames_whole_messages_and_refuses_bad_headers() {
        let m = route_monitoring(&[24, 16, 0, 0], None);
        assert_eq!(frame(&m[..m.len() - 1]), Ok(None));
        assert_eq!(frame(&m[..3]), Ok(None));
        let mut bad = m.clone();
        bad[0] = 2;
        assert_eq!(frame(&bad), Err("not BMP version 3"));
        let mut short = m.clone();
        short[1..5].copy_from_slice(&5u32.to_be_bytes());
        assert_eq!(frame(&short), Err("message length out of range"));
        // A prefix longer than 32 bits, and one cut short.
        let mut counts = Counts::default();
        assert!(count(&route_monitoring(&[33, 1, 2, 3, 4, 5], None), &mut counts).is_err());
        assert!(count(&route_monitoring(&[24, 16, 0], None), &mut counts).is_err());
    }
}
