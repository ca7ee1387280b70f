//! FIB bench, on the host: 1M random IPv4 prefixes with a BGP-like length mix (`LENGTH_MIX`:
//! 63 % /24, 20 % /22-/23, 13.5 % /16-/21, 0.5 % shorter than /16, 3 % /25-/32), the same
//! operations against Bulkhead's `Fib`, a plain hash map per prefix length (longest length
//! first), and the LPM crates `prefix-trie`, `ip_network_table`, `poptrie` and `iptrie` (its
//! radix-trie map; its LC-trie is read-only, so it cannot take churn). Figures: lookups per
//! second (random addresses over the whole space: hits and misses, the hit share printed),
//! insert and delete time per prefix (inserts in random order, then a tenth deleted), and
//! bytes per prefix (heap bytes held after the inserts, from the binary's counting global
//! allocator). Targets: more lookups/s than the fastest crate, no more bytes/prefix than the
//! smallest. `BULKHEAD_FIB_PREFIXES` sets a smaller table for a quick run.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Instant;

use bulkhead_net::fib::{mask, Fib, Prefix};
use bulkhead_testbed::serde_json::json;

use crate::figures::{print_table, Figure};

const PREFIXES: usize = 1_000_000;
const LOOKUPS: usize = 5_000_000;
/// poptrie 0.2 rebuilds on every update (about 1 ms a delete at 40k prefixes): a 1M-prefix
/// run would take the better part of an hour, so it is measured on small tables only.
const POPTRIE_MAX_PREFIXES: usize = 50_000;

/// Share of each length in the table, per thousand (roughly a full BGP table's shape).
const LENGTH_MIX: [(u8, u32); 18] = [
    (8, 1),
    (12, 4),
    (16, 15),
    (17, 10),
    (18, 15),
    (19, 25),
    (20, 40),
    (21, 30),
    (22, 110),
    (23, 90),
    (24, 630),
    (25, 5),
    (26, 5),
    (27, 4),
    (28, 5),
    (29, 3),
    (30, 3),
    (32, 5),
];

fn table_size() -> usize {
    std::env::var("BULKHEAD_FIB_PREFIXES").ok().and_then(|v| v.parse().ok()).unwrap_or(PREFIXES)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn table(rng: &mut Rng, size: usize) -> Vec<(u32, u8)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        let pick = (rng.next() % 1000) as u32;
        let mut acc = 0;
        let len = LENGTH_MIX.iter().find(|(_, share)| {
            acc += share;
            pick < acc
        });
        let len = len.map_or(24, |(l, _)| *l);
        // Unicast space, 1.0.0.0 to 223.255.255.255.
        let addr = ((rng.next() as u32) % (223 << 24)).wrapping_add(1 << 24) & mask(len);
        if seen.insert((addr, len)) {
            out.push((addr, len));
        }
    }
    out
}

/// One implementation under test.
trait Table {
    fn name(&self) -> &'static str;
    fn insert(&mut self, addr: u32, len: u8, value: u32);
    fn remove(&mut self, addr: u32, len: u8);
    fn lookup(&self, addr: u32) -> Option<u32>;
}

struct Ours(Fib);

impl Table for Ours {
    fn name(&self) -> &'static str {
        "bulkhead Fib (tree bitmap)"
    }
    fn insert(&mut self, addr: u32, len: u8, value: u32) {
        let _ = self.0.insert(Prefix::new(addr, len).expect("canonical"), value);
    }
    fn remove(&mut self, addr: u32, len: u8) {
        self.0.remove(Prefix::new(addr, len).expect("canonical"));
    }
    fn lookup(&self, addr: u32) -> Option<u32> {
        self.0.lookup(addr).map(|(v, _)| v)
    }
}

/// The baseline a programmer writes first: a hash map per length, longest first.
struct PerLength(Vec<HashMap<u32, u32>>);

impl Table for PerLength {
    fn name(&self) -> &'static str {
        "HashMap per length"
    }
    fn insert(&mut self, addr: u32, len: u8, value: u32) {
        self.0[usize::from(len)].insert(addr, value);
    }
    fn remove(&mut self, addr: u32, len: u8) {
        self.0[usize::from(len)].remove(&addr);
    }
    fn lookup(&self, addr: u32) -> Option<u32> {
        (0..=32u8).rev().find_map(|len| {
            let map = &self.0[usize::from(len)];
            if map.is_empty() {
                None
            } else {
                map.get(&(addr & mask(len))).copied()
            }
        })
    }
}

struct PrefixTrie(prefix_trie::PrefixMap<ipnet::Ipv4Net, u32>);

