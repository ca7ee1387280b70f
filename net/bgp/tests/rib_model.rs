//! The RIB against a model: random announcements, withdrawals, session flaps, graceful restarts,
//! IGP changes and import policy changes over many seeds; after every step the Loc-RIB must hold,
//! for every prefix, the route that a direct reading of RFC 4271 9.1 picks from the model's
//! tables (no incremental state at all). This checks that the RIB re-runs the decision process
//! whenever it must, and keeps pre- and post-policy routes straight.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use bulkhead_base::rand_core::{RngCore, SeedableRng};
use bulkhead_base::rng::Csprng;
use bulkhead_bgp::packet::attribute::{AsPath, Community, NextHop, Origin, PathAttributes};
use bulkhead_bgp::packet::nlri::Ipv4Prefix;
use bulkhead_bgp::policy::{
    self, Action, Decision, Match, Policy, PrefixList, PrefixListEntry, Term, Verdict,
};
use bulkhead_bgp::rib::{PeerConfig, PeerId, Rib, RibConfig, RibCursor};

const LOCAL_AS: u32 = 65000;

struct ModelPeer {
    id: PeerId,
    external: bool,
    addr: IpAddr,
    router_id: Ipv4Addr,
    import: Option<Policy>,
    up: bool,
    /// Received attributes and the stale mark, per prefix.
    routes: BTreeMap<Ipv4Prefix, (PathAttributes, bool)>,
}

fn prefix(n: u8) -> Ipv4Prefix {
    Ipv4Prefix::new(Ipv4Addr::new(10, n, 0, 0), 16).unwrap()
}

fn hop(n: u8) -> NextHop {
    NextHop::V4(Ipv4Addr::new(192, 0, 2, n))
}

fn prefer_65099() -> Policy {
    Policy {
        terms: vec![
            Term {
                matches: vec![Match::Prefix(PrefixList {
                    entries: vec![PrefixListEntry { prefix: prefix(7).into(), ge: None, le: None }],
                })],
                actions: vec![],
                verdict: Verdict::Reject,
            },
            Term {
                matches: vec![Match::AsPathContains(65099)],
                actions: vec![Action::SetLocalPref(200), Action::AddCommunity(Community::new(65000, 1))],
                verdict: Verdict::Accept,
            },
            Term { matches: vec![], actions: vec![], verdict: Verdict::Accept },
        ],
    }
}

fn random_attrs(rng: &mut Csprng, first_as: u32) -> PathAttributes {
    let mut path = vec![first_as];
    for _ in 0..rng.next_u64() % 3 {
        path.push([65099, 65010, LOCAL_AS, 65011][(rng.next_u64() % 4) as usize]);
    }
    if first_as == LOCAL_AS {
        path.clear(); // iBGP: no AS added
    }
    PathAttributes {
        origin: [Origin::Igp, Origin::Egp, Origin::Incomplete][(rng.next_u64() % 3) as usize],
        as_path: AsPath::from_sequence(&path),
        next_hop: Some(hop(1 + (rng.next_u64() % 4) as u8)),
        med: if rng.next_u64().is_multiple_of(2) { None } else { Some((rng.next_u64() % 3) as u32) },
        local_pref: if rng.next_u64().is_multiple_of(2) {
            None
        } else {
            Some(90 + 10 * (rng.next_u64() % 3) as u32)
        },
        ..PathAttributes::default()
    }
}

/// RFC 4271 9.1 read directly: import (loop check, RFC 8212, policy, eBGP LOCAL_PREF ignored),
/// then elimination step by step.
fn model_best(peers: &[ModelPeer], p: Ipv4Prefix, reachable: &[bool; 5]) -> Option<(PeerId, PathAttributes)> {
    struct Cand {
        peer: PeerId,
        attrs: PathAttributes,
        lp: u32,
        len: usize,
        origin: u8,
        med: u32,
        neighbor: Option<u32>,
        external: bool,
        router_id: Ipv4Addr,
        addr: IpAddr,
    }
    let mut pool = Vec::new();
    for peer in peers {
        let Some((received, _)) = peer.routes.get(&p) else { continue };
        if peer.external && received.as_path.contains(LOCAL_AS) {
            continue;
        }
        let Decision::Accept(actions) =
            policy::import_default(peer.import.as_ref(), peer.external, p.into(), received)
        else {
            continue;
        };
        let mut attrs = received.clone();
        if peer.external {
            attrs.local_pref = None;
        }
        policy::apply(actions, &mut attrs);
        let Some(NextHop::V4(nh)) = attrs.next_hop else { continue };
        if !reachable[usize::from(nh.octets()[3])] {
            continue;
        }
        pool.push(Cand {
            peer: peer.id,
            lp: attrs.local_pref.unwrap_or(100),
            len: attrs.as_path.path_len(),
            origin: attrs.origin.to_u8(),
            med: attrs.med.unwrap_or(0),
            neighbor: attrs.as_path.first_as(),
            external: peer.external,
            router_id: attrs.originator_id.unwrap_or(peer.router_id),
            addr: peer.addr,
            attrs,
        });
    }
    let lp = pool.iter().map(|c| c.lp).max()?;
    pool.retain(|c| c.lp == lp);
    let len = pool.iter().map(|c| c.len).min()?;
    pool.retain(|c| c.len == len);
    let origin = pool.iter().map(|c| c.origin).min()?;
    pool.retain(|c| c.origin == origin);
    let dominated: Vec<bool> =
        pool.iter().map(|c| pool.iter().any(|o| o.neighbor == c.neighbor && o.med < c.med)).collect();
    let mut kept = dominated.iter();
    pool.retain(|_| !*kept.next().unwrap());
    // All costs are equal (reachable = cost 1); cluster lists are empty.
    let best = pool.into_iter().min_by_key(|c| (!c.external, c.router_id, c.addr))?;
    Some((best.peer, best.attrs))
}

