//! Who pays for a byte: the memory domains, their quotas, and the two refusals a quota can give
//! (an admission over the hard quota, a plan that does not fit the heap).

use core::fmt;

/// A memory domain: who pays for a byte.
///
/// Every domain has a hard quota and a soft threshold (a [`Quota`]). Allocations are never
/// refused for a quota; the bound of a domain is enforced where work is admitted
/// ([`DomainAllocator::admit`](crate::DomainAllocator::admit)) and, for the domains that can be
/// shed, by the supervisor. What happens at each domain's bound:
///
/// | domain | shed? | at its hard quota |
/// |---|---|---|
/// | `kernel` | never | the quota is the kernel reserve; the plan keeps it free for the kernel |
/// | `net` | never | `admit(Net, ..)` refuses; the platform then refuses new sockets and drops the frames it would have to copy, counting them |
/// | `forwarder`, `sctp`, `bgp`, `bmp`, `mgmt`, `diag` | yes | `admit` refuses (the subsystem backs off); once `used` is over the hard quota the supervisor sheds the domain, checks it against its baseline and restarts it |
///
/// `net` holds the NIC rings and packet buffers that every subsystem's traffic passes through;
/// shedding it would take every subsystem's traffic down with it, so it is bounded by admission
/// alone: the refusal is the platform's backpressure, and every frame dropped for it is counted.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    /// The kernel itself; its hard quota is the kernel reserve. Never shed.
    Kernel,
    /// Packet buffers and NIC rings. Never shed: at its hard quota `admit(Net, ..)` refuses, and
    /// the platform refuses new sockets and drops (and counts) the frames it would have to copy.
    Net,
    /// The IP forwarder: FIB, flows, neighbours.
    Forwarder,
    /// The SCTP endpoint.
    Sctp,
    /// The BGP speaker.
    Bgp,
    /// The BMP exporter.
    Bmp,
    /// Configuration and the management interface.
    Mgmt,
    /// Diagnostics.
    Diag,
}

/// A domain's quota, in bytes of true footprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Above this the supervisor sheds the domain; `admit` refuses what would cross it.
    pub hard: usize,
    /// Above this the domain is asked to back off.
    pub soft: usize,
}

/// A refused admission: the domain has no room for `requested` more bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverQuota {
    /// The domain that asked.
    pub domain: Domain,
    /// Bytes it asked for.
    pub requested: usize,
    /// Bytes it held when it asked.
    pub used: usize,
    /// Its hard quota.
    pub hard: usize,
}

/// A memory plan that cannot be honoured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// Hard quotas (the kernel reserve included) plus the overshoot reserve exceed the heap.
    DoesNotFit {
        /// Sum of all hard quotas, the kernel's included (saturating).
        hard_total: usize,
        /// The kernel's hard quota.
        kernel_reserve: usize,
        /// Room kept for domains running over their quota until they are shed.
        overshoot_reserve: usize,
        /// Size of the heap.
        heap: usize,
    },
    /// A soft quota above its hard quota.
    SoftAboveHard {
        /// The domain.
        domain: Domain,
        /// Its soft quota.
        soft: usize,
        /// Its hard quota.
        hard: usize,
    },
}

impl Domain {
    /// Number of domains.
    pub const COUNT: usize = 8;
    /// All domains, in index order.
    pub const ALL: [Domain; Domain::COUNT] = [
        Domain::Kernel,
        Domain::Net,
        Domain::Forwarder,
        Domain::Sctp,
        Domain::Bgp,
        Domain::Bmp,
        Domain::Mgmt,
        Domain::Diag,
    ];

    /// The name used in configuration and on the console.
    pub fn name(self) -> &'static str {
        match self {
            Domain::Kernel => "kernel",
            Domain::Net => "net",
            Domain::Forwarder => "forwarder",
            Domain::Sctp => "sctp",
            Domain::Bgp => "bgp",
            Domain::Bmp => "bmp",
            Domain::Mgmt => "mgmt",
            Domain::Diag => "diag",
        }
    }

    /// The domain with this name.
    pub fn from_name(name: &str) -> Option<Domain> {
        Domain::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Position in [`Domain::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The domain at this index.
    pub fn from_index(index: usize) -> Option<Domain> {
        Domain::ALL.get(index).copied()
    }

    /// Whether the supervisor may shed this domain at its hard quota. `kernel` and `net` are
    /// never shed; their bound is admission alone (see the table on [`Domain`]).
    pub fn is_shed_at_quota(self) -> bool {
        !matches!(self, Domain::Kernel | Domain::Net)
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for OverQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "domain {} over quota: {} B requested, {} B used, hard quota {} B",
            self.domain, self.requested, self.used, self.hard
        )
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PlanError::DoesNotFit { hard_total, kernel_reserve, overshoot_reserve, heap } => write!(
                f,
                "memory plan does not fit: hard quotas {hard_total} B (kernel reserve {kernel_reserve} B \
                 included) + overshoot reserve {overshoot_reserve} B > heap {heap} B"
            ),
            PlanError::SoftAboveHard { domain, soft, hard } => {
                write!(f, "memory plan: domain {domain} soft quota {soft} B above its hard quota {hard} B")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_indices_round_trip() {
        for (i, d) in Domain::ALL.into_iter().enumerate() {
            assert_eq!(
                (d.index(), Domain::from_name(d.name()), Domain::from_index(i)),
                (i, Some(d), Some(d))
            );
            assert_eq!(std::format!("{d}"), d.name());
        }
        assert_eq!(Domain::from_name("bird"), None);
        assert_eq!(Domain::from_index(Domain::COUNT), None);
    }

    #[test]
    fn kernel_and_net_are_never_shed() {
        let never: std::vec::Vec<Domain> =
            Domain::ALL.into_iter().filter(|d| !d.is_shed_at_quota()).collect();
        assert_eq!(never, [Domain::Kernel, Domain::Net]);
    }
}
