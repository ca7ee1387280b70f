//! `[bgp]`, `[[bgp.neighbor]]` and `[[bgp.policy]]`: the speaker's configuration, read with the
//! `Table` helper, every error with its line and dotted key.
//!
//! ```toml
//! [bgp]
//! asn = 65000                    # required, 1..=4294967295
//! router_id = "192.0.2.1"        # required, not 0.0.0.0
//! hold_time = 90                 # seconds proposed in our OPEN: 0 or 3..=65535 (default 90)
//! connect_retry = "120s"         # ConnectRetry timer (default 120 s)
//! networks = ["10.1.0.0/16"]     # prefixes this speaker originates (IPv4 or IPv6), at most 4096
//!
//! [[bgp.neighbor]]               # at most 64
//! address = "192.0.2.2"          # required, unique
//! asn = 65001                    # required; equal to [bgp] asn for iBGP
//! import = "all"                 # "all", "none", or a [[bgp.policy]] name; absent: RFC 8212
//! export = "all"                 #   (eBGP imports / exports nothing, iBGP everything)
//! passive = false                # never connect, wait for the peer
//! local_address = "192.0.2.1"    # source of our connections (one of our addresses)
//! multihop = 1                   # TTL of our segments, 1..=255 (default 1 eBGP, 64 iBGP);
//!                                #   with ttl_security: hops to the peer, 1..=254 (default 1)
//! ttl_security = false           # GTSM (RFC 5082): send with TTL 255, drop the peer's segments
//!                                #   below 255 - (hops - 1)
//! hold_time = 90                 # overrides [bgp] hold_time
//! graceful_restart = true        # announce the helper role (RFC 4724), default true
//! enforce_first_as = true        # eBGP: a path not starting with the peer's AS is withdrawn
//!                                #   (RFC 4271 6.3, RFC 7606 7.2); false for a route server
//! prefix_limit = 500000          # most prefixes held from the peer (received, per family)
//! prefix_limit_action = "restart" # "warn", "block", "restart" (default), "disable"
//!
//! [[bgp.policy]]                 # at most 64, referred to by name
//! name = "from-upstream"
//! [[bgp.policy.term]]            # first term whose matches all hold decides; none: reject
//! prefix = ["10.0.0.0/8 le 24"]  # prefix list: "P", "P ge N", "P le M", "P ge N le M"
//! as_path_contains = 65010       # the ASN anywhere in AS_PATH
//! originated_by = 65010          # the last ASN of AS_PATH
//! community = "65000:1"          # COMMUNITIES holds it
//! set_local_pref = 200           # actions, applied in this order when accepted
//! set_med = 10
//! add_community = ["65000:100"]
//! remove_community = ["65000:1"]
//! prepend = 2                    # our ASN, 1..=16 times, in front of AS_PATH
//! action = "accept"              # required: "accept" or "reject"
//! ```
//!
//! TTL security (RFC 5082) is enforced by the host stack, which still has the IP header: BGP
//! asks for a guard of each such neighbor through its context (`Context::ttl_guard`) when it
//! starts, and the guard goes when BGP is shed. Where the platform cannot guard, the neighbor's
//! session is never started (its last error says why).

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, Ipv6Addr};
use core::ops::Range;

use bulkhead_bgp::packet::attribute::Community;
use bulkhead_bgp::packet::nlri::{Ipv4Prefix, Ipv6Prefix, Prefix};
use bulkhead_bgp::policy::{
    Action, LimitAction, Match, Policy, PrefixLimit, PrefixList, PrefixListEntry, Term, Verdict,
};
use toml::de::DeValue;

use crate::addr::parse_ipv4;
use crate::config::{ConfigError, ConfigErrorKind, Table};
use crate::time::Duration;

/// Neighbors at most (each holds up to two connections of the 64-socket table).
pub const MAX_NEIGHBORS: usize = 64;
pub const MAX_POLICIES: usize = 64;
pub const MAX_NETWORKS: usize = 4096;
const MAX_TERMS: usize = 256;
const MAX_PREFIX_LIST: usize = 4096;

/// `[bgp]`: absent, BGP does not run (its domain stays empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BgpConfig {
    pub speaker: Option<SpeakerConfig>,
}

/// A configured speaker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpeakerConfig {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub hold_time: u16,
    pub connect_retry: Duration,
    pub networks: Vec<Prefix>,
    pub neighbors: Vec<NeighborSettings>,
}

