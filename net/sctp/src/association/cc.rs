//! Congestion control per destination (RFC 9260 section 7.2): cwnd, ssthresh, slow start,
//! congestion avoidance with partial_bytes_acked, and the reactions to fast retransmit and
//! T3-rtx expiry. Byte counts are payload bytes of DATA chunks, as in the RFC.

/// The congestion state of one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Congestion {
    /// The path MTU less the IP and SCTP common headers is not subtracted: the RFC sizes
    /// cwnd in multiples of the MTU.
    mtu: u32,
    pub cwnd: u32,
    pub ssthresh: u32,
    pub partial_bytes_acked: u32,
}

impl Congestion {
    /// 7.2.1: cwnd = min(4 * MTU, max(2 * MTU, 4404)); ssthresh from the peer's a_rwnd.
    pub fn new(mtu: u32, peer_rwnd: u32) -> Self {
        let cwnd = (4 * mtu).min((2 * mtu).max(4404));
        Congestion { mtu, cwnd, ssthresh: peer_rwnd.max(1), partial_bytes_acked: 0 }
    }

    /// A SACK advanced the Cumulative TSN Ack Point and newly acknowledged `acked` bytes on
    /// this path. `fully_used`: the flight size was at least cwnd before the SACK.
    /// `flight_after`: the bytes still outstanding on this path after it.
    pub fn on_ack(&mut self, acked: u32, fully_used: bool, flight_after: u32) {
        if self.cwnd <= self.ssthresh {
            // 7.2.1 slow start, L = 1.
            if fully_used {
                self.cwnd = self.cwnd.saturating_add(acked.min(self.mtu));
            }
        } else {
            // 7.2.2 congestion avoidance.
            self.partial_bytes_acked = self.partial_bytes_acked.saturating_add(acked);
            if self.partial_bytes_acked >= self.cwnd && fully_used {
                self.partial_bytes_acked -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(self.mtu);
            }
        }
        if flight_after == 0 {
            self.partial_bytes_acked = 0;
        }
    }

    /// 7.2.3: a loss detected by three miss indications (fast retransmit).
    pub fn on_fast_retransmit(&mut self) {
        self.ssthresh = (self.cwnd / 2).max(4 * self.mtu);
        self.cwnd = self.ssthresh;
        self.partial_bytes_acked = 0;
    }

    /// 7.2.3: the T3-rtx timer expired on this path.
    pub fn on_t3_expiry(&mut self) {
        self.ssthresh = (self.cwnd / 2).max(4 * self.mtu);
        self.cwnd = self.mtu;
        self.partial_bytes_acked = 0;
    }

    /// 7.2.1: the path was idle for an RTO: cwnd = max(cwnd / 2, 4 * MTU).
    pub fn on_idle(&mut self) {
        self.cwnd = (self.cwnd / 2).max(4 * self.mtu);
    }

    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// The path MTU changed (7.3): cwnd keeps its bytes, later steps use the new size.
    pub fn set_mtu(&mut self, mtu: u32) {
        self.mtu = mtu;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_window() {
        assert_eq!(Congestion::new(1500, 100_000).cwnd, 4404);
        assert_eq!(Congestion::new(1000, 100_000).cwnd, 4000);
        assert_eq!(Congestion::new(9000, 100_000).cwnd, 18000);
    }

    #[test]
    fn slow_start_grows_by_at_most_one_mtu_per_ack_when_fully_used() {
        let mut c = Congestion::new(1500, 100_000);
        c.on_ack(3000, true, 1000);
        assert_eq!(c.cwnd, 4404 + 1500);
        c.on_ack(500, true, 1000);
        assert_eq!(c.cwnd, 4404 + 2000);
        c.on_ack(1500, false, 1000);
        assert_eq!(c.cwnd, 4404 + 2000, "no growth when the window was not used");
    }

    #[test]
    fn congestion_avoidance_one_mtu_per_window() {
        let mut c = Congestion::new(1500, 100_000);
        c.cwnd = 12_000;
        c.ssthresh = 6_000;
        c.on_ack(6_000, true, 6_000);
        assert_eq!(c.cwnd, 12_000);
        c.on_ack(6_000, true, 6_000);
        assert_eq!(c.cwnd, 13_500);
        assert_eq!(c.partial_bytes_acked, 0);
        c.on_ack(6_000, true, 0);
        assert_eq!(c.partial_bytes_acked, 0, "reset when nothing is in flight");
    }

    #[test]
    fn loss_reactions() {
        let mut c = Congestion::new(1500, 100_000);
        c.cwnd = 20_000;
        c.on_fast_retransmit();
        assert_eq!((c.cwnd, c.ssthresh), (10_000, 10_000));
        c.on_t3_expiry();
        assert_eq!((c.cwnd, c.ssthresh), (1500, 6000));
        c.on_fast_retransmit();
        assert_eq!((c.cwnd, c.ssthresh), (6000, 6000), "ssthresh never below 4 MTU");
        c.cwnd = 20_000;
        c.on_idle();
        assert_eq!(c.cwnd, 10_000);
    }
}
