//! Sends raw Ethernet frames out of a network device: for the forwarder's bad-input tests.
//!
//! ```text
//! raw-frame DEVICE HEX [HEX ...]     each HEX is one whole frame (destination MAC first)
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((device, frames)) = args.split_first() else {
        eprintln!("usage: raw-frame DEVICE HEX [HEX ...]");
        return ExitCode::from(2);
    };
    match send(device, frames) {
        Ok(n) => {
            println!("sent={n}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("raw-frame: {e}");
            ExitCode::FAILURE
        }
    }
}

fn send(device: &str, frames: &[String]) -> Result<usize, String> {
    let name = std::ffi::CString::new(device).map_err(|e| e.to_string())?;
    // SAFETY: if_nametoindex reads a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(format!("no device {device}"));
    }
    // SAFETY: plain socket(2) call; the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()));
    }
    let mut sent = 0;
    for hex in frames {
        let frame = decode(hex)?;
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value before the fields are set.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_ifindex = index as i32;
        address.sll_halen = 6;
        address.sll_addr[..6].copy_from_slice(frame.get(..6).unwrap_or(&[0; 6]));
        // SAFETY: the buffer and the address are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            // SAFETY: fd is ours.
            unsafe { libc::close(fd) };
            return Err(format!("sendto: {}", std::io::Error::last_os_error()));
        }
        sent += 1;
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    Ok(sent)
}

fn decode(hex: &str) -> Result<Vec<u8>, String> {
    if !hex.len().is_multiple_of(2) {
        return Err(format!("odd hex length: {hex}"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| format!("{hex}: {e}")))
        .collect()
}