/// Which policy a direction uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyRef {
    /// No key: RFC 8212 (eBGP nothing, iBGP everything).
    Default,
    All,
    None,
    Named(String, Policy),
}

impl PolicyRef {
    /// The policy as the RIB takes it.
    pub fn policy(&self) -> Option<Policy> {
        match self {
            PolicyRef::Default => None,
            PolicyRef::All => Some(Policy::accept_all()),
            PolicyRef::None => Some(Policy::default()),
            PolicyRef::Named(_, p) => Some(p.clone()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            PolicyRef::Default => "default",
            PolicyRef::All => "all",
            PolicyRef::None => "none",
            PolicyRef::Named(n, _) => n,
        }
    }
}

/// One `[[bgp.neighbor]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborSettings {
    pub address: Ipv4Addr,
    pub asn: u32,
    pub import: PolicyRef,
    pub export: PolicyRef,
    pub passive: bool,
    pub local_address: Option<Ipv4Addr>,
    /// TTL of our segments (255 with TTL security).
    pub ttl: u8,
    /// TTL security (RFC 5082): the least TTL accepted from the peer, 255 - (hops - 1).
    pub ttl_security: Option<u8>,
    pub hold_time: u16,
    pub graceful_restart: bool,
    /// eBGP: the leftmost AS of AS_PATH must be the peer's (off for a route server, RFC 7947).
    pub enforce_first_as: bool,
    pub prefix_limit: Option<PrefixLimit>,
}

impl BgpConfig {
    /// Reads `[bgp]`.
    pub(crate) fn parse(t: &Table<'_, '_>) -> Result<BgpConfig, ConfigError> {
        t.check_keys(&["asn", "router_id", "hold_time", "connect_retry", "networks", "neighbor", "policy"])?;
        let asn = asn_req(t, "asn")?;
        let router_id = ipv4_req(t, "router_id")?;
        if router_id.is_unspecified() {
            return Err(out_of_range(t, "router_id", "a non-zero identifier"));
        }
        let hold_time = hold_time(t)?.unwrap_or(90);
        let connect_retry = t.duration_opt("connect_retry")?.unwrap_or(Duration::from_secs(120));
        let mut networks = Vec::new();
        for (text, span) in str_list(t, "networks")? {
            let (prefix, rest) = parse_prefix(text).ok_or_else(|| {
                t.err_at(span.clone(), "networks", ConfigErrorKind::BadCidr { value: t.quote(&span) })
            })?;
            if !rest.is_empty() {
                return Err(t.err_at(
                    span.clone(),
                    "networks",
                    ConfigErrorKind::BadCidr { value: t.quote(&span) },
                ));
            }
            networks.push(prefix);
        }
        if networks.len() > MAX_NETWORKS {
            return Err(not_applicable(t, "networks", "more than 4096 networks"));
        }
        let mut policies: Vec<(String, Policy)> = Vec::new();
        let policy_tables = t.array_of_tables("policy")?;
        if policy_tables.len() > MAX_POLICIES {
            return Err(not_applicable(t, "policy", "more than 64 policies"));
        }
        for p in &policy_tables {
            let (name, span) = p.str_req("name")?;
            if matches!(name, "all" | "none" | "default") || name.is_empty() {
                return Err(p.err_at(
                    span,
                    "name",
                    ConfigErrorKind::NotApplicable { reason: "a reserved name" },
                ));
            }
            if policies.iter().any(|(n, _)| n == name) {
                return Err(p.err_at(
                    span,
                    "name",
                    ConfigErrorKind::NotApplicable { reason: "a policy of this name exists already" },
                ));
            }
            let policy = parse_policy(p, asn)?;
            policies.push((name.to_owned(), policy));
        }
        let neighbor_tables = t.array_of_tables("neighbor")?;
        if neighbor_tables.len() > MAX_NEIGHBORS {
            return Err(not_applicable(t, "neighbor", "more than 64 neighbors"));
        }
        let mut neighbors: Vec<NeighborSettings> = Vec::new();
        for n in &neighbor_tables {
            let settings = parse_neighbor(n, asn, hold_time, &policies)?;
            if neighbors.iter().any(|o| o.address == settings.address) {
                let (_, span) = n.str_req("address")?;
                return Err(n.err_at(
                    span,
                    "address",
                    ConfigErrorKind::NotApplicable { reason: "this neighbor is configured already" },
                ));
            }
            neighbors.push(settings);
        }
        Ok(BgpConfig {
            speaker: Some(SpeakerConfig { asn, router_id, hold_time, connect_retry, networks, neighbors }),
        })
    }
}

