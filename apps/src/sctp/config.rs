//! `[sctp]` and `[[sctp.service]]`:
//!
//! ```toml
//! [sctp]
//! udp_port = 9899             # the UDP encapsulation port (RFC 6951), 1..=65535, default 9899
//! send_limit = "256KiB"       # per association, true bytes queued and in flight (default 256KiB)
//! receive_limit = "256KiB"    # per association, true bytes of reassembly and delivery (256KiB)
//! max_associations = 256      # per service, 1..=65535 (default 256)
//! rto_initial = "1s"          # RTO.Initial (RFC 9260 section 16: 1 s)
//! rto_min = "1s"              # RTO.Min (1 s); rto_min <= rto_initial <= rto_max
//! rto_max = "60s"             # RTO.Max (60 s)
//! path_max_retrans = 5        # Path.Max.Retrans, 0..=255 (5): timeouts before a path is inactive
//! association_max_retrans = 10 # Association.Max.Retrans, 1..=255 (10): before the association ends
//! heartbeat_interval = "30s"  # HB.interval (30 s)
//!
//! [[sctp.service]]            # zero or more; none at all: the default three below
//! port = 7                    # the SCTP port, 1..=65535, each port at most once
//! kind = "echo"               # "echo", "discard" or "sink"
//! ```
//!
//! Without `[[sctp.service]]` (and without `[sctp]` at all) the appliance serves echo on 7,
//! discard on 9 and sink on 5001, on every configured address, over both transports. A limit
//! must hold at least two full-sized chunks (what `bulkhead_sctp`'s `Config::validate` asks).
//! Durations are integer seconds or strings with a unit ("200ms", "2s"). The protocol
//! parameters default to RFC 9260's values; smaller ones make a multi-homed association fail
//! over sooner (it takes about `path_max_retrans + 1` timeouts of at least `rto_min`).

use alloc::vec;
use alloc::vec::Vec;

use bulkhead_sctp::association::rto::RtoConfig;
use bulkhead_sctp::endpoint::{Config as EndpointConfig, ConfigError as EndpointConfigError};

use crate::config::{ConfigError, ConfigErrorKind, Table};
use crate::time::Duration;

/// The encapsulation port of RFC 6951.
pub const DEFAULT_UDP_PORT: u16 = 9899;
pub const DEFAULT_LIMIT: usize = 256 * 1024;
pub const DEFAULT_MAX_ASSOCIATIONS: usize = 256;
/// Services at most (each is one endpoint).
pub const MAX_SERVICES: usize = 16;

/// What a service does with the messages it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// Each message goes back on its stream, with its PPID and ordering.
    Echo,
    /// Read and dropped.
    Discard,
    /// Read and counted; its reader can be paused from the console (`sctp pause PORT`).
    Sink,
}

impl ServiceKind {
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Echo => "echo",
            ServiceKind::Discard => "discard",
            ServiceKind::Sink => "sink",
        }
    }

    fn from_name(name: &str) -> Option<ServiceKind> {
        [ServiceKind::Echo, ServiceKind::Discard, ServiceKind::Sink].into_iter().find(|k| k.name() == name)
    }
}

/// One `[[sctp.service]]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Service {
    pub port: u16,
    pub kind: ServiceKind,
}

/// `[sctp]` and its services.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SctpConfig {
    pub services: Vec<Service>,
    pub udp_port: u16,
    /// Per association, in true bytes.
    pub send_limit: usize,
    pub receive_limit: usize,
    /// Per service (endpoint).
    pub max_associations: usize,
    /// RTO.Initial, RTO.Min, RTO.Max.
    pub rto: RtoConfig,
    /// Path.Max.Retrans and Association.Max.Retrans.
    pub path_max_retrans: u32,
    pub association_max_retrans: u32,
    /// HB.interval.
    pub heartbeat_interval: Duration,
    /// The largest IP packet sent before path MTU discovery says less: the smallest MTU of
    /// the addressed interfaces (from `[[interface]]`, not a key of `[sctp]`).
    pub mtu: u16,
}

