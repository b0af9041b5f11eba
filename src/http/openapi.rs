//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, written by
//! hand next to the routes it describes (`api.rs`, `replay.rs`): every
//! operation's parameters (typed), request body and every response (a
//! JSON Schema for each JSON body, the media type of the others). Tests
//! check that every documented path answers, that every API route is
//! documented, and, with schemathesis, that what the server answers to
//! generated requests is what the document says (`tests/it/contract.rs`).

use serde_json::{json, Value};

/// (method, path, summary, role, parameters, request body example); the
/// responses are in [`responses`].
type Op = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    Option<&'static str>,
);

/// Every operation. Roles: `open` needs no token; `reader` is open too
/// when the server runs with `--public-read`.
pub const OPERATIONS: &[Op] = &[
    (
        "get",
        "/api/v1/captures",
        "List captures, oldest first (order=desc for newest first)",
        "reader",
        &[
            "url",
            "from",
            "to",
            "status",
            "http_status",
            "schedule",
            "host",
            "order",
            "limit",
            "offset",
            "cursor",
        ],
        None,
    ),
    (
        "post",
        "/api/v1/captures",
        "Capture a page now",
        "archivist",
        &[],
        Some("{\"url\": \"https://news.example/2016/11/29/report/\"}"),
    ),
    (
        "get",
        "/api/v1/captures/{id}",
        "One capture with its records",
        "reader",
        &["id"],
        None,
    ),
    (
        "get",
        "/api/v1/captures/{id}/records",
        "A capture's WARC records (CDXJ fields, offsets)",
        "reader",
        &["id"],
        None,
    ),
    (
        "get",
        "/api/v1/captures/{id}/events",
        "A capture's custody record",
        "reader",
        &["id"],
        None,
    ),
    (
        "get",
        "/api/v1/captures/{id}/verify",
        "Verify a capture now (409 when a check fails)",
        "reader",
        &["id"],
        None,
    ),
    (
        "get",
        "/api/v1/captures/{id}/proof",
        "Inclusion proof, signed checkpoint and timestamps",
        "reader",
        &["id"],
        None,
    ),
    (
        "get",
        "/api/v1/captures/{id}/warc",
        "Download the capture's WARC (export form)",
        "reader",
        &["id"],
        None,
    ),
    (
        "get",
        "/api/v1/captures/{id}/wacz",
        "Download a signed WACZ evidence package",
        "reader",
        &["id"],
        None,
    ),
    (
        "get",
        "/api/v1/captures/{id}/browser/{kind}",
        "What the browser made of a browser-mode capture's page: screenshot, thumbnail, pdf, view (the rendered DOM, as text) or text",
        "reader",
        &["id", "kind"],
        None,
    ),
    (
        "get",
        "/api/v1/captures/{id}/media/{n}",
        "A media file the capture's media step produced (its n-th, from 0), with byte ranges",
        "reader",
        &["id", "n"],
        None,
    ),
    (
        "post",
        "/api/v1/imports",
        "Import a WARC or WACZ file made by another tool (the request body is the file)",
        "archivist",
        &["name", "source"],
        None,
    ),
    (
        "get",
        "/api/v1/records",
        "Response and revisit records of a URL",
        "reader",
        &["url", "matchType", "from", "to", "limit", "offset"],
        None,
    ),
    (
        "get",
        "/api/v1/search",
        "Full-text search of archived pages and frames (words and \"quoted phrases\", all required), newest capture first (order=asc for oldest first)",
        "reader",
        &["q", "site", "from", "to", "schedule", "claim", "order", "limit", "cursor"],
        None,
    ),
    (
        "get",
        "/api/v1/claims",
        "List claims, oldest first (q: words the text contains; order=desc for newest first)",
        "reader",
        &["q", "order", "limit", "offset", "cursor"],
        None,
    ),
    (
        "post",
        "/api/v1/claims",
        "Add a claim",
        "archivist",
        &[],
        Some("{\"text\": \"...\", \"place\": \"...\", \"event_start\": \"YYYY-MM-DD\"}"),
    ),
    (
        "get",
        "/api/v1/claims/{id}",
        "A claim with its evidence, re-verified now",
        "reader",
        &["id"],
        None,
    ),
    (
        "get",
        "/api/v1/claims/{id}/jsonld",
        "A claim as JSON-LD (Web Annotation, PROV-O, schema.org)",
        "reader",
        &["id"],
        None,
    ),
    (
        "post",
        "/api/v1/claims/{id}/links",
        "Link a claim to a passage of a capture",
        "archivist",
        &["id"],
        Some("{\"capture_id\": \"...\", \"quote\": \"...\", \"relation\": \"supports\"}"),
    ),
    (
        "get",
        "/api/v1/claims/{id}/wacz",
        "Download a signed WACZ of all of a claim's evidence",
        "reader",
        &["id"],
        None,
    ),
    (
        "get",
        "/api/v1/links",
        "Evidence links, by claim or capture",
        "reader",
        &["claim", "capture"],
        None,
    ),
    (
        "get",
        "/api/v1/schedules",
        "Schedules, with their next run",
        "reader",
        &[],
        None,
    ),
    (
        "post",
        "/api/v1/schedules",
        "Add a schedule file",
        "archivist",
        &[],
        Some("{\"name\": \"news-every-6h\", \"cron\": \"0 */6 * * *\", \"urls\": [\"https://news.example/\"]}"),
    ),
    (
        "patch",
        "/api/v1/schedules/{name}",
        "Edit, pause (enabled: false) or resume (enabled: true) a schedule, in its file",
        "archivist",
        &["name"],
        Some("{\"enabled\": false}"),
    ),
    (
        "get",
        "/api/v1/runs",
        "Scheduled runs, newest instant first (order=asc for oldest first)",
        "reader",
        &[
            "schedule", "state", "host", "from", "to", "order", "limit", "offset", "cursor",
        ],
        None,
    ),
    (
        "get",
        "/api/v1/log/key",
        "The transparency log's verifier key and size",
        "reader",
        &[],
        None,
    ),
    (
        "get",
        "/api/v1/log/checkpoints",
        "Signed checkpoints",
        "reader",
        &[],
        None,
    ),
    (
        "get",
        "/api/v1/log/consistency",
        "Consistency proof between two signed checkpoints, checked against both",
        "reader",
        &["old", "new"],
        None,
    ),
    (
        "get",
        "/api/v1/fixity",
        "Fixity status of the stored WARCs, oldest stored first (order=desc for newest), a page at a time",
        "reader",
        &["quarantined", "order", "limit", "cursor"],
        None,
    ),
    (
        "get",
        "/api/v1/tokens",
        "API tokens (never their secrets)",
        "admin",
        &[],
        None,
    ),
    (
        "post",
        "/api/v1/tokens",
        "Make an API token; shown once",
        "admin",
        &[],
        Some("{\"role\": \"reader\", \"label\": \"fact-check desk\"}"),
    ),
    (
        "delete",
        "/api/v1/tokens/{id}",
        "Revoke a token",
        "admin",
        &["id"],
        None,
    ),
    (
        "get",
        "/replay/{timestamp}/{url}",
        "Replay the capture nearest in time, rewritten, with a banner",
        "reader",
        &["timestamp", "url"],
        None,
    ),
    (
        "get",
        "/replay/{timestamp}id_/{url}",
        "The archived payload exactly as received",
        "reader",
        &["timestamp", "url"],
        None,
    ),
    (
        "get",
        "/timegate/{url}",
        "Memento TimeGate (Accept-Datetime)",
        "reader",
        &["url"],
        None,
    ),
    (
        "get",
        "/timemap/link/{url}",
        "Memento TimeMap, application/link-format",
        "reader",
        &["url"],
        None,
    ),
    (
        "get",
        "/timemap/json/{url}",
        "Memento TimeMap, JSON",
        "reader",
        &["url"],
        None,
    ),
    (
        "get",
        "/cdx",
        "pywb CDX server API",
        "reader",
        &[
            "url",
            "matchType",
            "from",
            "to",
            "limit",
            "sort",
            "reverse",
            "closest",
            "filter",
            "collapseTime",
            "resolveRevisits",
            "fl",
            "output",
        ],
        None,
    ),
    (
        "get",
        "/healthz",
        "Liveness: 200 when the index answers",
        "open",
        &[],
        None,
    ),
    (
        "get",
        "/metrics",
        "Prometheus metrics",
        "open",
        &[],
        None,
    ),
];

