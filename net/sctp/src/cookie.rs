//! The State Cookie (RFC 9260 sections 5.1.3 and 5.1.5): everything the endpoint needs to
//! create an association, carried by the peer from our INIT ACK to its COOKIE ECHO, so that
//! no state is kept before the handshake completes.
//!
//! The cookie is signed with HMAC-SHA256 under a secret drawn from the caller's RNG. The
//! secret is rotated every [`CookieKeys::rotate_every`]; the previous secret is kept so that a
//! cookie issued just before a rotation still validates. A cookie older than its lifetime is
//! stale (answered with an ERROR "Stale Cookie Error", 5.1.5 step 3).
//!
//! Layout (ours alone, the peer treats it as opaque), all big-endian:
//! `created(8) local_tag(4) peer_tag(4) local_tsn(4) peer_tsn(4) peer_rwnd(4) out(2) in(2)
//! local_tie(4) peer_tie(4) local_port(2) peer_port(2) transport(1) udp_port(2)
//! n_addrs(1) addrs(4 * n) mac(32)`.

use alloc::vec::Vec;
use core::net::Ipv4Addr;

use bulkhead_base::rand_core::RngCore;
use bulkhead_base::time::{Duration, Instant};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::endpoint::Transport;

/// Peer addresses carried in a cookie at most (and kept per association).
pub const MAX_PEER_ADDRS: usize = 8;
const MAC_LEN: usize = 32;
const FIXED_LEN: usize = 8 + 4 * 5 + 2 * 2 + 4 * 2 + 2 * 2 + 1 + 2 + 1;

/// The association parameters a cookie carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateCookie {
    pub created: Instant,
    pub local_tag: u32,
    pub peer_tag: u32,
    pub local_tsn: u32,
    pub peer_tsn: u32,
    pub peer_rwnd: u32,
    pub outbound_streams: u16,
    pub inbound_streams: u16,
    /// Tie-Tags (5.2.1, 5.2.2): zero unless the cookie answers an INIT for an existing
    /// association.
    pub local_tie_tag: u32,
    pub peer_tie_tag: u32,
    pub local_port: u16,
    pub peer_port: u16,
    pub transport: Transport,
    pub peer_addrs: Vec<Ipv4Addr>,
}

/// Why a COOKIE ECHO was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieError {
    /// Too short, or its length does not match its address count.
    Malformed,
    /// The MAC matches neither the current nor the previous secret.
    BadSignature,
    /// Valid but older than its lifetime by `by`; `peer_tag` is the tag to answer with.
    Stale { by: Duration, peer_tag: u32 },
}

/// The signing secrets: the current one and the one before the last rotation.
pub struct CookieKeys {
    current: [u8; 32],
    previous: Option<[u8; 32]>,
    rotated_at: Instant,
    /// How often the secret is replaced.
    pub rotate_every: Duration,
    /// How long a cookie is valid (Valid.Cookie.Life, RFC 9260: 60 s).
    pub lifetime: Duration,
}

impl core::fmt::Debug for CookieKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CookieKeys").field("rotated_at", &self.rotated_at).finish_non_exhaustive()
    }
}

impl CookieKeys {
    pub fn new(now: Instant, rng: &mut dyn RngCore, rotate_every: Duration, lifetime: Duration) -> Self {
        let mut current = [0u8; 32];
        rng.fill_bytes(&mut current);
        CookieKeys { current, previous: None, rotated_at: now, rotate_every, lifetime }
    }

    /// Replace the secret if it is due; the old one stays valid for one more period.
    pub fn maybe_rotate(&mut self, now: Instant, rng: &mut dyn RngCore) {
        if now.saturating_since(self.rotated_at) >= self.rotate_every {
            let mut next = [0u8; 32];
            rng.fill_bytes(&mut next);
            self.previous = Some(core::mem::replace(&mut self.current, next));
            self.rotated_at = now;
        }
    }

    /// The next rotation.
    pub fn rotate_at(&self) -> Instant {
        self.rotated_at + self.rotate_every
    }

    /// The signed cookie bytes.
    pub fn sign(&self, cookie: &StateCookie) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED_LEN + 4 * cookie.peer_addrs.len() + MAC_LEN);
        out.extend_from_slice(&cookie.created.total_micros().to_be_bytes());
        for v in [cookie.local_tag, cookie.peer_tag, cookie.local_tsn, cookie.peer_tsn, cookie.peer_rwnd] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&cookie.outbound_streams.to_be_bytes());
        out.extend_from_slice(&cookie.inbound_streams.to_be_bytes());
        out.extend_from_slice(&cookie.local_tie_tag.to_be_bytes());
        out.extend_from_slice(&cookie.peer_tie_tag.to_be_bytes());
        out.extend_from_slice(&cookie.local_port.to_be_bytes());
        out.extend_from_slice(&cookie.peer_port.to_be_bytes());
        let (kind, port) = match cookie.transport {
            Transport::Ip => (0u8, 0u16),
            Transport::Udp { peer_port } => (1, peer_port),
        };
        out.push(kind);
        out.extend_from_slice(&port.to_be_bytes());
        let addrs = &cookie.peer_addrs[..cookie.peer_addrs.len().min(MAX_PEER_ADDRS)];
        out.push(addrs.len() as u8);
        for a in addrs {
            out.extend_from_slice(&a.octets());
        }
        let mac = mac(&self.current, &out);
        out.extend_from_slice(&mac);
        out
    }

    /// Check the signature and the lifetime, then decode.
    pub fn verify(&self, now: Instant, bytes: &[u8]) -> Result<StateCookie, CookieError> {
        if bytes.len() < FIXED_LEN + MAC_LEN {
            return Err(CookieError::Malformed);
        }
        let (body, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let ok = verify_mac(&self.current, body, tag)
            || self.previous.as_ref().is_some_and(|p| verify_mac(p, body, tag));
        if !ok {
            return Err(CookieError::BadSignature);
        }
        let cookie = decode(body).ok_or(CookieError::Malformed)?;
        let age = now.saturating_since(cookie.created);
        if age > self.lifetime {
            let by = Duration::from_micros(age.total_micros() - self.lifetime.total_micros());
            return Err(CookieError::Stale { by, peer_tag: cookie.peer_tag });
        }
        Ok(cookie)
    }
}