fn parse_neighbor(
    n: &Table<'_, '_>,
    local_as: u32,
    default_hold: u16,
    policies: &[(String, Policy)],
) -> Result<NeighborSettings, ConfigError> {
    n.check_keys(&[
        "address",
        "asn",
        "import",
        "export",
        "passive",
        "local_address",
        "multihop",
        "ttl_security",
        "hold_time",
        "graceful_restart",
        "enforce_first_as",
        "prefix_limit",
        "prefix_limit_action",
    ])?;
    let address = ipv4_req(n, "address")?;
    if address.is_unspecified() || address.is_broadcast() || address.is_multicast() || address.is_loopback() {
        return Err(out_of_range(n, "address", "a unicast address"));
    }
    let asn = asn_req(n, "asn")?;
    let policy_ref = |key: &str| -> Result<PolicyRef, ConfigError> {
        Ok(match n.str_opt(key)? {
            None => PolicyRef::Default,
            Some(("all", _)) => PolicyRef::All,
            Some(("none", _)) => PolicyRef::None,
            Some((name, span)) => match policies.iter().find(|(p, _)| p == name) {
                Some((p, policy)) => PolicyRef::Named(p.clone(), policy.clone()),
                None => {
                    return Err(n.err_at(
                        span,
                        key,
                        ConfigErrorKind::NotApplicable { reason: "no [[bgp.policy]] of this name" },
                    ))
                }
            },
        })
    };
    let import = policy_ref("import")?;
    let export = policy_ref("export")?;
    let local_address = match n.str_opt("local_address")? {
        None => None,
        Some((text, span)) => Some(parse_ipv4(text).ok_or_else(|| {
            n.err_at(span.clone(), "local_address", ConfigErrorKind::BadIpv4 { value: n.quote(&span) })
        })?),
    };
    let default_ttl = if asn == local_as { 64 } else { 1 };
    let multihop = uint(n, "multihop", 1, 255, "1..=255")?;
    let (ttl, ttl_security) = if n.bool_opt("ttl_security")?.unwrap_or(false) {
        // RFC 5082: we send 255; the peer, `hops` away, arrives with at least 255 - (hops - 1).
        // 255 hops would accept every TTL: no security at all.
        let hops = match multihop {
            None => 1,
            Some(255) => {
                return Err(not_applicable(
                    n,
                    "multihop",
                    "255 hops with ttl_security (it would accept any TTL)",
                ))
            }
            Some(h) => h as u8,
        };
        (255, Some(255 - (hops - 1)))
    } else {
        (multihop.map_or(default_ttl, |v| v as u8), None)
    };
    let hold_time = hold_time(n)?.unwrap_or(default_hold);
    let prefix_limit = match uint(n, "prefix_limit", 1, u64::from(u32::MAX), "1..=4294967295")? {
        None => {
            if n.get("prefix_limit_action").is_some() {
                return Err(not_applicable(n, "prefix_limit_action", "without prefix_limit"));
            }
            None
        }
        Some(max) => {
            let action = match n.str_opt("prefix_limit_action")? {
                None | Some(("restart", _)) => LimitAction::Restart,
                Some(("warn", _)) => LimitAction::Warn,
                Some(("block", _)) => LimitAction::Block,
                Some(("disable", _)) => LimitAction::Disable,
                Some((_, span)) => {
                    return Err(n.err_at(
                        span.clone(),
                        "prefix_limit_action",
                        ConfigErrorKind::OutOfRange {
                            value: n.quote(&span),
                            allowed: "warn, block, restart, disable",
                        },
                    ))
                }
            };
            Some(PrefixLimit { max: max as u32, action })
        }
    };
    Ok(NeighborSettings {
        address,
        asn,
        import,
        export,
        passive: n.bool_opt("passive")?.unwrap_or(false),
        local_address,
        ttl,
        ttl_security,
        hold_time,
        graceful_restart: n.bool_opt("graceful_restart")?.unwrap_or(true),
        enforce_first_as: n.bool_opt("enforce_first_as")?.unwrap_or(true),
        prefix_limit,
    })
}

