//! UPDATE (RFC 4271 section 4.3) with MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760), End-of-RIB
//! (RFC 4724 section 2), AS4_PATH merging (RFC 6793), the RFC 7606 error handling, and an
//! encoder that packs prefixes sharing one attribute set into as few UPDATEs as fit.
//!
//! `Update::parse` returns what it could keep and the worst RFC 7606 action it met:
//! - session reset: `Err(UpdateError)`, whose `notification()` is what to send;
//! - treat-as-withdraw: every prefix the UPDATE announced is moved to the withdrawn lists and
//!   the attributes are dropped, so applying the result is the right thing to do;
//! - attribute discard: the offending attribute is left out of `PathAttributes`.
//!
//! The list of errors is bounded: at most one per attribute type code (duplicates are
//! discarded before they are checked), plus one for an overrun and three for missing
//! attributes.

use alloc::vec::Vec;
use core::net::{Ipv4Addr, Ipv6Addr};

use super::attribute::{
    self, flags, type_code, NextHop, PathAttributes, SessionContext, UnknownAttribute, ValueError,
};
use super::error::{Rfc7606Action, UpdateError, UpdateErrorKind};
use super::message::{EmitError, HEADER_LEN};
use super::nlri::{self, Afi, Family, Ipv4Prefix, Ipv6Prefix, NlriError, Prefix};

/// MP_REACH_NLRI (type 14): prefixes of one family and their next hop.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpReach {
    pub family: Family,
    pub next_hop: NextHop,
    pub nlri: Vec<Prefix>,
}

/// MP_UNREACH_NLRI (type 15): withdrawn prefixes of one family. Empty: End-of-RIB.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    pub family: Family,
    pub withdrawn: Vec<Prefix>,
}

/// An UPDATE message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Update {
    /// Withdrawn Routes (IPv4 unicast).
    pub withdrawn: Vec<Ipv4Prefix>,
    /// `None` when the message carries no path attributes (a withdrawal or End-of-RIB).
    pub attributes: Option<PathAttributes>,
    /// NLRI (IPv4 unicast), reached through `attributes.next_hop`.
    pub nlri: Vec<Ipv4Prefix>,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
}

/// What `Update::parse` kept, and the RFC 7606 errors it handled on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedUpdate {
    pub update: Update,
    /// The worst action taken, `None` when the UPDATE was clean.
    pub action: Option<Rfc7606Action>,
    pub errors: Vec<UpdateError>,
    /// Prefixes the UPDATE announced that treat-as-withdraw withdrew (BMP statistic 12).
    pub treated_as_withdrawn: usize,
}

/// The action RFC 7606 (section 7) assigns to a malformed attribute of this type.
fn malformed_action(code: u8) -> Rfc7606Action {
    use type_code::*;
    match code {
        ATOMIC_AGGREGATE | AGGREGATOR | AS4_PATH | AS4_AGGREGATOR => Rfc7606Action::AttributeDiscard,
        MP_REACH_NLRI | MP_UNREACH_NLRI => Rfc7606Action::SessionReset,
        _ => Rfc7606Action::TreatAsWithdraw,
    }
}

/// Collects the attributes as they are walked.
struct Walk {
    attrs: PathAttributes,
    seen: [bool; 256],
    as4_path: Option<attribute::AsPath>,
    as4_aggregator: Option<attribute::Aggregator>,
    mp_reach: Option<MpReach>,
    mp_unreach: Option<MpUnreach>,
    errors: Vec<UpdateError>,
}

impl Update {
    /// The End-of-RIB marker of a family (RFC 4724 section 2): an empty UPDATE for IPv4
    /// unicast, an UPDATE with only an empty MP_UNREACH_NLRI otherwise.
    pub fn end_of_rib(family: Family) -> Update {
        match family {
            Family::Ipv4Unicast => Update::default(),
            _ => {
                Update { mp_unreach: Some(MpUnreach { family, withdrawn: Vec::new() }), ..Update::default() }
            }
        }
    }

