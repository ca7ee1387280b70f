use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// What went wrong in the test bed, or what the guest did that the contract does not allow.
#[derive(Debug)]
pub enum Error {
    /// The image file does not exist.
    ImageMissing(PathBuf),
    /// A system call or a file operation failed.
    Io { what: String, source: io::Error },
    /// A host tool (`ip`, ...) exited with a failure.
    Tool { what: String, code: Option<i32>, stderr: String },
    /// `BULKHEAD_ACCEL=kvm` was asked for and no KVM CPU model boots the image.
    NoKvm { reason: String },
    /// An environment variable or an option holds a value that is not understood.
    BadSetting { name: &'static str, value: String },
    /// The guest did not get where it should within the time limit.
    Timeout { waiting_for: String, after: Duration },
    /// QEMU exited while the test bed was waiting for something else.
    Exited { waiting_for: String, code: Option<i32> },
    /// The guest answered, but not as the contract says.
    Protocol { command: String, reason: String },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io { what: what.into(), source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ImageMissing(path) => {
                write!(f, "image {} not found: run make image", path.display())
            }
            Error::Io { what, source } => write!(f, "{what}: {source}"),
            Error::Tool { what, code, stderr } => {
                write!(f, "{what} failed (exit {code:?}): {}", stderr.trim())
            }
            Error::NoKvm { reason } => write!(f, "BULKHEAD_ACCEL=kvm but KVM is unusable: {reason}"),
            Error::BadSetting { name, value } => write!(f, "{name}: value {value:?} not understood"),
            Error::Timeout { waiting_for, after } => {
                write!(f, "timed out after {:.1} s waiting for {waiting_for}", after.as_secs_f64())
            }
            Error::Exited { waiting_for, code } => {
                write!(f, "QEMU exited (code {code:?}) while waiting for {waiting_for}")
            }
            Error::Protocol { command, reason } => write!(f, "command {command:?}: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