fn parse_policy(p: &Table<'_, '_>, local_as: u32) -> Result<Policy, ConfigError> {
    p.check_keys(&["name", "term"])?;
    let terms = p.array_of_tables("term")?;
    if terms.len() > MAX_TERMS {
        return Err(not_applicable(p, "term", "more than 256 terms"));
    }
    let mut policy = Policy::default();
    for t in &terms {
        t.check_keys(&[
            "prefix",
            "as_path_contains",
            "originated_by",
            "community",
            "set_local_pref",
            "set_med",
            "add_community",
            "remove_community",
            "prepend",
            "action",
        ])?;
        let mut matches = Vec::new();
        let entries = str_list(t, "prefix")?;
        if entries.len() > MAX_PREFIX_LIST {
            return Err(not_applicable(t, "prefix", "more than 4096 entries"));
        }
        if !entries.is_empty() {
            let mut list = PrefixList::default();
            for (text, span) in entries {
                let entry = parse_list_entry(text).ok_or_else(|| {
                    t.err_at(span.clone(), "prefix", ConfigErrorKind::BadCidr { value: t.quote(&span) })
                })?;
                list.entries.push(entry);
            }
            matches.push(Match::Prefix(list));
        }
        if let Some(asn) = uint(t, "as_path_contains", 0, u64::from(u32::MAX), "0..=4294967295")? {
            matches.push(Match::AsPathContains(asn as u32));
        }
        if let Some(asn) = uint(t, "originated_by", 0, u64::from(u32::MAX), "0..=4294967295")? {
            matches.push(Match::OriginatedBy(asn as u32));
        }
        if let Some((text, span)) = t.str_opt("community")? {
            matches.push(Match::Community(community(t, "community", text, span)?));
        }
        let mut actions = Vec::new();
        if let Some(v) = uint(t, "set_local_pref", 0, u64::from(u32::MAX), "0..=4294967295")? {
            actions.push(Action::SetLocalPref(v as u32));
        }
        if let Some(v) = uint(t, "set_med", 0, u64::from(u32::MAX), "0..=4294967295")? {
            actions.push(Action::SetMed(v as u32));
        }
        for (text, span) in str_list(t, "add_community")? {
            actions.push(Action::AddCommunity(community(t, "add_community", text, span)?));
        }
        for (text, span) in str_list(t, "remove_community")? {
            actions.push(Action::RemoveCommunity(community(t, "remove_community", text, span)?));
        }
        if let Some(count) = uint(t, "prepend", 1, 16, "1..=16")? {
            actions.push(Action::Prepend { asn: local_as, count: count as u8 });
        }
        let verdict = match t.str_req("action")? {
            ("accept", _) => Verdict::Accept,
            ("reject", _) => Verdict::Reject,
            (_, span) => {
                return Err(t.err_at(
                    span.clone(),
                    "action",
                    ConfigErrorKind::OutOfRange { value: t.quote(&span), allowed: "accept, reject" },
                ))
            }
        };
        policy.terms.push(Term { matches, actions, verdict });
    }
    Ok(policy)
}

/// `ADDR/LEN` (IPv4 or IPv6, canonical) and what follows it.
pub fn parse_prefix(text: &str) -> Option<(Prefix, &str)> {
    let text = text.trim_start();
    let end = text.find(' ').unwrap_or(text.len());
    let (word, rest) = text.split_at(end);
    let (addr, len) = word.split_once('/')?;
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: u8 = len.parse().ok()?;
    let prefix = if let Some(a) = parse_ipv4(addr) {
        Prefix::V4(Ipv4Prefix::new(a, len).ok()?)
    } else {
        Prefix::V6(Ipv6Prefix::new(addr.parse::<Ipv6Addr>().ok()?, len).ok()?)
    };
    Some((prefix, rest.trim()))
}

