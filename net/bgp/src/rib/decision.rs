//! The BGP decision process (RFC 4271 9.1.2): which of the routes to one prefix goes into the
//! Loc-RIB, and why.
//!
//! The routes are first reduced to the eligible ones (a next hop the IGP can reach), then each
//! tie-break below removes the routes that lose it, in this order, until one is left:
//!
//! | step | keeps the routes with |
//! |---|---|
//! | [`Step::LocalPref`] | the highest LOCAL_PREF |
//! | [`Step::AsPathLen`] | the shortest AS_PATH (an AS_SET counts 1) |
//! | [`Step::Origin`] | the lowest ORIGIN (IGP < EGP < INCOMPLETE) |
//! | [`Step::Med`] | no lower MED among the routes from the same neighbouring AS (all routes when `always_compare_med`) |
//! | [`Step::External`] | eBGP-learned, if any is |
//! | [`Step::IgpCost`] | the lowest IGP cost to the next hop |
//! | [`Step::RouterId`] | the lowest BGP identifier (ORIGINATOR_ID when present) |
//! | [`Step::ClusterListLen`] | the shortest CLUSTER_LIST |
//! | [`Step::PeerAddr`] | the lowest peer address |
//!
//! The MED step is an elimination, not a comparison (MED is not transitive across neighbouring
//! ASes), which is why every step works on the set of survivors rather than on pairs. The step
//! that removed the last competitor is the [`BestReason`] that `show route` prints.
//!
//! The decision sees routes as [`Candidate`]s: the figures it compares, extracted by the RIB
//! from the post-policy attributes and the peer they came from.

use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr};

/// What the decision process compares about one route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// LOCAL_PREF after import policy (the default, 100, when absent).
    pub local_pref: u32,
    /// AS_PATH length: each AS in an AS_SEQUENCE counts 1, each AS_SET counts 1.
    pub as_path_len: u32,
    /// ORIGIN as its code: 0 IGP, 1 EGP, 2 INCOMPLETE.
    pub origin: u8,
    /// MULTI_EXIT_DISC (0 when absent, RFC 4271 9.1.2.2 c).
    pub med: u32,
    /// The neighbouring AS: the first AS of the AS_PATH, `None` for an empty path.
    pub neighbor_as: Option<u32>,
    /// Learned over eBGP.
    pub external: bool,
    /// IGP cost to the next hop; `None` when the next hop is unreachable (the route is then not
    /// eligible at all).
    pub igp_cost: Option<u32>,
    /// ORIGINATOR_ID when present, else the BGP identifier of the peer.
    pub router_id: Ipv4Addr,
    /// Number of CLUSTER_IDs in CLUSTER_LIST.
    pub cluster_list_len: u32,
    /// The address of the peer the route came from.
    pub peer_addr: IpAddr,
}

impl Candidate {
    /// A placeholder (not eligible), for tables of a fixed size.
    pub(crate) const NONE: Candidate = Candidate {
        local_pref: 0,
        as_path_len: 0,
        origin: 0,
        med: 0,
        neighbor_as: None,
        external: false,
        igp_cost: None,
        router_id: Ipv4Addr::UNSPECIFIED,
        cluster_list_len: 0,
        peer_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
}

/// One tie-break of the decision process, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    LocalPref,
    AsPathLen,
    Origin,
    Med,
    External,
    IgpCost,
    RouterId,
    ClusterListLen,
    PeerAddr,
}

/// Why the best route won.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BestReason {
    /// It was the only eligible route.
    OnlyRoute,
    /// This step removed the last route competing with it.
    Step(Step),
    /// Every step tied (two routes from the same peer address): the first was kept.
    Tie,
}

impl Step {
    /// The step's name as `show route` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Step::LocalPref => "local-pref",
            Step::AsPathLen => "as-path length",
            Step::Origin => "origin",
            Step::Med => "med",
            Step::External => "ebgp over ibgp",
            Step::IgpCost => "igp cost",
            Step::RouterId => "router id",
            Step::ClusterListLen => "cluster list length",
            Step::PeerAddr => "peer address",
        }
    }
}