/// A query or path parameter's schema.
fn parameter_schema(name: &str) -> Value {
    match name {
        "limit" => json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        "offset" => json!({"type": "integer", "minimum": 0}),
        "order" => json!({"type": "string", "enum": ["asc", "desc"]}),
        "matchType" => json!({"type": "string", "enum": ["exact", "prefix", "host", "domain"]}),
        "output" => json!({"type": "string", "enum": ["cdxj", "json", "text", "link"]}),
        "sort" => json!({"type": "string", "enum": ["reverse", "closest"]}),
        "timestamp" | "closest" => json!({"type": "string", "pattern": "^[0-9]{1,14}$"}),
        "from" | "to" => json!({"type": "string", "minLength": 4}),
        "old" | "new" => json!({"type": "integer", "minimum": 1}),
        "n" => json!({"type": "integer", "minimum": 0}),
        "kind" => {
            json!({"type": "string", "enum": ["screenshot", "thumbnail", "pdf", "view", "text"]})
        }
        "collapseTime" => json!({"type": "integer", "minimum": 1, "maximum": 14}),
        "status" => json!({"type": "string", "enum": ["ok", "failed"]}),
        "state" => {
            json!({"type": "string", "enum": ["due", "running", "done", "failed", "skipped", "interrupted"]})
        }
        "http_status" => json!({"type": "string", "pattern": "^([1-5][0-9][0-9]|[1-5]xx)$"}),
        "filter" => json!({"type": "array", "items": {"type": "string"}}),
        _ => json!({"type": "string", "minLength": 1}),
    }
}

