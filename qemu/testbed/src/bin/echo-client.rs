//! A client for the appliance's echo service (RFC 862), run inside a test's namespace.
//!
//! ```text
//! echo-client tcp ADDR PORT BYTES     send BYTES of a pattern, read them back, compare
//! echo-client udp ADDR PORT COUNT     COUNT datagrams of different sizes, each echoed
//! echo-client hold ADDR PORT SECS     connect, echo once, print "open", then wait up to SECS
//!                                     for the end: "reset", "closed" or "timeout"
//! echo-client probe-tcp ADDR PORT     "refused" (RST), "connected" or "timeout"
//! echo-client probe-udp ADDR PORT     "unreachable" (ICMP port unreachable), "answered", "timeout"
//! ```
//! Prints one result line and exits 0 when it could run; 1 with the error otherwise.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["tcp", addr, port, bytes] => tcp(addr, port, bytes),
        ["udp", addr, port, count] => udp(addr, port, count),
        ["hold", addr, port, secs] => hold(addr, port, secs),
        ["probe-tcp", addr, port] => probe_tcp(addr, port),
        ["probe-udp", addr, port] => probe_udp(addr, port),
        _ => Err("usage: echo-client tcp|udp|hold|probe-tcp|probe-udp ADDR PORT [N]".to_string()),
    };
    match result {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("echo-client: {e}");
            std::process::exit(1);
        }
    }
}

fn endpoint(addr: &str, port: &str) -> Result<SocketAddr, String> {
    format!("{addr}:{port}").parse().map_err(|e| format!("{addr}:{port}: {e}"))
}

fn number(text: &str) -> Result<usize, String> {
    text.parse().map_err(|e| format!("{text}: {e}"))
}

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)) as u8
}

fn tcp(addr: &str, port: &str, bytes: &str) -> Result<String, String> {
    let total = number(bytes)?;
    let target = endpoint(addr, port)?;
    let started = Instant::now();
    let stream =
        TcpStream::connect_timeout(&target, Duration::from_secs(5)).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(20))).map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let sender = std::thread::spawn(move || -> Result<(), String> {
        let data: Vec<u8> = (0..total).map(pattern).collect();
        writer.write_all(&data).map_err(|e| format!("send: {e}"))?;
        writer.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))
    });
    let mut reader = stream;
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    while got < total {
        let n = reader.read(&mut buf).map_err(|e| format!("receive after {got} bytes: {e}"))?;
        if n == 0 {
            return Err(format!("closed after {got} of {total} bytes"));
        }
        for (k, b) in buf[..n].iter().enumerate() {
            if *b != pattern(got + k) {
                return Err(format!("byte {} differs", got + k));
            }
        }
        got += n;
    }
    sender.join().map_err(|_| "sender panicked".to_string())??;
    Ok(format!("ok {got} bytes in {} ms", started.elapsed().as_millis()))
}

fn udp(addr: &str, port: &str, count: &str) -> Result<String, String> {
    let count = number(count)?;
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    socket.connect(endpoint(addr, port)?).map_err(|e| e.to_string())?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 2048];
    for i in 0..count {
        let len = 1 + (i * 97) % 1400;
        let data: Vec<u8> = (0..len).map(|k| pattern(k + i)).collect();
        let mut answered = false;
        for _try in 0..3 {
            socket.send(&data).map_err(|e| format!("send: {e}"))?;
            match socket.recv(&mut buf) {
                Ok(n) if buf[..n] == data[..] => {
                    answered = true;
                    break;
                }
                Ok(n) => return Err(format!("datagram {i}: {n} bytes back, not the {len} sent")),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
                Err(e) => return Err(format!("datagram {i}: {e}")),
            }
        }
        if !answered {
            return Err(format!("datagram {i} never answered"));
        }
    }
    Ok(format!("ok {count} datagrams"))
}

fn hold(addr: &str, port: &str, secs: &str) -> Result<String, String> {
    let limit = Duration::from_secs(number(secs)? as u64);
    let mut stream = TcpStream::connect_timeout(&endpoint(addr, port)?, Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    stream.write_all(b"hello").map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 5 {
        let n = stream.read(&mut buf[got..]).map_err(|e| format!("echo: {e}"))?;
        if n == 0 {
            return Err("closed before the echo".into());
        }
        got += n;
    }
    println!("open");
    std::io::stdout().flush().ok();
    let deadline = Instant::now() + limit;
    stream.set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return Ok("closed".into()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok("reset".into()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok("timeout".into())
}

fn probe_tcp(addr: &str, port: &str) -> Result<String, String> {
    match TcpStream::connect_timeout(&endpoint(addr, port)?, Duration::from_secs(3)) {
        Ok(_) => Ok("connected".into()),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok("refused".into()),
        Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => Ok("timeout".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn probe_udp(addr: &str, port: &str) -> Result<String, String> {
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    socket.connect(endpoint(addr, port)?).map_err(|e| e.to_string())?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    for _ in 0..3 {
        socket.send(b"anyone?").map_err(|e| e.to_string())?;
        match socket.recv(&mut buf) {
            Ok(_) => return Ok("answered".into()),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Ok("unreachable".into()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok("timeout".into())
}