impl fmt::Display for BestReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BestReason::OnlyRoute => f.write_str("only route"),
            BestReason::Step(step) => f.write_str(step.name()),
            BestReason::Tie => f.write_str("tie"),
        }
    }
}

/// Options of the decision process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecisionConfig {
    /// Compare MED between routes from different neighbouring ASes too (off by default, as
    /// RFC 4271 says).
    pub always_compare_med: bool,
}

/// The winner among `candidates` (its index) and why; `None` when no route is eligible.
pub fn select(candidates: &[Candidate], config: DecisionConfig) -> Option<(usize, BestReason)> {
    if let [only] = candidates {
        // The common case of a prefix heard from one peer: no work list.
        return only.igp_cost.map(|_| (0, BestReason::OnlyRoute));
    }
    if let Some(found) = select_ordered(candidates, config) {
        return found;
    }
    if candidates.len() <= 64 {
        return select_masked(candidates, config);
    }
    select_listed(candidates, config)
}

/// The figures of a route in the order the steps compare them, each one "less is better":
/// when MED compares across every route, the steps are a lexicographic order on this key.
type OrderKey = (u32, u32, u8, u32, bool, u32, Ipv4Addr, u32, IpAddr);

fn order_key(c: &Candidate) -> OrderKey {
    (
        u32::MAX - c.local_pref,
        c.as_path_len,
        c.origin,
        c.med,
        !c.external,
        c.igp_cost.unwrap_or(u32::MAX),
        c.router_id,
        c.cluster_list_len,
        c.peer_addr,
    )
}

/// The index of the first part in which two keys differ (9 when they are equal).
fn first_difference(a: &OrderKey, b: &OrderKey) -> usize {
    let same = [
        a.0 == b.0,
        a.1 == b.1,
        a.2 == b.2,
        a.3 == b.3,
        a.4 == b.4,
        a.5 == b.5,
        a.6 == b.6,
        a.7 == b.7,
        a.8 == b.8,
    ];
    same.iter().position(|same| !same).unwrap_or(same.len())
}

/// [`select`] in one pass when the MED step compares every pair of routes (`always_compare_med`,
/// or every eligible route has the same neighbouring AS): then each step keeps the routes with
/// the least part of [`order_key`], so the winner is the least key (the first of equals), and
/// a competitor falls at the first part where it differs from the winner; the last of those
/// falls is the step that decided. `None` when the MED step is not such an order.
fn select_ordered(candidates: &[Candidate], config: DecisionConfig) -> Option<Option<(usize, BestReason)>> {
    let mut eligible = candidates.iter().enumerate().filter(|(_, c)| c.igp_cost.is_some());
    let Some((first, first_route)) = eligible.next() else { return Some(None) };
    let neighbor_as = first_route.neighbor_as;
    let mut best = (first, order_key(first_route));
    let mut count = 1usize;
    for (i, c) in eligible {
        if !config.always_compare_med && c.neighbor_as != neighbor_as {
            return None;
        }
        let key = order_key(c);
        if key < best.1 {
            best = (i, key);
        }
        count += 1;
    }
    if count == 1 {
        return Some(Some((best.0, BestReason::OnlyRoute)));
    }
    const STEPS: [Step; 9] = [
        Step::LocalPref,
        Step::AsPathLen,
        Step::Origin,
        Step::Med,
        Step::External,
        Step::IgpCost,
        Step::RouterId,
        Step::ClusterListLen,
        Step::PeerAddr,
    ];
    let decided = candidates
        .iter()
        .enumerate()
        .filter(|(i, c)| *i != best.0 && c.igp_cost.is_some())
        .map(|(_, c)| first_difference(&order_key(c), &best.1))
        .max()
        .unwrap_or(0);
    let reason = STEPS.get(decided).map_or(BestReason::Tie, |step| BestReason::Step(*step));
    Some(Some((best.0, reason)))
}