impl Table for PrefixTrie {
    fn name(&self) -> &'static str {
        "prefix-trie 0.10"
    }
    fn insert(&mut self, addr: u32, len: u8, value: u32) {
        self.0.insert(ipnet::Ipv4Net::new(Ipv4Addr::from(addr), len).expect("valid"), value);
    }
    fn remove(&mut self, addr: u32, len: u8) {
        self.0.remove(&ipnet::Ipv4Net::new(Ipv4Addr::from(addr), len).expect("valid"));
    }
    fn lookup(&self, addr: u32) -> Option<u32> {
        let host = ipnet::Ipv4Net::new(Ipv4Addr::from(addr), 32).expect("valid");
        self.0.get_lpm(&host).map(|(_, v)| *v)
    }
}

struct NetworkTable(ip_network_table::IpNetworkTable<u32>);

impl Table for NetworkTable {
    fn name(&self) -> &'static str {
        "ip_network_table 0.2"
    }
    fn insert(&mut self, addr: u32, len: u8, value: u32) {
        let net = ip_network::Ipv4Network::new(Ipv4Addr::from(addr), len).expect("valid");
        self.0.insert(net, value);
    }
    fn remove(&mut self, addr: u32, len: u8) {
        let net = ip_network::Ipv4Network::new(Ipv4Addr::from(addr), len).expect("valid");
        self.0.remove(net);
    }
    fn lookup(&self, addr: u32) -> Option<u32> {
        self.0.longest_match(Ipv4Addr::from(addr)).map(|(_, v)| *v)
    }
}

struct Poptrie(poptrie::Poptrie<(u32, u8), u32>);

impl Table for Poptrie {
    fn name(&self) -> &'static str {
        "poptrie 0.2"
    }
    fn insert(&mut self, addr: u32, len: u8, value: u32) {
        self.0.insert((addr, len), value);
    }
    fn remove(&mut self, addr: u32, len: u8) {
        self.0.remove((addr, len));
    }
    fn lookup(&self, addr: u32) -> Option<u32> {
        self.0.lookup(addr).copied()
    }
}

/// iptrie's radix trie always holds the root prefix; its value `NO_ROUTE` means no route.
struct IpTrie(iptrie::Ipv4RTrieMap<u32>);

const NO_ROUTE: u32 = u32::MAX;

impl Table for IpTrie {
    fn name(&self) -> &'static str {
        "iptrie 0.11 (radix)"
    }
    fn insert(&mut self, addr: u32, len: u8, value: u32) {
        self.0.insert(iptrie::Ipv4Prefix::new(Ipv4Addr::from(addr), len).expect("valid"), value);
    }
    fn remove(&mut self, addr: u32, len: u8) {
        self.0.remove(&iptrie::Ipv4Prefix::new(Ipv4Addr::from(addr), len).expect("valid"));
    }
    fn lookup(&self, addr: u32) -> Option<u32> {
        let (_, value) = self.0.lookup(&Ipv4Addr::from(addr));
        (*value != NO_ROUTE).then_some(*value)
    }
}

struct Measured {
    name: &'static str,
    lookups_per_sec: f64,
    insert_ns: f64,
    delete_ns: f64,
    bytes_per_prefix: f64,
    checksum: u64,
    hits: usize,
}

fn measure(mut table: Box<dyn Table>, prefixes: &[(u32, u8)], addrs: &[u32]) -> Measured {
    let before = crate::allocated_bytes();
    let start = Instant::now();
    for (i, (addr, len)) in prefixes.iter().enumerate() {
        table.insert(*addr, *len, (i % 1000) as u32);
    }
    let insert_ns = start.elapsed().as_nanos() as f64 / prefixes.len() as f64;
    let bytes = crate::allocated_bytes().saturating_sub(before);
    let start = Instant::now();
    let mut checksum = 0u64;
    let mut hits = 0;
    for a in addrs {
        let found = black_box(table.lookup(*a));
        hits += usize::from(found.is_some());
        checksum = checksum.wrapping_add(u64::from(found.unwrap_or(7)));
    }
    let lookups_per_sec = addrs.len() as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for (addr, len) in prefixes.iter().step_by(10) {
        table.remove(*addr, *len);
    }
    let delete_ns = start.elapsed().as_nanos() as f64 / (prefixes.len() / 10) as f64;
    let name = table.name();
    drop(table);
    Measured {
        name,
        lookups_per_sec,
        insert_ns,
        delete_ns,
        bytes_per_prefix: bytes as f64 / prefixes.len() as f64,
        checksum,
        hits,
    }
}

