//! Subsystems, supervisor, configuration, console.
#![no_std]
#![forbid(unsafe_code)]