/// [`select`] over a list of survivors, for any number of candidates.
fn select_listed(candidates: &[Candidate], config: DecisionConfig) -> Option<(usize, BestReason)> {
    let mut survivors: Vec<usize> = (0..candidates.len()).collect();
    eligible(&mut survivors, candidates);
    match survivors.len() {
        0 => return None,
        1 => return survivors.first().map(|&winner| (winner, BestReason::OnlyRoute)),
        _ => {}
    }
    let steps: [(Step, StepFn); 9] = [
        (Step::LocalPref, highest_local_pref),
        (Step::AsPathLen, shortest_as_path),
        (Step::Origin, lowest_origin),
        (Step::Med, if config.always_compare_med { lowest_med_always } else { lowest_med }),
        (Step::External, external_over_internal),
        (Step::IgpCost, lowest_igp_cost),
        (Step::RouterId, lowest_router_id),
        (Step::ClusterListLen, shortest_cluster_list),
        (Step::PeerAddr, lowest_peer_addr),
    ];
    for (step, run) in steps {
        run(&mut survivors, candidates);
        if survivors.len() == 1 {
            return survivors.first().map(|&winner| (winner, BestReason::Step(step)));
        }
    }
    survivors.first().map(|&winner| (winner, BestReason::Tie))
}

/// [`select`] for at most 64 candidates, the survivors kept as bits of a `u64` instead of a
/// list: the same steps in the same order, without allocating.
fn select_masked(candidates: &[Candidate], config: DecisionConfig) -> Option<(usize, BestReason)> {
    let mut survivors = candidates
        .iter()
        .enumerate()
        .take(64)
        .filter(|(_, c)| c.igp_cost.is_some())
        .fold(0u64, |mask, (i, _)| mask | 1u64 << i);
    let winner = |mask: u64| mask.trailing_zeros() as usize;
    match survivors.count_ones() {
        0 => return None,
        1 => return Some((winner(survivors), BestReason::OnlyRoute)),
        _ => {}
    }
    let steps = [
        Step::LocalPref,
        Step::AsPathLen,
        Step::Origin,
        Step::Med,
        Step::External,
        Step::IgpCost,
        Step::RouterId,
        Step::ClusterListLen,
        Step::PeerAddr,
    ];
    for step in steps {
        survivors = match step {
            Step::LocalPref => keep_masked(survivors, candidates, |c| u32::MAX - c.local_pref),
            Step::AsPathLen => keep_masked(survivors, candidates, |c| c.as_path_len),
            Step::Origin => keep_masked(survivors, candidates, |c| c.origin),
            Step::Med if config.always_compare_med => keep_masked(survivors, candidates, |c| c.med),
            Step::Med => lowest_med_masked(survivors, candidates),
            Step::External => keep_masked(survivors, candidates, |c| !c.external),
            Step::IgpCost => keep_masked(survivors, candidates, |c| c.igp_cost.unwrap_or(u32::MAX)),
            Step::RouterId => keep_masked(survivors, candidates, |c| c.router_id),
            Step::ClusterListLen => keep_masked(survivors, candidates, |c| c.cluster_list_len),
            Step::PeerAddr => keep_masked(survivors, candidates, |c| c.peer_addr),
        };
        if survivors.count_ones() == 1 {
            return Some((winner(survivors), BestReason::Step(step)));
        }
    }
    (survivors != 0).then(|| (winner(survivors), BestReason::Tie))
}

/// The candidates of `mask` (by index) with the least `key`.
fn keep_masked<K: Ord>(mask: u64, candidates: &[Candidate], key: impl Fn(&Candidate) -> K) -> u64 {
    let mut best: Option<K> = None;
    let mut kept = 0u64;
    for (i, c) in candidates.iter().enumerate().take(64) {
        let bit = 1u64 << i;
        if mask & bit == 0 {
            continue;
        }
        let k = key(c);
        match best.as_ref().map(|b| k.cmp(b)) {
            Some(core::cmp::Ordering::Greater) => {}
            Some(core::cmp::Ordering::Equal) => kept |= bit,
            None | Some(core::cmp::Ordering::Less) => {
                best = Some(k);
                kept = bit;
            }
        }
    }
    kept
}

