//! The BGP subsystem: the `bulkhead-bgp` sessions and RIBs behind the contract, over TCP 179,
//! installing best paths into the forwarder's FIB as route source `bgp`.
//!
//! Not built yet: the `bgp` domain is owned by `diag::Reserved` until it is. Its configuration
//! section is read here already, so that adding the subsystem touches only this module and the
//! image's subsystem table.

use crate::config::{ConfigError, Table};

/// `[bgp]` and `[[bgp.neighbor]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BgpConfig {}

impl BgpConfig {
    /// Reads `[bgp]` (refuses every key until the subsystem is built).
    pub(crate) fn parse(t: &Table<'_, '_>) -> Result<BgpConfig, ConfigError> {
        t.check_keys(&[])?;
        Ok(BgpConfig {})
    }
}
