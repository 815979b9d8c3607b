//! Photos and documents on notes and discharge cases: uploads streamed into the object store,
//! types read from the content, limits, offline-safe retries, downloads with the Japanese file
//! name, ranges and ETags, and the same 404 for an outsider as for nothing at all.

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{Person, TestApp, TestResponse};
use crate::patients::{team, Team};

/// A JPEG of exactly `len` bytes with the structure of one (JFIF, a scan, the end) and
/// arbitrary scan data: nothing in it is metadata, so it is stored as it is.
pub fn jpeg_like(len: usize) -> Vec<u8> {
    let mut b = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xFF\xDA\x00\x03\x01".to_vec();
    b.extend((0..len.saturating_sub(b.len() + 2)).map(|i| (i % 251) as u8));
    b.extend_from_slice(b"\xFF\xD9");
    b
}

pub fn pdf_like() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec()
}

/// A `multipart/form-data` body with one part per `(name, file name, claimed type, bytes)`.
pub fn multipart(parts: &[(&str, &str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----renkei-test-boundary-7f3a";
    let mut body = Vec::new();
    for (name, file_name, claimed, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\n").as_bytes(),
        );
        body.extend_from_slice(format!("Content-Type: {claimed}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Sends raw bytes and checks the answer against the contract.
pub async fn send_raw(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (TestResponse, Vec<u8>) {
    let mut req =
        app.client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), app.url(path)).bearer_auth(token);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct).body(body);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.expect("body").to_vec();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let response = TestResponse { status, headers, text, body };
    crate::contract::check_response(method, path, &response);
    (response, bytes)
}

pub async fn upload(
    app: &TestApp,
    who: &Person,
    path: &str,
    file_name: &str,
    bytes: &[u8],
    headers: &[(&str, &str)],
) -> TestResponse {
    let (ct, body) = multipart(&[("file", file_name, "application/octet-stream", bytes)]);
    send_raw(app, "POST", path, &who.token, Some(&ct), body, headers).await.0
}

pub async fn download(app: &TestApp, who: &Person, path: &str, headers: &[(&str, &str)]) -> (TestResponse, Vec<u8>) {
    send_raw(app, "GET", path, &who.token, None, Vec::new(), headers).await
}

pub async fn visit_note(app: &TestApp, who: &Person, patient_id: &str, text: &str) -> String {
    let at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let res = app
        .post(
            &format!("/api/v1/patients/{patient_id}/notes"),
            &who.token,
            json!({"kind": "visit", "occurred_at": at, "text": text}),
        )
        .await
        .expect(201);
    res.body["id"].as_str().unwrap().to_string()
}

/// Every file under the folder (objects and temporary files).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The test server's object store (a local folder or an S3 bucket).
pub fn store_of(app: &TestApp) -> renkei::attachments::store::Store {
    renkei::attachments::store::Store::new(&app.config).unwrap()
}

/// The keys of every stored object, content and thumbnails.
pub async fn stored_keys(app: &TestApp) -> Vec<String> {
    store_of(app).written_before(Utc::now() + chrono::Duration::days(1)).await.unwrap()
}

async fn stored_objects(app: &TestApp) -> usize {
    stored_keys(app).await.len()
}

/// The bytes of one stored object, as the store has them.
pub async fn stored_bytes(app: &TestApp, key: &str) -> Vec<u8> {
    use futures_util::StreamExt;
    let mut object = store_of(app).get(key, None).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = object.stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

fn left_in_tmp(app: &TestApp) -> usize {
    files_under(&app.data_dir.path().join("tmp")).len()
}

pub async fn outsider(app: &TestApp, t: &Team) -> Person {
    let other = app.organization(&t.admin, "visiting_nurse_station", "他区訪問看護", Some("14137")).await;
    app.person(&t.admin, &other, "nurse", "member").await
}

async fn photo_on_a_visit_note(app: TestApp) {
    let t = team(&app, "14131").await;
    let note_id = visit_note(&app, &t.nurse, &t.patient_id, "仙骨部の褥瘡を観察").await;
    let photo = jpeg_like(300_000);
    let path = format!("/api/v1/notes/{note_id}/attachments");
    let res = upload(&app, &t.nurse, &path, "仙骨部 褥瘡.jpg", &photo, &[]).await.expect(201);
    let id = res.body["id"].as_str().unwrap().to_string();
    assert_eq!(res.header("location"), Some(format!("/api/v1/attachments/{id}")));
    // The type is the content's, not the `application/octet-stream` the client claimed.
    assert_eq!(res.body["content_type"], json!("image/jpeg"));
    assert_eq!(res.body["file_name"], json!("仙骨部 褥瘡.jpg"));
    assert_eq!(res.body["byte_size"], json!(photo.len()));
    assert_eq!(res.body["sha256"], json!(hex::encode(Sha256::digest(&photo))));
    assert_eq!(res.body["note_id"], json!(note_id));
    assert_eq!(res.body["note_version"], json!(1));
    assert_eq!(stored_objects(&app).await, 1);
    assert_eq!(left_in_tmp(&app), 0, "the temporary file is gone once stored");

    // The team sees it and opens it.
    let list = app.get(&path, &t.care_manager.token).await.expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let content = format!("/api/v1/attachments/{id}/content");
    let (res, bytes) = download(&app, &t.care_manager, &content, &[]).await;
    assert_eq!(res.status, 200);
    assert_eq!(bytes, photo);
    assert_eq!(res.header("content-type").as_deref(), Some("image/jpeg"));
    assert_eq!(res.header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(res.header("accept-ranges").as_deref(), Some("bytes"));
    let disposition = res.header("content-disposition").unwrap();
    assert!(
        disposition.contains("filename*=UTF-8''%E4%BB%99%E9%AA%A8%E9%83%A8%20%E8%A4%A5%E7%98%A1.jpg"),
        "{disposition}"
    );
    assert!(disposition.starts_with("inline"), "{disposition}");
    let etag = res.header("etag").unwrap();
    assert_eq!(etag, format!("\"{}\"", hex::encode(Sha256::digest(&photo))));

    // A range, a suffix range, a conditional read.
    let (res, bytes) = download(&app, &t.care_manager, &content, &[("range", "bytes=100-199")]).await;
    assert_eq!(res.status, 206);
    assert_eq!(bytes, photo[100..200]);
    assert_eq!(res.header("content-range"), Some(format!("bytes 100-199/{}", photo.len())));
    let (res, bytes) = download(&app, &t.care_manager, &content, &[("range", "bytes=-10")]).await;
    assert_eq!(res.status, 206);
    assert_eq!(bytes, photo[photo.len() - 10..]);
    // An unsatisfiable or multiple range: the whole file.
    let (res, bytes) = download(&app, &t.care_manager, &content, &[("range", "bytes=999999999-")]).await;
    assert_eq!((res.status, bytes.len()), (200, photo.len()));
    let (res, _) = download(&app, &t.care_manager, &content, &[("if-none-match", &etag)]).await;
    assert_eq!(res.status, 304);
    let (res, bytes) =
        download(&app, &t.care_manager, &content, &[("range", "bytes=0-9"), ("if-range", "\"stale\"")]).await;
    assert_eq!((res.status, bytes.len()), (200, photo.len()));

    // Metadata.
    let meta = app.get(&format!("/api/v1/attachments/{id}"), &t.nurse.token).await.expect(200);
    assert_eq!(meta.body["content_url"], json!(content));

    // Someone outside the team: the same 404 as for an attachment that does not exist.
    let stranger = outsider(&app, &t).await;
    let (theirs, _) = download(&app, &stranger, &content, &[]).await;
    let missing = format!("/api/v1/attachments/{}/content", uuid::Uuid::now_v7());
    let (nothing, _) = download(&app, &stranger, &missing, &[]).await;
    assert_eq!((theirs.status, nothing.status), (404, 404));
    assert_eq!(theirs.text, nothing.text);
    let listed = app.get(&path, &stranger.token).await.expect(404);
    assert_eq!(listed.text, nothing.text);
    // … and they cannot add a file either (refused before the body is read).
    upload(&app, &stranger, &path, "x.jpg", &photo, &[]).await.expect(404);
    assert_eq!(stored_objects(&app).await, 1);

    // Every download is in the audit trail.
    let log = app.get(&format!("/api/v1/patients/{}/access-log?limit=200", t.patient_id), &t.care_manager.token).await;
    if log.status == 200 {
        let reads = log.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["resource_type"] == json!("attachment") && e["action"] == json!("R"))
            .count();
        assert!(reads >= 6, "downloads audited: {}", log.text);
    }
}

async fn only_accepted_types_and_sizes(app: TestApp) {
    let t = team(&app, "14131").await;
    let note_id = visit_note(&app, &t.nurse, &t.patient_id, "服薬状況を確認").await;
    let path = format!("/api/v1/notes/{note_id}/attachments");
    // An HTML page or a program claiming to be a photo: 415, Japanese first, nothing stored.
    for bytes in [
        b"<html><script>alert(1)</script></html>".to_vec(),
        b"MZ\x90\x00\x03\x00\x00\x00".to_vec(),
        b"GIF89a\x01\x00".to_vec(),
    ] {
        let (ct, body) = multipart(&[("file", "photo.jpg", "image/jpeg", &bytes)]);
        let (res, _) = send_raw(&app, "POST", &path, &t.nurse.token, Some(&ct), body, &[]).await;
        assert_eq!(res.status, 415, "{}", res.text);
        assert_eq!(res.header("content-type").as_deref(), Some("application/problem+json"));
        assert!(res.body["detail"].as_str().unwrap().contains("JPEG"), "{}", res.text);
        assert_eq!(res.body["errors"][0]["field"], json!("file"));
    }
    let (ct, body) = multipart(&[("file", "photo.jpg", "image/jpeg", b"<html>")]);
    let (res, _) = send_raw(&app, "POST", &path, &t.nurse.token, Some(&ct), body, &[("accept-language", "en")]).await;
    assert!(res.body["detail"].as_str().unwrap().starts_with("Only JPEG"), "{}", res.text);
    // Not multipart at all; no file part; two files; a part of another name.
    let (res, _) = send_raw(&app, "POST", &path, &t.nurse.token, Some("application/json"), b"{}".to_vec(), &[]).await;
    assert_eq!(res.status, 415, "{}", res.text);
    let (ct, body) = multipart(&[]);
    let (res, _) = send_raw(&app, "POST", &path, &t.nurse.token, Some(&ct), body, &[]).await;
    assert_eq!(res.status, 422, "{}", res.text);
    let one = jpeg_like(1000);
    let (ct, body) = multipart(&[("file", "a.jpg", "image/jpeg", &one), ("file", "b.jpg", "image/jpeg", &one)]);
    let (res, _) = send_raw(&app, "POST", &path, &t.nurse.token, Some(&ct), body, &[]).await;
    assert_eq!((res.status, res.body["errors"][0]["code"].clone()), (422, json!("one_file")), "{}", res.text);
    let (ct, body) = multipart(&[("photo", "a.jpg", "image/jpeg", &one)]);
    let (res, _) = send_raw(&app, "POST", &path, &t.nurse.token, Some(&ct), body, &[]).await;
    assert_eq!(res.status, 422, "{}", res.text);
    // A file name with a folder keeps only its last part; one with control characters is refused.
    let res = upload(&app, &t.nurse, &path, "../../etc/お薬手帳.png", &one, &[]).await.expect(201);
    assert_eq!(res.body["file_name"], json!("お薬手帳.png"));
    assert_eq!(stored_objects(&app).await, 1);
    assert_eq!(left_in_tmp(&app), 0);
}

async fn limits_are_configurable(backend: crate::helpers::Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[("RENKEI_ATTACHMENT_MAX_BYTES", "100000"), ("RENKEI_ATTACHMENT_MAX_PER_NOTE", "2")],
    )
    .await;
    let t = team(&app, "14131").await;
    let note_id = visit_note(&app, &t.nurse, &t.patient_id, "創部の経過").await;
    let path = format!("/api/v1/notes/{note_id}/attachments");
    let res = upload(&app, &t.nurse, &path, "big.jpg", &jpeg_like(100_001), &[]).await.expect(413);
    assert_eq!(res.header("content-type").as_deref(), Some("application/problem+json"));
    assert_eq!(stored_objects(&app).await, 0);
    assert_eq!(left_in_tmp(&app), 0, "a refused upload leaves no temporary file");
    upload(&app, &t.nurse, &path, "1.jpg", &jpeg_like(100_000), &[]).await.expect(201);
    upload(&app, &t.nurse, &path, "2.jpg", &jpeg_like(5_000), &[]).await.expect(201);
    let res = upload(&app, &t.nurse, &path, "3.jpg", &jpeg_like(5_000), &[]).await.expect(422);
    assert_eq!(res.body["errors"][0]["code"], json!("too_many"));
    assert_eq!(stored_objects(&app).await, 2, "the refused third file's object was removed");
}

async fn retries_amendments_and_cases(app: TestApp) {
    let t = team(&app, "14131").await;
    let note_id = visit_note(&app, &t.nurse, &t.patient_id, "下腿の浮腫").await;
    let path = format!("/api/v1/notes/{note_id}/attachments");
    let photo = jpeg_like(20_000);
    // A phone that lost signal sends again with the same key: one file.
    let key = [("idempotency-key", "photo-retry-1")];
    let first = upload(&app, &t.nurse, &path, "浮腫.jpg", &photo, &key).await.expect(201);
    let again = upload(&app, &t.nurse, &path, "浮腫.jpg", &photo, &key).await.expect(201);
    assert_eq!(first.text, again.text);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(stored_objects(&app).await, 1, "the retry's copy was removed");
    // The same key with another file: 422.
    upload(&app, &t.nurse, &path, "別.jpg", &jpeg_like(999), &key).await.expect(422);
    // Only the note's author adds files to it.
    upload(&app, &t.care_manager, &path, "cm.jpg", &photo, &[]).await.expect(403);

    // An amendment: the new version carries the old files and its own.
    let at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    app.post(
        &format!("/api/v1/notes/{note_id}/amendments"),
        &t.nurse.token,
        json!({"reason": "写真を追加", "occurred_at": at, "text": "下腿の浮腫(写真あり)"}),
    )
    .await
    .expect(201);
    let second = upload(&app, &t.nurse, &path, "浮腫2.jpg", &photo, &[]).await.expect(201);
    assert_eq!(second.body["note_version"], json!(2));
    let list = app.get(&path, &t.care_manager.token).await.expect(200);
    let names: Vec<&str> =
        list.body["items"].as_array().unwrap().iter().map(|a| a["file_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["浮腫.jpg", "浮腫2.jpg"]);

    // A discharge case's document.
    let hospital = app.organization(&t.admin, "hospital", "川崎総合病院", Some("14131")).await;
    let msw = app.person(&t.admin, &hospital, "social_worker", "member").await;
    let case = app
        .post(
            "/api/v1/discharge-cases",
            &msw.token,
            json!({
                "patient_id": t.patient_id, "birth_date": "1938-04-01", "family_name_kana": "カワサキ",
                "admitted_on": Utc::now().date_naive().to_string()
            }),
        )
        .await;
    if case.status == 201 {
        let case_id = case.body["id"].as_str().unwrap();
        let docs = format!("/api/v1/discharge-cases/{case_id}/attachments");
        let pdf = pdf_like();
        let res = upload(&app, &msw, &docs, "診療情報提供書.pdf", &pdf, &[]).await.expect(201);
        assert_eq!(res.body["content_type"], json!("application/pdf"));
        assert_eq!(res.body["case_id"], json!(case_id));
        let list = app.get(&docs, &t.care_manager.token).await.expect(200);
        assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
        let id = res.body["id"].as_str().unwrap();
        let (res, bytes) = download(&app, &t.care_manager, &format!("/api/v1/attachments/{id}/content"), &[]).await;
        assert_eq!((res.status, bytes), (200, pdf));
        assert_eq!(res.header("content-type").as_deref(), Some("application/pdf"));
    } else {
        panic!("case not opened: {}", case.text);
    }
}

/// Marks a file entered in error.
pub async fn mark_in_error(
    app: &TestApp,
    who: &Person,
    id: &str,
    reason: &str,
    headers: &[(&str, &str)],
) -> TestResponse {
    let body = serde_json::to_vec(&json!({ "reason": reason })).unwrap();
    let path = format!("/api/v1/attachments/{id}/entered-in-error");
    send_raw(app, "POST", &path, &who.token, Some("application/json"), body, headers).await.0
}

async fn entered_in_error_hides_a_file(app: TestApp) {
    let t = team(&app, "14131").await;
    let note_id = visit_note(&app, &t.nurse, &t.patient_id, "褥瘡の処置").await;
    let path = format!("/api/v1/notes/{note_id}/attachments");
    let wrong = upload(&app, &t.nurse, &path, "別の方の写真.jpg", &phone_photo(32, 32, false), &[]).await.expect(201);
    let wrong_id = wrong.body["id"].as_str().unwrap().to_string();
    let kept = upload(&app, &t.nurse, &path, "創部.jpg", &jpeg_like(3_000), &[]).await.expect(201);
    let kept_id = kept.body["id"].as_str().unwrap().to_string();
    let objects = stored_objects(&app).await;
    // The note's read shows its files, with thumbnail URLs; the timeline shows them added.
    let read = app.get(&format!("/api/v1/notes/{note_id}"), &t.care_manager.token).await.expect(200);
    let files = read.body["attachments"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["thumbnail_url"], json!(format!("/api/v1/attachments/{wrong_id}/thumbnail")));
    let timeline = format!("/api/v1/patients/{}/timeline", t.patient_id);
    let added = |page: &TestResponse| -> Vec<String> {
        page.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["type"] == json!("attachment_added"))
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    let page = app.get(&timeline, &t.care_manager.token).await.expect(200);
    assert_eq!(added(&page), [kept_id.clone(), wrong_id.clone()]);
    let metrics = app.call("GET", "/metrics", None, None, &[]).await.expect(200);
    assert!(metrics.text.contains("renkei_attachments_stored{content_type=\"image/jpeg\"} 2"), "{}", metrics.text);

    // Another member of the team (not the uploader, not the lead): 403; an outsider: the 404 of
    // a file that does not exist.
    let pharmacy = app.organization(&t.admin, "pharmacy", "川崎薬局", Some("14131")).await;
    let pharmacist = app.person(&t.admin, &pharmacy, "pharmacist", "member").await;
    app.post(
        &format!("/api/v1/patients/{}/care-team", t.patient_id),
        &t.care_manager.token,
        json!({"user_id": pharmacist.id, "role": "pharmacist"}),
    )
    .await
    .expect(201);
    mark_in_error(&app, &pharmacist, &wrong_id, "誤り", &[]).await.expect(403);
    let stranger = outsider(&app, &t).await;
    let theirs = mark_in_error(&app, &stranger, &wrong_id, "誤り", &[]).await.expect(404);
    let nothing = mark_in_error(&app, &stranger, &uuid::Uuid::now_v7().to_string(), "誤り", &[]).await.expect(404);
    assert_eq!(theirs.text, nothing.text);
    // A reason is required.
    let res = mark_in_error(&app, &t.nurse, &wrong_id, "", &[]).await.expect(422);
    assert_eq!(res.body["errors"][0]["field"], json!("reason"));

    // The uploader marks it, with a reason; a retry with the same key replays; without one, 409.
    let key = [("idempotency-key", "mark-wrong-photo")];
    let reason = "別の利用者の写真を誤って添付したため";
    let marked = mark_in_error(&app, &t.nurse, &wrong_id, reason, &key).await.expect(201);
    assert_eq!(marked.body["reason"], json!(reason));
    assert_eq!(marked.body["marked_by"], json!(t.nurse.id));
    assert_eq!(marked.body["attachment_id"], json!(wrong_id));
    let again = mark_in_error(&app, &t.nurse, &wrong_id, reason, &key).await.expect(201);
    assert_eq!(again.text, marked.text);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    mark_in_error(&app, &t.nurse, &wrong_id, reason, &[]).await.expect(409);

    // Gone from normal views: the note's list, its metadata, content and thumbnail answer like
    // a file that does not exist.
    let list = app.get(&path, &t.care_manager.token).await.expect(200);
    let ids: Vec<&str> = list.body["items"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [kept_id.as_str()]);
    let read = app.get(&format!("/api/v1/notes/{note_id}"), &t.care_manager.token).await.expect(200);
    assert_eq!(read.body["attachments"].as_array().unwrap().len(), 1);
    let page = app.get(&timeline, &t.care_manager.token).await.expect(200);
    assert_eq!(added(&page), [kept_id.as_str()]);
    let metrics = app.call("GET", "/metrics", None, None, &[]).await.expect(200);
    assert!(metrics.text.contains("renkei_attachments_entered_in_error 1"), "{}", metrics.text);
    let missing = uuid::Uuid::now_v7();
    for what in ["", "/content", "/thumbnail"] {
        let (gone, _) = download(&app, &t.care_manager, &format!("/api/v1/attachments/{wrong_id}{what}"), &[]).await;
        let (ghost, _) = download(&app, &t.care_manager, &format!("/api/v1/attachments/{missing}{what}"), &[]).await;
        assert_eq!((gone.status, &gone.text), (404, &ghost.text), "{what}");
    }
    // Never deleted: the object and the row stay.
    assert_eq!(stored_objects(&app).await, objects);

    // The team's lead may mark any file of the patient's.
    mark_in_error(&app, &t.care_manager, &kept_id, "重複", &[]).await.expect(201);
    let list = app.get(&path, &t.nurse.token).await.expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 0);

    // In the audit trail: the marking and the refusal.
    let log = app
        .get(&format!("/api/v1/patients/{}/access-log?limit=200", t.patient_id), &t.care_manager.token)
        .await
        .expect(200);
    let updates: Vec<&Value> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource_type"] == json!("attachment") && e["action"] == json!("U"))
        .collect();
    assert!(updates.len() >= 3, "two markings and a refusal audited: {}", log.text);
}

crate::both_stores!(
    photo_on_a_visit_note,
    only_accepted_types_and_sizes,
    retries_amendments_and_cases,
    photos_lose_their_gps,
    entered_in_error_hides_a_file
);
crate::both_backends!(by_backend: limits_are_configurable);

/// EXIF (little-endian TIFF) with an orientation, a camera make and a GPS position — what a
/// phone writes into a photo taken at the patient's home.
pub fn gps_exif(orientation: u16) -> Vec<u8> {
    let mut t = b"II\x2A\x00\x08\x00\x00\x00".to_vec();
    // IFD0 at 8: three entries.
    t.extend_from_slice(&3u16.to_le_bytes());
    t.extend_from_slice(&[0x0F, 0x01, 2, 0, 6, 0, 0, 0, 0x32, 0, 0, 0]); // Make, ASCII[6] at 50
    t.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0]); // Orientation, SHORT
    t.extend_from_slice(&orientation.to_le_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&[0x25, 0x88, 4, 0, 1, 0, 0, 0, 0x38, 0, 0, 0]); // GPS IFD at 56
    t.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(t.len(), 50);
    t.extend_from_slice(b"Phone\0");
    // GPS IFD at 56: latitude ref and latitude (35° 31' 48" N, 川崎区).
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&[0x01, 0x00, 2, 0, 2, 0, 0, 0, b'N', 0, 0, 0]);
    t.extend_from_slice(&[0x02, 0x00, 5, 0, 3, 0, 0, 0, 0x56, 0, 0, 0]); // RATIONAL[3] at 86
    t.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(t.len(), 86);
    for (n, d) in [(35u32, 1u32), (31, 1), (48, 1)] {
        t.extend_from_slice(&n.to_le_bytes());
        t.extend_from_slice(&d.to_le_bytes());
    }
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend(t);
    exif
}

/// A real phone-like JPEG photo of `w`×`h` pixels, with GPS EXIF when asked.
pub fn phone_photo(w: u32, h: u32, with_gps: bool) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, 128]));
    let mut jpeg = Vec::new();
    img.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)).unwrap();
    if !with_gps {
        return jpeg;
    }
    let mut parsed = img_parts::jpeg::Jpeg::from_bytes(jpeg.into()).unwrap();
    use img_parts::ImageEXIF;
    // img-parts takes the EXIF without its `Exif\0\0` prefix.
    parsed.set_exif(Some(gps_exif(6)[6..].to_vec().into()));
    let mut out = Vec::new();
    parsed.encoder().write_to(&mut out).unwrap();
    out
}