    /// The family whose End-of-RIB this UPDATE is, if it is one.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        let bare = self.withdrawn.is_empty() && self.nlri.is_empty() && self.mp_reach.is_none();
        match (&self.attributes, &self.mp_unreach) {
            (None, None) if bare => Some(Family::Ipv4Unicast),
            (None, Some(u)) if bare && u.withdrawn.is_empty() => Some(u.family),
            _ => None,
        }
    }

    /// Every prefix this UPDATE announces, of either family.
    pub fn announced(&self) -> impl Iterator<Item = Prefix> + '_ {
        let mp = self.mp_reach.iter().flat_map(|r| r.nlri.iter().copied());
        self.nlri.iter().map(|p| Prefix::V4(*p)).chain(mp)
    }

    /// Every prefix this UPDATE withdraws, of either family.
    pub fn withdrawn_all(&self) -> impl Iterator<Item = Prefix> + '_ {
        let mp = self.mp_unreach.iter().flat_map(|u| u.withdrawn.iter().copied());
        self.withdrawn.iter().map(|p| Prefix::V4(*p)).chain(mp)
    }

    /// Reads an UPDATE body (after the header).
    pub fn parse(body: &[u8], ctx: SessionContext) -> Result<ParsedUpdate, UpdateError> {
        let reset = |kind| UpdateError::new(kind, Rfc7606Action::SessionReset);
        let field = |bytes: &[u8], at: usize| -> Option<(usize, usize)> {
            let len = bytes.get(at..at + 2)?;
            Some((at + 2, usize::from(u16::from_be_bytes([len[0], len[1]]))))
        };
        let (start, withdrawn_len) = field(body, 0).ok_or(reset(UpdateErrorKind::LengthsInconsistent))?;
        let withdrawn =
            body.get(start..start + withdrawn_len).ok_or(reset(UpdateErrorKind::LengthsInconsistent))?;
        let (start, attr_len) =
            field(body, start + withdrawn_len).ok_or(reset(UpdateErrorKind::LengthsInconsistent))?;
        let attrs = body.get(start..start + attr_len).ok_or(reset(UpdateErrorKind::LengthsInconsistent))?;
        let nlri = body.get(start + attr_len..).unwrap_or_default();

        let network = |e: NlriError| reset(UpdateErrorKind::InvalidNetworkField(e));
        let withdrawn = nlri::parse_ipv4_prefixes(withdrawn).map_err(network)?;
        let nlri = nlri::parse_ipv4_prefixes(nlri).map_err(network)?;

        let mut walk = Walk {
            attrs: PathAttributes::default(),
            seen: [false; 256],
            as4_path: None,
            as4_aggregator: None,
            mp_reach: None,
            mp_unreach: None,
            errors: Vec::new(),
        };
        walk.attributes(attrs, ctx)?;
        if !ctx.four_octet_as {
            walk.merge_as4();
        }
        // MP_REACH_NLRI / MP_UNREACH_NLRI alone are not path attributes of a route.
        let has_attributes = walk.seen.iter().enumerate().any(|(code, seen)| {
            *seen
                && code != usize::from(type_code::MP_REACH_NLRI)
                && code != usize::from(type_code::MP_UNREACH_NLRI)
        });
        let Walk { mut attrs, seen, mp_reach, mp_unreach, mut errors, .. } = walk;

        // RFC 7606 3 d: missing well-known attributes matter only when prefixes are announced.
        let reach_nlri = mp_reach.as_ref().is_some_and(|r| !r.nlri.is_empty());
        if !nlri.is_empty() || reach_nlri {
            let mut required = alloc::vec![type_code::ORIGIN, type_code::AS_PATH];
            if !nlri.is_empty() {
                required.push(type_code::NEXT_HOP);
            }
            for code in required {
                if !seen[usize::from(code)] {
                    errors.push(UpdateError::with_data(
                        UpdateErrorKind::MissingWellKnown { type_code: code },
                        Rfc7606Action::TreatAsWithdraw,
                        &[code],
                    ));
                }
            }
        }
        if nlri.is_empty() {
            // A NEXT_HOP without IPv4 NLRI is ignored (RFC 7606 3 j), errors in it included.
            attrs.next_hop = None;
            errors.retain(|e| e.data.get(1) != Some(&type_code::NEXT_HOP));
        }

        let action = errors.iter().map(|e| e.action).max();
        let mut update =
            Update { withdrawn, attributes: has_attributes.then_some(attrs), nlri, mp_reach, mp_unreach };
        let treated_as_withdrawn =
            if action == Some(Rfc7606Action::TreatAsWithdraw) { update.treat_as_withdraw() } else { 0 };
        Ok(ParsedUpdate { update, action, errors, treated_as_withdrawn })
    }

    /// The first-AS check of RFC 4271 section 6.3, for an UPDATE from an external peer whose
    /// AS is `peer_as`:
    ///
    /// > If the UPDATE message is received from an external peer, the local system MAY check
    /// > whether the leftmost (with respect to the position of octets in the protocol message)
    /// > AS in the AS_PATH attribute is equal to the autonomous system number of the peer that
    /// > sent the message. If the check determines this is not the case, the Error Subcode
    /// > MUST be set to Malformed AS_PATH.
    ///
    /// RFC 7606 section 7.2 then says how such an error is handled: "An UPDATE message with a
    /// malformed AS_PATH attribute SHALL be handled using the approach of 'treat-as-withdraw'".
    /// So a failing UPDATE keeps the session, and (RFC 7606 section 2) "MUST be treated as
    /// though all contained routes had been withdrawn"; the error is reported with the rest. The leftmost AS is the first AS of a leading
    /// AS_SEQUENCE; an empty path, or one that starts with an AS_SET, fails. An UPDATE that
    /// announces nothing (a withdrawal, End-of-RIB) is not checked. Returns whether it failed.
    pub fn check_first_as(parsed: &mut ParsedUpdate, peer_as: u32) -> bool {
        let update = &mut parsed.update;
        if update.announced().next().is_none() {
            return false;
        }
        let Some(attrs) = &update.attributes else { return false };
        let first = match attrs.as_path.segments.first() {
            Some(segment) if segment.kind == attribute::SegmentKind::AsSequence => {
                segment.asns.first().copied()
            }
            _ => None,
        };
        if first == Some(peer_as) {
            return false;
        }
        let kind = UpdateErrorKind::FirstAsMismatch { first, peer_as };
        parsed.errors.push(UpdateError::new(kind, Rfc7606Action::TreatAsWithdraw));
        parsed.action = parsed.action.max(Some(Rfc7606Action::TreatAsWithdraw));
        parsed.treated_as_withdrawn += update.treat_as_withdraw();
        true
    }

    /// Moves every announced prefix to the withdrawn lists and drops the attributes; returns
    /// how many it moved.
    fn treat_as_withdraw(&mut self) -> usize {
        let moved = self.announced().count();
        let mut gone: Vec<Prefix> = self.withdrawn_all().chain(self.announced()).collect();
        gone.sort_unstable();
        gone.dedup();
        self.withdrawn = gone
            .iter()
            .filter_map(|p| match p {
                Prefix::V4(p) => Some(*p),
                Prefix::V6(_) => None,
            })
            .collect();
        let v6: Vec<Prefix> = gone.into_iter().filter(|p| matches!(p, Prefix::V6(_))).collect();
        self.mp_unreach =
            (!v6.is_empty()).then_some(MpUnreach { family: Family::Ipv6Unicast, withdrawn: v6 });
        self.nlri.clear();
        self.mp_reach = None;
        self.attributes = None;
        moved
    }

    /// The body (after the header) as `Update::parse` reads it.
    pub fn emit_body(&self, ctx: SessionContext, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0, 0]);
        for p in &self.withdrawn {
            push_prefix(out, Prefix::V4(*p));
        }
        let withdrawn_len = (out.len() - start - 2) as u16;
        out[start..start + 2].copy_from_slice(&withdrawn_len.to_be_bytes());
        let attr_start = out.len();
        out.extend_from_slice(&[0, 0]);
        let mut mp = Vec::new();
        if let Some(reach) = &self.mp_reach {
            mp_reach_attribute(reach.family, reach.next_hop, &reach.nlri, &mut mp);
        }
        if let Some(unreach) = &self.mp_unreach {
            mp_unreach_attribute(unreach.family, &unreach.withdrawn, &mut mp);
        }
        match &self.attributes {
            Some(attrs) => attrs.emit(ctx, !self.nlri.is_empty(), &mp, out),
            None => out.extend_from_slice(&mp),
        }
        let attr_len = (out.len() - attr_start - 2) as u16;
        out[attr_start..attr_start + 2].copy_from_slice(&attr_len.to_be_bytes());
        for p in &self.nlri {
            push_prefix(out, Prefix::V4(*p));
        }
    }
}

impl Walk {
    fn attributes(&mut self, mut bytes: &[u8], ctx: SessionContext) -> Result<(), UpdateError> {
        while !bytes.is_empty() {
            let (flag_bits, code, header, len) = match *bytes {
                [f, c, hi, lo, ..] if f & flags::EXTENDED_LENGTH != 0 => {
                    (f, c, 4, u16::from_be_bytes([hi, lo]))
                }
                [f, c, len, ..] if f & flags::EXTENDED_LENGTH == 0 => (f, c, 3, u16::from(len)),
                _ => return self.overrun(),
            };
            let Some(whole) = bytes.get(..header + usize::from(len)) else { return self.overrun() };
            let value = whole.get(header..).unwrap_or_default();
            bytes = bytes.get(whole.len()..).unwrap_or_default();
            let slot = usize::from(code);
            if self.seen[slot] {
                if code == type_code::MP_REACH_NLRI || code == type_code::MP_UNREACH_NLRI {
                    return Err(UpdateError::with_data(
                        UpdateErrorKind::DuplicateMpAttribute { type_code: code },
                        Rfc7606Action::SessionReset,
                        whole,
                    ));
                }
                // RFC 7606 3 g: later occurrences are discarded.
                continue;
            }
            self.seen[slot] = true;
            self.attribute(flag_bits, code, len, value, whole, ctx)?;
        }
        Ok(())
    }

    /// RFC 7606 section 4: an attribute running past the field is treat-as-withdraw.
    fn overrun(&mut self) -> Result<(), UpdateError> {
        self.errors.push(UpdateError::new(UpdateErrorKind::AttributeOverrun, Rfc7606Action::TreatAsWithdraw));
        Ok(())
    }

    fn fail(
        &mut self,
        kind: UpdateErrorKind,
        action: Rfc7606Action,
        whole: &[u8],
    ) -> Result<(), UpdateError> {
        let error = UpdateError::with_data(kind, action, whole);
        if action == Rfc7606Action::SessionReset {
            return Err(error);
        }
        self.errors.push(error);
        Ok(())
    }

