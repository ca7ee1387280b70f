//! `bgp-feed`: one fast feeder of pre-encoded BGP UPDATEs, for the BGP bench (and tests).
//!
//! ```text
//! bgp-feed REMOTE LOCAL_AS REMOTE_AS FROM[,FROM..] PREFIXES [--distinct] [--hold SECS]
//! ```
//!
//! Opens one session per FROM address to REMOTE:179 (4-octet AS, IPv4 unicast), and once every
//! session is established sends each the same PREFIXES /24 prefixes (from 16.0.0.0 on) in
//! UPDATEs of at most 4096 octets, all encoded before the first is sent, then End-of-RIB. Every
//! session has its own AS_PATH (`LOCAL_AS 64512+k`); with `--distinct` every UPDATE also
//! carries its own MED, so the attribute sets are distinct. It reads and drops what the peer
//! sends (KEEPALIVEs), answers nothing but KEEPALIVEs, prints `established N` when the
//! sessions are up and one line when the last byte is written: `sent SESSIONS x PREFIXES prefixes, BYTES octets, in SECS s`. It then keeps the
//! sessions up for `--hold` seconds (default 600; the caller kills it when done).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        eprintln!(
            "usage: bgp-feed REMOTE LOCAL_AS REMOTE_AS FROM[,FROM..] PREFIXES [--distinct] [--hold SECS]"
        );
        std::process::exit(2);
    }
    let remote: Ipv4Addr = args[0].parse().expect("REMOTE");
    let local_as: u32 = args[1].parse().expect("LOCAL_AS");
    let remote_as: u32 = args[2].parse().expect("REMOTE_AS");
    let from: Vec<Ipv4Addr> = args[3].split(',').map(|a| a.parse().expect("FROM")).collect();
    let prefixes: u32 = args[4].parse().expect("PREFIXES");
    let distinct = args.iter().any(|a| a == "--distinct");
    let hold = args
        .iter()
        .position(|a| a == "--hold")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(600u64);

    let feeds: Vec<Vec<u8>> = from
        .iter()
        .enumerate()
        .map(|(k, addr)| encode(*addr, local_as, k as u32, prefixes, distinct))
        .collect();
    let mut sessions: Vec<TcpStream> =
        from.iter().map(|addr| open(*addr, remote, local_as, remote_as)).collect();
    // Drain what the peers send, so that their KEEPALIVEs never block them.
    for s in &sessions {
        let mut reader = s.try_clone().expect("clone");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
        });
    }
    println!("established {}", sessions.len());
    let _ = std::io::stdout().flush();
    let start = Instant::now();
    let writers: Vec<_> = sessions
        .iter_mut()
        .zip(feeds)
        .map(|(s, feed)| {
            let mut s = s.try_clone().expect("clone");
            std::thread::spawn(move || {
                s.write_all(&feed).expect("write feed");
                s.write_all(&message(2, &[0, 0, 0, 0])).expect("End-of-RIB");
                feed.len() + 23
            })
        })
        .collect();
    let bytes: usize = writers.into_iter().map(|w| w.join().expect("writer")).sum();
    println!(
        "sent {} x {} prefixes, {} octets, in {:.3} s",
        sessions.len(),
        prefixes,
        bytes,
        start.elapsed().as_secs_f64()
    );
    let _ = std::io::stdout().flush();
    let keepalive = message(4, &[]);
    let end = Instant::now() + Duration::from_secs(hold);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(20).min(end.saturating_duration_since(Instant::now())));
        for s in &mut sessions {
            let _ = s.write_all(&keepalive);
        }
    }
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

fn read_message(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 19];
    s.read_exact(&mut header).expect("read header");
    let len = usize::from(u16::from_be_bytes([header[16], header[17]]));
    let mut body = vec![0u8; len.saturating_sub(19)];
    s.read_exact(&mut body).expect("read body");
    (header[18], body)
}

