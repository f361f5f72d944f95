//! `--format gh-classroom`: what GitHub Classroom's autograding reporter reads. The
//! `result` step output is base64 of `{"version": 1, "status", "max_score", "tests":
//! [...]}`; the caller writes `result=...` to `$GITHUB_OUTPUT`. The text printed here is
//! an `::error` line per failed check, the two `::notice` lines the reporter prints
//! (only when no reporter will: see [`under_reporter`]), and the `result=` line itself.

use serde_json::json;

use super::qualified;
use crate::grade::model::{LabReport, Status};

/// The result JSON (before base64).
pub fn result_json(reports: &[LabReport]) -> serde_json::Value {
    let mut tests = Vec::new();
    for r in reports {
        for t in &r.tests {
            if t.status == Status::Skipped {
                continue;
            }
            tests.push(json!({
                "name": qualified(reports, &r.lab, &t.name),
                "status": t.status.word(),
                "score": t.score,
                "message": t.message,
                "test_code": format!("lab grade {} --seed {}", r.lab, r.seed),
                "filename": "",
                "line_no": 0,
                "duration": t.duration_ms,
            }));
        }
    }
    let status = if reports.iter().any(|r| r.status == Status::Error) {
        "error"
    } else if reports.iter().all(|r| r.passed()) {
        "pass"
    } else {
        "fail"
    };
    let max: f64 = reports.iter().map(|r| r.max_score).fold(0.0, |a, b| a + b);
    json!({"version": 1, "status": status, "max_score": max, "tests": tests})
}

/// The base64 `result` value.
pub fn result_value(reports: &[LabReport]) -> String {
    base64(result_json(reports).to_string().as_bytes())
}

/// The printed text, notices included (run by hand or outside GitHub Actions).
pub fn render(reports: &[LabReport]) -> String {
    render_with(reports, true)
}

/// True when this run feeds the autograding reporter: inside GitHub Actions
/// (`GITHUB_ACTIONS=true`, set on every runner) with a step-output file to write
/// `result` to. The reporter, a later step, reads `result` and prints both notices
/// itself; printing them here too shows every grade twice in the job log.
pub fn under_reporter(github_actions: Option<&str>, github_output: bool) -> bool {
    github_actions == Some("true") && github_output
}

/// The printed text; `notices` adds the two `::notice` lines the reporter would print.
pub fn render_with(reports: &[LabReport], notices: bool) -> String {
    let score: f64 = reports.iter().map(|r| r.score).fold(0.0, |a, b| a + b);
    let max: f64 = reports.iter().map(|r| r.max_score).fold(0.0, |a, b| a + b);
    let mut s = String::new();
    for r in reports {
        for t in &r.tests {
            if matches!(t.status, Status::Fail | Status::Error) {
                let first = t.message.lines().next().unwrap_or("").replace('%', "%25");
                s.push_str(&format!("::error title={} {}::{}\n", r.lab, t.name, first));
            }
        }
    }
    if notices {
        s.push_str(&format!(
            "::notice title=Autograding complete::Points {score}/{max}\n"
        ));
        s.push_str(&format!(
            "::notice title=Autograding report::{{\"totalPoints\":{score},\"maxPoints\":{max}}}\n"
        ));
    }
    s.push_str(&format!("result={}\n", result_value(reports)));
    s
}

/// Standard base64 with padding (RFC 4648 section 4).
pub fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(i.as_bytes()), o);
        }
    }
}