fn run(seed: u64) {
    let mut rng = Csprng::seed_from_u64(seed);
    let mut reachable = [true; 5];
    let mut rib: Rib<Ipv4Prefix> = Rib::new(RibConfig::new(LOCAL_AS, Ipv4Addr::new(10, 255, 0, 1)));
    let specs: [(u32, Option<Policy>); 4] = [
        (65001, Some(prefer_65099())),
        (65002, Some(Policy::accept_all())),
        (LOCAL_AS, None),
        (65003, None), // RFC 8212: imports nothing
    ];
    let mut peers = Vec::new();
    for (n, (remote_as, import)) in specs.into_iter().enumerate() {
        let addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + n as u8));
        let router_id = Ipv4Addr::new(10, 0, 0, [3, 1, 2, 4][n]);
        let id = rib
            .add_peer(PeerConfig {
                addr,
                remote_as,
                next_hop_self: hop(254),
                rr_client: false,
                import: import.clone(),
                export: None,
                prefix_limit: None,
            })
            .unwrap();
        rib.peer_up(id, router_id).unwrap();
        peers.push(ModelPeer {
            id,
            external: remote_as != LOCAL_AS,
            addr,
            router_id,
            import,
            up: true,
            routes: BTreeMap::new(),
        });
    }
    for step in 0..400 {
        let reach = reachable;
        let cost = move |nh: &NextHop| match nh {
            NextHop::V4(a) if reach[usize::from(a.octets()[3] % 5)] => Some(1),
            _ => None,
        };
        let which = (rng.next_u64() % peers.len() as u64) as usize;
        let peer = &mut peers[which];
        match rng.next_u64() % 40 {
            // A session drops without graceful restart and comes back.
            0 => {
                rib.peer_down(peer.id, &cost).unwrap();
                peer.routes.clear();
                rib.peer_up(peer.id, peer.router_id).unwrap();
            }
            // Graceful restart: the session drops, routes stay stale, come back, End-of-RIB.
            1 if peer.up => {
                rib.session_down(peer.id).unwrap();
                rib.mark_stale(peer.id).unwrap();
                peer.up = false;
                for route in peer.routes.values_mut() {
                    route.1 = true;
                }
                rib.peer_up(peer.id, peer.router_id).unwrap();
                peer.up = true;
            }
            2 => {
                let mut cursor = RibCursor::new();
                while !cursor.is_done() {
                    rib.sweep_stale(peer.id, &mut cursor, 1 + (rng.next_u64() % 3) as usize, &cost).unwrap();
                }
                peer.routes.retain(|_, route| !route.1);
            }
            // A next hop changes reachability; the RIB is told by re-running every peer.
            3 => {
                let n = 1 + (rng.next_u64() % 4) as usize;
                reachable[n] = !reachable[n];
                let reach = reachable;
                let cost = move |nh: &NextHop| match nh {
                    NextHop::V4(a) if reach[usize::from(a.octets()[3] % 5)] => Some(1),
                    _ => None,
                };
                for peer in &peers {
                    let mut cursor = RibCursor::new();
                    while !cursor.is_done() {
                        rib.refresh_import(peer.id, &mut cursor, 1 + (rng.next_u64() % 4) as usize, &cost)
                            .unwrap();
                    }
                }
            }
            // Import policy of the first peer swapped, then soft reconfiguration.
            4 => {
                let model = &mut peers[0];
                model.import = if model.import == Some(prefer_65099()) {
                    Some(Policy::accept_all())
                } else {
                    Some(prefer_65099())
                };
                rib.set_import_policy(model.id, model.import.clone()).unwrap();
                let mut cursor = RibCursor::new();
                while !cursor.is_done() {
                    rib.refresh_import(model.id, &mut cursor, 3, &cost).unwrap();
                }
            }
            5..=14 => {
                let gone: Vec<Ipv4Prefix> =
                    (0..1 + rng.next_u64() % 3).map(|_| prefix((rng.next_u64() % 8) as u8)).collect();
                rib.update(peer.id, &gone, &[], &PathAttributes::default(), &cost).unwrap();
                for p in &gone {
                    peer.routes.remove(p);
                }
            }
            _ => {
                let first_as = if peer.external { [65001, 65002, 65002, 65003][which] } else { LOCAL_AS };
                let attrs = random_attrs(&mut rng, first_as);
                let news: Vec<Ipv4Prefix> =
                    (0..1 + rng.next_u64() % 3).map(|_| prefix((rng.next_u64() % 8) as u8)).collect();
                rib.update(peer.id, &[], &news, &attrs, &cost).unwrap();
                for p in news {
                    peer.routes.insert(p, (attrs.clone(), false));
                }
            }
        }
        for n in 0..8 {
            let p = prefix(n);
            let got = rib.best(&p).map(|b| (b.route.peer, b.attrs.clone()));
            assert_eq!(got, model_best(&peers, p, &reachable), "seed {seed} step {step} {p}");
        }
    }
    for peer in &peers {
        rib.remove_peer(peer.id, &|_: &NextHop| Some(1)).unwrap();
    }
    assert_eq!(rib.attr_sets(), 0, "seed {seed}: every attribute set freed");
}

#[test]
fn rib_matches_the_model_over_many_seeds() {
    for seed in 1..=24u64 {
        run(seed);
    }
}