/// Runs the bench; `Err` when a table answered differently or the JSON could not be written.
pub fn run(json: Option<&Path>) -> Result<(), String> {
    let mut rng = Rng(0x5eed_f1b0_0000_0001);
    let size = table_size();
    let prefixes = table(&mut rng, size);
    let addrs: Vec<u32> = (0..LOOKUPS).map(|_| rng.next() as u32).collect();
    let mut tables: Vec<Box<dyn Table>> = vec![
        Box::new(Ours(Fib::new())),
        Box::new(PerLength((0..=32).map(|_| HashMap::new()).collect())),
        Box::new(PrefixTrie(prefix_trie::PrefixMap::new())),
        Box::new(NetworkTable(ip_network_table::IpNetworkTable::new())),
        Box::new(IpTrie(iptrie::Ipv4RTrieMap::with_root(NO_ROUTE))),
    ];
    if size <= POPTRIE_MAX_PREFIXES {
        tables.push(Box::new(Poptrie(poptrie::Poptrie::new())));
    } else {
        println!(
            "poptrie 0.2 skipped above {POPTRIE_MAX_PREFIXES} prefixes: each insert and delete \
             costs time in proportion to the table (BULKHEAD_FIB_PREFIXES={POPTRIE_MAX_PREFIXES} shows it)"
        );
    }
    let results: Vec<Measured> = tables.into_iter().map(|t| measure(t, &prefixes, &addrs)).collect();
    let reference = results[0].checksum;
    let mut errors: Vec<String> = Vec::new();
    for r in &results {
        if r.checksum != reference {
            errors.push(format!("{} answered differently from Bulkhead's Fib (checksum)", r.name));
        }
    }
    let crates = &results[2..];
    let fastest = crates.iter().map(|r| r.lookups_per_sec).fold(0.0, f64::max);
    let smallest = crates.iter().map(|r| r.bytes_per_prefix).fold(f64::INFINITY, f64::min);
    let setup = format!("{size} BGP-like prefixes");
    println!(
        "{:<28} {:>12} {:>9} {:>10} {:>10} {:>13} {:>10} {:>10}",
        format!("table ({size} prefixes)"),
        "lookups/s",
        "hits",
        "insert ns",
        "delete ns",
        "bytes/prefix",
        "x fastest",
        "x smallest"
    );
    for r in &results {
        println!(
            "{:<28} {:>12.0} {:>8.1}% {:>10.0} {:>10.0} {:>13.1} {:>10.2} {:>10.2}",
            r.name,
            r.lookups_per_sec,
            100.0 * r.hits as f64 / addrs.len() as f64,
            r.insert_ns,
            r.delete_ns,
            r.bytes_per_prefix,
            r.lookups_per_sec / fastest,
            r.bytes_per_prefix / smallest
        );
    }
    let ours = &results[0];
    let figures = vec![
        Figure::new(
            "lookups/s ratio vs fastest crate",
            setup.clone(),
            ours.lookups_per_sec / fastest,
            "x",
            None,
        ),
        Figure::new(
            "bytes/prefix ratio vs smallest crate",
            setup.clone(),
            ours.bytes_per_prefix / smallest,
            "x",
            Some(1.0),
        ),
        Figure::new("Bulkhead lookups/s", setup.clone(), ours.lookups_per_sec, "1/s", None),
        Figure::new("Bulkhead bytes/prefix", setup, ours.bytes_per_prefix, "B", None),
    ];
    print_table(&figures);
    println!(
        "target: more lookups/s than the fastest crate ({}), no more bytes/prefix than the smallest ({})",
        if ours.lookups_per_sec > fastest { "met" } else { "NOT MET" },
        if ours.bytes_per_prefix <= smallest { "met" } else { "NOT MET" }
    );
    if let Some(path) = json {
        let doc = json!({
            "bench": "fib",
            "prefixes": size,
            "length_mix_per_thousand": LENGTH_MIX.iter().map(|(l, n)| json!([l, n])).collect::<Vec<_>>(),
            "tables": results.iter().map(|r| json!({
                "name": r.name, "lookups_per_sec": r.lookups_per_sec, "insert_ns": r.insert_ns,
                "delete_ns": r.delete_ns, "bytes_per_prefix": r.bytes_per_prefix,
                "hit_share": r.hits as f64 / addrs.len() as f64,
            })).collect::<Vec<_>>(),
            "figures": figures.iter().map(Figure::to_json).collect::<Vec<_>>(),
        });
        if let Err(e) = std::fs::write(path, format!("{doc:#}\n")) {
            errors.push(format!("writing {}: {e}", path.display()));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}
