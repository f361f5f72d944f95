//! `summary.json`: the whole [`Run`] (parameters, environment, every series), the file
//! `lab latency compare` reads back.

use anyhow::Result;

use crate::latency::result::Run;

/// Renders pretty JSON with a trailing newline.
pub fn render(run: &Run) -> Result<String> {
    Ok(serde_json::to_string_pretty(run)? + "\n")
}

/// Reads a summary back.
pub fn parse(text: &str) -> Result<Run> {
    Ok(serde_json::from_str(text)?)
}
