//! The laws of the house, checked on the source tree itself: route handlers live only in
//! handler files, handler files write no SQL, and every refusal is decided in `access.rs`.
//! A change that breaks one fails here, naming the file.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every source file of the service, as (path relative to the crate, text without tests).
fn files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    sources(&root.join("src"), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read source");
            // Unit tests at the bottom of a file may build whatever they need.
            let code = text.split("\n#[cfg(test)]").next().unwrap_or_default().to_string();
            (p.strip_prefix(root).expect("inside the crate").to_string_lossy().replace('\\', "/"), code)
        })
        .collect()
}

fn is_handler_file(path: &str) -> bool {
    path.ends_with("/handlers.rs") || path.contains("/handlers/")
}

/// A route handler: an `async fn` that answers HTTP.
fn defines_handler(code: &str) -> bool {
    code.split("async fn ").skip(1).any(|rest| {
        let signature = rest.split('{').next().unwrap_or_default();
        signature.contains("HttpResponse") || signature.contains("web::Data<AppState>")
    })
}

#[test]
fn handlers_live_only_in_handler_files() {
    let misplaced: Vec<String> = files()
        .into_iter()
        // The route table's own fallback (an unknown path) is the one exception.
        .filter(|(path, code)| !is_handler_file(path) && path != "src/app.rs" && defines_handler(code))
        .map(|(path, _)| path)
        .collect();
    assert!(misplaced.is_empty(), "route handlers outside a handlers file: {misplaced:?}");
}

#[test]
fn handler_files_write_no_sql() {
    let writing: Vec<String> = files()
        .into_iter()
        .filter(|(path, code)| {
            is_handler_file(path)
                && ["db::schema", "diesel::", "sql_query", ".load(", ".execute(", ".get_result("]
                    .iter()
                    .any(|sql| code.contains(sql))
        })
        .map(|(path, _)| path)
        .collect();
    assert!(writing.is_empty(), "handler files naming the schema or writing SQL: {writing:?}");
}

#[test]
fn refusals_are_decided_in_access() {
    let deciding: Vec<String> = files()
        .into_iter()
        .filter(|(path, code)| path != "src/access.rs" && path != "src/error.rs" && code.contains("forbidden("))
        .map(|(path, _)| path)
        .collect();
    assert!(deciding.is_empty(), "refusals decided outside src/access.rs: {deciding:?}");
}

#[test]
fn the_caseload_projection_is_moved_from_one_place() {
    let moving: Vec<String> = files()
        .into_iter()
        .filter(|(path, code)| {
            path != "src/changes.rs"
                && !path.starts_with("src/caseload/")
                && (code.contains("entries::refresh") || code.contains("entries::note_added"))
        })
        .map(|(path, _)| path)
        .collect();
    assert!(moving.is_empty(), "caseload entries moved outside changes::record: {moving:?}");
}
