//! `[bmp]` and `[[bmp.collector]]`:
//!
//! ```toml
//! [bmp]
//! queue_limit = "4MiB"        # per collector: true bytes of its send queue (64KiB..=1GiB)
//! channel_events = 4096       # events waiting from BGP, 1..=1000000 (default 4096)
//! channel_limit = "4MiB"      # their true bytes (4KiB..=1GiB, default 4MiB)
//! stats_interval = "60s"      # Statistics Reports; 0 = none (default 60 s)
//! post_policy = false         # also the post-policy Adj-RIB-In (L flag), default false
//! loc_rib = false             # also the Loc-RIB (RFC 9069), default false
//! sys_name = "bulkhead"       # Initiation's sysName and sysDescr (at most 255 bytes each)
//! sys_descr = "Bulkhead BMP exporter"
//!
//! [[bmp.collector]]           # zero to MAX_COLLECTORS; none: BMP holds nothing
//! address = "192.0.2.2"       # fixed keys, for outside scripts
//! port = 1790
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use crate::addr::parse_ipv4;
use crate::config::{ConfigError, ConfigErrorKind, Table};
use crate::time::Duration;

/// Collectors at most.
pub const MAX_COLLECTORS: usize = 8;
pub const DEFAULT_QUEUE_LIMIT: usize = 4 << 20;
pub const DEFAULT_CHANNEL_EVENTS: usize = 4096;
pub const DEFAULT_CHANNEL_LIMIT: usize = 4 << 20;
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(60);
const MIN_QUEUE_LIMIT: usize = 64 << 10;
const MIN_CHANNEL_LIMIT: usize = 4 << 10;
const MAX_LIMIT: usize = 1 << 30;

/// One `[[bmp.collector]]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Collector {
    pub address: Ipv4Addr,
    pub port: u16,
}

/// `[bmp]` and its collectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BmpConfig {
    pub collectors: Vec<Collector>,
    /// Bound of each collector's send queue, in true bytes.
    pub queue_limit: usize,
    /// Bounds of the event channel from BGP: events, and their true bytes.
    pub channel_events: usize,
    pub channel_limit: usize,
    /// `None`: no Statistics Reports.
    pub stats_interval: Option<Duration>,
    pub post_policy: bool,
    pub loc_rib: bool,
    pub sys_name: String,
    pub sys_descr: String,
}

impl Default for BmpConfig {
    fn default() -> Self {
        BmpConfig {
            collectors: Vec::new(),
            queue_limit: DEFAULT_QUEUE_LIMIT,
            channel_events: DEFAULT_CHANNEL_EVENTS,
            channel_limit: DEFAULT_CHANNEL_LIMIT,
            stats_interval: Some(DEFAULT_STATS_INTERVAL),
            post_policy: false,
            loc_rib: false,
            sys_name: String::from("bulkhead"),
            sys_descr: String::from("Bulkhead BMP exporter"),
        }
    }
}