/// Connects from `from`, exchanges OPENs and KEEPALIVEs.
fn open(from: Ipv4Addr, remote: Ipv4Addr, local_as: u32, remote_as: u32) -> TcpStream {
    let mut s = connect_from(from, SocketAddr::from((remote, 179)));
    s.set_nodelay(true).ok();
    let mut caps = vec![1, 4, 0, 1, 0, 1, 2, 0, 65, 4];
    caps.extend_from_slice(&local_as.to_be_bytes());
    let mut body = vec![4];
    body.extend_from_slice(&(if local_as > 0xffff { 23456u16 } else { local_as as u16 }).to_be_bytes());
    body.extend_from_slice(&90u16.to_be_bytes());
    body.extend_from_slice(&from.octets());
    body.push(caps.len() as u8 + 2);
    body.push(2);
    body.push(caps.len() as u8);
    body.extend_from_slice(&caps);
    s.write_all(&message(1, &body)).expect("OPEN");
    let _ = remote_as;
    loop {
        match read_message(&mut s) {
            (1, _) => s.write_all(&message(4, &[])).expect("KEEPALIVE"),
            (4, _) => return s,
            (3, body) => panic!("NOTIFICATION {:?} from {remote}", body.get(..2)),
            _ => {}
        }
    }
}

/// The UPDATEs of session `k`: `prefixes` /24s from 16.0.0.0, as few messages as fit 4096.
fn encode(next_hop: Ipv4Addr, local_as: u32, k: u32, prefixes: u32, distinct: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefixes as usize * 4 + prefixes as usize / 200 * 60);
    let attrs_of = |med: u32| {
        let mut a = vec![0x40, 1, 1, 0]; // ORIGIN IGP
        a.extend_from_slice(&[0x40, 2, 10, 2, 2]); // AS_PATH: one AS_SEQUENCE of 2
        a.extend_from_slice(&local_as.to_be_bytes());
        a.extend_from_slice(&(64512 + k).to_be_bytes());
        a.extend_from_slice(&[0x40, 3, 4]);
        a.extend_from_slice(&next_hop.octets());
        if distinct {
            a.extend_from_slice(&[0x80, 4, 4]);
            a.extend_from_slice(&med.to_be_bytes());
        }
        a
    };
    let mut i = 0u32;
    let mut n = 0u32;
    while i < prefixes {
        let attrs = attrs_of(n);
        let room = (4096 - 19 - 4 - attrs.len()) / 4;
        let take = (prefixes - i).min(room as u32);
        let mut body = vec![0, 0];
        body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        body.extend_from_slice(&attrs);
        for j in i..i + take {
            let net = (16u32 << 24) + (j << 8);
            body.push(24);
            body.extend_from_slice(&net.to_be_bytes()[..3]);
        }
        out.extend_from_slice(&message(2, &body));
        i += take;
        n += 1;
    }
    out
}

/// A TCP connection from `from` (any port) to `remote`: std cannot bind before connecting, so
/// through libc.
fn connect_from(from: Ipv4Addr, remote: SocketAddr) -> TcpStream {
    // SAFETY: socket() has no preconditions; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    let sin = |addr: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(addr.octets()) },
        sin_zero: [0; 8],
    };
    let local = sin(from, 0);
    let SocketAddr::V4(r) = remote else { panic!("IPv4 only") };
    let peer = sin(*r.ip(), r.port());
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `fd` is a socket we own; `local` is a valid sockaddr_in of `len` bytes.
    let bound = unsafe { libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) };
    assert_eq!(bound, 0, "bind {from}: {}", std::io::Error::last_os_error());
    // SAFETY: as above, with `peer`.
    let connected = unsafe { libc::connect(fd, (&peer as *const libc::sockaddr_in).cast(), len) };
    assert_eq!(connected, 0, "connect {remote} from {from}: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a connected socket nobody else owns; the stream takes it over.
    unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) }
}
