//! Import and export policy, and the per-peer prefix limit.
//!
//! A [`Policy`] is an ordered list of [`Term`]s. The first term whose every [`Match`] holds
//! decides: its [`Action`]s change the route's attributes and its [`Verdict`] accepts or
//! rejects it. A route that no term matches is rejected. A term with no matches matches every
//! route (a final `accept` or `reject`).
//!
//! RFC 8212: a peer has an `Option<Policy>` per direction, and an external peer with none
//! imports and exports nothing ([`import_default`] / [`export_default`]); an internal peer with
//! none passes routes unchanged.
//!
//! [`PrefixLimit`] bounds how many prefixes one peer's Adj-RIB-In may hold and says what
//! happens at the bound ([`LimitAction`]); the RIB reports crossing it as a [`LimitOutcome`].

use alloc::vec::Vec;

use crate::packet::attribute::{Community, LargeCommunity, PathAttributes};
use crate::packet::nlri::{Ipv4Prefix, Ipv6Prefix, Prefix};

/// An ordered list of terms; first match wins; no match rejects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub terms: Vec<Term>,
}

/// One rule: when all `matches` hold, apply `actions` and return `verdict`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub matches: Vec<Match>,
    pub actions: Vec<Action>,
    pub verdict: Verdict,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Reject,
}

/// A condition on a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// The prefix is matched by an entry of the list.
    Prefix(PrefixList),
    /// The AS number appears anywhere in AS_PATH.
    AsPathContains(u32),
    /// The route was originated by this AS (the last AS of AS_PATH).
    OriginatedBy(u32),
    /// The AS_PATH length (as the decision process counts it) lies in `min..=max`.
    AsPathLen { min: u32, max: u32 },
    /// COMMUNITIES holds this community.
    Community(Community),
    /// LARGE_COMMUNITY holds this large community.
    LargeCommunity(LargeCommunity),
}

/// A change made to an accepted route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    SetLocalPref(u32),
    SetMed(u32),
    AddCommunity(Community),
    /// Removes every copy of the community.
    RemoveCommunity(Community),
    AddLargeCommunity(LargeCommunity),
    RemoveLargeCommunity(LargeCommunity),
    /// Puts `asn` in front of AS_PATH `count` times.
    Prepend {
        asn: u32,
        count: u8,
    },
}

/// Prefixes with length ranges, as in a router's `prefix-list`; an entry matching is enough.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefixList {
    pub entries: Vec<PrefixListEntry>,
}

/// `prefix [ge N] [le M]`: a route matches when its prefix lies inside `prefix` and its length
/// is in the range: exactly `prefix`'s length with neither bound, `ge..=` the family's maximum
/// with `ge` only, `prefix`'s length`..=le` with `le` only, `ge..=le` with both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixListEntry {
    pub prefix: Prefix,
    pub ge: Option<u8>,
    pub le: Option<u8>,
}

/// What a policy decided for one route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    Reject,
    /// Accept after applying these actions (often none: then the attributes are unchanged and
    /// the RIB shares the received set).
    Accept(&'a [Action]),
}

impl Policy {
    /// One term that accepts every route unchanged.
    pub fn accept_all() -> Policy {
        Policy {
            terms: alloc::vec![Term { matches: Vec::new(), actions: Vec::new(), verdict: Verdict::Accept }],
        }
    }

    /// The first matching term's decision; `Reject` when none matches.
    pub fn evaluate(&self, prefix: Prefix, attrs: &PathAttributes) -> Decision<'_> {
        for term in &self.terms {
            if term.matches.iter().all(|m| m.holds(prefix, attrs)) {
                return match term.verdict {
                    Verdict::Accept => Decision::Accept(&term.actions),
                    Verdict::Reject => Decision::Reject,
                };
            }
        }
        Decision::Reject
    }
}

/// Whether `policy` looks at the prefix of a route: when it does not, one decision holds for
/// every prefix of an UPDATE.
pub fn matches_prefixes(policy: Option<&Policy>) -> bool {
    policy.is_some_and(|p| p.terms.iter().any(|t| t.matches.iter().any(|m| matches!(m, Match::Prefix(_)))))
}

/// Whether a peer with this export `policy` (RFC 8212 when `None`) is sent no route at all:
/// an external peer without a policy, or a policy whose terms can only reject.
pub fn exports_nothing(policy: Option<&Policy>, external: bool) -> bool {
    let Some(policy) = policy else { return external };
    for term in &policy.terms {
        if term.verdict == Verdict::Accept {
            return false;
        }
        if term.matches.is_empty() {
            return true; // rejects whatever is left
        }
    }
    true // no match rejects
}