impl BmpConfig {
    /// Reads `[bmp]`.
    pub(crate) fn parse(t: &Table<'_, '_>) -> Result<BmpConfig, ConfigError> {
        t.check_keys(&[
            "collector",
            "queue_limit",
            "channel_events",
            "channel_limit",
            "stats_interval",
            "post_policy",
            "loc_rib",
            "sys_name",
            "sys_descr",
        ])?;
        let mut c = BmpConfig::default();
        for (key, slot, min) in [
            ("queue_limit", &mut c.queue_limit, (MIN_QUEUE_LIMIT, "64KiB..=1GiB")),
            ("channel_limit", &mut c.channel_limit, (MIN_CHANNEL_LIMIT, "4KiB..=1GiB")),
        ] {
            if let Some((bytes, span)) = t.size_opt(key)? {
                if !(min.0..=MAX_LIMIT).contains(&bytes) {
                    let value = t.quote(&span);
                    return Err(t.err_at(span, key, ConfigErrorKind::OutOfRange { value, allowed: min.1 }));
                }
                *slot = bytes;
            }
        }
        if let Some((n, span)) = t.int_opt("channel_events")? {
            c.channel_events = match usize::try_from(n) {
                Ok(n) if (1..=1_000_000).contains(&n) => n,
                _ => {
                    let value = t.quote(&span);
                    let kind = ConfigErrorKind::OutOfRange { value, allowed: "1..=1000000" };
                    return Err(t.err_at(span, "channel_events", kind));
                }
            };
        }
        // `0` turns the reports off; anything else is a duration.
        c.stats_interval = match t.int_opt("stats_interval") {
            Ok(Some((0, _))) => None,
            _ => t.duration_opt("stats_interval")?.or(c.stats_interval),
        };
        if let Some(b) = t.bool_opt("post_policy")? {
            c.post_policy = b;
        }
        if let Some(b) = t.bool_opt("loc_rib")? {
            c.loc_rib = b;
        }
        for (key, slot) in [("sys_name", &mut c.sys_name), ("sys_descr", &mut c.sys_descr)] {
            if let Some((s, span)) = t.str_opt(key)? {
                if s.len() > 255 {
                    let value = t.quote(&span);
                    let kind = ConfigErrorKind::OutOfRange { value, allowed: "at most 255 bytes" };
                    return Err(t.err_at(span, key, kind));
                }
                *slot = String::from(s);
            }
        }
        let collectors = t.array_of_tables("collector")?;
        for (i, ct) in collectors.iter().enumerate() {
            ct.check_keys(&["address", "port"])?;
            let (text, span) = ct.str_req("address")?;
            if i >= MAX_COLLECTORS {
                let kind =
                    ConfigErrorKind::OutOfRange { value: "one more".into(), allowed: "at most 8 collectors" };
                return Err(ct.err_at(span, "", kind));
            }
            let address = parse_ipv4(text).ok_or_else(|| {
                ct.err_at(span.clone(), "address", ConfigErrorKind::BadIpv4 { value: ct.quote(&span) })
            })?;
            let port = match ct.int_opt("port")? {
                // Reported on the collector's address line (the table has no line of its own).
                None => return Err(ct.err_at(span, "port", ConfigErrorKind::MissingKey)),
                Some((n, span)) => match u16::try_from(n) {
                    Ok(p) if p > 0 => p,
                    _ => {
                        let value = ct.quote(&span);
                        let kind = ConfigErrorKind::OutOfRange { value, allowed: "1..=65535" };
                        return Err(ct.err_at(span, "port", kind));
                    }
                },
            };
            c.collectors.push(Collector { address, port });
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::config::{Config, ConfigErrorKind as K};

    fn err(text: &str) -> ConfigError {
        Config::parse(text).unwrap_err()
    }

    #[test]
    fn defaults_and_every_key() {
        assert_eq!(Config::parse("").unwrap().bmp, BmpConfig::default());
        let c = Config::parse(
            "[bmp]\nqueue_limit = \"1MiB\"\nchannel_events = 100\nchannel_limit = \"64KiB\"\n\
             stats_interval = \"5s\"\npost_policy = true\nloc_rib = true\nsys_name = \"edge1\"\n\
             sys_descr = \"the edge\"\n[[bmp.collector]]\naddress = \"192.0.2.2\"\nport = 1790\n\
             [[bmp.collector]]\naddress = \"192.0.2.3\"\nport = 11019\n",
        )
        .unwrap()
        .bmp;
        assert_eq!(
            c,
            BmpConfig {
                collectors: alloc::vec![
                    Collector { address: Ipv4Addr::new(192, 0, 2, 2), port: 1790 },
                    Collector { address: Ipv4Addr::new(192, 0, 2, 3), port: 11019 },
                ],
                queue_limit: 1 << 20,
                channel_events: 100,
                channel_limit: 64 << 10,
                stats_interval: Some(Duration::from_secs(5)),
                post_policy: true,
                loc_rib: true,
                sys_name: "edge1".into(),
                sys_descr: "the edge".into(),
            }
        );
        let off = Config::parse("[bmp]\nstats_interval = 0\n").unwrap().bmp;
        assert_eq!(off.stats_interval, None);
    }

    #[test]
    fn refusals_name_line_and_key() {
        type Case = (&'static str, usize, &'static str, fn(&K) -> bool);
        let cases: &[Case] = &[
            ("[bmp]\nqueue = 1\n", 2, "bmp.queue", |k| matches!(k, K::UnknownKey)),
            ("[bmp]\nqueue_limit = \"1KiB\"\n", 2, "bmp.queue_limit", |k| matches!(k, K::OutOfRange { .. })),
            ("[bmp]\nqueue_limit = \"lots\"\n", 2, "bmp.queue_limit", |k| matches!(k, K::BadSize { .. })),
            ("[bmp]\nchannel_events = 0\n", 2, "bmp.channel_events", |k| matches!(k, K::OutOfRange { .. })),
            ("[bmp]\nchannel_limit = \"2GiB\"\n", 2, "bmp.channel_limit", |k| {
                matches!(k, K::OutOfRange { .. })
            }),
            ("[bmp]\nstats_interval = \"soon\"\n", 2, "bmp.stats_interval", |k| {
                matches!(k, K::BadDuration { .. })
            }),
            ("[bmp]\npost_policy = 1\n", 2, "bmp.post_policy", |k| matches!(k, K::WrongType { .. })),
            ("[[bmp.collector]]\naddress = \"192.0.2\"\nport = 1\n", 2, "bmp.collector[0].address", |k| {
                matches!(k, K::BadIpv4 { .. })
            }),
            ("[[bmp.collector]]\naddress = \"192.0.2.2\"\nport = 0\n", 3, "bmp.collector[0].port", |k| {
                matches!(k, K::OutOfRange { .. })
            }),
            ("[[bmp.collector]]\naddress = \"192.0.2.2\"\n", 2, "bmp.collector[0].port", |k| {
                matches!(k, K::MissingKey)
            }),
            ("[[bmp.collector]]\nport = 1790\n", 1, "bmp.collector[0].address", |k| {
                matches!(k, K::MissingKey)
            }),
            (
                "[[bmp.collector]]\naddress = \"192.0.2.2\"\nport = 1\nhost = \"x\"\n",
                4,
                "bmp.collector[0].host",
                |k| matches!(k, K::UnknownKey),
            ),
        ];
        for (text, line, key, kind) in cases {
            let e = err(text);
            assert_eq!((e.line, e.key.as_str()), (*line, *key), "{text:?}: {e:?}");
            assert!(kind(&e.kind), "{text:?}: {e:?}");
        }
        let long = std::format!("[bmp]\nsys_name = \"{}\"\n", "x".repeat(256));
        assert_eq!(err(&long).key, "bmp.sys_name");
        let many: std::string::String = (0..9)
            .map(|i| std::format!("[[bmp.collector]]\naddress = \"192.0.2.{}\"\nport = 1790\n", i + 2))
            .collect();
        assert!(matches!(err(&many).kind, K::OutOfRange { .. }));
    }
}
