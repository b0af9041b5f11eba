//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, written by
//! hand next to the routes it describes (`api.rs`, `replay.rs`); a test
//! checks that every documented path answers and every API route is
//! documented.

use serde_json::{json, Value};

/// (method, path, summary, role, parameters, request body, success status)
type Op = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    Option<&'static str>,
    &'static str,
);

/// Every operation. Roles: `open` needs no token; `reader` is open too
/// when the server runs with `--public-read`.
pub const OPERATIONS: &[Op] = &[
    (
        "get",
        "/api/v1/captures",
        "List captures, oldest first (order=desc for newest first)",
        "reader",
        &["url", "from", "to", "order", "limit", "offset"],
        None,
        "200",
    ),
    (
        "post",
        "/api/v1/captures",
        "Capture a page now",
        "archivist",
        &[],
        Some("{\"url\": \"https://...\"} or {\"urls\": [...]}"),
        "201",
    ),
    (
        "get",
        "/api/v1/captures/{id}",
        "One capture with its records",
        "reader",
        &["id"],
        None,
        "200",
    ),
    (
        "get",
        "/api/v1/captures/{id}/records",
        "A capture's WARC records (CDXJ fields, offsets)",
        "reader",
        &["id"],
        None,
        "200",
    ),
    (
        "get",
        "/api/v1/captures/{id}/events",
        "A capture's custody record",
        "reader",
        &["id"],
        None,
        "200",
    ),
    (
        "get",
        "/api/v1/captures/{id}/verify",
        "Verify a capture now (409 when a check fails)",
        "reader",
        &["id"],
        None,
        "200",
    ),
    (
        "get",
        "/api/v1/captures/{id}/proof",
        "Inclusion proof, signed checkpoint and timestamps",
        "reader",
        &["id"],
        None,
        "200",
    ),
    (
        "get",
        "/api/v1/captures/{id}/warc",
        "Download the capture's WARC (export form)",
        "reader",
        &["id"],
        None,
        "200",
    ),
    (
        "get",
        "/api/v1/captures/{id}/wacz",
        "Download a signed WACZ evidence package",
        "reader",
        &["id"],
        None,
        "200",
    ),
    (
        "get",
        "/api/v1/records",
        "Response and revisit records of a URL",
        "reader",
        &["url", "matchType", "from", "to", "limit", "offset"],
        None,
        "200",
    ),
    (
        "get",
        "/api/v1/claims",
        "List claims (q: words the text contains)",
        "reader",
        &["q", "limit", "offset"],
        None,
        "200",
    ),
    (
        "post",
        "/api/v1/claims",
        "Add a claim",
        "archivist",
        &[],
        Some("{\"text\": \"...\", \"place\": \"...\", \"event_start\": \"YYYY-MM-DD\"}"),
        "201",
    ),
    (
        "get",
        "/api/v1/claims/{id}",
        "A claim with its evidence, re-verified now",
        "reader",
        &["id"],
        None,
        "200",
    ),
    (
        "get",
        "/api/v1/claims/{id}/jsonld",
        "A claim as JSON-LD (Web Annotation, PROV-O, schema.org)",
        "reader",
        &["id"],
        None,
        "200",
    ),
    (
        "post",
        "/api/v1/claims/{id}/links",
        "Link a claim to a passage of a capture",
        "archivist",
        &["id"],
        Some("{\"capture_id\": \"...\", \"quote\": \"...\", \"relation\": \"supports\"}"),
        "201",
    ),
    (
        "get",
        "/api/v1/claims/{id}/wacz",
        "Download a signed WACZ of all of a claim's evidence",
        "reader",
        &["id"],
        None,
        "200",
    ),
    (
        "get",
        "/api/v1/links",
        "Evidence links, by claim or capture",
        "reader",
        &["claim", "capture"],
        None,
        "200",
    ),
    (
        "get",
        "/api/v1/schedules",
        "Schedules, with their next run",
        "reader",
        &[],
        None,
        "200",
    ),
    (
        "post",
        "/api/v1/schedules",
        "Add a schedule file",
        "archivist",
        &[],
        Some("{\"name\": \"...\", \"cron\": \"0 */6 * * *\", \"urls\": [\"https://...\"]}"),
        "201",
    ),
    (
        "get",
        "/api/v1/runs",
        "Scheduled runs, newest first",
        "reader",
        &["schedule", "limit", "offset"],
        None,
        "200",
    ),
    (
        "get",
        "/api/v1/log/key",
        "The transparency log's verifier key and size",
        "reader",
        &[],
        None,
        "200",
    ),
    (
        "get",
        "/api/v1/log/checkpoints",
        "Signed checkpoints",
        "reader",
        &[],
        None,
        "200",
    ),
    (
        "get",
        "/api/v1/fixity",
        "Fixity status of every stored WARC",
        "reader",
        &[],
        None,
        "200",
    ),
    (
        "get",
        "/api/v1/tokens",
        "API tokens (never their secrets)",
        "admin",
        &[],
        None,
        "200",
    ),
    (
        "post",
        "/api/v1/tokens",
        "Make an API token; shown once",
        "admin",
        &[],
        Some("{\"role\": \"reader|archivist|admin\", \"label\": \"...\"}"),
        "201",
    ),
    (
        "delete",
        "/api/v1/tokens/{id}",
        "Revoke a token",
        "admin",
        &["id"],
        None,
        "204",
    ),
    (
        "get",
        "/replay/{timestamp}/{url}",
        "Replay the capture nearest in time, rewritten, with a banner",
        "reader",
        &["timestamp", "url"],
        None,
        "200",
    ),
    (
        "get",
        "/replay/{timestamp}id_/{url}",
        "The archived payload exactly as received",
        "reader",
        &["timestamp", "url"],
        None,
        "200",
    ),
    (
        "get",
        "/timegate/{url}",
        "Memento TimeGate (Accept-Datetime)",
        "reader",
        &["url"],
        None,
        "302",
    ),
    (
        "get",
        "/timemap/link/{url}",
        "Memento TimeMap, application/link-format",
        "reader",
        &["url"],
        None,
        "200",
    ),
    (
        "get",
        "/timemap/json/{url}",
        "Memento TimeMap, JSON",
        "reader",
        &["url"],
        None,
        "200",
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
            "closest",
            "filter",
            "output",
        ],
        None,
        "200",
    ),
    (
        "get",
        "/healthz",
        "Liveness: 200 when the index answers",
        "open",
        &[],
        None,
        "200",
    ),
    (
        "get",
        "/metrics",
        "Prometheus metrics",
        "open",
        &[],
        None,
        "200",
    ),
];