/// Whether a stored JPEG carries any GPS information (an EXIF GPS IFD pointer, or XMP).
pub fn carries_gps(jpeg: &[u8]) -> bool {
    use img_parts::ImageEXIF;
    let parsed = img_parts::jpeg::Jpeg::from_bytes(jpeg.to_vec().into()).unwrap();
    let exif_gps = parsed.exif().is_some_and(|e| e.windows(2).any(|w| w == [0x25, 0x88] || w == [0x88, 0x25]));
    let xmp = parsed.segments().iter().any(|s| s.contents().starts_with(b"http://ns.adobe.com/xap/1.0/"));
    exif_gps || xmp
}

async fn photos_lose_their_gps(app: TestApp) {
    let t = team(&app, "14131").await;
    let note_id = visit_note(&app, &t.nurse, &t.patient_id, "右踵部の発赤").await;
    let path = format!("/api/v1/notes/{note_id}/attachments");
    let original = phone_photo(64, 48, true);
    assert!(carries_gps(&original), "the test photo carries GPS to begin with");
    let res = upload(&app, &t.nurse, &path, "IMG_0001.JPG", &original, &[]).await.expect(201);
    let id = res.body["id"].as_str().unwrap();
    let (got, stored) = download(&app, &t.care_manager, &format!("/api/v1/attachments/{id}/content"), &[]).await;
    assert_eq!(got.status, 200);
    assert!(!carries_gps(&stored), "no GPS in what is served");
    // The reported size and hash are those of the stored bytes.
    assert_eq!(res.body["byte_size"], json!(stored.len()));
    assert_eq!(res.body["sha256"], json!(hex::encode(Sha256::digest(&stored))));
    // … and in the object store (a folder or a bucket).
    let objects: Vec<String> = stored_keys(&app).await.into_iter().filter(|k| k.starts_with("attachments/")).collect();
    assert_eq!(objects.len(), 1);
    assert!(!carries_gps(&stored_bytes(&app, &objects[0]).await));
    // The picture is not re-encoded: the same pixels; the orientation is kept for viewers.
    let before = image::load_from_memory(&original).unwrap().to_rgb8();
    let after = image::load_from_memory(&stored).unwrap().to_rgb8();
    assert_eq!(before, after, "pixels unchanged");
    use img_parts::ImageEXIF;
    let exif = img_parts::jpeg::Jpeg::from_bytes(stored.clone().into()).unwrap().exif().unwrap();
    assert_eq!(renkei::attachments::photos::exif_orientation(&exif), Some(6));
    // A thumbnail for lists, turned upright (orientation 6: a quarter turn, so 48×64 becomes
    // portrait 240×320).
    let thumb_url = res.body["thumbnail_url"].as_str().unwrap().to_string();
    let (thumb, bytes) = download(&app, &t.care_manager, &thumb_url, &[]).await;
    assert_eq!(thumb.status, 200);
    assert_eq!(thumb.header("content-type").as_deref(), Some("image/jpeg"));
    let small = image::load_from_memory(&bytes).unwrap();
    assert_eq!((small.width(), small.height()), (240, 320));
    assert!(!carries_gps(&bytes));

    // A PNG with EXIF and XMP in its chunks loses them too; a PDF has no thumbnail.
    let img = image::RgbImage::from_pixel(10, 10, image::Rgb([200, 10, 10]));
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let mut parsed = img_parts::png::Png::from_bytes(png.into()).unwrap();
    parsed.set_exif(Some(gps_exif(1)[6..].to_vec().into()));
    let mut png = Vec::new();
    parsed.encoder().write_to(&mut png).unwrap();
    let res = upload(&app, &t.nurse, &path, "screen.png", &png, &[]).await.expect(201);
    let (_, stored) =
        download(&app, &t.nurse, &format!("/api/v1/attachments/{}/content", res.body["id"].as_str().unwrap()), &[])
            .await;
    let parsed = img_parts::png::Png::from_bytes(stored.into()).unwrap();
    assert!(parsed.exif().is_none());
    assert!(res.body["thumbnail_url"].is_string());
    let res = upload(&app, &t.nurse, &path, "紹介状.pdf", &pdf_like(), &[]).await.expect(201);
    assert!(res.body["thumbnail_url"].is_null());
    let (none, _) =
        download(&app, &t.nurse, &format!("/api/v1/attachments/{}/thumbnail", res.body["id"].as_str().unwrap()), &[])
            .await;
    assert_eq!(none.status, 404);
    // Something that only starts like a JPEG: 422, nothing stored.
    let before = stored_objects(&app).await;
    let res = upload(&app, &t.nurse, &path, "broken.jpg", b"\xFF\xD8\xFF\xE1\xFF\xFF", &[]).await.expect(422);
    assert_eq!(res.body["errors"][0]["code"], json!("unreadable"));
    assert_eq!(stored_objects(&app).await, before);
}

