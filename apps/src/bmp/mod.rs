//! The BMP subsystem: the `bulkhead-bmp` exporter behind the contract, one TCP session per
//! collector, fed by BGP through a bounded channel.
//!
//! Not built yet: the `bmp` domain is owned by `diag::Reserved` until it is. Its configuration
//! section is read here already, so that adding the subsystem touches only this module and the
//! image's subsystem table.

use crate::config::{ConfigError, Table};

/// `[bmp]` and `[[bmp.collector]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BmpConfig {}

impl BmpConfig {
    /// Reads `[bmp]` (refuses every key until the subsystem is built).
    pub(crate) fn parse(t: &Table<'_, '_>) -> Result<BmpConfig, ConfigError> {
        t.check_keys(&[])?;
        Ok(BmpConfig {})
    }
}
