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
        let response = r.warc_type == "response";
        let mut fields = vec![
            ("urlkey", urlkey),
            ("timestamp", r.timestamp.clone()),
            ("url", url),
            ("mime", mime),
        ];
        // pywb's indexer writes the detected type (WARC-Identified-Payload-Type,
        // which custody writes from the response's Content-Type) and the
        // status for responses only, and leaves out what it does not know.
        if let (true, Some(m)) = (response, &r.mime) {
            fields.push(("mime-detected", m.clone()));
        }
        if let (true, Some(s)) = (response, r.status) {
            fields.push(("status", s.to_string()));
        }
        fields.push((
            "digest",
            r.payload_digest
                .map(|d| d.labelled())
                .unwrap_or_else(|| "-".into()),
        ));
        fields.push(("length", r.length.to_string()));
        fields.push(("offset", offset.to_string()));
        fields.push(("filename", filename.to_string()));
        Some(CdxLine(fields))
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

    /// Sets a field; one the line does not have is added before
    /// `access` (the access decision comes last, as in pywb), else at the
    /// end.
    pub fn set(&mut self, field: &'static str, value: String) {
        match self.0.iter_mut().find(|(k, _)| *k == field) {
            Some(slot) => slot.1 = value,
            None => {
                let at = self
                    .0
                    .iter()
                    .position(|(k, _)| *k == "access")
                    .unwrap_or(self.0.len());
                self.0.insert(at, (field, value));
            }
        }
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| *k == field)
            .map(|(_, v)| v.as_str())
    }

    /// A JSON object of the fields named in `only` (in that order, those
    /// the line has), else of all but `skip`, formatted as Python's
    /// `json.dumps` formats it.
    fn object(&self, skip: &[&str], only: Option<&[&str]>) -> String {
        let pair =
            |k: &str, v: &str| format!("\"{k}\": {}", serde_json::Value::String(v.to_string()));
        let fields: Vec<String> = match only {
            Some(names) => names
                .iter()
                .filter(|n| !skip.contains(n))
                .filter_map(|n| self.get(n).map(|v| pair(n, v)))
                .collect(),
            None => self
                .0
                .iter()
                .filter(|(k, _)| !skip.contains(k))
                .map(|(k, v)| pair(k, v))
                .collect(),
        };
        format!("{{{}}}", fields.join(", "))
    }

    /// The fields as one JSON object (`/cdx?output=json`).
    pub fn json(&self) -> String {
        self.object(&[], None)
    }

    /// The JSON object of the fields named (all when `None`).
    pub fn json_with(&self, only: Option<&[&str]>) -> String {
        self.object(&[], only)
    }

    /// `urlkey timestamp {json}`.
    pub fn cdxj(&self) -> String {
        self.cdxj_with(None)
    }

    /// `urlkey timestamp {json of the fields named}` (the key and time
    /// always lead, as in pywb).
    pub fn cdxj_with(&self, only: Option<&[&str]>) -> String {
        format!(
            "{} {} {}",
            self.get("urlkey").unwrap_or_default(),
            self.get("timestamp").unwrap_or_default(),
            self.object(&["urlkey", "timestamp"], only)
        )
    }

    /// The values of the fields named (all when `None`), space separated,
    /// `-` for a field the line does not have (`/cdx?output=text`).
    pub fn text_with(&self, only: Option<&[&str]>) -> String {
        match only {
            Some(names) => names
                .iter()
                .map(|n| self.get(n).unwrap_or("-"))
                .collect::<Vec<_>>()
                .join(" "),
            None => self
                .0
                .iter()
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}