fn parameter(name: &str, path: &str) -> Value {
    let in_path = path.contains(&format!("{{{name}}}"));
    let description = match name {
        "id" => "A capture id, claim id or token id",
        "url" => "An archived URL (in a path: everything after the prefix, with its query)",
        "timestamp" => "Up to 14 digits YYYYMMDDhhmmss; the nearest capture is served",
        "from" | "to" => "RFC 3339, or 4 to 14 digits YYYYMMDDhhmmss",
        "limit" => "Items per page (default 100, at most 1000)",
        "offset" => "Items to skip (the previous page's next_offset)",
        "matchType" => "exact, prefix, host or domain",
        "filter" => "[!][~|=]field:expression, repeatable",
        "output" => "json (one object per line) or cdxj",
        "sort" => "reverse or closest",
        "closest" => "Timestamp for sort=closest",
        "order" => "asc (default) or desc",
        "q" => "Words the claim's text contains",
        "old" | "new" => "Tree sizes of signed checkpoints",
        _ => "",
    };
    json!({
        "name": name,
        "in": if in_path { "path" } else { "query" },
        "required": in_path
            || (name == "url" && (path == "/cdx" || path == "/api/v1/records"))
            || (name == "old" && path == "/api/v1/log/consistency"),
        "description": description,
        "schema": {"type": "string"},
    })
}

/// The document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary, role, params, body, status) in OPERATIONS {
        let mut op = json!({
            "summary": summary,
            "description": format!("Role: {role}."),
            "parameters": params.iter().map(|p| parameter(p, path)).collect::<Vec<_>>(),
            "responses": {
                *status: {"description": "Success"},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "403": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
            },
        });
        if *role == "open" {
            op["security"] = json!([]);
        }
        if let Some(example) = body {
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": {"type": "object"}, "example": example}},
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
            "responses": {
                "Error": {
                    "description": "What failed and what to do, in one line",
                    "content": {"application/json": {"schema": {
                        "type": "object",
                        "properties": {"error": {"type": "string"}},
                        "required": ["error"],
                    }}},
                },
            },
        },
        "security": [{"bearer": []}],
    })
}