fn parameter(name: &str, path: &str) -> Value {
    let in_path = path.contains(&format!("{{{name}}}"));
    let description = match name {
        "id" => "A capture id, claim id or token id",
        "url" => "An archived URL (in a path: everything after the prefix, with its query)",
        "timestamp" => "Up to 14 digits YYYYMMDDhhmmss; the nearest capture is served",
        "from" | "to" => "RFC 3339, or 4 to 14 digits YYYYMMDDhhmmss",
        "limit" => "Items per page (default 100, at most 1000)",
        "offset" => "Items to skip (the previous page's next_offset)",
        "cursor" => {
            "The previous page's next_cursor: the next page, unshifted by captures made meanwhile"
        }
        "matchType" => "exact, prefix, host or domain",
        "filter" => "[!][=|~]field:expression (contains, exact, regex; ! negates), repeatable",
        "output" => "cdxj (default), json (one object per line), text or link",
        "sort" => "reverse or closest",
        "closest" => "Nearest captures first (sort=closest optional)",
        "order" if path == "/api/v1/search" || path == "/api/v1/runs" => {
            "desc (default: newest first) or asc"
        }
        "order" => "asc (default) or desc",
        "q" if path == "/api/v1/search" => {
            "Words and \"quoted phrases\" the text holds, all of them; case, accents and Arabic vowel marks do not matter"
        }
        "q" => "Words the claim's text contains",
        "site" => "A host: documents of it and of its subdomains",
        "status" => "ok or failed",
        "http_status" => "The page's HTTP status (404) or class (4xx)",
        "host" => "A host: the captures or runs of its URLs",
        "state" => "A run's state",
        "quarantined" => "true: only the quarantined files",
        "old" | "new" => "Tree sizes of signed checkpoints (new: the latest when left out)",
        "claim" => "A claim id",
        "n" => "Which of the capture's media files (0 for the first)",
        "kind" => "screenshot, thumbnail, pdf, view or text",
        "capture" => "A capture id",
        "schedule" => "A schedule's name",
        "name" if path.starts_with("/api/v1/schedules") => "A schedule's name",
        "name" => "The imported file's name, as shown with the import",
        "source" => "Where the imported file came from (who made it, how it reached you)",
        _ => "",
    };
    let mut p = json!({
        "name": name,
        "in": if in_path { "path" } else { "query" },
        "required": in_path
            || (name == "q" && path == "/api/v1/search")
            || (name == "url" && (path == "/cdx" || path == "/api/v1/records"))
            || (name == "old" && path == "/api/v1/log/consistency"),
        "description": description,
        "schema": parameter_schema(name),
    });
    if name == "filter" {
        p["explode"] = json!(true);
    }
    p
}