    fn attribute(
        &mut self,
        flag_bits: u8,
        code: u8,
        len: u16,
        value: &[u8],
        whole: &[u8],
        ctx: SessionContext,
    ) -> Result<(), UpdateError> {
        use type_code::*;
        let Some(expected) = attribute::expected_flags(code) else {
            return self.unknown(flag_bits, code, value, whole);
        };
        let action = malformed_action(code);
        if flag_bits & (flags::OPTIONAL | flags::TRANSITIVE) != expected {
            return self.fail(
                UpdateErrorKind::AttributeFlags { type_code: code, flags: flag_bits },
                action,
                whole,
            );
        }
        let length_error = UpdateErrorKind::AttributeLength { type_code: code, length: len };
        let asn_len = if ctx.four_octet_as { 4 } else { 2 };
        let result = match code {
            ORIGIN => attribute::parse_origin(value).map(|o| self.attrs.origin = o),
            AS_PATH => attribute::parse_as_path(value, asn_len).and_then(|p| {
                // We are not in a confederation: such segments from an external peer are an
                // error (RFC 7606 7.2, RFC 5065).
                if ctx.external && p.segments.iter().any(|s| s.kind.is_confed()) {
                    return Err(ValueError::ConfedFromExternal);
                }
                self.attrs.as_path = p;
                Ok(())
            }),
            NEXT_HOP => attribute::parse_next_hop(value).map(|a| self.attrs.next_hop = Some(NextHop::V4(a))),
            MULTI_EXIT_DISC => be_u32(value).map(|v| self.attrs.med = Some(v)),
            // RFC 4271 5.1.5 / RFC 7606 7.5: from an external peer it is disregarded.
            LOCAL_PREF if ctx.external => Ok(()),
            LOCAL_PREF => be_u32(value).map(|v| self.attrs.local_pref = Some(v)),
            ATOMIC_AGGREGATE if value.is_empty() => {
                self.attrs.atomic_aggregate = true;
                Ok(())
            }
            ATOMIC_AGGREGATE => Err(ValueError::Length),
            AGGREGATOR => {
                attribute::parse_aggregator(value, asn_len).map(|a| self.attrs.aggregator = Some(a))
            }
            COMMUNITIES => attribute::parse_communities(value).map(|c| self.attrs.communities = c),
            // RFC 7606 7.9 / 7.10: from an external peer, attribute discard.
            ORIGINATOR_ID | CLUSTER_LIST if ctx.external => {
                return self.fail(
                    UpdateErrorKind::OptionalAttribute { type_code: code },
                    Rfc7606Action::AttributeDiscard,
                    whole,
                );
            }
            ORIGINATOR_ID => be_u32(value).map(|v| self.attrs.originator_id = Some(Ipv4Addr::from(v))),
            CLUSTER_LIST => attribute::parse_cluster_list(value).map(|c| self.attrs.cluster_list = c),
            EXTENDED_COMMUNITIES => {
                attribute::parse_ext_communities(value).map(|c| self.attrs.ext_communities = c)
            }
            LARGE_COMMUNITIES => {
                attribute::parse_large_communities(value).map(|c| self.attrs.large_communities = c)
            }
            // RFC 6793 4.1: a 4-octet speaker discards these from a 4-octet peer.
            AS4_PATH | AS4_AGGREGATOR if ctx.four_octet_as => Ok(()),
            AS4_PATH => attribute::parse_as_path(value, 4).map(|p| self.as4_path = Some(p)),
            AS4_AGGREGATOR => attribute::parse_aggregator(value, 4).map(|a| self.as4_aggregator = Some(a)),
            MP_REACH_NLRI => return self.mp_reach(value, whole),
            MP_UNREACH_NLRI => return self.mp_unreach(value, whole),
            _ => Ok(()),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                let kind = match e {
                    ValueError::Length => length_error,
                    ValueError::InvalidOrigin(value) => UpdateErrorKind::InvalidOrigin { value },
                    ValueError::InvalidNextHop => UpdateErrorKind::InvalidNextHop,
                    ValueError::MalformedAsPath | ValueError::ConfedFromExternal if code == AS_PATH => {
                        UpdateErrorKind::MalformedAsPath
                    }
                    ValueError::MalformedAsPath | ValueError::ConfedFromExternal => {
                        UpdateErrorKind::OptionalAttribute { type_code: code }
                    }
                };
                self.fail(kind, action, whole)
            }
        }
    }

    /// An attribute this speaker does not know (RFC 4271 5 and 6.3).
    fn unknown(&mut self, flag_bits: u8, code: u8, value: &[u8], whole: &[u8]) -> Result<(), UpdateError> {
        if flag_bits & flags::OPTIONAL == 0 {
            return Err(UpdateError::with_data(
                UpdateErrorKind::UnrecognizedWellKnown { type_code: code },
                Rfc7606Action::SessionReset,
                whole,
            ));
        }
        if flag_bits & flags::TRANSITIVE != 0 {
            let flag_bits = (flag_bits | flags::PARTIAL) & !flags::EXTENDED_LENGTH;
            let kept = UnknownAttribute { flags: flag_bits, type_code: code, value: value.to_vec() };
            let at = self.attrs.unknown.partition_point(|u| u.type_code < code);
            self.attrs.unknown.insert(at, kept);
        }
        // Optional non-transitive: quietly ignored.
        Ok(())
    }

    fn mp_reach(&mut self, value: &[u8], whole: &[u8]) -> Result<(), UpdateError> {
        let malformed = || {
            UpdateError::with_data(
                UpdateErrorKind::MalformedMpAttribute { type_code: type_code::MP_REACH_NLRI },
                Rfc7606Action::SessionReset,
                whole,
            )
        };
        let [a, b, safi, nh_len, ref rest @ ..] = *value else { return Err(malformed()) };
        let Some(family) = Family::from_numbers(u16::from_be_bytes([a, b]), safi) else {
            // A family this speaker did not announce: ignored.
            return Ok(());
        };
        let nh = rest.get(..usize::from(nh_len)).ok_or_else(malformed)?;
        // One reserved octet (formerly SNPA count) follows the next hop.
        let nlri = rest.get(usize::from(nh_len) + 1..).ok_or_else(malformed)?;
        let next_hop = match (family.afi(), nh.len()) {
            (Afi::Ipv4, 4) => NextHop::V4(Ipv4Addr::from(be_u32(nh).map_err(|_| malformed())?)),
            (Afi::Ipv6, 16 | 32) => {
                let global = ipv6(&nh[..16]);
                let link_local = nh.get(16..32).map(ipv6);
                NextHop::V6 { global, link_local }
            }
            _ => return Err(malformed()),
        };
        let nlri = parse_family_prefixes(family, nlri).map_err(|_| malformed())?;
        self.mp_reach = Some(MpReach { family, next_hop, nlri });
        let usable = match next_hop {
            NextHop::V4(a) => attribute::is_unicast_host(a),
            NextHop::V6 { global, .. } => {
                !global.is_unspecified() && !global.is_multicast() && !global.is_loopback()
            }
        };
        if !usable {
            // RFC 7606 7.11 / RFC 4760: a semantically wrong next hop is treat-as-withdraw.
            self.errors.push(UpdateError::with_data(
                UpdateErrorKind::InvalidNextHop,
                Rfc7606Action::TreatAsWithdraw,
                whole,
            ));
        }
        Ok(())
    }

    fn mp_unreach(&mut self, value: &[u8], whole: &[u8]) -> Result<(), UpdateError> {
        let malformed = || {
            UpdateError::with_data(
                UpdateErrorKind::MalformedMpAttribute { type_code: type_code::MP_UNREACH_NLRI },
                Rfc7606Action::SessionReset,
                whole,
            )
        };
        let [a, b, safi, ref rest @ ..] = *value else { return Err(malformed()) };
        let Some(family) = Family::from_numbers(u16::from_be_bytes([a, b]), safi) else { return Ok(()) };
        let withdrawn = parse_family_prefixes(family, rest).map_err(|_| malformed())?;
        self.mp_unreach = Some(MpUnreach { family, withdrawn });
        Ok(())
    }

    /// RFC 6793 4.2.3, for a 2-octet peer.
    fn merge_as4(&mut self) {
        if let Some(agg) = self.attrs.aggregator {
            if agg.asn != attribute::AS_TRANS {
                // The AGGREGATOR is from a 2-octet speaker: AS4_* are ignored.
                return;
            }
            if let Some(as4) = self.as4_aggregator {
                self.attrs.aggregator = Some(as4);
            }
        }
        if let Some(as4) = &self.as4_path {
            self.attrs.as_path = attribute::merge_as4_path(&self.attrs.as_path, as4);
        }
    }
}

fn be_u32(value: &[u8]) -> Result<u32, ValueError> {
    let octets: [u8; 4] = value.try_into().map_err(|_| ValueError::Length)?;
    Ok(u32::from_be_bytes(octets))
}

fn ipv6(octets: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    for (d, s) in a.iter_mut().zip(octets) {
        *d = *s;
    }
    Ipv6Addr::from(a)
}

