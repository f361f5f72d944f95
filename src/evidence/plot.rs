//! The evidence's figure: frames on the wire over time, from the capture, as an SVG
//! that GitHub shows inline in Markdown. One bar per time slice: a TCP conversation
//! shows its handshake, its exchanges and its close as separate bursts; lab 03 shows
//! the sender's steady rate.

use crate::wire::pcapng::Stamp;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
/// Room for the axes' labels.
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 40.0;
const TOP: f64 = 28.0;
/// Bars across the plot: enough to see bursts, few enough to read.
const BARS: usize = 120;

/// An SVG bar chart of frames per time slice over the capture.
pub fn frames_svg(stamps: &[Stamp]) -> String {
    let first = stamps.iter().map(|s| s.stamp_ns).min().unwrap_or(0);
    let last = stamps.iter().map(|s| s.stamp_ns).max().unwrap_or(0);
    // At least 1 ms, so a capture of one instant still has a width.
    let span = (last - first).max(1_000_000);
    let slice = span.div_ceil(BARS as u64).max(1);
    let mut counts = vec![0u64; BARS];
    for s in stamps {
        let i = ((s.stamp_ns - first) / slice) as usize;
        counts[i.min(BARS - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1);
    let plot_w = WIDTH - LEFT - 12.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let bar_w = plot_w / BARS as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"18\">{} frames over {}; each bar is {}</text>\n",
        stamps.len(),
        duration(span),
        duration(slice)
    );
    for (i, &c) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
        let h = plot_h * c as f64 / top as f64;
        svg.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#3a6ea5\"><title>{c} frames</title></rect>\n",
            LEFT + i as f64 * bar_w,
            TOP + plot_h - h,
            (bar_w - 0.5).max(0.5),
            h
        ));
    }
    let base = TOP + plot_h;
    svg.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"black\"/>\n\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{base}\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{top}</text>\n\
         <text x=\"{}\" y=\"{base}\" text-anchor=\"end\">0</text>\n\
         <text x=\"{LEFT}\" y=\"{}\">0</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">time since the first frame</text>\n\
         <text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">frames</text>\n\
         </svg>\n",
        LEFT + plot_w,
        LEFT - 6.0,
        TOP + 10.0,
        LEFT - 6.0,
        base + 16.0,
        LEFT + plot_w,
        base + 16.0,
        duration(span),
        LEFT + plot_w / 2.0,
        base + 32.0,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
    ));
    svg
}

/// "1.5 s", "12.0 ms", "350 us".
fn duration(ns: u64) -> String {
    if ns >= 1_000_000_000 {
        format!("{:.2} s", ns as f64 / 1e9)
    } else if ns >= 1_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else {
        format!("{} us", ns / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_is_in_a_bar() {
        let stamps: Vec<Stamp> = (0..10)
            .map(|i| Stamp {
                stamp_ns: 1_000_000_000 + i * 50_000_000,
                original_len: 60,
            })
            .collect();
        let svg = frames_svg(&stamps);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("10 frames over 450.0 ms"), "{svg}");
        let bars: u64 = svg
            .split("<title>")
            .skip(1)
            .map(|t| t.split(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(bars, 10);
        // One frame alone still draws.
        assert!(frames_svg(&stamps[..1]).contains("1 frames"));
    }
}
