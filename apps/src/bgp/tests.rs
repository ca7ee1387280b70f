//! Host tests of the BGP subsystem: configuration, and the subsystem against a fake platform.

use alloc::string::String;

use super::*;
use crate::config::{Config, ConfigErrorKind};

fn parse(text: &str) -> Result<SpeakerConfig, crate::config::ConfigError> {
    Config::parse(text).map(|c| c.bgp.speaker.expect("a [bgp] section"))
}

const BASIC: &str = r#"
[bgp]
asn = 65000
router_id = "192.0.2.1"
[[bgp.neighbor]]
address = "192.0.2.2"
asn = 65001
import = "all"
export = "all"
"#;

#[test]
fn the_fixed_keys_parse() {
    let c = parse(BASIC).unwrap();
    assert_eq!(c.asn, 65000);
    assert_eq!(c.router_id, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(c.hold_time, 90);
    let n = &c.neighbors[0];
    assert_eq!((n.address, n.asn, n.ttl, n.passive), (Ipv4Addr::new(192, 0, 2, 2), 65001, 1, false));
    assert_eq!(n.import, PolicyRef::All);
    assert_eq!(n.export.policy(), Some(Policy::accept_all()));
    assert_eq!(n.prefix_limit, None);
}

#[test]
fn no_section_no_speaker() {
    assert_eq!(Config::parse("").unwrap().bgp, BgpConfig::default());
}

#[test]
fn rfc_8212_without_import_or_export() {
    let c = parse("[bgp]\nasn = 65000\nrouter_id = \"10.0.0.1\"\n[[bgp.neighbor]]\naddress = \"10.0.0.2\"\nasn = 65000\n").unwrap();
    let n = &c.neighbors[0];
    assert_eq!((n.import.policy(), n.export.policy()), (None, None));
    assert_eq!(n.ttl, 64, "iBGP defaults to multihop");
}

#[test]
fn policies_limits_and_options() {
    let text = r#"
[bgp]
asn = 65000
router_id = "192.0.2.1"
hold_time = 30
networks = ["10.1.0.0/16", "2001:db8::/32"]
[[bgp.policy]]
name = "in"
[[bgp.policy.term]]
prefix = ["10.0.0.0/8 le 24", "172.16.0.0/12 ge 16 le 24"]
as_path_contains = 65010
set_local_pref = 200
add_community = "65000:7"
action = "accept"
[[bgp.policy.term]]
community = "65000:666"
action = "reject"
[[bgp.policy.term]]
prepend = 2
action = "accept"
[[bgp.neighbor]]
address = "192.0.2.2"
asn = 65001
import = "in"
export = "none"
passive = true
multihop = 3
hold_time = 9
graceful_restart = false
prefix_limit = 1000
prefix_limit_action = "block"
"#;
    let c = parse(text).unwrap();
    assert_eq!(c.hold_time, 30);
    assert_eq!(c.networks.len(), 2);
    let n = &c.neighbors[0];
    assert_eq!((n.passive, n.ttl, n.hold_time, n.graceful_restart), (true, 3, 9, false));
    assert_eq!(
        n.prefix_limit,
        Some(bulkhead_bgp::policy::PrefixLimit {
            max: 1000,
            action: bulkhead_bgp::policy::LimitAction::Block
        })
    );
    let PolicyRef::Named(name, policy) = &n.import else { panic!("named policy expected") };
    assert_eq!(name, "in");
    assert_eq!(policy.terms.len(), 3);
    assert_eq!(policy.terms[0].matches.len(), 2);
    assert_eq!(n.export.policy(), Some(Policy::default()));
    // The policy decides as written: 10.1.0.0/16 via 65010 accepted with local-pref 200.
    let attrs = PathAttributes {
        as_path: bulkhead_bgp::packet::attribute::AsPath::from_sequence(&[65001, 65010]),
        ..PathAttributes::default()
    };
    let p = Prefix::V4(Ipv4Prefix::new(Ipv4Addr::new(10, 1, 0, 0), 16).unwrap());
    assert_eq!(
        policy.evaluate(p, &attrs),
        bulkhead_bgp::policy::Decision::Accept(&[
            bulkhead_bgp::policy::Action::SetLocalPref(200),
            bulkhead_bgp::policy::Action::AddCommunity(bulkhead_bgp::packet::attribute::Community::new(
                65000, 7
            ))
        ])
    );
}

fn error(text: &str) -> (usize, String, ConfigErrorKind) {
    let e = Config::parse(text).unwrap_err();
    (e.line, e.key, e.kind)
}

#[test]
fn errors_name_line_and_key() {
    let (line, key, kind) = error("[bgp]\nrouter_id = \"192.0.2.1\"\n");
    assert_eq!((key.as_str(), kind), ("bgp.asn", ConfigErrorKind::MissingKey));
    assert_eq!(line, 1);
    let (line, key, kind) = error("[bgp]\nasn = 0\nrouter_id = \"192.0.2.1\"\n");
    assert_eq!((line, key.as_str()), (2, "bgp.asn"));
    assert!(matches!(kind, ConfigErrorKind::OutOfRange { .. }));
    let (_, key, kind) = error("[bgp]\nasn = 1\nrouter_id = \"192.0.2.300\"\n");
    assert_eq!(key, "bgp.router_id");
    assert!(matches!(kind, ConfigErrorKind::BadIpv4 { .. }));
    let (line, key, kind) =
        error("[bgp]\nasn = 1\nrouter_id = \"1.1.1.1\"\n[[bgp.neighbor]]\naddress = \"1.1.1.2\"\nasn = 2\nimport = \"nope\"\n");
    assert_eq!((line, key.as_str()), (7, "bgp.neighbor[0].import"));
    assert!(matches!(kind, ConfigErrorKind::NotApplicable { .. }));
    let (_, key, kind) = error(
        "[bgp]\nasn = 1\nrouter_id = \"1.1.1.1\"\n[[bgp.neighbor]]\naddress = \"1.1.1.2\"\nasn = 2\n[[bgp.neighbor]]\naddress = \"1.1.1.2\"\nasn = 3\n",
    );
    assert_eq!(key, "bgp.neighbor[1].address");
    assert!(matches!(kind, ConfigErrorKind::NotApplicable { .. }));
    let (_, key, kind) = error("[bgp]\nasn = 1\nrouter_id = \"1.1.1.1\"\nhold_time = 2\n");
    assert_eq!(key, "bgp.hold_time");
    assert!(matches!(kind, ConfigErrorKind::OutOfRange { .. }));
    let (_, key, kind) = error("[bgp]\nasn = 1\nrouter_id = \"1.1.1.1\"\nbogus = 2\n");
    assert_eq!((key.as_str(), kind), ("bgp.bogus", ConfigErrorKind::UnknownKey));
    let (_, key, _) = error(
        "[bgp]\nasn = 1\nrouter_id = \"1.1.1.1\"\n[[bgp.policy]]\nname = \"p\"\n[[bgp.policy.term]]\nprefix = \"10.0.0.0/8 ge 4\"\naction = \"accept\"\n",
    );
    assert_eq!(key, "bgp.policy[0].term[0].prefix");
    let (_, key, _) = error(
        "[bgp]\nasn = 1\nrouter_id = \"1.1.1.1\"\n[[bgp.neighbor]]\naddress = \"1.1.1.2\"\nasn = 2\nprefix_limit = 5\nprefix_limit_action = \"explode\"\n",
    );
    assert_eq!(key, "bgp.neighbor[0].prefix_limit_action");
}

#[test]
fn prefix_list_entries() {
    let e = config::parse_prefix("10.0.0.0/8 le 24").unwrap();
    assert_eq!(e.1, "le 24");
    assert!(config::parse_prefix("10.0.0.1/8").is_none(), "host bits are refused");
    assert!(config::parse_prefix("2001:db8::/32").is_some());
    assert!(config::parse_prefix("10.0.0.0/33").is_none());
}

mod never_panics {
    extern crate std;
    use super::*;
    use proptest::prelude::*;

    const FULL: &str = r#"[bgp]
asn = 65000
router_id = "192.0.2.1"
hold_time = 30
connect_retry = "5s"
networks = ["10.1.0.0/16", "2001:db8::/32"]
[[bgp.policy]]
name = "in"
[[bgp.policy.term]]
prefix = ["10.0.0.0/8 le 24", "172.16.0.0/12 ge 16 le 24"]
as_path_contains = 65010
originated_by = 65011
community = "65000:1"
set_local_pref = 200
set_med = 5
add_community = ["65000:7"]
remove_community = "65000:8"
prepend = 2
action = "accept"
[[bgp.neighbor]]
address = "192.0.2.2"
asn = 65001
import = "in"
export = "all"
passive = true
local_address = "192.0.2.1"
multihop = 3
hold_time = 9
graceful_restart = false
prefix_limit = 1000
prefix_limit_action = "block"
"#;

    /// Byte flips, truncations, line swaps and drops of a full `[bgp]` section.
    fn mutated() -> impl Strategy<Value = std::string::String> {
        (0usize..4, any::<usize>(), any::<usize>(), any::<u8>()).prop_map(|(how, a, b, byte)| {
            let mut bytes = FULL.as_bytes().to_vec();
            let lines: Vec<&str> = FULL.lines().collect();
            match how {
                0 => {
                    let i = a % bytes.len();
                    bytes[i] = byte;
                }
                1 => bytes.truncate(a % bytes.len()),
                2 => {
                    let mut l = lines.clone();
                    l.swap(a % lines.len(), b % lines.len());
                    bytes = l.join("\n").into_bytes();
                }
                _ => {
                    let mut l = lines.clone();
                    l.remove(a % lines.len());
                    bytes = l.join("\n").into_bytes();
                }
            }
            std::string::String::from_utf8_lossy(&bytes).into_owned()
        })
    }

    #[test]
    fn the_full_section_parses() {
        let c = parse(FULL).unwrap();
        assert_eq!(c.neighbors.len(), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn mutated_sections_never_panic(text in mutated()) {
            let _ = Config::parse(&text);
        }

        #[test]
        fn prefix_list_words_never_panic(text in "[0-9a-f:./ gel]{0,40}") {
            let _ = config::parse_prefix(&text);
        }
    }
}