/// The decision for a route imported from a peer with `policy` (RFC 8212 when `None`).
pub fn import_default<'a>(
    policy: Option<&'a Policy>,
    external: bool,
    prefix: Prefix,
    attrs: &PathAttributes,
) -> Decision<'a> {
    match policy {
        Some(policy) => policy.evaluate(prefix, attrs),
        None if external => Decision::Reject,
        None => Decision::Accept(&[]),
    }
}

/// The decision for a route exported to a peer with `policy` (RFC 8212 when `None`).
pub fn export_default<'a>(
    policy: Option<&'a Policy>,
    external: bool,
    prefix: Prefix,
    attrs: &PathAttributes,
) -> Decision<'a> {
    import_default(policy, external, prefix, attrs)
}

/// Applies `actions` in order.
pub fn apply(actions: &[Action], attrs: &mut PathAttributes) {
    for action in actions {
        match *action {
            Action::SetLocalPref(value) => attrs.local_pref = Some(value),
            Action::SetMed(value) => attrs.med = Some(value),
            Action::AddCommunity(c) => {
                if !attrs.communities.contains(&c) {
                    attrs.communities.push(c);
                }
            }
            Action::RemoveCommunity(c) => attrs.communities.retain(|&x| x != c),
            Action::AddLargeCommunity(c) => {
                if !attrs.large_communities.contains(&c) {
                    attrs.large_communities.push(c);
                }
            }
            Action::RemoveLargeCommunity(c) => attrs.large_communities.retain(|&x| x != c),
            Action::Prepend { asn, count } => {
                for _ in 0..count {
                    attrs.as_path.prepend(asn);
                }
            }
        }
    }
}

impl Match {
    pub fn holds(&self, prefix: Prefix, attrs: &PathAttributes) -> bool {
        match self {
            Match::Prefix(list) => list.matches(prefix),
            Match::AsPathContains(asn) => attrs.as_path.contains(*asn),
            Match::OriginatedBy(asn) => attrs.as_path.origin_as() == Some(*asn),
            Match::AsPathLen { min, max } => {
                let len = attrs.as_path.path_len();
                (*min as usize..=*max as usize).contains(&len)
            }
            Match::Community(c) => attrs.communities.contains(c),
            Match::LargeCommunity(c) => attrs.large_communities.contains(c),
        }
    }
}

impl PrefixList {
    pub fn matches(&self, prefix: Prefix) -> bool {
        self.entries.iter().any(|entry| entry.matches(prefix))
    }
}

impl PrefixListEntry {
    pub fn matches(&self, prefix: Prefix) -> bool {
        let (inside, max_len) = match (self.prefix, prefix) {
            (Prefix::V4(outer), Prefix::V4(inner)) => (outer.contains(inner), Ipv4Prefix::MAX_LEN),
            (Prefix::V6(outer), Prefix::V6(inner)) => (outer.contains(inner), Ipv6Prefix::MAX_LEN),
            _ => return false,
        };
        let own = self.prefix.len();
        let (low, high) = match (self.ge, self.le) {
            (None, None) => (own, own),
            (Some(ge), None) => (ge, max_len),
            (None, Some(le)) => (own, le),
            (Some(ge), Some(le)) => (ge, le),
        };
        inside && (low..=high).contains(&prefix.len())
    }
}

/// The most prefixes a peer's Adj-RIB-In may hold (counted as received, before import policy),
/// and what happens beyond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixLimit {
    pub max: u32,
    pub action: LimitAction,
}

/// What happens when a peer announces more than [`PrefixLimit::max`] prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitAction {
    /// Keep the routes; report once each time the count goes over.
    Warn,
    /// Drop the new prefixes beyond the limit (changes to prefixes already held still apply);
    /// the caller stops reading the session until the count falls.
    Block,
    /// Drop the new prefixes beyond the limit; the caller closes the session (CEASE, maximum
    /// number of prefixes reached, RFC 4486) and reconnects later.
    Restart,
    /// As `Restart`, but the session stays down until an operator enables it.
    Disable,
}

/// What crossing a peer's prefix limit requires of the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitOutcome {
    /// The count went over `max` (once per crossing); the routes are kept.
    Warn { count: u32, max: u32 },
    /// `dropped` new prefixes were not stored; stop reading this peer.
    Block { dropped: u32, max: u32 },
    /// `dropped` new prefixes were not stored; close the session and restart it.
    Restart { dropped: u32, max: u32 },
    /// `dropped` new prefixes were not stored; close the session and leave it down.
    Disable { dropped: u32, max: u32 },
}