/// [`lowest_med`] on a mask.
fn lowest_med_masked(mask: u64, candidates: &[Candidate]) -> u64 {
    let mut kept = mask;
    for (i, route) in candidates.iter().enumerate().take(64) {
        if mask & (1u64 << i) == 0 {
            continue;
        }
        let beaten = candidates.iter().enumerate().take(64).any(|(j, other)| {
            mask & (1u64 << j) != 0 && other.neighbor_as == route.neighbor_as && other.med < route.med
        });
        if beaten {
            kept &= !(1u64 << i);
        }
    }
    kept
}

/// A tie-break: removes from `survivors` (indices into the candidates) the routes that lose.
pub type StepFn = fn(&mut Vec<usize>, &[Candidate]);

/// Keeps the routes whose next hop is reachable.
pub fn eligible(survivors: &mut Vec<usize>, candidates: &[Candidate]) {
    survivors.retain(|&i| candidates.get(i).is_some_and(|c| c.igp_cost.is_some()));
}

pub fn highest_local_pref(survivors: &mut Vec<usize>, candidates: &[Candidate]) {
    keep_min_by_key(survivors, candidates, |c| u32::MAX - c.local_pref);
}

pub fn shortest_as_path(survivors: &mut Vec<usize>, candidates: &[Candidate]) {
    keep_min_by_key(survivors, candidates, |c| c.as_path_len);
}

pub fn lowest_origin(survivors: &mut Vec<usize>, candidates: &[Candidate]) {
    keep_min_by_key(survivors, candidates, |c| c.origin);
}

/// RFC 4271 9.1.2.2 (c): a route is removed when another route from the same neighbouring AS
/// has a lower MED. Routes from different neighbouring ASes are not compared.
pub fn lowest_med(survivors: &mut Vec<usize>, candidates: &[Candidate]) {
    let snapshot: Vec<Candidate> = survivors.iter().filter_map(|&i| candidates.get(i).copied()).collect();
    survivors.retain(|&i| {
        let Some(route) = candidates.get(i) else { return false };
        !snapshot.iter().any(|other| other.neighbor_as == route.neighbor_as && other.med < route.med)
    });
}

/// The `always-compare-med` variant: the lowest MED over all routes.
pub fn lowest_med_always(survivors: &mut Vec<usize>, candidates: &[Candidate]) {
    keep_min_by_key(survivors, candidates, |c| c.med);
}

pub fn external_over_internal(survivors: &mut Vec<usize>, candidates: &[Candidate]) {
    keep_min_by_key(survivors, candidates, |c| !c.external);
}

pub fn lowest_igp_cost(survivors: &mut Vec<usize>, candidates: &[Candidate]) {
    keep_min_by_key(survivors, candidates, |c| c.igp_cost.unwrap_or(u32::MAX));
}

pub fn lowest_router_id(survivors: &mut Vec<usize>, candidates: &[Candidate]) {
    keep_min_by_key(survivors, candidates, |c| c.router_id);
}

pub fn shortest_cluster_list(survivors: &mut Vec<usize>, candidates: &[Candidate]) {
    keep_min_by_key(survivors, candidates, |c| c.cluster_list_len);
}

/// Lowest peer address; an IPv4 peer sorts before an IPv6 one.
pub fn lowest_peer_addr(survivors: &mut Vec<usize>, candidates: &[Candidate]) {
    keep_min_by_key(survivors, candidates, |c| c.peer_addr);
}

