//! Retransmission timeout estimation per destination (RFC 9260 section 6.3.1).
//!
//! One [`RtoEstimator`] per path. A measurement is taken only from a chunk that was sent
//! once (Karn's rule, 6.3.1 C5: the caller never feeds a retransmitted chunk's RTT), at most
//! once per round trip. On a T3-rtx or heartbeat timeout the RTO doubles up to `RTO.max`
//! (6.3.3 E2); a new measurement undoes the back-off.

use bulkhead_base::time::Duration;

/// The protocol parameters of section 16 that govern the RTO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtoConfig {
    /// RTO.Initial (RFC 9260: 1 s).
    pub initial: Duration,
    /// RTO.Min (RFC 9260: 1 s; smaller values are common on LANs).
    pub min: Duration,
    /// RTO.Max (RFC 9260: 60 s).
    pub max: Duration,
}

impl Default for RtoConfig {
    fn default() -> Self {
        RtoConfig {
            initial: Duration::from_secs(1),
            min: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

/// Smoothed RTT, RTT variation and the current RTO of one path, in microseconds.
#[derive(Clone, Copy, Debug)]
pub struct RtoEstimator {
    config: RtoConfig,
    /// `None` until the first measurement (6.3.1 C1).
    srtt: Option<u64>,
    rttvar: u64,
    rto: u64,
}

/// Clock granularity G of 6.3.1; our clock counts microseconds, a millisecond is a safe bound.
const GRANULARITY_US: u64 = 1_000;

impl RtoEstimator {
    pub fn new(config: RtoConfig) -> Self {
        let rto = clamp(config.initial.total_micros(), &config);
        RtoEstimator { config, srtt: None, rttvar: 0, rto }
    }

    /// The current RTO.
    pub fn rto(&self) -> Duration {
        Duration::from_micros(self.rto)
    }

    /// The smoothed RTT, once one was measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt.map(Duration::from_micros)
    }

    /// Feed one RTT measurement R (6.3.1 C2/C3), alpha = 1/8, beta = 1/4.
    pub fn measure(&mut self, r: Duration) {
        let r = r.total_micros();
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(r);
                self.rttvar = self.rttvar - self.rttvar / 4 + delta / 4;
                self.srtt = Some(srtt - srtt / 8 + r / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        let rto = srtt.saturating_add(core::cmp::max(GRANULARITY_US, self.rttvar.saturating_mul(4)));
        self.rto = clamp(rto, &self.config);
    }

    /// A T3-rtx, T1 or heartbeat timer expired: RTO = min(2 * RTO, RTO.max) (6.3.3 E2).
    pub fn back_off(&mut self) {
        self.rto = clamp(self.rto.saturating_mul(2), &self.config);
    }
}

fn clamp(rto: u64, config: &RtoConfig) -> u64 {
    rto.clamp(config.min.total_micros(), config.max.total_micros().max(config.min.total_micros()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lan() -> RtoConfig {
        RtoConfig {
            initial: Duration::from_secs(1),
            min: Duration::from_millis(100),
            max: Duration::from_secs(60),
        }
    }

    #[test]
    fn first_measurement_sets_srtt_and_rttvar() {
        let mut e = RtoEstimator::new(lan());
        assert_eq!(e.rto(), Duration::from_secs(1));
        e.measure(Duration::from_millis(200));
        // SRTT = 200, RTTVAR = 100, RTO = 200 + 4 * 100 = 600 ms.
        assert_eq!(e.srtt(), Some(Duration::from_millis(200)));
        assert_eq!(e.rto(), Duration::from_millis(600));
    }

    #[test]
    fn later_measurements_smooth() {
        let mut e = RtoEstimator::new(lan());
        e.measure(Duration::from_millis(200));
        e.measure(Duration::from_millis(200));
        // RTTVAR = 3/4 * 100 + 1/4 * 0 = 75; SRTT = 200; RTO = 200 + 300 = 500 ms.
        assert_eq!(e.rto(), Duration::from_millis(500));
        for _ in 0..100 {
            e.measure(Duration::from_millis(200));
        }
        // RTTVAR decays to 0: RTO = SRTT + G, clamped up to RTO.min.
        assert_eq!(e.rto(), Duration::from_micros(201_000));
    }

    #[test]
    fn clamped_to_min_and_max() {
        let mut e = RtoEstimator::new(lan());
        e.measure(Duration::from_millis(1));
        assert_eq!(e.rto(), Duration::from_millis(100));
        e.measure(Duration::from_secs(100));
        assert_eq!(e.rto(), Duration::from_secs(60));
    }

    #[test]
    fn back_off_doubles_up_to_max_and_measurement_resets() {
        let mut e = RtoEstimator::new(lan());
        let mut expect = 1u64;
        for _ in 0..10 {
            e.back_off();
            expect = (expect * 2).min(60);
            assert_eq!(e.rto(), Duration::from_secs(expect));
        }
        assert_eq!(e.rto(), Duration::from_secs(60));
        e.measure(Duration::from_millis(200));
        assert_eq!(e.rto(), Duration::from_millis(600));
    }
}