impl Default for SctpConfig {
    fn default() -> Self {
        let rfc = c_endpoint_probe();
        SctpConfig {
            services: default_services(),
            udp_port: DEFAULT_UDP_PORT,
            send_limit: DEFAULT_LIMIT,
            receive_limit: DEFAULT_LIMIT,
            max_associations: DEFAULT_MAX_ASSOCIATIONS,
            rto: rfc.rto,
            path_max_retrans: rfc.path_max_retrans,
            association_max_retrans: rfc.association_max_retrans,
            heartbeat_interval: rfc.heartbeat_interval,
            mtu: rfc.mtu,
        }
    }
}

fn default_services() -> Vec<Service> {
    vec![
        Service { port: 7, kind: ServiceKind::Echo },
        Service { port: 9, kind: ServiceKind::Discard },
        Service { port: 5001, kind: ServiceKind::Sink },
    ]
}

/// The allocator's true cost of a block of `n` bytes (8-byte aligned, as `Vec<u8>` and the
/// core's chunk structs are at most).
pub fn footprint(n: usize) -> usize {
    bulkhead_mem::block_footprint(n, 8)
}

impl SctpConfig {
    /// The endpoint configuration for the service on `port`.
    pub fn endpoint(&self, port: u16) -> EndpointConfig {
        let mut c = EndpointConfig::new(port, footprint);
        c.send_limit = self.send_limit;
        c.receive_limit = self.receive_limit;
        c.max_associations = self.max_associations;
        c.rto = self.rto;
        c.path_max_retrans = self.path_max_retrans;
        c.association_max_retrans = self.association_max_retrans;
        c.heartbeat_interval = self.heartbeat_interval;
        c.mtu = self.mtu;
        c
    }

    /// Reads `[sctp]`.
    pub(crate) fn parse(t: &Table<'_, '_>) -> Result<SctpConfig, ConfigError> {
        t.check_keys(&[
            "service",
            "udp_port",
            "send_limit",
            "receive_limit",
            "max_associations",
            "rto_initial",
            "rto_min",
            "rto_max",
            "path_max_retrans",
            "association_max_retrans",
            "heartbeat_interval",
        ])?;
        let mut c = SctpConfig::default();
        if let Some(port) = port_opt(t, "udp_port")? {
            c.udp_port = port;
        }
        for (key, slot) in [("send_limit", &mut c.send_limit), ("receive_limit", &mut c.receive_limit)] {
            if let Some((bytes, span)) = t.size_opt(key)? {
                let mut probe = c_endpoint_probe();
                probe.send_limit = bytes;
                if let Err(EndpointConfigError::LimitTooSmall { .. }) = probe.validate() {
                    return Err(t.err_at(
                        span.clone(),
                        key,
                        ConfigErrorKind::OutOfRange {
                            value: t.quote(&span),
                            allowed: "at least two full-sized chunks (8KiB will do)",
                        },
                    ));
                }
                if bytes > MAX_LIMIT {
                    return Err(t.err_at(
                        span.clone(),
                        key,
                        ConfigErrorKind::OutOfRange { value: t.quote(&span), allowed: "at most 1GiB" },
                    ));
                }
                *slot = bytes;
            }
        }
        if let Some((n, span)) = t.int_opt("max_associations")? {
            c.max_associations = match u16::try_from(n) {
                Ok(n) if n > 0 => usize::from(n),
                _ => {
                    return Err(t.err_at(
                        span.clone(),
                        "max_associations",
                        ConfigErrorKind::OutOfRange { value: t.quote(&span), allowed: "1..=65535" },
                    ))
                }
            };
        }
        for (key, slot) in
            [("rto_initial", &mut c.rto.initial), ("rto_min", &mut c.rto.min), ("rto_max", &mut c.rto.max)]
        {
            if let Some(d) = t.duration_opt(key)? {
                *slot = d;
            }
        }
        let r = &c.rto;
        if r.min > r.max || r.initial < r.min || r.initial > r.max {
            // Reported at the first of the three keys given.
            let key = ["rto_min", "rto_initial", "rto_max"].into_iter().find(|k| t.get(k).is_some());
            let span = key.and_then(|k| t.get(k)).map_or(0..0, |v| v.span());
            return Err(t.err_at(
                span.clone(),
                key.unwrap_or(""),
                ConfigErrorKind::OutOfRange {
                    value: t.quote(&span),
                    allowed: "rto_min <= rto_initial <= rto_max",
                },
            ));
        }
        for (key, slot, low) in [
            ("path_max_retrans", &mut c.path_max_retrans, 0),
            ("association_max_retrans", &mut c.association_max_retrans, 1),
        ] {
            if let Some((n, span)) = t.int_opt(key)? {
                *slot = match u8::try_from(n) {
                    Ok(n) if n >= low => u32::from(n),
                    _ => {
                        let allowed = if low == 0 { "0..=255" } else { "1..=255" };
                        return Err(t.err_at(
                            span.clone(),
                            key,
                            ConfigErrorKind::OutOfRange { value: t.quote(&span), allowed },
                        ));
                    }
                };
            }
        }
        if let Some(d) = t.duration_opt("heartbeat_interval")? {
            c.heartbeat_interval = d;
        }
        let tables = t.array_of_tables("service")?;
        if t.get("service").is_some() {
            c.services.clear();
        }
        for s in &tables {
            s.check_keys(&["port", "kind"])?;
            let Some(port) = port_opt(s, "port")? else {
                // `port` is absent: `str_req` reports it missing, at the table's line.
                return Err(s
                    .str_req("port")
                    .err()
                    .unwrap_or_else(|| s.err_at(0..0, "port", ConfigErrorKind::MissingKey)));
            };
            if let Some(span) = s.get("port").map(|v| v.span()) {
                if c.services.iter().any(|x| x.port == port) {
                    return Err(s.err_at(
                        span.clone(),
                        "port",
                        ConfigErrorKind::OutOfRange {
                            value: s.quote(&span),
                            allowed: "a port no other service uses",
                        },
                    ));
                }
            }
            let (name, span) = s.str_req("kind")?;
            let Some(kind) = ServiceKind::from_name(name) else {
                return Err(s.err_at(
                    span.clone(),
                    "kind",
                    ConfigErrorKind::OutOfRange {
                        value: s.quote(&span),
                        allowed: "\"echo\", \"discard\" or \"sink\"",
                    },
                ));
            };
            if c.services.len() == MAX_SERVICES {
                return Err(s.err_at(
                    span,
                    "",
                    ConfigErrorKind::OutOfRange { value: "one more".into(), allowed: "at most 16 services" },
                ));
            }
            c.services.push(Service { port, kind });
        }
        if c.services.is_empty() && t.get("service").is_none() {
            c.services = default_services();
        }
        Ok(c)
    }
}

