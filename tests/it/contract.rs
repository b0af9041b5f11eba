//! The API contract, checked by schemathesis (installed by scripts/test.sh):
//! property-based requests generated from `/api/v1/openapi.json`, GET and
//! POST and DELETE, against a loopback server holding a capture, a claim
//! linked to it and a signed checkpoint; every answer must be a status the
//! document lists, with the media type and (for JSON) the schema it gives,
//! and never a server error.

use crate::cli::Workdir;
use crate::site;

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_every_answer_as_the_openapi_document_says() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    std::fs::create_dir_all(work.path().join("schedules")).unwrap();
    let (capture, _) = work.capture(&format!("http://{addr}{}", site::ARTICLE_PATH));
    let claim = work.claim_linked_to(&[&capture]);
    work.ok(&["log", "checkpoint"]);
    // The existing things, so that generated requests reach them (and not
    // only 404s): schemathesis.toml fixes each operation's ids.
    let article = format!("http://{addr}{}", site::ARTICLE_PATH);
    let mut config = String::new();
    let fixed = |ops: &[&str], params: &str, config: &mut String| {
        for op in ops {
            config.push_str(&format!(
                "[[operations]]\ninclude-name = \"{op}\"\nparameters = {{ {params} }}\n\n"
            ));
        }
    };
    let capture_ops: Vec<String> = [
        "", "/records", "/events", "/verify", "/proof", "/warc", "/wacz",
    ]
    .iter()
    .map(|s| format!("GET /api/v1/captures/{{id}}{s}"))
    .collect();
    fixed(
        &capture_ops.iter().map(String::as_str).collect::<Vec<_>>(),
        &format!("id = \"{}\"", capture.id),
        &mut config,
    );
    fixed(
        &[
            "GET /api/v1/claims/{id}",
            "GET /api/v1/claims/{id}/jsonld",
            "GET /api/v1/claims/{id}/wacz",
            "POST /api/v1/claims/{id}/links",
        ],
        &format!("id = \"{claim}\""),
        &mut config,
    );
    fixed(
        &[
            "GET /timegate/{url}",
            "GET /timemap/link/{url}",
            "GET /timemap/json/{url}",
        ],
        &format!("url = \"{article}\""),
        &mut config,
    );
    fixed(&["GET /api/v1/log/consistency"], "old = 1", &mut config);
    std::fs::write(work.path().join("schemathesis.toml"), config).unwrap();
    let token = crate::web::token(&work, "admin");
    let server = crate::web::serve(&work, &["--schedules", "schedules"]);
    let out = crate::interop::tool("schemathesis")
        .current_dir(work.path())
        .args([
            "run",
            &format!("http://{}/api/v1/openapi.json", server.addr),
            "--header",
            &format!("Authorization: Bearer {token}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--phases",
            "examples,fuzzing",
            "--max-examples",
            "8",
            "--seed",
            "16",
            "--workers",
            "2",
            "--request-timeout",
            "20",
            "--no-color",
            "--generation-database",
            "none",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "schemathesis:\n{text}");
    // It ran every operation.
    assert!(!text.contains("No operations"), "{text}");
}