fn keep_min_by_key<K: Ord>(
    survivors: &mut Vec<usize>,
    candidates: &[Candidate],
    key: impl Fn(&Candidate) -> K,
) {
    let Some(best) = survivors.iter().filter_map(|&i| candidates.get(i)).map(&key).min() else { return };
    survivors.retain(|&i| candidates.get(i).is_some_and(|c| key(c) == best));
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_base::rand_core::{RngCore, SeedableRng};
    use bulkhead_base::rng::Csprng;
    use core::net::Ipv6Addr;

    fn route(peer: u8) -> Candidate {
        Candidate {
            local_pref: 100,
            as_path_len: 2,
            origin: 0,
            med: 0,
            neighbor_as: Some(65001),
            external: true,
            igp_cost: Some(10),
            router_id: Ipv4Addr::new(10, 0, 0, peer),
            cluster_list_len: 0,
            peer_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, peer)),
        }
    }

    fn run(step: StepFn, candidates: &[Candidate]) -> Vec<usize> {
        let mut survivors: Vec<usize> = (0..candidates.len()).collect();
        step(&mut survivors, candidates);
        survivors
    }

    #[test]
    fn unreachable_next_hop_is_not_eligible() {
        let mut unreachable = route(1);
        unreachable.igp_cost = None;
        unreachable.local_pref = 1000;
        assert_eq!(run(eligible, &[unreachable, route(2)]), [1]);
        assert_eq!(select(&[unreachable], DecisionConfig::default()), None);
        assert_eq!(
            select(&[unreachable, route(2)], DecisionConfig::default()),
            Some((1, BestReason::OnlyRoute))
        );
    }

    #[test]
    fn local_pref_highest_wins() {
        let (mut a, mut b, c) = (route(1), route(2), route(3));
        a.local_pref = 200;
        b.local_pref = 200;
        assert_eq!(run(highest_local_pref, &[a, b, c]), [0, 1]);
        b.local_pref = 300;
        assert_eq!(
            select(&[a, b, c], DecisionConfig::default()),
            Some((1, BestReason::Step(Step::LocalPref)))
        );
    }

    #[test]
    fn as_path_shortest_wins() {
        let (mut a, b) = (route(1), route(2));
        a.as_path_len = 1;
        assert_eq!(run(shortest_as_path, &[b, a]), [1]);
        assert_eq!(select(&[b, a], DecisionConfig::default()), Some((1, BestReason::Step(Step::AsPathLen))));
    }

    #[test]
    fn origin_lowest_wins() {
        let (mut a, mut b, c) = (route(1), route(2), route(3));
        a.origin = 2;
        b.origin = 1;
        assert_eq!(run(lowest_origin, &[a, b, c]), [2]);
        assert_eq!(run(lowest_origin, &[a, b]), [1]);
    }

    #[test]
    fn med_compared_only_within_one_neighbouring_as() {
        let (mut a, mut b, mut c) = (route(1), route(2), route(3));
        a.neighbor_as = Some(1);
        a.med = 50;
        b.neighbor_as = Some(1);
        b.med = 10;
        c.neighbor_as = Some(2);
        c.med = 100;
        // a loses to b (same AS); c has no competitor from AS 2 and stays.
        assert_eq!(run(lowest_med, &[a, b, c]), [1, 2]);
        assert_eq!(run(lowest_med_always, &[a, b, c]), [1]);
        // Routes with an empty AS_PATH form their own group.
        let (mut d, mut e) = (route(4), route(5));
        d.neighbor_as = None;
        d.med = 5;
        e.neighbor_as = None;
        e.med = 1;
        assert_eq!(run(lowest_med, &[c, d, e]), [0, 2]);
    }

    #[test]
    fn med_is_not_transitive_and_the_order_of_routes_does_not_matter() {
        // The classic MED cycle: A (AS1, MED 10), B (AS2, MED 0), C (AS1, MED 0), with
        // router ids making B beat C and A beat B at later steps. Elimination removes A first.
        let (mut a, mut b, mut c) = (route(3), route(1), route(2));
        a.neighbor_as = Some(1);
        a.med = 10;
        a.external = true;
        b.neighbor_as = Some(2);
        b.med = 0;
        c.neighbor_as = Some(1);
        c.med = 0;
        let orders = [[a, b, c], [b, c, a], [c, a, b], [a, c, b], [b, a, c], [c, b, a]];
        for order in orders {
            let (winner, reason) = select(&order, DecisionConfig::default()).unwrap();
            assert_eq!(order[winner], b, "B wins on router id after A is removed by MED");
            assert_eq!(reason, BestReason::Step(Step::RouterId));
        }
    }

    #[test]
    fn external_preferred_over_internal() {
        let (a, mut b) = (route(1), route(2));
        b.external = false;
        assert_eq!(run(external_over_internal, &[b, a]), [1]);
        b.external = true;
        assert_eq!(run(external_over_internal, &[b, a]), [0, 1]);
        let (mut c, mut d) = (route(3), route(4));
        c.external = false;
        d.external = false;
        assert_eq!(run(external_over_internal, &[c, d]), [0, 1]);
    }

    #[test]
    fn igp_cost_lowest_wins() {
        let (mut a, b) = (route(1), route(2));
        a.igp_cost = Some(5);
        assert_eq!(run(lowest_igp_cost, &[b, a]), [1]);
        assert_eq!(select(&[b, a], DecisionConfig::default()), Some((1, BestReason::Step(Step::IgpCost))));
    }

    #[test]
    fn router_id_lowest_wins_and_originator_id_stands_in() {
        let (mut a, b) = (route(9), route(5));
        assert_eq!(run(lowest_router_id, &[a, b]), [1]);
        a.router_id = Ipv4Addr::new(1, 1, 1, 1); // the RIB puts ORIGINATOR_ID here
        assert_eq!(run(lowest_router_id, &[a, b]), [0]);
    }

    #[test]
    fn cluster_list_shortest_wins() {
        let (mut a, mut b) = (route(1), route(2));
        a.router_id = b.router_id;
        a.cluster_list_len = 2;
        b.cluster_list_len = 1;
        assert_eq!(run(shortest_cluster_list, &[a, b]), [1]);
        assert_eq!(
            select(&[a, b], DecisionConfig::default()),
            Some((1, BestReason::Step(Step::ClusterListLen)))
        );
    }

    #[test]
    fn peer_address_lowest_wins_v4_before_v6() {
        let (mut a, mut b, mut c) = (route(7), route(7), route(7));
        a.peer_addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
        b.peer_addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 3));
        c.peer_addr = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(run(lowest_peer_addr, &[a, b, c]), [1]);
        assert_eq!(
            select(&[c, a, b], DecisionConfig::default()),
            Some((2, BestReason::Step(Step::PeerAddr)))
        );
    }

    #[test]
    fn reasons_print_for_show_route() {
        assert_eq!(alloc::format!("{}", BestReason::Step(Step::Med)), "med");
        assert_eq!(alloc::format!("{}", BestReason::OnlyRoute), "only route");
    }

    #[test]
    fn full_tie_keeps_the_first() {
        let a = route(1);
        assert_eq!(select(&[a, a], DecisionConfig::default()), Some((0, BestReason::Tie)));
        assert_eq!(select(&[], DecisionConfig::default()), None);
    }

    #[test]
    fn steps_run_in_rfc_order() {
        // A later step never overrides an earlier one: a route better on every later step but
        // worse on LOCAL_PREF loses.
        let (mut a, mut b) = (route(1), route(2));
        a.local_pref = 90;
        a.as_path_len = 0;
        a.igp_cost = Some(0);
        b.origin = 2;
        b.external = false;
        assert_eq!(select(&[a, b], DecisionConfig::default()), Some((1, BestReason::Step(Step::LocalPref))));
        a.local_pref = 100;
        assert_eq!(select(&[a, b], DecisionConfig::default()), Some((0, BestReason::Step(Step::AsPathLen))));
    }

    /// A direct reading of RFC 4271 9.1.2.2, written without the step table, as the reference.
    fn reference(candidates: &[Candidate]) -> Option<Candidate> {
        let pool: Vec<Candidate> = candidates.iter().copied().filter(|c| c.igp_cost.is_some()).collect();
        let lp = pool.iter().map(|c| c.local_pref).max()?;
        let pool: Vec<Candidate> = pool.into_iter().filter(|c| c.local_pref == lp).collect();
        let len = pool.iter().map(|c| c.as_path_len).min()?;
        let pool: Vec<Candidate> = pool.into_iter().filter(|c| c.as_path_len == len).collect();
        let origin = pool.iter().map(|c| c.origin).min()?;
        let pool: Vec<Candidate> = pool.into_iter().filter(|c| c.origin == origin).collect();
        let mut kept = Vec::new();
        for c in &pool {
            let mut dominated = false;
            for o in &pool {
                if o.neighbor_as == c.neighbor_as && o.med < c.med {
                    dominated = true;
                }
            }
            if !dominated {
                kept.push(*c);
            }
        }
        kept.into_iter()
            .min_by_key(|c| (!c.external, c.igp_cost, c.router_id, c.cluster_list_len, c.peer_addr))
    }

    #[test]
    fn seeded_random_routes_agree_with_the_reference() {
        let mut rng = Csprng::seed_from_u64(1);
        let mut next = move |bound: u32| (rng.next_u64() % u64::from(bound)) as u32;
        for _ in 0..20_000 {
            let n = 1 + next(6) as usize;
            let mut candidates = Vec::new();
            for peer in 0..n {
                candidates.push(Candidate {
                    local_pref: 100 + 10 * next(2),
                    as_path_len: next(3),
                    origin: next(3) as u8,
                    med: next(3),
                    neighbor_as: if next(4) == 0 { None } else { Some(next(3)) },
                    external: next(2) == 0,
                    igp_cost: if next(8) == 0 { None } else { Some(next(3)) },
                    router_id: Ipv4Addr::from(next(3)),
                    cluster_list_len: next(2),
                    // Distinct per route so that the reference's min is unique.
                    peer_addr: IpAddr::V4(Ipv4Addr::new(10, 0, next(2) as u8, peer as u8)),
                });
            }
            let got = select(&candidates, DecisionConfig::default()).map(|(i, _)| candidates[i]);
            assert_eq!(got, reference(&candidates), "{candidates:?}");
        }
    }

    #[test]
    fn masked_and_listed_survivors_agree_on_winner_and_reason() {
        let mut rng = Csprng::seed_from_u64(2);
        let mut next = move |bound: u32| (rng.next_u64() % u64::from(bound)) as u32;
        for round in 0..20_000 {
            let n = 2 + next(11) as usize;
            let candidates: Vec<Candidate> = (0..n)
                .map(|_| Candidate {
                    local_pref: 100 + 10 * next(2),
                    as_path_len: next(3),
                    origin: next(3) as u8,
                    med: next(3),
                    neighbor_as: if next(4) == 0 { None } else { Some(next(3)) },
                    external: next(2) == 0,
                    igp_cost: if next(8) == 0 { None } else { Some(next(3)) },
                    router_id: Ipv4Addr::from(next(3)),
                    cluster_list_len: next(2),
                    peer_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, next(3) as u8)),
                })
                .collect();
            let config = DecisionConfig { always_compare_med: round % 2 == 0 };
            let listed = select_listed(&candidates, config);
            assert_eq!(select_masked(&candidates, config), listed, "{config:?} {candidates:?}");
            if let Some(ordered) = select_ordered(&candidates, config) {
                assert_eq!(ordered, listed, "{config:?} {candidates:?}");
            }
        }
        // More than 64 candidates take the listed path.
        let many: Vec<Candidate> = (0..70).map(|k| route(k as u8)).collect();
        assert_eq!(select(&many, DecisionConfig::default()), Some((0, BestReason::Step(Step::RouterId))));
    }
}