/// What an operation answers: (status, body) pairs.
enum Body {
    /// A JSON body of this component schema.
    Json(&'static str),
    /// A body of this media type (a file, a page, text).
    Media(&'static str),
    /// No body.
    Empty,
}

/// Every response of an operation, success first.
fn responses(method: &str, path: &str) -> Vec<(&'static str, Body)> {
    use Body::*;
    let ok = |schema| vec![("200", Json(schema))];
    let mut r = match (method, path) {
        ("get", "/api/v1/captures") => ok("CapturePage"),
        ("post", "/api/v1/captures") => vec![("201", Json("CapturesMade"))],
        ("get", "/api/v1/captures/{id}") => ok("CaptureWithRecords"),
        ("get", "/api/v1/captures/{id}/records") => ok("RecordPage"),
        ("get", "/api/v1/captures/{id}/events") => ok("EventPage"),
        ("get", "/api/v1/captures/{id}/verify") => {
            vec![("200", Json("Verification")), ("409", Json("Verification"))]
        }
        ("get", "/api/v1/captures/{id}/proof") => ok("Proof"),
        ("get", "/api/v1/captures/{id}/warc") => vec![("200", Media("application/warc"))],
        ("get", "/api/v1/captures/{id}/browser/{kind}") => vec![
            ("200", Media("application/octet-stream")),
            ("206", Media("application/octet-stream")),
            ("416", Empty),
        ],
        ("get", "/api/v1/captures/{id}/media/{n}") => vec![
            ("200", Media("application/octet-stream")),
            ("206", Media("application/octet-stream")),
            ("416", Empty),
        ],
        ("get", "/api/v1/captures/{id}/wacz") | ("get", "/api/v1/claims/{id}/wacz") => {
            vec![("200", Media("application/wacz"))]
        }
        ("post", "/api/v1/imports") => {
            vec![("201", Json("Capture")), ("409", Json("Error"))]
        }
        ("get", "/api/v1/records") => ok("FoundRecordPage"),
        ("get", "/api/v1/search") => ok("SearchPage"),
        ("get", "/api/v1/claims") => ok("ClaimPage"),
        ("post", "/api/v1/claims") => vec![("201", Json("Claim"))],
        ("get", "/api/v1/claims/{id}") => ok("ClaimEvidence"),
        ("get", "/api/v1/claims/{id}/jsonld") => vec![("200", Media("application/ld+json"))],
        ("post", "/api/v1/claims/{id}/links") => vec![("201", Json("Link"))],
        ("get", "/api/v1/links") => ok("LinkPage"),
        ("get", "/api/v1/schedules") => ok("SchedulePage"),
        ("post", "/api/v1/schedules") => {
            vec![("201", Json("ScheduleMade")), ("409", Json("Error"))]
        }
        ("patch", "/api/v1/schedules/{name}") => {
            vec![("200", Json("ScheduleEdited")), ("409", Json("Error"))]
        }
        ("get", "/api/v1/runs") => ok("RunPage"),
        ("get", "/api/v1/log/key") => ok("LogKey"),
        ("get", "/api/v1/log/checkpoints") => ok("CheckpointPage"),
        ("get", "/api/v1/log/consistency") => ok("ConsistencyProof"),
        ("get", "/api/v1/fixity") => ok("Fixity"),
        ("get", "/api/v1/tokens") => ok("TokenPage"),
        ("post", "/api/v1/tokens") => vec![("201", Json("TokenMade"))],
        ("delete", "/api/v1/tokens/{id}") => vec![("204", Empty)],
        ("get", "/replay/{timestamp}/{url}") => vec![("200", Media("*/*")), ("302", Empty)],
        ("get", "/replay/{timestamp}id_/{url}") => {
            vec![("200", Media("*/*")), ("206", Media("*/*"))]
        }
        ("get", "/timegate/{url}") => vec![("302", Empty)],
        ("get", "/timemap/link/{url}") => vec![("200", Media("application/link-format"))],
        ("get", "/timemap/json/{url}") => ok("TimeMap"),
        ("get", "/cdx") => vec![("200", Media("text/x-cdxj"))],
        ("get", "/healthz") => vec![("200", Media("text/plain")), ("503", Media("text/plain"))],
        ("get", "/metrics") => vec![("200", Media("text/plain"))],
        _ => vec![("200", Media("*/*"))],
    };
    if !matches!(path, "/healthz" | "/metrics") {
        for status in ["400", "401", "403", "404"] {
            r.push((status, Json("Error")));
        }
    }
    if method == "post" || method == "patch" {
        r.push(("413", Json("Error")));
        r.push(("415", Json("Error")));
        r.push(("422", Json("Error")));
    }
    r.push(("500", Json("Error")));
    r
}

/// The request body schema of a POST or a PATCH.
fn request_schema(path: &str) -> Option<Value> {
    let s = |v: Value| Some(v);
    match path {
        "/api/v1/captures" => s(json!({
            "type": "object",
            "properties": {
                "url": {"type": "string"},
                "urls": {"type": "array", "items": {"type": "string"}},
                "media": {"type": "boolean", "description": "Run the media step (yt-dlp through custody's recording proxy); the configuration's choice when absent"},
            },
        })),
        "/api/v1/claims" => s(json!({
            "type": "object",
            "required": ["text"],
            "properties": {
                "text": {"type": "string"},
                "event_start": {"type": "string"},
                "event_end": {"type": "string"},
                "place": {"type": "string"},
                "latitude": {"type": "number"},
                "longitude": {"type": "number"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "language": {"type": "string"},
            },
        })),
        "/api/v1/claims/{id}/links" => s(json!({
            "type": "object",
            "required": ["capture_id"],
            "properties": {
                "capture_id": {"type": "string"},
                "url": {"type": "string"},
                "quote": {"type": "string"},
                "prefix": {"type": "string"},
                "suffix": {"type": "string"},
                "fragment": {"type": "string"},
                "relation": {"type": "string", "enum": ["supports", "refutes", "context", "first_appearance"]},
                "rationale": {"type": "string"},
            },
        })),
        "/api/v1/schedules" => s(json!({
            "type": "object",
            "required": ["name", "cron", "urls"],
            "properties": {
                "name": {"type": "string"},
                "cron": {"type": "string"},
                "urls": {"type": "array", "items": {"type": "string"}},
                "timezone": {"type": "string"},
                "on_missed": {"type": "string"},
                "overlap": {"type": "string"},
            },
        })),
        "/api/v1/schedules/{name}" => s(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "cron": {"type": "string"},
                "urls": {"type": "array", "items": {"type": "string"}},
                "timezone": {"type": "string"},
                "on_missed": {"type": "string"},
                "overlap": {"type": "string"},
                "enabled": {"type": "boolean", "description": "false pauses the schedule, true resumes it"},
                "version": {"type": "string", "description": "The file's version as listed; the change is refused (409) when the file changed since"},
            },
        })),
        "/api/v1/tokens" => s(json!({
            "type": "object",
            "required": ["role"],
            "properties": {
                "role": {"type": "string", "enum": ["reader", "archivist", "admin"]},
                "label": {"type": "string"},
            },
        })),
        _ => None,
    }
}