fn parse_family_prefixes(family: Family, bytes: &[u8]) -> Result<Vec<Prefix>, NlriError> {
    Ok(match family.afi() {
        Afi::Ipv4 => nlri::parse_ipv4_prefixes(bytes)?.into_iter().map(Prefix::V4).collect(),
        Afi::Ipv6 => nlri::parse_ipv6_prefixes(bytes)?.into_iter().map(Prefix::V6).collect(),
    })
}

fn push_prefix(out: &mut Vec<u8>, p: Prefix) {
    let mut buf = [0u8; 17];
    let n = p.emit(&mut buf);
    out.extend_from_slice(&buf[..n]);
}

fn next_hop_value(next_hop: NextHop) -> Vec<u8> {
    match next_hop {
        NextHop::V4(a) => a.octets().to_vec(),
        NextHop::V6 { global, link_local } => {
            let mut v = global.octets().to_vec();
            if let Some(ll) = link_local {
                v.extend_from_slice(&ll.octets());
            }
            v
        }
    }
}

/// MP_REACH_NLRI as an attribute (always with Extended Length, so its header size does not
/// depend on how many prefixes it holds).
fn mp_reach_attribute(family: Family, next_hop: NextHop, prefixes: &[Prefix], out: &mut Vec<u8>) {
    let mut value = Vec::new();
    value.extend_from_slice(&family.afi().to_u16().to_be_bytes());
    value.push(family.safi().to_u8());
    let nh = next_hop_value(next_hop);
    value.push(nh.len() as u8);
    value.extend_from_slice(&nh);
    value.push(0);
    for p in prefixes {
        push_prefix(&mut value, *p);
    }
    push_extended(out, type_code::MP_REACH_NLRI, &value);
}

fn mp_unreach_attribute(family: Family, prefixes: &[Prefix], out: &mut Vec<u8>) {
    let mut value = Vec::new();
    value.extend_from_slice(&family.afi().to_u16().to_be_bytes());
    value.push(family.safi().to_u8());
    for p in prefixes {
        push_prefix(&mut value, *p);
    }
    push_extended(out, type_code::MP_UNREACH_NLRI, &value);
}