async fn the_sweep_removes_orphans_only(app: TestApp) {
    let t = team(&app, "14131").await;
    let note_id = visit_note(&app, &t.nurse, &t.patient_id, "訪問").await;
    let path = format!("/api/v1/notes/{note_id}/attachments");
    upload(&app, &t.nurse, &path, "kept.jpg", &phone_photo(32, 32, false), &[]).await.expect(201);
    let objects = app.data_dir.path().join("objects");
    let kept = files_under(&objects);
    assert_eq!(kept.len(), 2, "the photo and its thumbnail");
    // What a server stopped between storing an object and recording it leaves behind; and an
    // upload in flight right now.
    let orphan = objects.join("attachments").join(uuid::Uuid::new_v4().to_string());
    std::fs::write(&orphan, b"interrupted").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
    std::fs::File::options().write(true).open(&orphan).unwrap().set_modified(old).unwrap();
    for f in &kept {
        std::fs::File::options().write(true).open(f).unwrap().set_modified(old).unwrap();
    }
    let in_flight = objects.join("attachments").join(uuid::Uuid::new_v4().to_string());
    std::fs::write(&in_flight, b"arriving").unwrap();
    let store = renkei::attachments::store::Store::new(&app.config).unwrap();
    let removed = renkei::attachments::sweep(&app.db, &store).await.unwrap();
    assert_eq!(removed, 1);
    assert!(!orphan.exists() && in_flight.exists());
    assert!(kept.iter().all(|f| f.exists()));
}

