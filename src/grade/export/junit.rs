//! `--format junit`: JUnit XML, one `<testsuite>` per lab, properties for the seed.

use crate::grade::model::{LabReport, Status};

/// Escapes text for XML attributes and content, dropping characters XML 1.0 forbids
/// (control characters other than tab, newline, carriage return).
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => o.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => o.push(c),
        }
    }
    o
}

fn secs(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

fn count(r: &LabReport, s: Status) -> usize {
    r.tests.iter().filter(|t| t.status == s).count()
}

/// The document.
pub fn render(reports: &[LabReport]) -> String {
    let total = |s: Status| reports.iter().map(|r| count(r, s)).sum::<usize>();
    let tests: usize = reports.iter().map(|r| r.tests.len()).sum();
    let time: u64 = reports.iter().map(|r| r.duration_ms).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"lab grade\" tests=\"{tests}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\">\n",
        total(Status::Fail),
        total(Status::Error),
        total(Status::Skipped),
        secs(time)
    ));
    for r in reports {
        x.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\">\n",
            xml_escape(&r.lab),
            r.tests.len(),
            count(r, Status::Fail),
            count(r, Status::Error),
            count(r, Status::Skipped),
            secs(r.duration_ms)
        ));
        x.push_str("    <properties>\n");
        for (k, v) in [
            ("seed", r.seed.to_string()),
            ("program", r.program.join(" ")),
            ("namespaces", r.environment.namespaces.to_string()),
            ("score", format!("{}/{}", r.score, r.max_score)),
        ] {
            x.push_str(&format!(
                "      <property name=\"{k}\" value=\"{}\"/>\n",
                xml_escape(&v)
            ));
        }
        x.push_str("    </properties>\n");
        for t in &r.tests {
            x.push_str(&format!(
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
                xml_escape(&t.name),
                xml_escape(&r.lab),
                secs(t.duration_ms)
            ));
            let first = t.message.lines().next().unwrap_or("");
            let body = format!(
                "{}\n\n{}\n\nhint: {}",
                t.message,
                t.transcript.join("\n"),
                t.hint
            );
            match t.status {
                Status::Pass => x.push_str("/>\n"),
                Status::Fail => x.push_str(&format!(
                    ">\n      <failure message=\"{}\" type=\"unmet expectation\">{}</failure>\n",
                    xml_escape(first),
                    xml_escape(&body)
                )),
                Status::Error => x.push_str(&format!(
                    ">\n      <error message=\"{}\" type=\"error\">{}</error>\n",
                    xml_escape(first),
                    xml_escape(&body)
                )),
                Status::Skipped => x.push_str(&format!(
                    ">\n      <skipped message=\"{}\"/>\n",
                    xml_escape(first)
                )),
            }
            if t.status != Status::Pass {
                if !t.program_output.is_empty() {
                    x.push_str(&format!(
                        "      <system-out>{}</system-out>\n",
                        xml_escape(&t.program_output)
                    ));
                }
                x.push_str("    </testcase>\n");
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup_and_drops_forbidden_characters() {
        assert_eq!(
            super::xml_escape("a<b>&\"'\u{1}\u{7}\tz\n"),
            "a&lt;b&gt;&amp;&quot;&apos;\tz\n"
        );
    }
}
