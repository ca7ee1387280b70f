//! A constant UDP stream with sequence numbers, and its receiver: the traffic of the TMM seed
//! (a syslog-like stream that starts before the appliance does).
//!
//! ```text
//! udp-stream send    --to IP:PORT   --rate PPS --seconds S [--ports N] [--size BYTES]
//!                                                              prints: sent=N errors=E start_us=T
//! udp-stream receive --bind IP:PORT --seconds S                prints: received=N first=F last=L missing=M duplicates=D gaps=A-B,...
//! ```
//! With `--ports N` the destination port cycles through N ports from PORT on: N flows (the flood
//! of new flows). `missing` counts the sequence numbers between the first and the last received that never
//! arrived: after the first ARP exchange, a router must lose none.

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("send") => send(&args[1..]),
        Some("receive") => receive(&args[1..]),
        _ => Err(
            "usage: udp-stream send --to IP:PORT --rate PPS --seconds S | receive --bind IP:PORT --seconds S"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp-stream: {e}");
            ExitCode::FAILURE
        }
    }
}

fn option<'a>(args: &'a [String], name: &str) -> Result<&'a str, String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
        .ok_or_else(|| format!("{name} is required"))
}

fn number(args: &[String], name: &str) -> Result<u64, String> {
    option(args, name)?.parse().map_err(|e| format!("{name}: {e}"))
}

fn send(args: &[String]) -> Result<(), String> {
    let to: SocketAddr = option(args, "--to")?.parse().map_err(|e| format!("--to: {e}"))?;
    let rate = number(args, "--rate")?.max(1);
    let seconds = number(args, "--seconds")?;
    let ports = option(args, "--ports")
        .ok()
        .map(str::parse::<u64>)
        .transpose()
        .map_err(|e| format!("--ports: {e}"))?;
    let size = option(args, "--size")
        .ok()
        .map(str::parse::<usize>)
        .transpose()
        .map_err(|e| format!("--size: {e}"))?;
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    let start = Instant::now();
    let start_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    let total = rate * seconds;
    let (mut sent, mut errors) = (0u64, 0u64);
    for seq in 0..total {
        let due = start + Duration::from_nanos(seq * 1_000_000_000 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut message = format!("<13>bulkhead-seed: message seq={seq:010}");
        if let Some(size) = size {
            // Padded in front so that the sequence number stays at the end.
            message = format!("{}{message}", " ".repeat(size.saturating_sub(message.len())));
        }
        let mut target = to;
        if let Some(n) = ports {
            target.set_port(to.port().wrapping_add((seq % n.max(1)) as u16));
        }
        match socket.send_to(message.as_bytes(), target) {
            Ok(_) => sent += 1,
            Err(_) => errors += 1,
        }
    }
    println!("sent={sent} errors={errors} start_us={start_us}");
    Ok(())
}

fn receive(args: &[String]) -> Result<(), String> {
    let bind: SocketAddr = option(args, "--bind")?.parse().map_err(|e| format!("--bind: {e}"))?;
    let seconds = number(args, "--seconds")?;
    let socket = UdpSocket::bind(bind).map_err(|e| format!("bind {bind}: {e}"))?;
    socket.set_read_timeout(Some(Duration::from_millis(100))).map_err(|e| e.to_string())?;
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut seen = HashSet::new();
    let (mut received, mut duplicates) = (0u64, 0u64);
    let mut buffer = [0u8; 2048];
    while Instant::now() < end {
        let Ok(len) = socket.recv(&mut buffer) else { continue };
        let Some(seq) = parse_seq(&buffer[..len]) else { continue };
        received += 1;
        if !seen.insert(seq) {
            duplicates += 1;
        }
    }
    let first = seen.iter().min().copied();
    let last = seen.iter().max().copied();
    let missing = match (first, last) {
        (Some(f), Some(l)) => (l - f + 1) - seen.len() as u64,
        _ => 0,
    };
    // The first few gaps, as ranges, to tell a lost ARP exchange from a lossy path.
    let mut gaps = Vec::new();
    if let (Some(f), Some(l)) = (first, last) {
        let mut seq = f;
        while seq <= l && gaps.len() < 5 {
            if !seen.contains(&seq) {
                let start = seq;
                while seq <= l && !seen.contains(&seq) {
                    seq += 1;
                }
                gaps.push(format!("{start}-{}", seq - 1));
            }
            seq += 1;
        }
    }
    println!(
        "received={received} first={} last={} missing={missing} duplicates={duplicates} gaps={}",
        first.map_or(-1, |f| f as i64),
        last.map_or(-1, |l| l as i64),
        if gaps.is_empty() { "none".to_string() } else { gaps.join(",") }
    );
    Ok(())
}

fn parse_seq(datagram: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(datagram).ok()?;
    text.rsplit("seq=").next()?.trim().parse().ok()
}
