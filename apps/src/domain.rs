//! Memory domains and quotas, as the accounted allocator (`bulkhead-mem`) defines them.

pub use bulkhead_mem::{Domain, OverQuota, Quota};
