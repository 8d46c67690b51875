//! A server-side SVG chart of changes over time: one small chart per provider, bars stacked by
//! event type, in buckets sized so that the window has at most [`MAX_BUCKETS`] of them; with the
//! same numbers as a table for screen readers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use maud::{html, Markup};

/// One change to count.
pub(crate) struct Point {
    pub at: DateTime<Utc>,
    pub provider: String,
    pub ty: String,
}

/// Most bars per chart.
pub const MAX_BUCKETS: i64 = 60;
/// Bucket sizes, in seconds, from the finest.
const SIZES: [(i64, &str); 8] = [
    (60, "minute"),
    (300, "5 minutes"),
    (3600, "hour"),
    (6 * 3600, "6 hours"),
    (86_400, "day"),
    (7 * 86_400, "week"),
    (30 * 86_400, "30 days"),
    (365 * 86_400, "365 days"),
];
const TYPES: [&str; 3] = ["discovered", "changed", "deleted"];
const WIDTH: i64 = 600;
const HEIGHT: i64 = 120;

/// The bucket size (seconds, name) for a window of `span` seconds.
pub(crate) fn bucket_size(span: i64) -> (i64, &'static str) {
    SIZES
        .iter()
        .copied()
        .find(|(s, _)| span / s < MAX_BUCKETS)
        .unwrap_or(SIZES[SIZES.len() - 1])
}

/// Counts per provider, bucket start and type.
pub(crate) type Counts = BTreeMap<String, BTreeMap<i64, [u64; 3]>>;

/// The counts of `points` in buckets of `size` seconds (aligned to the epoch).
pub(crate) fn count(points: &[Point], size: i64) -> Counts {
    let mut out: Counts = BTreeMap::new();
    for p in points {
        let t = p.at.timestamp();
        let bucket = t - t.rem_euclid(size);
        let Some(i) = TYPES.iter().position(|ty| *ty == p.ty) else {
            continue;
        };
        out.entry(p.provider.clone())
            .or_default()
            .entry(bucket)
            .or_default()[i] += 1;
    }
    out
}

fn label(t: i64, size: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp(t, 0).unwrap_or_default();
    if size >= 86_400 {
        t.format("%Y-%m-%d").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// One stacked segment of a bar.
struct Bar {
    bucket: i64,
    ty: usize,
    n: u64,
    x: i64,
    y: i64,
    h: i64,
}

/// The segments of one provider's bars, each type stacked on the one before.
fn bars(
    by_bucket: &BTreeMap<i64, [u64; 3]>,
    start: i64,
    size: i64,
    bar: i64,
    max: u64,
) -> Vec<Bar> {
    let mut out = Vec::new();
    for (b, c) in by_bucket {
        let x = (b - start) / size * bar;
        let mut y = HEIGHT;
        for (ty, n) in c.iter().enumerate().filter(|(_, n)| **n > 0) {
            #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
            let h = ((*n as f64 / max as f64) * HEIGHT as f64).round().max(1.0) as i64;
            y -= h;
            out.push(Bar {
                bucket: *b,
                ty,
                n: *n,
                x,
                y,
                h,
            });
        }
    }
    out
}

pub(crate) fn render(points: &[Point]) -> Markup {
    let (Some(first), Some(last)) = (
        points.iter().map(|p| p.at).min(),
        points.iter().map(|p| p.at).max(),
    ) else {
        return html! { p { "No changes in the window." } };
    };
    let (size, size_name) = bucket_size((last - first).num_seconds());
    let start = first.timestamp() - first.timestamp().rem_euclid(size);
    let end = last.timestamp() - last.timestamp().rem_euclid(size);
    let buckets = (end - start) / size + 1;
    // At most 40 units a bar: a short window is a few bars, not one bar across the chart.
    let bar = (WIDTH / buckets).clamp(1, 40);
    let right = (buckets * bar).min(WIDTH);
    let counts = count(points, size);
    html! {
        div.chart #chart {
            p.legend {
                "One bar per " (size_name) ", from " (label(start, size)) " to " (label(end, size)) ". "
                @for (i, ty) in TYPES.iter().enumerate() {
                    span.key { svg width="12" height="12" aria-hidden="true" { rect class={"t" (i)} width="12" height="12" {} } " " (ty) } " "
                }
            }
            @for (provider, by_bucket) in &counts {
                @let max = by_bucket.values().map(|c| c.iter().sum::<u64>()).max().unwrap_or(1).max(1);
                @let total: u64 = by_bucket.values().map(|c| c.iter().sum::<u64>()).sum();
                figure data-provider=(provider) {
                    figcaption { strong { (provider) } " — " (total) " changes, at most " (max) " per " (size_name) }
                    svg viewBox={"0 0 " (WIDTH) " " (HEIGHT + 14)} role="img"
                        aria-label={"Changes of " (provider) " over time, stacked by type"} {
                        @for r in bars(by_bucket, start, size, bar, max) {
                            rect class={"t" (r.ty)} x=(r.x) y=(r.y) width=((bar - 1).max(1)) height=(r.h) {
                                title { (label(r.bucket, size)) ": " (r.n) " " (TYPES[r.ty]) }
                            }
                        }
                        line x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) class="axis" {}
                        text x="0" y=(HEIGHT + 12) class="tick" { (label(start, size)) }
                        @if buckets > 1 {
                            text x=(right) y=(HEIGHT + 12) class="tick end" { (label(end, size)) }
                        }
                    }
                    details {
                        summary { "As a table" }
                        table {
                            thead { tr { th scope="col" { "From" } @for ty in TYPES { th scope="col" { (ty) } } } }
                            tbody {
                                @for (b, c) in by_bucket {
                                    tr { th scope="row" { (label(*b, size)) } @for n in c { td { (n) } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(secs: i64, provider: &str, ty: &str) -> Point {
        Point {
            at: DateTime::<Utc>::from_timestamp(secs, 0).unwrap(),
            provider: provider.into(),
            ty: ty.into(),
        }
    }

    #[test]
    fn buckets_keep_the_chart_short() {
        assert_eq!(bucket_size(0).0, 60);
        assert_eq!(bucket_size(59 * 60).0, 60);
        assert_eq!(bucket_size(60 * 60).0, 300);
        assert_eq!(bucket_size(30 * 86_400).0, 86_400);
    }

    #[test]
    fn changes_are_counted_per_provider_bucket_and_type() {
        let c = count(
            &[
                p(0, "aws", "discovered"),
                p(59, "aws", "changed"),
                p(60, "aws", "changed"),
                p(61, "gcp", "deleted"),
                p(62, "gcp", "unknown-type"),
            ],
            60,
        );
        assert_eq!(c["aws"][&0], [1, 1, 0]);
        assert_eq!(c["aws"][&60], [0, 1, 0]);
        assert_eq!(c["gcp"][&60], [0, 0, 1]);
        let svg = render(&[p(0, "aws", "discovered"), p(120, "aws", "changed")]).into_string();
        assert!(svg.contains("data-provider=\"aws\""));
        assert_eq!(svg.matches("<rect class=\"t").count(), 2 + 3);
    }
}
