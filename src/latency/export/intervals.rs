//! `intervals.hlog`: HdrHistogram's interval log, written by the crate's
//! `IntervalLogWriter` with the V2 + deflate serializer (the "compressed V2" the Java
//! `HistogramLogProcessor` and HdrHistogram log analyzers read). One histogram about every
//! second per series, tagged with the series (`Tag=tcp-16B`); values in nanoseconds,
//! maxima printed in microseconds (max value divisor 1000).

use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Result};
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;

use crate::latency::result::{Measured, NS_PER_US};

/// Renders the log of every series' intervals, in time order within each series.
pub fn render(started_unix: u64, measured: &[Measured]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(started_unix);
    let mut w = IntervalLogWriterBuilder::new()
        .add_comment("lab latency interval log: values in ns, interval max in us")
        .with_start_time(base)
        .with_base_time(base)
        .with_max_value_divisor(NS_PER_US)
        .begin_log_with(&mut out, &mut ser)?;
    for m in measured {
        let slug = m.series.slug();
        let tag =
            Tag::new(&slug).ok_or_else(|| anyhow!("series name {slug} is not a valid tag"))?;
        for i in &m.intervals {
            w.write_histogram(&i.hist, i.start, i.length, Some(tag))
                .map_err(|e| anyhow!("writing the interval log: {e}"))?;
        }
    }
    drop(w);
    Ok(out)
}
