//! QEMU test bed.
