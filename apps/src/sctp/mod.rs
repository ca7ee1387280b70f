//! The SCTP subsystem: the `bulkhead-sctp` endpoint behind the contract, over raw IP protocol
//! 132 and UDP encapsulation (RFC 6951), with the echo, discard and sink services.
//!
//! Not built yet: the `sctp` domain is owned by `diag::Reserved` until it is. Its configuration
//! section is read here already, so that adding the subsystem touches only this module and the
//! image's subsystem table.

use crate::config::{ConfigError, Table};

/// `[sctp]` and `[[sctp.service]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SctpConfig {}

impl SctpConfig {
    /// Reads `[sctp]` (refuses every key until the subsystem is built).
    pub(crate) fn parse(t: &Table<'_, '_>) -> Result<SctpConfig, ConfigError> {
        t.check_keys(&[])?;
        Ok(SctpConfig {})
    }
}
