//! `show bmp [json]` and the subsystem's `show status` line.
//!
//! Text: one line for the channel from BGP, one per collector:
//!
//! ```text
//! bmp: 2 collectors, channel 0 of 4096 events (0 true bytes of 4194304): 120 taken, 0 refused, 0 overflows
//! collector 192.0.2.2:1790 up: queued 0 bytes (queue 0 of 4194304 true bytes), 5 peers, sent 310 messages 88211 bytes, connects 1, connect failures 0, drops 0, disconnects 0, resyncs 0, encode errors 0, last drop none
//! ```
//!
//! JSON, one object (field names fixed for scripts):
//! `{"channel":{"events":…,"max_events":…,"bytes":…,"max_bytes":…,"taken":…,"refused":…,"overflows":…},
//! "collectors":[{"address":…,"port":…,"state":…,"queued_bytes":…,"queue_footprint":…,"queue_limit":…,
//! "peers":…,"messages_sent":…,"bytes_sent":…,"connects":…,"connect_failures":…,"drops":…,
//! "disconnects":…,"resyncs":…,"resync_pending":…,"encode_errors":…,"last_drop":…}]}`.

use core::fmt::{self, Write};

use bulkhead_bmp::{CollectorState, CollectorStatus, DropReason};

use super::{BmpConfig, Running};
use crate::json::JsonWriter;

pub(super) fn state_name(s: CollectorState) -> &'static str {
    match s {
        CollectorState::Backoff => "backoff",
        CollectorState::Connecting => "connecting",
        CollectorState::Dumping => "dumping",
        CollectorState::Up => "up",
        CollectorState::Closing => "closing",
        CollectorState::Stopped => "stopped",
    }
}

pub(super) fn drop_name(d: Option<DropReason>) -> &'static str {
    match d {
        None => "none",
        Some(DropReason::QueueFull(_)) => "queue-full",
        Some(DropReason::ChannelOverflow) => "channel-overflow",
        Some(DropReason::Disconnected) => "disconnected",
        Some(DropReason::CloseTimeout) => "close-timeout",
        Some(DropReason::MemoryPressure) => "memory-pressure",
    }
}

pub(super) fn status_line(out: &mut dyn Write, r: &Running) -> fmt::Result {
    let status = r.exporter.status();
    let up =
        status.iter().filter(|s| matches!(s.state, CollectorState::Up | CollectorState::Dumping)).count();
    let drops: u64 = status.iter().map(|s| s.counters.drops).sum();
    write!(
        out,
        "{} of {} collectors connected, {} true bytes queued, {} events waiting, {} drops",
        up,
        status.len(),
        r.exporter.queued_footprint(),
        r.channel.len(),
        drops
    )
}

fn channel_line(out: &mut dyn Write, r: &Running, config: &BmpConfig) -> fmt::Result {
    let (taken, refused, overflows) = r.channel.counts();
    writeln!(
        out,
        "bmp: {} collectors, channel {} of {} events ({} true bytes of {}): {} taken, {} refused, {} overflows",
        r.links.len(),
        r.channel.len(),
        r.channel.max_events(),
        r.channel.bytes(),
        config.channel_limit,
        taken,
        refused,
        overflows
    )
}

pub(super) fn text(out: &mut dyn Write, r: Option<&Running>, config: &BmpConfig) -> fmt::Result {
    let Some(r) = r else {
        return writeln!(out, "bmp: {} collectors configured, not running", config.collectors.len());
    };
    channel_line(out, r, config)?;
    for (link, s) in r.links.iter().zip(r.exporter.status()) {
        let c = &s.counters;
        writeln!(
            out,
            "collector {}:{} {}: queued {} bytes (queue {} of {} true bytes), {} peers, sent {} messages {} bytes, connects {}, connect failures {}, drops {}, disconnects {}, resyncs {}, encode errors {}, last drop {}",
            link.collector.address,
            link.collector.port,
            state_name(s.state),
            s.queued_bytes,
            s.queue_footprint,
            s.queue_bound,
            s.peers,
            c.messages_sent,
            c.bytes_sent,
            c.connects,
            c.connect_failures,
            c.drops,
            c.disconnects,
            c.resyncs,
            c.encode_errors,
            drop_name(s.last_drop)
        )?;
    }
    Ok(())
}

pub(super) fn json(out: &mut dyn Write, r: Option<&Running>, config: &BmpConfig) -> fmt::Result {
    let mut j = JsonWriter::new(out);
    j.begin_object()?;
    j.key("channel")?;
    j.begin_object()?;
    let (events, bytes, counts) =
        r.map_or((0, 0, (0, 0, 0)), |r| (r.channel.len(), r.channel.bytes(), r.channel.counts()));
    j.field_u64("events", events as u64)?;
    j.field_u64("max_events", config.channel_events as u64)?;
    j.field_u64("bytes", bytes as u64)?;
    j.field_u64("max_bytes", config.channel_limit as u64)?;
    j.field_u64("taken", counts.0)?;
    j.field_u64("refused", counts.1)?;
    j.field_u64("overflows", counts.2)?;
    j.end_object()?;
    j.key("collectors")?;
    j.begin_array()?;
    if let Some(r) = r {
        for (link, s) in r.links.iter().zip(r.exporter.status()) {
            collector_json(&mut j, link, &s)?;
        }
    }
    j.end_array()?;
    j.end_object()?;
    writeln!(out)
}

fn collector_json<W: Write + ?Sized>(
    j: &mut JsonWriter<'_, W>,
    link: &super::Link,
    s: &CollectorStatus,
) -> fmt::Result {
    let c = &s.counters;
    j.begin_object()?;
    j.field_display("address", link.collector.address)?;
    j.field_u64("port", u64::from(link.collector.port))?;
    j.field_str("state", state_name(s.state))?;
    j.field_u64("queued_bytes", s.queued_bytes as u64)?;
    j.field_u64("queue_footprint", s.queue_footprint as u64)?;
    j.field_u64("queue_limit", s.queue_bound as u64)?;
    j.field_u64("peers", s.peers as u64)?;
    j.field_u64("messages_sent", c.messages_sent)?;
    j.field_u64("bytes_sent", c.bytes_sent)?;
    j.field_u64("connects", c.connects)?;
    j.field_u64("connect_failures", c.connect_failures)?;
    j.field_u64("drops", c.drops)?;
    j.field_u64("disconnects", c.disconnects)?;
    j.field_u64("resyncs", c.resyncs)?;
    j.field_bool("resync_pending", s.resync_pending)?;
    j.field_u64("encode_errors", c.encode_errors)?;
    j.field_str("last_drop", drop_name(s.last_drop))?;
    j.end_object()
}
