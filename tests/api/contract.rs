//! The contract: `api-spec/openapi.yaml` names exactly the routes the server has, and every
//! response a test receives is checked against the spec (status documented, content type, body
//! valid against the schema).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, OnceLock};

use serde_json::{json, Value};

use crate::helpers::{TestApp, TestResponse};

pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/api-spec/openapi.yaml"))
            .expect("read api-spec/openapi.yaml");
        serde_norway::from_str(&text).expect("openapi.yaml parses")
    })
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

/// The spec's path template that a concrete path matches.
fn template_for(path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    let paths = spec()["paths"].as_object()?;
    // Prefer templates with fewer parameters (a literal segment beats `{id}`).
    let mut best: Option<(usize, String)> = None;
    for template in paths.keys() {
        let t: Vec<&str> = template.split('/').collect();
        if t.len() != segments.len() {
            continue;
        }
        let matches = t.iter().zip(&segments).all(|(a, b)| (a.starts_with('{') && !b.is_empty()) || a == b);
        if matches {
            let params = t.iter().filter(|s| s.starts_with('{')).count();
            if best.as_ref().is_none_or(|(p, _)| params < *p) {
                best = Some((params, template.clone()));
            }
        }
    }
    best.map(|(_, t)| t)
}

fn pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn resolve(value: &Value) -> &Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => spec().pointer(r.trim_start_matches('#')).map(resolve).unwrap_or(value),
        None => value,
    }
}

fn validator(pointer: &str) -> &'static jsonschema::Validator {
    static CACHE: OnceLock<Mutex<HashMap<String, &'static jsonschema::Validator>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = cache.get(pointer) {
        return v;
    }
    // The whole spec is the schema document, so `#/components/...` references resolve; its root
    // `$ref` points at the schema to check.
    let mut root = spec().clone();
    root["$ref"] = json!(format!("#{pointer}"));
    let v = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .unwrap_or_else(|e| panic!("schema at {pointer} does not compile: {e}"));
    let v: &'static jsonschema::Validator = Box::leak(Box::new(v));
    cache.insert(pointer.to_string(), v);
    v
}

/// Panics when the response is not what the spec documents for this operation.
pub fn check_response(method: &str, path: &str, res: &TestResponse) {
    let Some(template) = template_for(path) else {
        // Unknown paths are answered 404 by the server; that answer must be a problem document.
        assert_eq!(res.status, 404, "{method} {path}: not in the spec but answered {}", res.status);
        assert_refusal(method, path, res);
        return;
    };
    let m = method.to_lowercase();
    let op_pointer = format!("/paths/{}/{m}", pointer_escape(&template));
    let Some(op) = spec().pointer(&op_pointer) else {
        assert_eq!(res.status, 405, "{method} {template}: not in the spec but answered {}", res.status);
        assert_refusal(method, path, res);
        return;
    };
    let status = res.status.to_string();
    let response_pointer = if op["responses"].get(&status).is_some() {
        format!("{op_pointer}/responses/{status}")
    } else if op["responses"].get("default").is_some() {
        format!("{op_pointer}/responses/default")
    } else {
        panic!("{method} {template}: status {status} is not documented in the spec; body: {}", res.text)
    };
    let response = resolve(spec().pointer(&response_pointer).expect("response"));
    let content_type = res.header("content-type").unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim().to_string();
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        assert!(res.text.is_empty(), "{method} {template} {status}: spec documents no body but got {}", res.text);
        return;
    };
    let Some(media_spec) = content.get(&media) else {
        panic!("{method} {template} {status}: content type {media} not in the spec ({:?})", content.keys());
    };
    if media.ends_with("json") {
        let schema = media_spec.get("schema").expect("schema");
        let pointer = match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => r.trim_start_matches('#').to_string(),
            None => {
                // Inline schema: address it where it sits in the spec.
                let resolved_pointer = if let Some(r) =
                    spec().pointer(&response_pointer).and_then(|v| v.get("$ref")).and_then(Value::as_str)
                {
                    r.trim_start_matches('#').to_string()
                } else {
                    response_pointer.clone()
                };
                format!("{resolved_pointer}/content/{}/schema", pointer_escape(&media))
            }
        };
        let v = validator(&pointer);
        let errors: Vec<String> = v.iter_errors(&res.body).map(|e| format!("{} at {}", e, e.instance_path)).collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: body does not match the spec: {errors:?}\nbody: {}",
            res.text
        );
    }
}

/// A refusal made before any handler: on the console's paths a page, elsewhere problem+json.
fn assert_refusal(method: &str, path: &str, res: &TestResponse) {
    if renkei::console::is_page_path(path.split('?').next().unwrap_or_default()) {
        let html = res.header("content-type").is_some_and(|c| c.starts_with("text/html"));
        assert!(html, "{method} {path}: a console refusal as {:?}", res.header("content-type"));
    } else {
        assert_problem(method, path, res);
    }
}

fn assert_problem(method: &str, path: &str, res: &TestResponse) {
    assert_eq!(res.header("content-type").as_deref(), Some("application/problem+json"), "{method} {path}");
    let v = validator("/components/schemas/Problem");
    assert!(v.is_valid(&res.body), "{method} {path}: not a problem document: {}", res.text);
}

#[test]
fn every_route_is_in_the_spec_and_every_spec_route_exists() {
    let server: BTreeSet<(String, String)> = renkei::app::route_table().into_iter().collect();
    let mut documented = BTreeSet::new();
    for (path, item) in spec()["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(*m).is_some() {
                documented.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    let missing_from_spec: Vec<_> = server.difference(&documented).collect();
    let missing_from_server: Vec<_> = documented.difference(&server).collect();
    assert!(missing_from_spec.is_empty(), "routes the spec lacks: {missing_from_spec:?}");
    assert!(missing_from_server.is_empty(), "spec routes the server lacks: {missing_from_server:?}");
}

#[test]
fn every_problem_type_is_documented() {
    let documented = spec().pointer("/components/schemas/Problem/properties/type/enum");
    if let Some(list) = documented.and_then(Value::as_array) {
        for slug in renkei::error::PROBLEM_SLUGS {
            let t = format!("/problems/{slug}");
            assert!(list.iter().any(|v| v == &json!(t)), "{t} is not in the Problem schema's type enum");
        }
    }
}

async fn served_spec_is_the_file(app: TestApp) {
    let res = app.call("GET", "/api-spec/openapi.yaml", None, None, &[]).await.expect(200);
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/api-spec/openapi.yaml")).unwrap();
    assert_eq!(res.text, file);
    assert_eq!(spec()["openapi"], json!("3.1.0"));
}

crate::both_backends!(served_spec_is_the_file);