fn push_extended(out: &mut Vec<u8>, code: u8, value: &[u8]) {
    out.push(flags::OPTIONAL | flags::EXTENDED_LENGTH);
    out.push(code);
    out.extend_from_slice(&(value.len().min(0xffff) as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// Octets of the UPDATE header fields around the body: marker, length, type, the two length
/// fields.
const UPDATE_OVERHEAD: usize = HEADER_LEN + 2 + 2;

/// Packs `prefixes`, which all share `attrs`, into as few UPDATE messages (header included)
/// as fit in `max_len` octets. IPv4 unicast prefixes go in the NLRI field with NEXT_HOP from
/// `attrs.next_hop`; IPv6 ones in MP_REACH_NLRI with `attrs.next_hop` as its next hop.
pub fn pack_announce(
    attrs: &PathAttributes,
    prefixes: &[Prefix],
    ctx: SessionContext,
    max_len: usize,
) -> Result<Vec<Vec<u8>>, EmitError> {
    let mut messages = Vec::new();
    for family in Family::ALL {
        let batch: Vec<Prefix> = prefixes.iter().copied().filter(|p| p.family() == family).collect();
        if batch.is_empty() {
            continue;
        }
        let next_hop = attrs.next_hop.ok_or(EmitError::NextHopFamily)?;
        if matches!((family.afi(), next_hop), (Afi::Ipv4, NextHop::V6 { .. }) | (Afi::Ipv6, NextHop::V4(_))) {
            return Err(EmitError::NextHopFamily);
        }
        let mut fixed_attrs = Vec::new();
        let ipv4_field = family == Family::Ipv4Unicast;
        if ipv4_field {
            attrs.emit(ctx, true, &[], &mut fixed_attrs);
        } else {
            let mut empty_mp = Vec::new();
            mp_reach_attribute(family, next_hop, &[], &mut empty_mp);
            attrs.emit(ctx, false, &empty_mp, &mut fixed_attrs);
        }
        let fixed = UPDATE_OVERHEAD + fixed_attrs.len();
        let mut rest = batch.as_slice();
        while !rest.is_empty() {
            let mut room =
                max_len.checked_sub(fixed).ok_or(EmitError::TooLong { len: fixed, max: max_len })?;
            let mut take = 0;
            for p in rest {
                if p.wire_len() > room {
                    break;
                }
                room -= p.wire_len();
                take += 1;
            }
            if take == 0 {
                return Err(EmitError::TooLong { len: fixed + rest[0].wire_len(), max: max_len });
            }
            let (now, later) = rest.split_at(take);
            let update = if ipv4_field {
                Update {
                    attributes: Some(attrs.clone()),
                    nlri: now
                        .iter()
                        .filter_map(|p| if let Prefix::V4(p) = p { Some(*p) } else { None })
                        .collect(),
                    ..Update::default()
                }
            } else {
                let mut attrs = attrs.clone();
                attrs.next_hop = None;
                Update {
                    attributes: Some(attrs),
                    mp_reach: Some(MpReach { family, next_hop, nlri: now.to_vec() }),
                    ..Update::default()
                }
            };
            messages.push(super::message::Message::Update(update).to_bytes(ctx, max_len)?);
            rest = later;
        }
    }
    Ok(messages)
}

/// Packs withdrawals into as few UPDATE messages as fit in `max_len`: IPv4 unicast in the
/// Withdrawn Routes field, IPv6 in MP_UNREACH_NLRI.
pub fn pack_withdraw(
    prefixes: &[Prefix],
    ctx: SessionContext,
    max_len: usize,
) -> Result<Vec<Vec<u8>>, EmitError> {
    let mut messages = Vec::new();
    for family in Family::ALL {
        let batch: Vec<Prefix> = prefixes.iter().copied().filter(|p| p.family() == family).collect();
        // Attribute header (4) and AFI/SAFI (3) for MP_UNREACH_NLRI.
        let fixed = UPDATE_OVERHEAD + if family == Family::Ipv4Unicast { 0 } else { 7 };
        let mut rest = batch.as_slice();
        while !rest.is_empty() {
            let mut room = max_len.saturating_sub(fixed);
            let mut take = 0;
            for p in rest {
                if p.wire_len() > room {
                    break;
                }
                room -= p.wire_len();
                take += 1;
            }
            if take == 0 {
                return Err(EmitError::TooLong { len: fixed + rest[0].wire_len(), max: max_len });
            }
            let (now, later) = rest.split_at(take);
            let update = if family == Family::Ipv4Unicast {
                Update {
                    withdrawn: now
                        .iter()
                        .filter_map(|p| if let Prefix::V4(p) = p { Some(*p) } else { None })
                        .collect(),
                    ..Update::default()
                }
            } else {
                Update {
                    mp_unreach: Some(MpUnreach { family, withdrawn: now.to_vec() }),
                    ..Update::default()
                }
            };
            messages.push(super::message::Message::Update(update).to_bytes(ctx, max_len)?);
            rest = later;
        }
    }
    Ok(messages)
}

/// The IPv6 prefixes of an MP attribute, for callers that want the typed list.
pub fn ipv6_prefixes(prefixes: &[Prefix]) -> impl Iterator<Item = Ipv6Prefix> + '_ {
    prefixes.iter().filter_map(|p| match p {
        Prefix::V6(p) => Some(*p),
        Prefix::V4(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::attribute::{AsPath, Community, Origin, AS_TRANS};
    use crate::packet::error::UpdateSubcode;
    use crate::packet::message::{Message, MAX_LEN};
    use alloc::vec;
    use bulkhead_base::rand_core::{RngCore, SeedableRng};
    use bulkhead_base::rng::Csprng;

    const EBGP: SessionContext = SessionContext { four_octet_as: true, external: true };
    const IBGP: SessionContext = SessionContext { four_octet_as: true, external: false };

    fn v4(s: &str) -> Ipv4Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Ipv4Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
    }

    fn v6(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::V6(Ipv6Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap())
    }

    /// An UPDATE body from withdrawn bytes, attribute bytes and NLRI bytes.
    fn body(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
        b.extend_from_slice(withdrawn);
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(attrs);
        b.extend_from_slice(nlri);
        b
    }

    const ORIGIN_IGP: [u8; 4] = [0x40, 1, 1, 0];
    const AS_PATH_65001: [u8; 9] = [0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9];
    const NEXT_HOP: [u8; 7] = [0x40, 3, 4, 192, 0, 2, 1];
    const NLRI: [u8; 4] = [24, 198, 51, 100];

    fn mandatory() -> Vec<u8> {
        [&ORIGIN_IGP[..], &AS_PATH_65001, &NEXT_HOP].concat()
    }

    fn base_attrs() -> PathAttributes {
        PathAttributes {
            origin: Origin::Igp,
            as_path: AsPath::from_sequence(&[65001]),
            next_hop: Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))),
            ..PathAttributes::default()
        }
    }

    #[test]
    fn ipv4_update_both_ways() {
        let attrs =
            [&mandatory()[..], &[0x80, 4, 4, 0, 0, 0, 10], &[0xc0, 8, 4, 0xfd, 0xe9, 0, 100]].concat();
        let bytes = body(&[16, 10, 1], &attrs, &[24, 198, 51, 100, 32, 203, 0, 113, 9]);
        let parsed = Update::parse(&bytes, EBGP).unwrap();
        assert_eq!(parsed.action, None);
        let expected = Update {
            withdrawn: vec![v4("10.1.0.0/16")],
            attributes: Some(PathAttributes {
                med: Some(10),
                communities: vec![Community::new(65001, 100)],
                ..base_attrs()
            }),
            nlri: vec![v4("198.51.100.0/24"), v4("203.0.113.9/32")],
            ..Update::default()
        };
        assert_eq!(parsed.update, expected);
        let mut out = Vec::new();
        expected.emit_body(EBGP, &mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn ipv6_mp_reach_and_unreach() {
        // MP_REACH: AFI 2 SAFI 1, next hop 2001:db8::1 and fe80::1, NLRI 2001:db8:1::/48.
        let mut reach = vec![0, 2, 1, 32];
        reach.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        reach.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
        reach.extend_from_slice(&[0, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 1]);
        let unreach = [0, 2, 1, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0];
        let mut attrs = [&ORIGIN_IGP[..], &AS_PATH_65001].concat();
        push_extended(&mut attrs, 14, &reach);
        push_extended(&mut attrs, 15, &unreach);
        let bytes = body(&[], &attrs, &[]);
        let parsed = Update::parse(&bytes, EBGP).unwrap();
        assert_eq!(parsed.action, None);
        let u = &parsed.update;
        assert_eq!(
            u.mp_reach,
            Some(MpReach {
                family: Family::Ipv6Unicast,
                next_hop: NextHop::V6 {
                    global: "2001:db8::1".parse().unwrap(),
                    link_local: Some("fe80::1".parse().unwrap())
                },
                nlri: vec![v6("2001:db8:1::/48")],
            })
        );
        assert_eq!(
            u.mp_unreach,
            Some(MpUnreach { family: Family::Ipv6Unicast, withdrawn: vec![v6("2001:db8:2::/64")] })
        );
        assert_eq!(u.announced().collect::<Vec<_>>(), vec![v6("2001:db8:1::/48")]);
        let mut out = Vec::new();
        u.emit_body(EBGP, &mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn end_of_rib_both_families() {
        let eor4 = [0, 0, 0, 0];
        let p = Update::parse(&eor4, EBGP).unwrap().update;
        assert_eq!(p.end_of_rib_family(), Some(Family::Ipv4Unicast));
        let eor6 = [0, 0, 0, 7, 0x90, 15, 0, 3, 0, 2, 1];
        let p = Update::parse(&eor6, EBGP).unwrap().update;
        assert_eq!(p.end_of_rib_family(), Some(Family::Ipv6Unicast));
        for (family, bytes) in [(Family::Ipv4Unicast, &eor4[..]), (Family::Ipv6Unicast, &eor6[..])] {
            let mut out = Vec::new();
            Update::end_of_rib(family).emit_body(EBGP, &mut out);
            assert_eq!(out, bytes);
        }
        let not_eor = Update::parse(&body(&[8, 10], &[], &[]), EBGP).unwrap().update;
        assert_eq!(not_eor.end_of_rib_family(), None);
    }

    fn action_of(
        attrs: &[u8],
        nlri: &[u8],
        ctx: SessionContext,
    ) -> (Option<Rfc7606Action>, Vec<UpdateErrorKind>) {
        let p = Update::parse(&body(&[], attrs, nlri), ctx).unwrap();
        (p.action, p.errors.into_iter().map(|e| e.kind).collect())
    }

    fn reset_of(attrs: &[u8], nlri: &[u8], ctx: SessionContext) -> UpdateError {
        Update::parse(&body(&[], attrs, nlri), ctx).unwrap_err()
    }

    #[test]
    fn rfc7606_treat_as_withdraw() {
        let tw = Some(Rfc7606Action::TreatAsWithdraw);
        // ORIGIN with an undefined value (7.1).
        let attrs = [&[0x40, 1, 1, 3][..], &AS_PATH_65001, &NEXT_HOP].concat();
        assert_eq!(action_of(&attrs, &NLRI, EBGP), (tw, vec![UpdateErrorKind::InvalidOrigin { value: 3 }]));
        // Its one announced prefix is counted as withdrawn by the treatment; a clean one is not.
        let withdrawn =
            |attrs: &[u8]| Update::parse(&body(&[], attrs, &NLRI), EBGP).unwrap().treated_as_withdrawn;
        assert_eq!(withdrawn(&attrs), 1);
        assert_eq!(withdrawn(&[&ORIGIN_IGP[..], &AS_PATH_65001, &NEXT_HOP].concat()), 0);
        // ORIGIN of length 2.
        let attrs = [&[0x40, 1, 2, 0, 0][..], &AS_PATH_65001, &NEXT_HOP].concat();
        assert_eq!(action_of(&attrs, &NLRI, EBGP).0, tw);
        // AS_PATH with a zero-length segment (7.2).
        let attrs = [&ORIGIN_IGP[..], &[0x40, 2, 2, 2, 0], &NEXT_HOP].concat();
        assert_eq!(action_of(&attrs, &NLRI, EBGP), (tw, vec![UpdateErrorKind::MalformedAsPath]));
        // AS_PATH with a confederation segment from an external peer; fine from an internal one.
        let attrs = [&ORIGIN_IGP[..], &[0x40, 2, 6, 3, 1, 0, 0, 0, 1], &NEXT_HOP].concat();
        assert_eq!(action_of(&attrs, &NLRI, EBGP).0, tw);
        assert_eq!(action_of(&attrs, &NLRI, IBGP).0, None);
        // NEXT_HOP of length 5, and a loopback NEXT_HOP (7.3).
        let attrs = [&ORIGIN_IGP[..], &AS_PATH_65001, &[0x40, 3, 5, 192, 0, 2, 1, 0]].concat();
        assert_eq!(
            action_of(&attrs, &NLRI, EBGP),
            (tw, vec![UpdateErrorKind::AttributeLength { type_code: 3, length: 5 }])
        );
        let attrs = [&ORIGIN_IGP[..], &AS_PATH_65001, &[0x40, 3, 4, 127, 0, 0, 1]].concat();
        assert_eq!(action_of(&attrs, &NLRI, EBGP), (tw, vec![UpdateErrorKind::InvalidNextHop]));
        // MED of length 2 (7.4).
        let attrs = [&mandatory()[..], &[0x80, 4, 2, 0, 0]].concat();
        assert_eq!(action_of(&attrs, &NLRI, EBGP).0, tw);
        // LOCAL_PREF of length 3 from an internal peer (7.5).
        let attrs = [&mandatory()[..], &[0x40, 5, 3, 0, 0, 100]].concat();
        assert_eq!(action_of(&attrs, &NLRI, IBGP).0, tw);
        // COMMUNITIES of length 3, EXTENDED COMMUNITIES of 4, LARGE of 8, CLUSTER_LIST of 2.
        for bad in
            [&[0xc0, 8, 3, 0, 0, 0][..], &[0xc0, 16, 4, 0, 0, 0, 0], &[0xc0, 32, 8, 0, 0, 0, 0, 0, 0, 0, 0]]
        {
            let attrs = [&mandatory()[..], bad].concat();
            assert_eq!(action_of(&attrs, &NLRI, EBGP).0, tw, "{bad:?}");
        }
        let attrs = [&mandatory()[..], &[0x80, 10, 2, 0, 0]].concat();
        assert_eq!(action_of(&attrs, &NLRI, IBGP).0, tw);
        // Flags in conflict: ORIGIN marked optional (3 c).
        let attrs = [&[0xc0, 1, 1, 0][..], &AS_PATH_65001, &NEXT_HOP].concat();
        assert_eq!(
            action_of(&attrs, &NLRI, EBGP),
            (tw, vec![UpdateErrorKind::AttributeFlags { type_code: 1, flags: 0xc0 }])
        );
        // Missing well-known attributes (3 d): NEXT_HOP missing with IPv4 NLRI.
        let attrs = [&ORIGIN_IGP[..], &AS_PATH_65001].concat();
        assert_eq!(
            action_of(&attrs, &NLRI, EBGP),
            (tw, vec![UpdateErrorKind::MissingWellKnown { type_code: 3 }])
        );
        // Attribute length overrun (section 4).
        let attrs = [&mandatory()[..], &[0xc0, 8, 8, 0, 0, 0, 1]].concat();
        assert_eq!(action_of(&attrs, &NLRI, EBGP), (tw, vec![UpdateErrorKind::AttributeOverrun]));
        // Fewer than three octets left (section 4).
        let attrs = [&mandatory()[..], &[0xc0, 8]].concat();
        assert_eq!(action_of(&attrs, &NLRI, EBGP).0, tw);
    }

    #[test]
    fn treat_as_withdraw_withdraws_everything_announced() {
        let attrs = [&[0x40, 1, 1, 9][..], &AS_PATH_65001, &NEXT_HOP].concat();
        let p = Update::parse(&body(&[8, 10], &attrs, &NLRI), EBGP).unwrap();
        assert_eq!(p.action, Some(Rfc7606Action::TreatAsWithdraw));
        assert_eq!(p.update.withdrawn, vec![v4("10.0.0.0/8"), v4("198.51.100.0/24")]);
        assert!(p.update.nlri.is_empty() && p.update.attributes.is_none());
        // The MP_REACH prefixes too.
        let mut reach = vec![0, 2, 1, 16];
        reach.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        reach.extend_from_slice(&[0, 32, 0x20, 0x01, 0x0d, 0xb8]);
        let mut attrs = vec![0x40, 1, 1, 9];
        attrs.extend_from_slice(&AS_PATH_65001);
        push_extended(&mut attrs, 14, &reach);
        let p = Update::parse(&body(&[], &attrs, &[]), EBGP).unwrap();
        assert_eq!(p.update.mp_unreach.unwrap().withdrawn, vec![v6("2001:db8::/32")]);
        assert!(p.update.mp_reach.is_none());
    }

    #[test]
    fn rfc7606_attribute_discard() {
        let ad = Some(Rfc7606Action::AttributeDiscard);
        // ATOMIC_AGGREGATE with a value (7.6), AGGREGATOR of the wrong length (7.7).
        for bad in [&[0x40, 6, 1, 0][..], &[0xc0, 7, 6, 0, 1, 10, 0, 0, 1]] {
            let (action, _) = action_of(&[&mandatory()[..], bad].concat(), &NLRI, EBGP);
            assert_eq!(action, ad, "{bad:?}");
        }
        let p = Update::parse(
            &body(&[], &[&mandatory()[..], &[0xc0, 7, 6, 0, 1, 10, 0, 0, 1]].concat(), &NLRI),
            EBGP,
        )
        .unwrap();
        assert_eq!(p.update.attributes.unwrap().aggregator, None);
        assert_eq!(p.update.nlri, vec![v4("198.51.100.0/24")]);
        // ORIGINATOR_ID and CLUSTER_LIST from an external peer (7.9, 7.10).
        let attrs = [&mandatory()[..], &[0x80, 9, 4, 10, 0, 0, 1]].concat();
        assert_eq!(action_of(&attrs, &NLRI, EBGP).0, ad);
        let p = Update::parse(&body(&[], &attrs, &NLRI), IBGP).unwrap();
        assert_eq!(p.update.attributes.unwrap().originator_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
        // LOCAL_PREF from an external peer is disregarded silently (7.5).
        let attrs = [&mandatory()[..], &[0x40, 5, 4, 0, 0, 0, 200]].concat();
        let p = Update::parse(&body(&[], &attrs, &NLRI), EBGP).unwrap();
        assert_eq!((p.action, p.update.attributes.unwrap().local_pref), (None, None));
        // A duplicate attribute: later occurrences are discarded (3 g).
        let attrs = [&mandatory()[..], &[0x40, 1, 1, 2]].concat();
        let p = Update::parse(&body(&[], &attrs, &NLRI), EBGP).unwrap();
        assert_eq!((p.action, p.update.attributes.unwrap().origin), (None, Origin::Igp));
    }

    #[test]
    fn rfc7606_session_reset() {
        // Duplicate MP_REACH_NLRI (3 g).
        let mut attrs = mandatory();
        push_extended(&mut attrs, 15, &[0, 2, 1]);
        push_extended(&mut attrs, 15, &[0, 2, 1]);
        let e = reset_of(&attrs, &[], EBGP);
        assert_eq!(e.kind, UpdateErrorKind::DuplicateMpAttribute { type_code: 15 });
        assert_eq!(e.notification().code.to_u8(), (3, 1));
        // MP_REACH_NLRI with an IPv6 next hop of 8 octets (7.11).
        let mut attrs = [&ORIGIN_IGP[..], &AS_PATH_65001].concat();
        push_extended(&mut attrs, 14, &[0, 2, 1, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let e = reset_of(&attrs, &[], EBGP);
        assert_eq!(e.kind, UpdateErrorKind::MalformedMpAttribute { type_code: 14 });
        assert_eq!(e.subcode(), UpdateSubcode::OptionalAttributeError);
        // MP_UNREACH_NLRI with a prefix length of 129.
        let mut attrs = Vec::new();
        push_extended(&mut attrs, 15, &[0, 2, 1, 129]);
        assert_eq!(reset_of(&attrs, &[], EBGP).kind, UpdateErrorKind::MalformedMpAttribute { type_code: 15 });
        // MP_REACH marked transitive: flags error on an MP attribute resets.
        let mut attrs = mandatory();
        attrs.extend_from_slice(&[0xc0, 14, 3, 0, 2, 1]);
        assert_eq!(reset_of(&attrs, &[], EBGP).subcode(), UpdateSubcode::AttributeFlagsError);
        // Unrecognized well-known attribute: data is the attribute.
        let attrs = [&mandatory()[..], &[0x40, 99, 1, 7]].concat();
        let e = reset_of(&attrs, &NLRI, EBGP);
        assert_eq!(e.notification().code.to_u8(), (3, 2));
        assert_eq!(e.data, [0x40, 99, 1, 7]);
        // NLRI with a prefix length of 33, or cut short (5.3).
        let e = reset_of(&mandatory(), &[33, 1, 2, 3, 4, 5], EBGP);
        assert_eq!(e.kind, UpdateErrorKind::InvalidNetworkField(NlriError::LengthTooLong { len: 33 }));
        assert_eq!(e.notification().code.to_u8(), (3, 10));
        assert_eq!(reset_of(&mandatory(), &[24, 10, 0], EBGP).subcode(), UpdateSubcode::InvalidNetworkField);
        // Withdrawn Routes Length past the message.
        let e = Update::parse(&[0, 9, 8, 10, 0, 0], EBGP).unwrap_err();
        assert_eq!(e.kind, UpdateErrorKind::LengthsInconsistent);
        assert_eq!(e.notification().code.to_u8(), (3, 1));
        // Total Path Attribute Length past the message.
        let e = Update::parse(&[0, 0, 0, 9, 0x40, 1, 1, 0], EBGP).unwrap_err();
        assert_eq!(e.kind, UpdateErrorKind::LengthsInconsistent);
        assert!(Update::parse(&[0, 0, 0], EBGP).is_err());
    }

    #[test]
    fn first_as_check() {
        use crate::packet::attribute::{AsPathSegment, SegmentKind};
        let ctx = SessionContext { four_octet_as: true, external: true };
        let parsed = |path: AsPath, withdrawn: &[Ipv4Prefix], nlri: &[Ipv4Prefix]| {
            let update = Update {
                withdrawn: withdrawn.to_vec(),
                attributes: Some(PathAttributes { as_path: path, ..base_attrs() }),
                nlri: nlri.to_vec(),
                ..Update::default()
            };
            let mut body = Vec::new();
            update.emit_body(ctx, &mut body);
            Update::parse(&body, ctx).unwrap()
        };
        let (a, b) = (v4("10.0.0.0/8"), v4("11.0.0.0/8"));
        let mut good = parsed(AsPath::from_sequence(&[65002, 7]), &[], &[a]);
        assert!(!Update::check_first_as(&mut good, 65002));
        assert_eq!((good.update.nlri.as_slice(), good.action), (&[a][..], None));

        let mut wrong = parsed(AsPath::from_sequence(&[7, 65002]), &[b], &[a]);
        assert!(Update::check_first_as(&mut wrong, 65002));
        assert_eq!(wrong.update.withdrawn, [a, b], "announced prefixes withdrawn too");
        assert!(wrong.update.nlri.is_empty() && wrong.update.attributes.is_none());
        assert_eq!(wrong.action, Some(Rfc7606Action::TreatAsWithdraw));
        assert_eq!(wrong.errors[0].kind, UpdateErrorKind::FirstAsMismatch { first: Some(7), peer_as: 65002 });

        // A leading AS_SET has no leftmost AS: it fails.
        let set = AsPath { segments: vec![AsPathSegment { kind: SegmentKind::AsSet, asns: vec![65002] }] };
        let mut leading_set = parsed(set, &[], &[a]);
        assert!(Update::check_first_as(&mut leading_set, 65002));
        assert_eq!(
            leading_set.errors[0].kind,
            UpdateErrorKind::FirstAsMismatch { first: None, peer_as: 65002 }
        );

        // A withdrawal alone is not checked.
        let body = {
            let mut body = Vec::new();
            Update { withdrawn: vec![a], ..Update::default() }.emit_body(ctx, &mut body);
            body
        };
        let mut withdrawal = Update::parse(&body, ctx).unwrap();
        assert!(!Update::check_first_as(&mut withdrawal, 65002));
        assert!(withdrawal.errors.is_empty());
    }

    #[test]
    fn unknown_attributes() {
        // Optional transitive 99: kept with Partial set. Optional non-transitive 98: dropped.
        let attrs = [&mandatory()[..], &[0xc0, 99, 2, 1, 2], &[0x80, 98, 1, 5]].concat();
        let p = Update::parse(&body(&[], &attrs, &NLRI), EBGP).unwrap();
        assert_eq!(p.action, None);
        let kept = p.update.attributes.clone().unwrap().unknown;
        assert_eq!(kept, vec![UnknownAttribute { flags: 0xe0, type_code: 99, value: vec![1, 2] }]);
        let mut out = Vec::new();
        p.update.emit_body(EBGP, &mut out);
        assert!(out.windows(5).any(|w| w == [0xe0, 99, 2, 1, 2]));
        assert!(!out.windows(2).any(|w| w == [0x80, 98]));
    }

    #[test]
    fn as4_path_from_a_two_octet_peer() {
        let old = SessionContext { four_octet_as: false, external: true };
        // AS_PATH 65001 23456 (2-octet); AS4_PATH 4200000001; AGGREGATOR AS_TRANS + AS4_AGGREGATOR.
        let attrs = [
            &ORIGIN_IGP[..],
            &[0x40, 2, 6, 2, 2, 0xfd, 0xe9, 0x5b, 0xa0],
            &NEXT_HOP,
            &[0xc0, 7, 6, 0x5b, 0xa0, 10, 0, 0, 1],
            &[0xc0, 17, 6, 2, 1, 0xfa, 0x56, 0xea, 0x01],
            &[0xc0, 18, 8, 0xfa, 0x56, 0xea, 0x01, 10, 0, 0, 1],
        ]
        .concat();
        let p = Update::parse(&body(&[], &attrs, &NLRI), old).unwrap();
        assert_eq!(p.action, None);
        let a = p.update.attributes.clone().unwrap();
        assert_eq!(a.as_path, AsPath::from_sequence(&[65001, 4_200_000_001]));
        assert_eq!(a.aggregator.unwrap().asn, 4_200_000_001);
        // And back: the encoder writes AS_TRANS in AS_PATH and the whole path in AS4_PATH
        // (RFC 6793 4.2.2), which reads back to the same attributes.
        let mut out = Vec::new();
        p.update.emit_body(old, &mut out);
        assert!(out.windows(13).any(|w| w == [0xc0, 17, 10, 2, 2, 0, 0, 0xfd, 0xe9, 0xfa, 0x56, 0xea, 0x01]));
        assert_eq!(Update::parse(&out, old).unwrap().update, p.update);
        // A 2-octet aggregator with a 4-octet path (found by the fuzzer): AGGREGATOR goes out as
        // AS_TRANS with AS4_AGGREGATOR, else the receiver would ignore AS4_PATH.
        let mut small = p.update.clone();
        small.attributes.as_mut().unwrap().aggregator.as_mut().unwrap().asn = 0;
        let mut out = Vec::new();
        small.emit_body(old, &mut out);
        assert_eq!(Update::parse(&out, old).unwrap().update, small);
        // From a 4-octet peer, AS4_PATH is discarded.
        let attrs4 = [&mandatory()[..], &[0xc0, 17, 6, 2, 1, 0xfa, 0x56, 0xea, 0x01]].concat();
        let p = Update::parse(&body(&[], &attrs4, &NLRI), EBGP).unwrap();
        assert_eq!(p.update.attributes.unwrap().as_path, AsPath::from_sequence(&[65001]));
        // A malformed AS4_PATH is attribute discard (RFC 6793 / 7606).
        let bad =
            [&ORIGIN_IGP[..], &[0x40, 2, 4, 2, 1, 0x5b, 0xa0], &NEXT_HOP, &[0xc0, 17, 2, 2, 0]].concat();
        let p = Update::parse(&body(&[], &bad, &NLRI), old).unwrap();
        assert_eq!(p.action, Some(Rfc7606Action::AttributeDiscard));
        assert_eq!(p.update.attributes.unwrap().as_path, AsPath::from_sequence(&[AS_TRANS]));
    }

    #[test]
    fn packing_fills_messages() {
        let prefixes: Vec<Prefix> = (0..3000u32)
            .map(|i| Prefix::V4(Ipv4Prefix::new(Ipv4Addr::from((10 << 24) | (i << 8)), 24).unwrap()))
            .collect();
        let attrs = base_attrs();
        let msgs = pack_announce(&attrs, &prefixes, EBGP, MAX_LEN).unwrap();
        // 4 octets a /24; 23 + 20 octets of overhead: 1013 prefixes a message.
        assert_eq!(msgs.len(), 3);
        let mut back = Vec::new();
        for m in &msgs {
            assert!(m.len() <= MAX_LEN);
            match Message::parse(m, EBGP, MAX_LEN).unwrap() {
                Message::Update(u) => {
                    assert_eq!(u.attributes.as_ref(), Some(&attrs));
                    back.extend(u.announced());
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, prefixes);
        assert!(msgs[0].len() > MAX_LEN - 4);
        // With extended messages, one.
        assert_eq!(pack_announce(&attrs, &prefixes, EBGP, 65535).unwrap().len(), 1);
    }

    #[test]
    fn packing_ipv6_and_withdrawals() {
        let prefixes: Vec<Prefix> = (0..2000u128)
            .map(|i| {
                Prefix::V6(Ipv6Prefix::new(Ipv6Addr::from((0x2001_0db8u128 << 96) | (i << 80)), 48).unwrap())
            })
            .collect();
        let attrs = PathAttributes {
            next_hop: Some(NextHop::V6 { global: "2001:db8::1".parse().unwrap(), link_local: None }),
            ..base_attrs()
        };
        let msgs = pack_announce(&attrs, &prefixes, EBGP, MAX_LEN).unwrap();
        let mut back = Vec::new();
        for m in &msgs {
            assert!(m.len() <= MAX_LEN);
            let Message::Update(u) = Message::parse(m, EBGP, MAX_LEN).unwrap() else { panic!() };
            assert_eq!(u.mp_reach.as_ref().unwrap().next_hop, attrs.next_hop.unwrap());
            back.extend(u.announced());
        }
        assert_eq!(back, prefixes);
        // 7 octets a /48; (4096 - 23 - 13 - 9 - 25) / 7 = 575 a message: 4 messages.
        assert_eq!(msgs.len(), 4);
        let w = pack_withdraw(&prefixes, EBGP, MAX_LEN).unwrap();
        let mut back = Vec::new();
        for m in &w {
            let Message::Update(u) = Message::parse(m, EBGP, MAX_LEN).unwrap() else { panic!() };
            back.extend(u.withdrawn_all());
        }
        assert_eq!(back, prefixes);
        assert_eq!(w.len(), 4);
        // A next hop of the wrong family is refused.
        assert_eq!(pack_announce(&base_attrs(), &prefixes, EBGP, MAX_LEN), Err(EmitError::NextHopFamily));
    }

    fn random_attrs(rng: &mut Csprng, v6: bool) -> PathAttributes {
        use crate::packet::attribute::{
            Aggregator, AsPathSegment, ExtendedCommunity, LargeCommunity, SegmentKind,
        };
        let asn = |rng: &mut Csprng| {
            if rng.next_u64().is_multiple_of(2) {
                (rng.next_u64() % 65536) as u32
            } else {
                rng.next_u64() as u32
            }
        };
        let mut segments = Vec::new();
        for _ in 0..rng.next_u64() % 4 {
            let kind =
                if rng.next_u64().is_multiple_of(4) { SegmentKind::AsSet } else { SegmentKind::AsSequence };
            // AS_SETs stay within one segment (a split set would read back as two).
            let len =
                if kind == SegmentKind::AsSet { 1 + rng.next_u64() % 20 } else { 1 + rng.next_u64() % 300 };
            segments.push(AsPathSegment { kind, asns: (0..len).map(|_| asn(rng)).collect() });
        }
        // Adjacent sequences would be read back as they were written: keep them apart.
        segments.dedup_by(|b, a| a.kind == SegmentKind::AsSequence && b.kind == SegmentKind::AsSequence);
        let next_hop = if v6 {
            NextHop::V6 {
                global: Ipv6Addr::from((0x2001_0db8u128 << 96) | u128::from(rng.next_u64())),
                link_local: rng
                    .next_u64()
                    .is_multiple_of(2)
                    .then(|| Ipv6Addr::from((0xfe80u128 << 112) | u128::from(rng.next_u64()))),
            }
        } else {
            NextHop::V4(Ipv4Addr::from(0x0a00_0000 | (rng.next_u64() as u32 & 0x00ff_ffff)))
        };
        PathAttributes {
            origin: Origin::from_u8((rng.next_u64() % 3) as u8).unwrap(),
            as_path: AsPath { segments },
            next_hop: Some(next_hop),
            med: rng.next_u64().is_multiple_of(2).then(|| rng.next_u64() as u32),
            local_pref: None,
            atomic_aggregate: rng.next_u64().is_multiple_of(2),
            aggregator: rng
                .next_u64()
                .is_multiple_of(2)
                .then(|| Aggregator { asn: asn(rng), addr: Ipv4Addr::from(rng.next_u64() as u32) }),
            communities: (0..rng.next_u64() % 80).map(|_| Community(rng.next_u64() as u32)).collect(),
            large_communities: (0..rng.next_u64() % 30)
                .map(|_| LargeCommunity {
                    global_admin: rng.next_u64() as u32,
                    local_data_1: rng.next_u64() as u32,
                    local_data_2: rng.next_u64() as u32,
                })
                .collect(),
            ext_communities: (0..rng.next_u64() % 40)
                .map(|_| ExtendedCommunity(rng.next_u64().to_be_bytes()))
                .collect(),
            originator_id: None,
            cluster_list: Vec::new(),
            unknown: (0..rng.next_u64() % 3)
                .map(|i| UnknownAttribute {
                    flags: 0xe0,
                    type_code: 200 + i as u8,
                    value: (0..rng.next_u64() % 400).map(|_| rng.next_u64() as u8).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn random_attributes_and_prefixes_round_trip_through_the_packer() {
        let mut rng = Csprng::seed_from_u64(4271);
        for round in 0..300 {
            let v6 = round % 2 == 1;
            let ctx = SessionContext { four_octet_as: round % 3 != 0, external: true };
            let max_len = if round % 5 == 0 { 65535 } else { MAX_LEN };
            let attrs = random_attrs(&mut rng, v6);
            let mut prefixes: Vec<Prefix> = (0..rng.next_u64() % 3000)
                .map(|_| {
                    if v6 {
                        let len = (rng.next_u64() % 129) as u8;
                        Prefix::V6(
                            Ipv6Prefix::new_truncating(Ipv6Addr::from(u128::from(rng.next_u64()) << 64), len)
                                .unwrap(),
                        )
                    } else {
                        let len = (rng.next_u64() % 33) as u8;
                        Prefix::V4(
                            Ipv4Prefix::new_truncating(Ipv4Addr::from(rng.next_u64() as u32), len).unwrap(),
                        )
                    }
                })
                .collect();
            prefixes.sort_unstable();
            prefixes.dedup();
            let messages = match pack_announce(&attrs, &prefixes, ctx, max_len) {
                Ok(m) => m,
                // Attributes alone too large for 4096 octets: refused, not truncated.
                Err(EmitError::TooLong { .. }) => continue,
                Err(e) => panic!("{e:?}"),
            };
            let mut back = Vec::new();
            for (i, m) in messages.iter().enumerate() {
                assert!(m.len() <= max_len);
                // Packed tight: the next message's first prefix did not fit in this one.
                if let Some(next) = messages.get(i + 1) {
                    let first = Update::parse(&next[19..], ctx).unwrap().update.announced().next().unwrap();
                    assert!(m.len() + first.wire_len() > max_len, "round {round} message {i}");
                }
                let parsed = Update::parse(&m[19..], ctx).unwrap();
                assert_eq!(parsed.action, None, "round {round}");
                let mut got = parsed.update.attributes.clone().unwrap();
                if let Some(reach) = &parsed.update.mp_reach {
                    got.next_hop = Some(reach.next_hop);
                }
                assert_eq!(got, attrs, "round {round}");
                back.extend(parsed.update.announced());
            }
            assert_eq!(back, prefixes, "round {round}");
            let mut withdrawn = Vec::new();
            for m in pack_withdraw(&prefixes, ctx, max_len).unwrap() {
                withdrawn.extend(Update::parse(&m[19..], ctx).unwrap().update.withdrawn_all());
            }
            assert_eq!(withdrawn, prefixes);
        }
    }
}