/// `P`, `P ge N`, `P le M`, `P ge N le M`, with `len(P) <= N <= M <= max`.
fn parse_list_entry(text: &str) -> Option<PrefixListEntry> {
    let (prefix, rest) = parse_prefix(text)?;
    let max = match prefix {
        Prefix::V4(_) => Ipv4Prefix::MAX_LEN,
        Prefix::V6(_) => Ipv6Prefix::MAX_LEN,
    };
    let mut words = rest.split_ascii_whitespace();
    let (mut ge, mut le) = (None, None);
    while let Some(word) = words.next() {
        let value: u8 = words.next()?.parse().ok()?;
        match word {
            "ge" if ge.is_none() && le.is_none() => ge = Some(value),
            "le" if le.is_none() => le = Some(value),
            _ => return None,
        }
    }
    let low = ge.unwrap_or(prefix.len());
    let high = le.unwrap_or(if ge.is_some() { max } else { prefix.len() });
    if low < prefix.len() || high < low || high > max {
        return None;
    }
    Some(PrefixListEntry { prefix, ge, le })
}

fn community(t: &Table<'_, '_>, key: &str, text: &str, span: Range<usize>) -> Result<Community, ConfigError> {
    let parsed =
        text.split_once(':').and_then(|(a, v)| Some(Community::new(a.parse().ok()?, v.parse().ok()?)));
    parsed.ok_or_else(|| {
        t.err_at(
            span.clone(),
            key,
            ConfigErrorKind::OutOfRange { value: t.quote(&span), allowed: "ASN:VALUE, each 0..=65535" },
        )
    })
}

/// A string or an array of strings; absent is empty.
fn str_list<'a>(t: &Table<'a, '_>, key: &str) -> Result<Vec<(&'a str, Range<usize>)>, ConfigError> {
    let Some(v) = t.get(key) else { return Ok(Vec::new()) };
    match v.get_ref() {
        DeValue::String(s) => Ok(alloc::vec![(s.as_ref(), v.span())]),
        DeValue::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items.iter() {
                match item.get_ref() {
                    DeValue::String(s) => out.push((s.as_ref(), item.span())),
                    other => return Err(t.wrong_type(item, key, "string", other)),
                }
            }
            Ok(out)
        }
        other => Err(t.wrong_type(v, key, "string or array of strings", other)),
    }
}

fn uint(
    t: &Table<'_, '_>,
    key: &str,
    min: u64,
    max: u64,
    allowed: &'static str,
) -> Result<Option<u64>, ConfigError> {
    match t.int_opt(key)? {
        None => Ok(None),
        Some((v, span)) => match u64::try_from(v) {
            Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
            _ => Err(t.err_at(
                span.clone(),
                key,
                ConfigErrorKind::OutOfRange { value: t.quote(&span), allowed },
            )),
        },
    }
}

fn asn_req(t: &Table<'_, '_>, key: &str) -> Result<u32, ConfigError> {
    match uint(t, key, 1, u64::from(u32::MAX), "1..=4294967295")? {
        Some(v) => Ok(v as u32),
        // Absent: `str_req` reports the key missing, at the table.
        None => t.str_req(key).and_then(|(_, span)| Err(t.err_at(span, key, ConfigErrorKind::MissingKey))),
    }
}

fn ipv4_req(t: &Table<'_, '_>, key: &str) -> Result<Ipv4Addr, ConfigError> {
    let (text, span) = t.str_req(key)?;
    parse_ipv4(text)
        .ok_or_else(|| t.err_at(span.clone(), key, ConfigErrorKind::BadIpv4 { value: t.quote(&span) }))
}

fn hold_time(t: &Table<'_, '_>) -> Result<Option<u16>, ConfigError> {
    match t.int_opt("hold_time")? {
        None => Ok(None),
        Some((v, span)) => match u16::try_from(v) {
            Ok(h) if h == 0 || h >= 3 => Ok(Some(h)),
            _ => Err(t.err_at(
                span.clone(),
                "hold_time",
                ConfigErrorKind::OutOfRange { value: t.quote(&span), allowed: "0 or 3..=65535" },
            )),
        },
    }
}

fn out_of_range(t: &Table<'_, '_>, key: &str, allowed: &'static str) -> ConfigError {
    let span = t.get(key).map(|v| v.span()).unwrap_or(0..0);
    t.err_at(span.clone(), key, ConfigErrorKind::OutOfRange { value: t.quote(&span), allowed })
}

fn not_applicable(t: &Table<'_, '_>, key: &str, reason: &'static str) -> ConfigError {
    let span = t.get(key).map(|v| v.span()).unwrap_or(0..0);
    t.err_at(span, key, ConfigErrorKind::NotApplicable { reason })
}
