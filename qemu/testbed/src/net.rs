//! Addresses and the interface plan: which NIC has which address, from the image's default
//! configuration or from a configuration file (read just far enough to find the addresses).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Most NICs the image drives (`nic0`..`nic3`).
pub const MAX_NICS: usize = 4;

/// An IPv4 address with a prefix length, as in `192.0.2.1/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Cidr {
    pub const fn new(addr: Ipv4Addr, prefix: u8) -> Ipv4Cidr {
        Ipv4Cidr { addr, prefix }
    }

    fn mask(self) -> u32 {
        match self.prefix {
            0 => 0,
            p => u32::MAX << (32 - u32::from(p)),
        }
    }

    /// The address of the host side of this subnet: `.2` of the network, or `.1` when the
    /// guest itself holds `.2`. `None` when the subnet has no room for a second host.
    pub fn peer(self) -> Option<Ipv4Cidr> {
        if self.prefix > 30 {
            return None;
        }
        let network = u32::from(self.addr) & self.mask();
        let two = network + 2;
        let host = if two == u32::from(self.addr) { network + 1 } else { two };
        Some(Ipv4Cidr::new(Ipv4Addr::from(host), self.prefix))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why a text is not an `a.b.c.d/len` address.
#[derive(Debug, PartialEq, Eq)]
pub struct BadCidr;

impl FromStr for Ipv4Cidr {
    type Err = BadCidr;

    fn from_str(text: &str) -> Result<Ipv4Cidr, BadCidr> {
        let (addr, prefix) = text.split_once('/').ok_or(BadCidr)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| BadCidr)?;
        let prefix: u8 = prefix.parse().map_err(|_| BadCidr)?;
        if prefix > 32 {
            return Err(BadCidr);
        }
        Ok(Ipv4Cidr::new(addr, prefix))
    }
}

/// One NIC of the guest as the configuration names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// `nic0`..`nic3`.
    pub name: String,
    /// The guest's address; `None` for an unconfigured NIC (or one whose address is invalid,
    /// which the guest is expected to refuse).
    pub address: Option<Ipv4Cidr>,
}

/// The image's embedded default configuration, for `nics` NICs: nic0..nic2 have addresses
/// from the three documentation networks, nic3 is unconfigured.
pub fn default_interfaces(nics: usize) -> Vec<Interface> {
    const DEFAULTS: [Option<Ipv4Cidr>; MAX_NICS] = [
        Some(Ipv4Cidr::new(Ipv4Addr::new(192, 0, 2, 1), 24)),
        Some(Ipv4Cidr::new(Ipv4Addr::new(198, 51, 100, 1), 24)),
        Some(Ipv4Cidr::new(Ipv4Addr::new(203, 0, 113, 1), 24)),
        None,
    ];
    DEFAULTS
        .iter()
        .take(nics.min(MAX_NICS))
        .enumerate()
        .map(|(k, address)| Interface { name: format!("nic{k}"), address: *address })
        .collect()
}

/// The `[[interface]]` tables of the default configuration for the first `nics` NICs, as
/// TOML: for test configurations that add sections of their own.
pub fn default_interfaces_toml(nics: usize) -> String {
    default_interfaces(nics)
        .iter()
        .filter_map(|i| {
            i.address.map(|a| format!("[[interface]]\nname = \"{}\"\naddress = \"{a}\"\n\n", i.name))
        })
        .collect()
}

/// The interfaces of a configuration file, for `nics` NICs: reads the `name` and `address` keys
/// of each `[[interface]]` table and nothing else. NICs the file does not name are unconfigured.
pub fn interfaces_from_config(text: &str, nics: usize) -> Vec<Interface> {
    let mut plan: Vec<Interface> =
        (0..nics.min(MAX_NICS)).map(|k| Interface { name: format!("nic{k}"), address: None }).collect();
    let mut current: Option<(Option<String>, Option<String>)> = None;
    let mut tables = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            tables.extend(current.take());
            if line == "[[interface]]" {
                current = Some((None, None));
            }
            continue;
        }
        let (Some(table), Some((key, value))) = (current.as_mut(), line.split_once('=')) else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_string();
        match key.trim() {
            "name" => table.0 = Some(value),
            "address" => table.1 = Some(value),
            _ => {}
        }
    }
    tables.extend(current);
    for (name, address) in tables {
        let Some(name) = name else { continue };
        if let Some(slot) = plan.iter_mut().find(|i| i.name == name) {
            slot.address = address.and_then(|a| a.parse().ok());
        }
    }
    plan
}

#[cfg(test)]
mod toml_tests {
    use super::*;

    #[test]
    fn default_interfaces_toml_reads_back_as_the_defaults() {
        let text = default_interfaces_toml(4);
        assert_eq!(text.matches("[[interface]]").count(), 3, "nic3 is unconfigured");
        assert_eq!(interfaces_from_config(&text, 4), default_interfaces(4));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_and_rejects() {
        let c: Ipv4Cidr = "10.99.0.1/24".parse().unwrap();
        assert_eq!(c, Ipv4Cidr::new(Ipv4Addr::new(10, 99, 0, 1), 24));
        assert_eq!(c.to_string(), "10.99.0.1/24");
        assert_eq!("198.51.100.1/33".parse::<Ipv4Cidr>(), Err(BadCidr));
        assert_eq!("198.51.100.1".parse::<Ipv4Cidr>(), Err(BadCidr));
        assert_eq!("300.1.1.1/8".parse::<Ipv4Cidr>(), Err(BadCidr));
    }

    #[test]
    fn peer_is_dot_two_unless_the_guest_has_it() {
        let peer = |s: &str| s.parse::<Ipv4Cidr>().unwrap().peer().map(|p| p.to_string());
        assert_eq!(peer("192.0.2.1/24").as_deref(), Some("192.0.2.2/24"));
        assert_eq!(peer("10.99.7.200/16").as_deref(), Some("10.99.0.2/16"));
        assert_eq!(peer("10.0.0.2/24").as_deref(), Some("10.0.0.1/24"));
        assert_eq!(peer("10.0.0.1/31"), None);
    }

    #[test]
    fn defaults_leave_nic3_unconfigured() {
        let plan = default_interfaces(4);
        assert_eq!(plan.len(), 4);
        assert_eq!(plan[1].address.unwrap().to_string(), "198.51.100.1/24");
        assert_eq!(plan[3], Interface { name: "nic3".into(), address: None });
        assert_eq!(default_interfaces(9).len(), 4);
    }

    #[test]
    fn config_reader_takes_interface_tables_only() {
        let text = r#"
[memory]
address = "1.2.3.4/8"   # not an interface
[[interface]]
name = "nic1"
address = "10.99.1.1/24"
[[interface]]
address = "10.99.0.1/24"
name = "nic0"
[[interface]]
name = "nic2"
address = "198.51.100.1/33"
[[route]]
name = "nic3"
address = "10.3.0.1/24"
"#;
        let plan = interfaces_from_config(text, 4);
        let got: Vec<_> = plan.iter().map(|i| i.address.map(|a| a.to_string())).collect();
        assert_eq!(got, [Some("10.99.0.1/24".into()), Some("10.99.1.1/24".into()), None, None]);
    }
}