crate::both_backends!(the_sweep_removes_orphans_only);

/// The sweep through the store's own listing and times, whichever the store: an orphan written
/// before the cut-off goes, recorded objects and a later orphan stay.
async fn the_sweep_finds_orphans_in_any_store(app: TestApp) {
    let t = team(&app, "14131").await;
    let note_id = visit_note(&app, &t.nurse, &t.patient_id, "訪問").await;
    let path = format!("/api/v1/notes/{note_id}/attachments");
    upload(&app, &t.nurse, &path, "kept.jpg", &phone_photo(32, 32, false), &[]).await.expect(201);
    let kept = stored_keys(&app).await;
    assert_eq!(kept.len(), 2, "the photo and its thumbnail");
    let store = store_of(&app);
    let orphan = renkei::attachments::store::Store::new_key(renkei::attachments::store::CONTENT_PREFIX);
    store.put_bytes(&orphan, b"interrupted".to_vec()).await.unwrap();
    // Object stores keep modification times to the second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let cut_off = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let in_flight = renkei::attachments::store::Store::new_key(renkei::attachments::store::THUMBNAIL_PREFIX);
    store.put_bytes(&in_flight, b"arriving".to_vec()).await.unwrap();
    let removed = renkei::attachments::sweep_before(&app.db, &store, cut_off).await.unwrap();
    assert_eq!(removed, 1);
    let left = stored_keys(&app).await;
    assert!(!left.contains(&orphan) && left.contains(&in_flight));
    assert!(kept.iter().all(|k| left.contains(k)));
}

crate::both_stores!(the_sweep_finds_orphans_in_any_store);