impl PrefixLimit {
    /// Whether the action keeps prefixes beyond the limit (only `Warn` does).
    pub const fn admits_excess(self) -> bool {
        matches!(self.action, LimitAction::Warn)
    }

    /// The outcome after an update that left `count` prefixes held and refused `dropped` new
    /// ones; `warned` is whether a warning was already given for this crossing.
    pub fn outcome(self, count: u32, dropped: u32, warned: bool) -> Option<LimitOutcome> {
        let max = self.max;
        match self.action {
            LimitAction::Warn if count > max && !warned => Some(LimitOutcome::Warn { count, max }),
            LimitAction::Warn => None,
            _ if dropped == 0 => None,
            LimitAction::Block => Some(LimitOutcome::Block { dropped, max }),
            LimitAction::Restart => Some(LimitOutcome::Restart { dropped, max }),
            LimitAction::Disable => Some(LimitOutcome::Disable { dropped, max }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::attribute::AsPath;
    use core::net::{Ipv4Addr, Ipv6Addr};

    fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Prefix {
        Prefix::V4(Ipv4Prefix::new(Ipv4Addr::new(a, b, c, d), len).unwrap())
    }

    fn entry(prefix: Prefix, ge: Option<u8>, le: Option<u8>) -> PrefixListEntry {
        PrefixListEntry { prefix, ge, le }
    }

    fn attrs(path: &[u32]) -> PathAttributes {
        PathAttributes { as_path: AsPath::from_sequence(path), ..PathAttributes::default() }
    }

    fn term(matches: Vec<Match>, actions: Vec<Action>, verdict: Verdict) -> Term {
        Term { matches, actions, verdict }
    }

    #[test]
    fn prefix_list_exact_ge_le() {
        let p10_8 = v4(10, 0, 0, 0, 8);
        let exact = entry(p10_8, None, None);
        assert!(exact.matches(p10_8));
        assert!(!exact.matches(v4(10, 1, 0, 0, 16)));
        let ge = entry(p10_8, Some(16), None);
        assert!(!ge.matches(p10_8));
        assert!(ge.matches(v4(10, 1, 0, 0, 16)));
        assert!(ge.matches(v4(10, 1, 2, 3, 32)));
        let le = entry(p10_8, None, Some(16));
        assert!(le.matches(p10_8));
        assert!(le.matches(v4(10, 1, 0, 0, 16)));
        assert!(!le.matches(v4(10, 1, 2, 0, 24)));
        let both = entry(p10_8, Some(12), Some(20));
        assert!(!both.matches(v4(10, 0, 0, 0, 11)));
        assert!(both.matches(v4(10, 16, 0, 0, 12)));
        assert!(both.matches(v4(10, 16, 16, 0, 20)));
        assert!(!both.matches(v4(10, 16, 16, 0, 21)));
        // Outside the covering prefix, whatever the length.
        assert!(!both.matches(v4(11, 0, 0, 0, 16)));
    }

    #[test]
    fn prefix_list_families_do_not_mix() {
        let any_v4 = entry(v4(0, 0, 0, 0, 0), None, Some(32));
        let v6 = Prefix::V6(Ipv6Prefix::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32).unwrap());
        assert!(any_v4.matches(v4(192, 0, 2, 0, 24)));
        assert!(!any_v4.matches(v6));
        let any_v6 = entry(Prefix::V6(Ipv6Prefix::DEFAULT), None, Some(128));
        assert!(any_v6.matches(v6));
        assert!(!any_v6.matches(v4(192, 0, 2, 0, 24)));
    }

    #[test]
    fn as_path_matches() {
        let a = attrs(&[65001, 65002, 65003]);
        assert!(Match::AsPathContains(65002).holds(v4(10, 0, 0, 0, 8), &a));
        assert!(!Match::AsPathContains(65009).holds(v4(10, 0, 0, 0, 8), &a));
        assert!(Match::OriginatedBy(65003).holds(v4(10, 0, 0, 0, 8), &a));
        assert!(!Match::OriginatedBy(65001).holds(v4(10, 0, 0, 0, 8), &a));
        assert!(Match::AsPathLen { min: 3, max: 3 }.holds(v4(10, 0, 0, 0, 8), &a));
        assert!(!Match::AsPathLen { min: 0, max: 2 }.holds(v4(10, 0, 0, 0, 8), &a));
        assert!(!Match::OriginatedBy(1).holds(v4(10, 0, 0, 0, 8), &attrs(&[])));
    }

    #[test]
    fn community_matches() {
        let mut a = attrs(&[1]);
        let c = Community::new(65000, 42);
        let l = LargeCommunity { global_admin: 65000, local_data_1: 1, local_data_2: 2 };
        let p = v4(10, 0, 0, 0, 8);
        assert!(!Match::Community(c).holds(p, &a));
        a.communities.push(c);
        a.large_communities.push(l);
        assert!(Match::Community(c).holds(p, &a));
        assert!(Match::LargeCommunity(l).holds(p, &a));
        assert!(!Match::LargeCommunity(LargeCommunity { local_data_2: 3, ..l }).holds(p, &a));
    }

    #[test]
    fn first_matching_term_wins_and_default_rejects() {
        let customer = PrefixList { entries: alloc::vec![entry(v4(192, 0, 2, 0, 24), None, Some(28))] };
        let policy = Policy {
            terms: alloc::vec![
                term(alloc::vec![Match::AsPathContains(666)], alloc::vec![], Verdict::Reject),
                term(
                    alloc::vec![Match::Prefix(customer)],
                    alloc::vec![Action::SetLocalPref(200)],
                    Verdict::Accept
                ),
                term(
                    alloc::vec![Match::OriginatedBy(65005)],
                    alloc::vec![Action::SetMed(5)],
                    Verdict::Accept
                ),
            ],
        };
        let in_list = v4(192, 0, 2, 16, 28);
        assert_eq!(
            policy.evaluate(in_list, &attrs(&[65001])),
            Decision::Accept(&[Action::SetLocalPref(200)])
        );
        assert_eq!(policy.evaluate(in_list, &attrs(&[666, 65001])), Decision::Reject);
        assert_eq!(
            policy.evaluate(v4(10, 0, 0, 0, 8), &attrs(&[65005])),
            Decision::Accept(&[Action::SetMed(5)])
        );
        assert_eq!(policy.evaluate(v4(10, 0, 0, 0, 8), &attrs(&[65001])), Decision::Reject);
        assert_eq!(Policy::default().evaluate(in_list, &attrs(&[])), Decision::Reject);
    }

    #[test]
    fn rfc8212_no_policy_means_nothing_for_external_peers() {
        let p = v4(10, 0, 0, 0, 8);
        let a = attrs(&[1]);
        assert_eq!(import_default(None, true, p, &a), Decision::Reject);
        assert_eq!(export_default(None, true, p, &a), Decision::Reject);
        assert_eq!(import_default(None, false, p, &a), Decision::Accept(&[]));
        let all = Policy::accept_all();
        assert_eq!(import_default(Some(&all), true, p, &a), Decision::Accept(&[]));
    }

    #[test]
    fn actions_change_the_attributes() {
        let c = Community::new(65000, 1);
        let d = Community::new(65000, 2);
        let l = LargeCommunity { global_admin: 1, local_data_1: 2, local_data_2: 3 };
        let mut a = attrs(&[65001]);
        a.communities = alloc::vec![c, d, c];
        apply(
            &[
                Action::SetLocalPref(300),
                Action::SetMed(7),
                Action::RemoveCommunity(c),
                Action::AddCommunity(d),
                Action::AddLargeCommunity(l),
                Action::AddLargeCommunity(l),
                Action::Prepend { asn: 65000, count: 2 },
            ],
            &mut a,
        );
        assert_eq!(a.local_pref, Some(300));
        assert_eq!(a.med, Some(7));
        assert_eq!(a.communities, [d]);
        assert_eq!(a.large_communities, [l]);
        assert_eq!(a.as_path, AsPath::from_sequence(&[65000, 65000, 65001]));
        apply(&[Action::RemoveLargeCommunity(l)], &mut a);
        assert!(a.large_communities.is_empty());
    }

    #[test]
    fn prefix_limit_outcomes() {
        let warn = PrefixLimit { max: 10, action: LimitAction::Warn };
        assert!(warn.admits_excess());
        assert_eq!(warn.outcome(10, 0, false), None);
        assert_eq!(warn.outcome(11, 0, false), Some(LimitOutcome::Warn { count: 11, max: 10 }));
        assert_eq!(warn.outcome(12, 0, true), None);
        let block = PrefixLimit { max: 10, action: LimitAction::Block };
        assert!(!block.admits_excess());
        assert_eq!(block.outcome(10, 0, false), None);
        assert_eq!(block.outcome(10, 3, false), Some(LimitOutcome::Block { dropped: 3, max: 10 }));
        let restart = PrefixLimit { max: 1, action: LimitAction::Restart };
        assert_eq!(restart.outcome(1, 1, false), Some(LimitOutcome::Restart { dropped: 1, max: 1 }));
        let disable = PrefixLimit { max: 1, action: LimitAction::Disable };
        assert_eq!(disable.outcome(1, 2, false), Some(LimitOutcome::Disable { dropped: 2, max: 1 }));
    }
}