fn nullable(t: &str) -> Value {
    json!({"type": [t, "null"]})
}

/// A page of `item`s.
fn page_of(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["items", "next_offset"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
            "next_offset": nullable("integer"),
        },
    })
}

/// A capture, with `records` as given (a count in lists, the records
/// themselves when one capture is shown).
fn capture_schema(records: Value) -> Value {
    json!({
        "type": "object",
        "required": ["id", "seed_url", "status", "started_at", "finished_at", "warc", "records", "resources"],
        "properties": {
            "id": {"type": "string"},
            "seed_url": {"type": "string"},
            "status": {"type": "string", "enum": ["ok", "failed"]},
            "error": {"type": "string"},
            "started_at": {"type": "string", "format": "date-time"},
            "finished_at": {"type": "string", "format": "date-time"},
            "warc": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/WarcRef"}]},
            "records": records,
            "resources": {"type": "array", "items": {"$ref": "#/components/schemas/Resource"}},
            "schedule": {"type": "string"},
            "scheduled_for": {"type": "string", "format": "date-time"},
            "change": {"type": "object"},
            "import": {"$ref": "#/components/schemas/Import"},
            "media": {"$ref": "#/components/schemas/Media"},
            "browser": {"type": "object", "description": "Set for a browser-mode capture: the browser, its behaviours and the records it kept"},
            "page_status": nullable("integer"),
            "final_page": {"type": "boolean"},
            "outcome": {"type": "string"},
            "mode": {"type": "string", "enum": ["browser", "http"]},
            "links": {"type": "object"},
        },
    })
}

/// Every JSON body the API answers with.
fn schemas() -> Value {
    let mut all = serde_json::Map::new();
    for part in [
        capture_schemas(),
        search_schemas(),
        claim_schemas(),
        service_schemas(),
    ] {
        all.extend(part.as_object().cloned().unwrap_or_default());
    }
    Value::Object(all)
}

/// Full-text search results.
fn search_schemas() -> Value {
    let string = json!({"type": "string"});
    let time = json!({"type": "string", "format": "date-time"});
    json!({
        "SearchPage": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/SearchResult"}},
                "next_cursor": nullable("string"),
            },
        },
        "SearchResult": {
            "type": "object",
            "required": ["capture_id", "captured_at", "url", "document", "seed_url", "passage", "highlights", "replay"],
            "properties": {
                "capture_id": string, "captured_at": time, "url": string,
                "document": {"type": "string", "description": "What was searched: the url, or the page's rendered text (urn:text:URL)"},
                "seed_url": string, "schedule": nullable("string"), "title": nullable("string"),
                "passage": {"type": "string", "description": "The text around the first match"},
                "highlights": {"type": "array", "items": {
                    "type": "object", "required": ["text", "match"],
                    "properties": {"text": string, "match": {"type": "boolean"}},
                }},
                "quote": nullable("string"),
                "replay": {"type": "string", "description": "The page in replay, scrolled to the first match"},
            },
        },
    })
}