/// The most a per-association limit may be.
const MAX_LIMIT: usize = 1 << 30;

fn c_endpoint_probe() -> EndpointConfig {
    EndpointConfig::new(1, footprint)
}

fn port_opt(t: &Table<'_, '_>, key: &str) -> Result<Option<u16>, ConfigError> {
    match t.int_opt(key)? {
        None => Ok(None),
        Some((n, span)) => match u16::try_from(n) {
            Ok(p) if p > 0 => Ok(Some(p)),
            _ => Err(t.err_at(
                span.clone(),
                key,
                ConfigErrorKind::OutOfRange { value: t.quote(&span), allowed: "1..=65535" },
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::config::Config;
    use std::string::ToString;

    fn sctp(text: &str) -> Result<SctpConfig, ConfigError> {
        Config::parse(text).map(|c| c.sctp)
    }

    #[test]
    fn no_section_serves_the_default_three() {
        let c = sctp("").unwrap();
        assert_eq!(c, SctpConfig::default());
        let ports: Vec<(u16, ServiceKind)> = c.services.iter().map(|s| (s.port, s.kind)).collect();
        assert_eq!(ports, [(7, ServiceKind::Echo), (9, ServiceKind::Discard), (5001, ServiceKind::Sink)]);
        assert_eq!(c.udp_port, 9899);
        assert_eq!(Config::builtin_default().sctp, c);
    }

    #[test]
    fn services_and_limits_are_read() {
        let c = sctp(
            "[sctp]\nudp_port = 9900\nsend_limit = \"64KiB\"\nreceive_limit = 100000\nmax_associations = 4\n\
             [[sctp.service]]\nport = 5001\nkind = \"sink\"\n[[sctp.service]]\nport = 17\nkind = \"echo\"\n",
        )
        .unwrap();
        assert_eq!(c.udp_port, 9900);
        assert_eq!((c.send_limit, c.receive_limit, c.max_associations), (65536, 100_000, 4));
        assert_eq!(
            c.services,
            [Service { port: 5001, kind: ServiceKind::Sink }, Service { port: 17, kind: ServiceKind::Echo }]
        );
        let e = c.endpoint(17);
        assert_eq!(
            (e.local_port, e.send_limit, e.receive_limit, e.max_associations),
            (17, 65536, 100_000, 4)
        );
        assert_eq!(e.validate(), Ok(()));
        // The protocol parameters: RFC 9260's by default, each configurable.
        assert_eq!(e.rto, RtoConfig::default());
        assert_eq!((e.path_max_retrans, e.association_max_retrans), (5, 10));
        assert_eq!(e.heartbeat_interval, Duration::from_secs(30));
        let c = sctp(
            "[sctp]\nrto_initial = \"300ms\"\nrto_min = \"100ms\"\nrto_max = 2\npath_max_retrans = 1\n\
             association_max_retrans = 20\nheartbeat_interval = \"500ms\"\n",
        )
        .unwrap();
        let e = c.endpoint(7);
        assert_eq!(
            e.rto,
            RtoConfig {
                initial: Duration::from_millis(300),
                min: Duration::from_millis(100),
                max: Duration::from_secs(2)
            }
        );
        assert_eq!((e.path_max_retrans, e.association_max_retrans), (1, 20));
        assert_eq!(e.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(e.validate(), Ok(()));
        // A section without services keeps the default three.
        assert_eq!(sctp("[sctp]\nudp_port = 1\n").unwrap().services, default_services());
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let cases: [(&str, usize, &str, &str); 14] = [
            ("[sctp]\nrto_min = \"2s\"\n", 2, "sctp.rto_min", "rto_min <= rto_initial <= rto_max"),
            ("[sctp]\nrto_initial = \"1s\"\nrto_max = \"500ms\"\n", 2, "sctp.rto_initial", "rto_max"),
            ("[sctp]\nrto_min = \"0ms\"\n", 2, "sctp.rto_min", "more than 0"),
            ("[sctp]\nrto_max = \"soon\"\n", 2, "sctp.rto_max", "soon"),
            ("[sctp]\npath_max_retrans = 256\n", 2, "sctp.path_max_retrans", "0..=255"),
            ("[sctp]\nassociation_max_retrans = 0\n", 2, "sctp.association_max_retrans", "1..=255"),
            ("[sctp]\nudp_port = 0\n", 2, "sctp.udp_port", "1..=65535"),
            ("[sctp]\nudp_port = 70000\n", 2, "sctp.udp_port", "1..=65535"),
            ("[sctp]\nsend_limit = \"1KiB\"\n", 2, "sctp.send_limit", "two full-sized chunks"),
            ("[sctp]\nreceive_limit = \"2GiB\"\n", 2, "sctp.receive_limit", "at most 1GiB"),
            ("[sctp]\nmax_associations = 0\n", 2, "sctp.max_associations", "1..=65535"),
            ("[sctp]\nbogus = 1\n", 2, "sctp.bogus", "unknown key"),
            ("[[sctp.service]]\nport = 7\nkind = \"chargen\"\n", 3, "sctp.service[0].kind", "\"chargen\""),
            (
                "[[sctp.service]]\nport = 7\nkind = \"echo\"\n[[sctp.service]]\nport = 7\nkind = \"sink\"\n",
                5,
                "sctp.service[1].port",
                "no other service",
            ),
        ];
        for (text, line, key, says) in cases {
            let e = sctp(text).unwrap_err();
            assert_eq!((e.line, e.key.as_str()), (line, key), "{text}: {e}");
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
        let e = sctp("[[sctp.service]]\nkind = \"echo\"\n").unwrap_err();
        assert_eq!((e.key.as_str(), &e.kind), ("sctp.service[0].port", &ConfigErrorKind::MissingKey));
        let e = sctp("[[sctp.service]]\nport = 7\n").unwrap_err();
        assert_eq!((e.key.as_str(), &e.kind), ("sctp.service[0].kind", &ConfigErrorKind::MissingKey));
        let e = sctp("[[sctp.service]]\nport = \"7\"\nkind = \"echo\"\n").unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::WrongType { .. }), "{e}");
    }
}