fn mac(key: &[u8; 32], body: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
    m.update(body);
    m.finalize().into_bytes().into()
}

fn verify_mac(key: &[u8; 32], body: &[u8], tag: &[u8]) -> bool {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac());
    m.update(body);
    m.verify_slice(tag).is_ok()
}

/// HMAC takes a key of any length; `new_from_slice` cannot fail for it.
fn unreachable_hmac() -> Hmac<Sha256> {
    unreachable!("HMAC accepts keys of every length")
}

/// A cursor over trusted-length bytes that returns `None` instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_be_bytes)
    }
}

fn decode(body: &[u8]) -> Option<StateCookie> {
    let mut r = Reader(body);
    let created = Instant::from_micros(r.u64()?);
    let (local_tag, peer_tag, local_tsn, peer_tsn, peer_rwnd) =
        (r.u32()?, r.u32()?, r.u32()?, r.u32()?, r.u32()?);
    let (outbound_streams, inbound_streams) = (r.u16()?, r.u16()?);
    let (local_tie_tag, peer_tie_tag) = (r.u32()?, r.u32()?);
    let (local_port, peer_port) = (r.u16()?, r.u16()?);
    let transport = match (r.u8()?, r.u16()?) {
        (0, _) => Transport::Ip,
        (1, peer_port) => Transport::Udp { peer_port },
        _ => return None,
    };
    let n = usize::from(r.u8()?);
    if n > MAX_PEER_ADDRS || r.0.len() != 4 * n {
        return None;
    }
    let mut peer_addrs = Vec::with_capacity(n);
    for _ in 0..n {
        peer_addrs.push(Ipv4Addr::from(r.take::<4>()?));
    }
    Some(StateCookie {
        created,
        local_tag,
        peer_tag,
        local_tsn,
        peer_tsn,
        peer_rwnd,
        outbound_streams,
        inbound_streams,
        local_tie_tag,
        peer_tie_tag,
        local_port,
        peer_port,
        transport,
        peer_addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use bulkhead_base::rand_core::SeedableRng;
    use bulkhead_base::rng::Csprng;

    fn sample(now: Instant) -> StateCookie {
        StateCookie {
            created: now,
            local_tag: 0x1122_3344,
            peer_tag: 0x5566_7788,
            local_tsn: 1,
            peer_tsn: 0xFFFF_FFFF,
            peer_rwnd: 65_536,
            outbound_streams: 10,
            inbound_streams: 4,
            local_tie_tag: 0,
            peer_tie_tag: 9,
            local_port: 5000,
            peer_port: 6000,
            transport: Transport::Udp { peer_port: 9899 },
            peer_addrs: vec![Ipv4Addr::new(192, 0, 2, 2), Ipv4Addr::new(198, 51, 100, 2)],
        }
    }

    fn keys(now: Instant, seed: u64) -> CookieKeys {
        CookieKeys::new(
            now,
            &mut Csprng::seed_from_u64(seed),
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn round_trip() {
        let k = keys(Instant::ZERO, 1);
        let c = sample(Instant::from_millis(5));
        let bytes = k.sign(&c);
        assert_eq!(k.verify(Instant::from_millis(10), &bytes), Ok(c));
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_refused() {
        let k = keys(Instant::ZERO, 1);
        let bytes = k.sign(&sample(Instant::ZERO));
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert_eq!(k.verify(Instant::ZERO, &b), Err(CookieError::BadSignature), "bit {i}");
        }
        for n in 0..bytes.len() {
            assert!(k.verify(Instant::ZERO, &bytes[..n]).is_err());
        }
        assert_eq!(keys(Instant::ZERO, 2).verify(Instant::ZERO, &bytes), Err(CookieError::BadSignature));
    }

    #[test]
    fn stale_after_lifetime_with_measure() {
        let k = keys(Instant::ZERO, 1);
        let bytes = k.sign(&sample(Instant::ZERO));
        assert!(k.verify(Instant::from_millis(60_000), &bytes).is_ok());
        assert_eq!(
            k.verify(Instant::from_millis(60_250), &bytes),
            Err(CookieError::Stale { by: Duration::from_millis(250), peer_tag: 0x5566_7788 })
        );
    }

    #[test]
    fn previous_secret_validates_after_one_rotation_not_two() {
        let mut rng = Csprng::seed_from_u64(3);
        let mut k =
            CookieKeys::new(Instant::ZERO, &mut rng, Duration::from_secs(10), Duration::from_secs(60));
        let c = sample(Instant::from_secs_for_test(9));
        let bytes = k.sign(&c);
        k.maybe_rotate(Instant::from_secs_for_test(5), &mut rng);
        k.maybe_rotate(Instant::from_secs_for_test(10), &mut rng);
        assert!(k.verify(Instant::from_secs_for_test(11), &bytes).is_ok());
        k.maybe_rotate(Instant::from_secs_for_test(20), &mut rng);
        assert_eq!(k.verify(Instant::from_secs_for_test(21), &bytes), Err(CookieError::BadSignature));
    }

    trait FromSecs {
        fn from_secs_for_test(s: u64) -> Instant;
    }
    impl FromSecs for Instant {
        fn from_secs_for_test(s: u64) -> Instant {
            Instant::from_millis(s * 1000)
        }
    }
}