/// Captures, their records, events and checks.
fn capture_schemas() -> Value {
    let string = json!({"type": "string"});
    let int = json!({"type": "integer"});
    let time = json!({"type": "string", "format": "date-time"});
    let record = json!({
        "type": "object",
        "required": ["record_id", "warc_type", "date", "timestamp", "block_digest", "offset", "length"],
        "properties": {
            "record_id": string, "warc_type": string,
            "target_uri": nullable("string"), "surt": nullable("string"),
            "date": time, "timestamp": {"type": "string", "pattern": "^[0-9]{14}$"},
            "mime": nullable("string"), "status": nullable("integer"),
            "payload_digest": nullable("string"), "block_digest": string,
            "offset": int, "length": int,
        },
    });
    let mut found = record.clone();
    found["required"].as_array_mut().expect("required").extend([
        json!("capture_id"),
        json!("warc"),
        json!("replay"),
    ]);
    found["properties"]["capture_id"] = string.clone();
    found["properties"]["warc"] = json!({"$ref": "#/components/schemas/WarcRef"});
    found["properties"]["replay"] = string.clone();
    let mut capture_page = page_of("Capture");
    capture_page["required"] = json!(["items", "next_offset", "next_cursor"]);
    capture_page["properties"]["next_cursor"] = nullable("string");
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string", "description": "What failed and what to do, in one line"}},
        },
        "WarcRef": {
            "type": "object",
            "required": ["key", "sha256", "bytes"],
            "properties": {"key": string, "sha256": string, "bytes": int},
        },
        "Resource": {
            "type": "object",
            "required": ["url", "bytes"],
            "properties": {
                "url": string, "status": nullable("integer"), "mime": nullable("string"),
                "payload_sha256": nullable("string"), "bytes": int,
                "truncated": string, "error": string,
            },
        },
        "Capture": capture_schema(int.clone()),
        "CaptureWithRecords": capture_schema(json!({"type": "array", "items": {"$ref": "#/components/schemas/Record"}})),
        "CapturePage": capture_page,
        "CapturesMade": {
            "type": "object",
            "required": ["items"],
            "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Capture"}}},
        },
        "Media": {
            "type": "object",
            "description": "Set when the capture ran its media step: what yt-dlp produced through custody's recording proxy, or why it produced nothing",
            "required": ["tool", "version", "status", "format", "files"],
            "properties": {
                "tool": string, "version": nullable("string"),
                "status": {"type": "string", "enum": ["ok", "none", "failed", "unavailable"]},
                "problem": string, "format": string,
                "files": {"type": "array", "items": {
                    "type": "object",
                    "required": ["record_id", "target_uri", "mime", "bytes", "sha256", "format_id", "info_record_id"],
                    "properties": {
                        "record_id": string, "target_uri": string, "mime": string,
                        "bytes": int, "sha256": string, "format_id": string,
                        "info_record_id": nullable("string"),
                        "title": string, "uploader": string, "upload_date": string,
                        "duration_ms": int, "extractor": string,
                    },
                }},
            },
        },
        "Import": {
            "type": "object",
            "description": "Set when the capture was imported from a file another tool wrote",
            "required": ["file", "name", "format", "received_at", "content_sha256", "software", "operator", "verified", "problems", "revisits"],
            "properties": {
                "file": {"$ref": "#/components/schemas/WarcRef"},
                "name": string, "format": {"type": "string", "enum": ["warc", "warc.gz", "wacz"]},
                "source": nullable("string"), "imported_by": nullable("string"),
                "received_at": time, "content_sha256": string,
                "software": {"type": "array", "items": string},
                "operator": {"type": "array", "items": string},
                "signer": nullable("string"),
                "verified": {"type": "array", "items": string},
                "problems": {"type": "array", "items": {
                    "type": "object", "required": ["problem"],
                    "properties": {"record": nullable("string"), "at": nullable("string"), "problem": string},
                }},
                "revisits": {"type": "array", "items": {
                    "type": "object", "required": ["record", "original", "payload_sha256"],
                    "properties": {"record": string, "original": string, "payload_sha256": string},
                }},
            },
        },
        "Record": record,
        "RecordPage": page_of("Record"),
        "FoundRecord": found,
        "FoundRecordPage": page_of("FoundRecord"),
        "Event": {
            "type": "object",
            "required": ["object_kind", "object_id", "event", "at", "outcome", "detail"],
            "properties": {
                "object_kind": string, "object_id": string, "event": string,
                "actor": nullable("string"), "at": time, "outcome": string, "detail": {},
            },
        },
        "EventPage": page_of("Event"),
        "Check": {
            "type": "object",
            "required": ["item", "ok"],
            "properties": {"item": string, "ok": {"type": "boolean"}, "detail": string},
        },
        "Verification": {
            "type": "object",
            "required": ["capture_id", "ok", "checks"],
            "properties": {
                "capture_id": string, "ok": {"type": "boolean"},
                "checks": {"type": "array", "items": {"$ref": "#/components/schemas/Check"}},
            },
        },
        "Proof": {
            "type": "object",
            "description": "The capture's inclusion proof, the signed checkpoint it is in, and the RFC 3161 tokens of both",
        },
    })
}

