//! CDXJ index lines as pywb writes them (`urlkey timestamp {json}`), for
//! `/cdx` and for the index inside WACZ packages. Plain formatting: no I/O.

use crate::model::{pywb_urlkey, RecordEntry};

/// A line's fields, named, ordered and formatted as pywb writes them
/// (numbers as strings, `-` for what is unknown).
pub struct CdxLine(Vec<(&'static str, String)>);

impl CdxLine {
    /// The line of a response, revisit or resource record found at
    /// `offset` in `filename`; `None` for other records and for targets
    /// that are not URLs.
    pub fn of(r: &RecordEntry, offset: u64, filename: &str) -> Option<CdxLine> {
        if !matches!(r.warc_type.as_str(), "response" | "revisit" | "resource") {
            return None;
        }
        let url = r.target_uri.clone()?;
        let urlkey = pywb_urlkey(&url::Url::parse(&url).ok()?);
        let mime = if r.warc_type == "revisit" {
            "warc/revisit".to_string()
        } else {
            r.mime.clone().unwrap_or_else(|| "unk".into())
        };
        Some(CdxLine(vec![
            ("urlkey", urlkey),
            ("timestamp", r.timestamp.clone()),
            ("url", url),
            ("mime", mime),
            (
                "status",
                r.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
            ),
            (
                "digest",
                r.payload_digest
                    .map(|d| d.labelled())
                    .unwrap_or_else(|| "-".into()),
            ),
            ("length", r.length.to_string()),
            ("offset", offset.to_string()),
            ("filename", filename.to_string()),
        ]))
    }

    /// Adds a field after `after` (at the end when there is no such field).
    pub fn insert_after(&mut self, after: &str, name: &'static str, value: String) {
        let at = self
            .0
            .iter()
            .position(|(k, _)| *k == after)
            .map_or(self.0.len(), |i| i + 1);
        self.0.insert(at, (name, value));
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| *k == field)
            .map(|(_, v)| v.as_str())
    }

    fn object(&self, skip: &[&str]) -> String {
        let fields: Vec<String> = self
            .0
            .iter()
            .filter(|(k, _)| !skip.contains(k))
            .map(|(k, v)| format!("\"{k}\": {}", serde_json::Value::String(v.clone())))
            .collect();
        format!("{{{}}}", fields.join(", "))
    }

    /// The fields as one JSON object (`/cdx?output=json`).
    pub fn json(&self) -> String {
        self.object(&[])
    }

    /// `urlkey timestamp {json}`.
    pub fn cdxj(&self) -> String {
        format!(
            "{} {} {}",
            self.get("urlkey").unwrap_or_default(),
            self.get("timestamp").unwrap_or_default(),
            self.object(&["urlkey", "timestamp"])
        )
    }
}