/// Claims and their evidence.
fn claim_schemas() -> Value {
    let mut claim_page = page_of("Claim");
    claim_page["required"] = json!(["items", "next_offset", "next_cursor"]);
    claim_page["properties"]["next_cursor"] = nullable("string");
    let string = json!({"type": "string"});
    let int = json!({"type": "integer"});
    let time = json!({"type": "string", "format": "date-time"});
    let claim = json!({
        "type": "object",
        "required": ["id", "version", "text", "tags", "created_at"],
        "properties": {
            "id": string, "version": int, "text": string,
            "event_start": nullable("string"), "event_end": nullable("string"),
            "place": nullable("string"), "latitude": nullable("number"), "longitude": nullable("number"),
            "tags": {"type": "array", "items": string}, "language": nullable("string"),
            "author": nullable("string"), "origin": nullable("string"), "created_at": time,
            "links": {"type": "object"},
        },
    });
    json!({
        "Claim": claim,
        "ClaimPage": claim_page,
        "ClaimEvidence": {
            "type": "object",
            "required": ["claim", "versions", "evidence", "events"],
            "properties": {
                "claim": {"$ref": "#/components/schemas/Claim"},
                "versions": {"type": "array", "items": {"$ref": "#/components/schemas/Claim"}},
                "evidence": {"type": "array", "items": {"type": "object"}},
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
            },
        },
        "Link": {
            "type": "object",
            "required": ["id", "claim_id", "claim_version", "capture_id", "record_id", "target_uri", "payload_digest", "relation", "selectors", "created_at"],
            "properties": {
                "id": string, "claim_id": string, "claim_version": int, "capture_id": string,
                "record_id": string, "target_uri": string, "payload_digest": string,
                "relation": string, "selectors": {"type": "array", "items": {"type": "object"}},
                "quote_given": nullable("string"), "rationale": nullable("string"),
                "author": nullable("string"), "created_at": time,
            },
        },
        "LinkPage": page_of("Link"),
    })
}

/// Schedules, runs, the log, fixity, tokens, Memento.
fn service_schemas() -> Value {
    let mut run_page = page_of("Run");
    run_page["required"] = json!(["items", "next_offset", "next_cursor"]);
    run_page["properties"]["next_cursor"] = nullable("string");
    let string = json!({"type": "string"});
    let int = json!({"type": "integer"});
    let time = json!({"type": "string", "format": "date-time"});
    json!({
        "Schedule": {
            "type": "object",
            "required": ["name", "cron", "timezone", "urls", "enabled", "next", "file", "version"],
            "properties": {
                "name": string, "cron": string, "timezone": string,
                "urls": {"type": "array", "items": string}, "enabled": {"type": "boolean"},
                "next": nullable("string"), "file": string,
                "version": {"type": "string", "description": "SHA-256 of the schedule's file: give it with a change"},
            },
        },
        "ScheduleEdited": {
            "type": "object",
            "required": ["name", "file", "version"],
            "properties": {"name": string, "file": string, "version": string},
        },
        "SchedulePage": {
            "type": "object",
            "required": ["items", "problems", "next_offset"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Schedule"}},
                "problems": {"type": "array", "items": string},
                "next_offset": nullable("integer"),
            },
        },
        "ScheduleMade": {
            "type": "object",
            "required": ["name", "file"],
            "properties": {"name": string, "file": string},
        },
        "Run": {
            "type": "object",
            "required": ["id", "schedule", "url", "scheduled_for", "state", "not_before", "attempts", "catch_up"],
            "properties": {
                "id": int, "schedule": string, "url": string, "scheduled_for": time,
                "state": string, "not_before": time, "attempts": int, "catch_up": {"type": "boolean"},
                "lease_owner": nullable("string"), "capture_id": nullable("string"), "error": nullable("string"),
            },
        },
        "RunPage": run_page,
        "LogKey": {
            "type": "object",
            "required": ["verifier_key", "origin", "size"],
            "properties": {"verifier_key": string, "origin": string, "size": int},
        },
        "Checkpoint": {
            "type": "object",
            "required": ["tree_size", "root", "note", "created_at"],
            "properties": {"tree_size": int, "root": string, "note": string, "created_at": time},
        },
        "CheckpointPage": page_of("Checkpoint"),
        "ConsistencyProof": {
            "type": "object",
            "required": ["old_size", "new_size", "old_root", "new_root", "proof", "old_checkpoint", "new_checkpoint", "verifier_key"],
            "properties": {
                "old_size": int, "new_size": int, "old_root": string, "new_root": string,
                "proof": {"type": "array", "items": string},
                "old_checkpoint": string, "new_checkpoint": string, "verifier_key": string,
            },
        },
        "Fixity": {
            "type": "object",
            "required": ["quarantined", "items", "next_offset", "next_cursor"],
            "properties": {
                "quarantined": int,
                "items": {"type": "array", "items": {
                    "type": "object",
                    "required": ["key", "sha256", "bytes", "quarantined", "last_check"],
                    "properties": {
                        "key": string, "sha256": string, "bytes": int,
                        "quarantined": nullable("string"),
                        "last_check": {"type": ["object", "null"]},
                    },
                }},
                "next_offset": nullable("integer"),
                "next_cursor": nullable("string"),
            },
        },
        "Token": {
            "type": "object",
            "required": ["id", "role", "created_at"],
            "properties": {
                "id": string, "role": {"type": "string", "enum": ["reader", "archivist", "admin"]},
                "label": string, "created_at": time, "revoked_at": time,
            },
        },
        "TokenPage": page_of("Token"),
        "TokenMade": {
            "type": "object",
            "required": ["id", "role", "created_at", "token"],
            "properties": {
                "id": string, "role": string, "label": string, "created_at": time,
                "token": {"type": "string", "description": "The secret: shown once"},
            },
        },
        "TimeMap": {
            "type": "object",
            "required": ["original_uri", "timegate_uri", "timemap_uri", "mementos"],
            "properties": {
                "original_uri": string, "timegate_uri": string,
                "timemap_uri": {"type": "object"}, "mementos": {"type": "object"},
            },
        },
    })
}

/// The document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary, role, params, body) in OPERATIONS {
        let mut answers = serde_json::Map::new();
        for (status, body) in responses(method, path) {
            let description = match status {
                "200" | "201" => "Success".to_string(),
                "204" => "Done; no body".to_string(),
                "206" => "The range asked for".to_string(),
                "302" => "Redirected to the capture nearest in time".to_string(),
                "409" if path.ends_with("/verify") => {
                    "A check failed: the verification names it".to_string()
                }
                "409" if *method == "patch" => {
                    "The file changed since the version given: read it again".to_string()
                }
                "409" => "It exists already".to_string(),
                "503" => "The index does not answer".to_string(),
                _ => "What failed and what to do, in one line".to_string(),
            };
            let content = match body {
                Body::Json(schema) => {
                    json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}})
                }
                Body::Media(media) => json!({media: {}}),
                Body::Empty => Value::Null,
            };
            let mut answer = json!({"description": description});
            if !content.is_null() {
                answer["content"] = content;
            }
            answers.insert(status.to_string(), answer);
        }
        let mut op = json!({
            "summary": summary,
            "description": format!("Role: {role}."),
            "parameters": params.iter().map(|p| parameter(p, path)).collect::<Vec<_>>(),
            "responses": answers,
        });
        if *role == "open" {
            op["security"] = json!([]);
        }
        if *path == "/api/v1/imports" {
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            });
        }
        if let (Some(example), Some(schema)) = (body, request_schema(path)) {
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": schema, "example": serde_json::from_str::<Value>(example).unwrap_or(Value::Null)}},
            });
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "custody",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Preserved web evidence: captures, claims and proofs. Send `Authorization: Bearer TOKEN` (made with `custody token create --role ROLE`).",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
        "security": [{"bearer": []}],
    })
}
