//! The FHIR R4 export: one Bundle of the patient's record, checked here for its codes and
//! references and, when available, by an independent validator (`tests/fhir_validate.py`,
//! the `fhir.resources` models).

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::{json, Value};

use renkei::fhir;
use renkei::flags::Flag;
use renkei::vocab::{FlagSeverity, FlagSource, FlagStatus};

use crate::helpers::{say, TestApp};
use crate::patients::team;

fn ago(minutes: i64) -> String {
    (Utc::now() - Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn today_jst() -> String {
    (Utc::now() + Duration::hours(9)).date_naive().to_string()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

fn resources<'a>(bundle: &'a Value, resource_type: &str) -> Vec<&'a Value> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == json!(resource_type))
        .collect()
}

fn one<'a>(bundle: &'a Value, resource_type: &str, id: &str) -> &'a Value {
    resources(bundle, resource_type)
        .into_iter()
        .find(|r| r["id"] == json!(id))
        .unwrap_or_else(|| panic!("no {resource_type} {id}"))
}

fn urn(id: &str) -> Value {
    json!(format!("urn:uuid:{id}"))
}

fn loinc_codes(observation: &Value) -> Vec<String> {
    observation["code"]["coding"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap().to_string()).collect()
}

/// The Python that runs the validator: `RENKEI_FHIR_PYTHON` (CI's venv) or `python3`, if it can
/// import `fhir.resources`.
fn validator_python() -> Option<String> {
    let python = std::env::var("RENKEI_FHIR_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import fhir.resources.R4B"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then_some(python)
}

pub fn validate_independently(bundle: &Value) {
    let Some(python) = validator_python() else {
        assert!(
            std::env::var("RENKEI_REQUIRE_FHIR_VALIDATOR").as_deref() != Ok("1"),
            "RENKEI_REQUIRE_FHIR_VALIDATOR=1 but fhir.resources is not importable (set RENKEI_FHIR_PYTHON)"
        );
        say("SKIPPED: FHIR validation by fhir.resources (python3 cannot import fhir.resources; see .ci/run)");
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fhir_validate.py");
    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the FHIR validator");
    child.stdin.take().unwrap().write_all(bundle.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "FHIR validator refused the bundle:\n{stdout}\n{stderr}");
    say(stdout.trim());
}

async fn fhir_export_validates(app: TestApp) {
    let t = team(&app, "14131").await;
    let base = format!("/api/v1/patients/{}", t.patient_id);

    // Consent, and a pharmacist who left the team.
    let consent = app
        .post(
            &format!("{base}/consents"),
            &t.care_manager.token,
            json!({"scope": "care_team", "obtained_from": "patient", "obtained_on": "2026-11-01"}),
        )
        .await
        .expect(201);
    let pharmacy = app.organization(&t.admin, "pharmacy", "川崎薬局", Some("14131")).await;
    let pharmacist = app.person(&t.admin, &pharmacy, "pharmacist", "member").await;
    let past = app
        .post(
            &format!("{base}/care-team"),
            &t.care_manager.token,
            json!({"user_id": pharmacist.id, "role": "pharmacist"}),
        )
        .await
        .expect(201);
    app.patch(
        &format!("{base}/care-team/{}", id_of(&past.body)),
        &t.care_manager.token,
        json!({"ended_on": today_jst()}),
        None,
    )
    .await
    .expect(200);

    // A note with every vital sign (NEWS2 9: high, so a flag is raised), amended once; a
    // note without vital signs; a manual flag.
    let vitals = json!({"temperature": 38.6, "systolic_bp": 98, "diastolic_bp": 60, "pulse": 118, "respiratory_rate": 24,
                        "spo2": 93, "on_oxygen": false, "consciousness": "A"});
    let note = app
        .post(
            &format!("{base}/notes"),
            &t.nurse.token,
            json!({"kind": "visit", "occurred_at": ago(60), "text": "発熱あり", "vitals": vitals}),
        )
        .await
        .expect(201);
    let note_id = id_of(&note.body);
    let mut amended_vitals = vitals.clone();
    amended_vitals["temperature"] = json!(38.2);
    app.post(
        &format!("/api/v1/notes/{note_id}/amendments"),
        &t.nurse.token,
        json!({"reason": "体温の誤記", "occurred_at": ago(60), "text": "発熱あり(修正)", "vitals": amended_vitals}),
    )
    .await
    .expect(201);
    let plain = app
        .post(
            &format!("{base}/notes"),
            &t.care_manager.token,
            json!({"kind": "visit", "occurred_at": ago(30), "text": "ケアプラン確認"}),
        )
        .await
        .expect(201);
    let manual = app
        .post(&format!("{base}/flags"), &t.nurse.token, json!({"severity": "urgent", "reason": "食事が摂れない"}))
        .await
        .expect(201);

    // A discharge case (its tasks come from the templates).
    let hospital = app.organization(&t.admin, "hospital", "川崎中央病院", Some("14131")).await;
    let msw = app.person(&t.admin, &hospital, "social_worker", "member").await;
    let case = app
        .post(
            "/api/v1/discharge-cases",
            &msw.token,
            json!({"patient_id": t.patient_id, "birth_date": "1938-04-01", "family_name_kana": "カワサキ",
                   "admitted_at": ago(24 * 60), "reason": "誤嚥性肺炎"}),
        )
        .await
        .expect(201);
    let case_id = id_of(&case.body);

    // A photo on the first note, a letter on the case, and a file marked entered in error.
    let photo = crate::attachments::phone_photo(40, 30, true);
    let note_files = format!("/api/v1/notes/{note_id}/attachments");
    let photo = crate::attachments::upload(&app, &t.nurse, &note_files, "創部.jpg", &photo, &[]).await.expect(201);
    let letter = crate::attachments::pdf_like();
    let case_files = format!("/api/v1/discharge-cases/{case_id}/attachments");
    let letter =
        crate::attachments::upload(&app, &msw, &case_files, "診療情報提供書.pdf", &letter, &[]).await.expect(201);
    let wrong = crate::attachments::jpeg_like(900);
    let wrong = crate::attachments::upload(&app, &t.nurse, &note_files, "誤.jpg", &wrong, &[]).await.expect(201);
    crate::attachments::mark_in_error(&app, &t.nurse, &id_of(&wrong.body), "別の方の写真", &[]).await.expect(201);

    // Export.
    let res = app.get(&format!("{base}/fhir"), &t.nurse.token).await.expect(200);
    assert_eq!(res.header("content-type").as_deref(), Some("application/fhir+json"));
    let b = &res.body;
    assert_eq!((b["resourceType"].clone(), b["type"].clone()), (json!("Bundle"), json!("collection")));
    for e in b["entry"].as_array().unwrap() {
        assert_eq!(e["fullUrl"], urn(e["resource"]["id"].as_str().unwrap()));
    }

    // Patient: kanji and kana names told apart by the EN-representation extension.
    let p = one(b, "Patient", &t.patient_id);
    let reps: Vec<(Value, Value)> = p["name"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["extension"][0]["valueCode"].clone(), n["family"].clone()))
        .collect();
    assert_eq!(reps, [(json!("IDE"), json!("川崎")), (json!("SYL"), json!("カワサキ"))]);
    assert_eq!(
        p["name"][0]["extension"][0]["url"],
        json!("http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation")
    );
    assert_eq!((p["gender"].clone(), p["birthDate"].clone()), (json!("female"), json!("1938-04-01")));
    assert_eq!(p["telecom"][0]["value"], json!("044-200-0000"));

    // CareTeam: current and past members with their organisations and periods.
    let teams = resources(b, "CareTeam");
    assert_eq!(teams.len(), 1);
    let ct = teams[0];
    assert_eq!(
        (ct["status"].clone(), ct["category"][0]["coding"][0]["code"].clone()),
        (json!("active"), json!("LA28866-4"))
    );
    let participant = |user: &str| {
        ct["participant"].as_array().unwrap().iter().find(|m| m["member"]["reference"] == urn(user)).unwrap()
    };
    assert_eq!(participant(&t.nurse.id)["onBehalfOf"]["reference"], urn(&t.nurse_station));
    assert_eq!(participant(&t.nurse.id)["role"][0]["coding"][0]["code"], json!("visiting_nurse"));
    assert_eq!(participant(&pharmacist.id)["period"]["end"], json!(today_jst()));
    assert!(participant(&t.nurse.id)["period"].get("end").is_none());
    one(b, "Practitioner", &pharmacist.id);
    one(b, "Organization", &pharmacy);

    // Communications at their current versions; the amendment as a Provenance.
    let c = one(b, "Communication", &note_id);
    assert_eq!(
        (c["status"].clone(), c["payload"][0]["contentString"].clone()),
        (json!("completed"), json!("発熱あり(修正)"))
    );
    assert_eq!((c["sender"]["reference"].clone(), c["meta"]["versionId"].clone()), (urn(&t.nurse.id), json!("2")));
    one(b, "Communication", &id_of(&plain.body));
    let prov = resources(b, "Provenance");
    assert_eq!(prov.len(), 1);
    assert_eq!(prov[0]["target"][0]["reference"], urn(&note_id));
    assert_eq!(prov[0]["reason"][0]["text"], json!("体温の誤記"));

    // Observations of the current version: the vital signs and NEWS2 derived from them.
    let obs = resources(b, "Observation");
    let by_code = |code: &str| {
        obs.iter().copied().find(|o| loinc_codes(o).contains(&code.to_string())).unwrap_or_else(|| panic!("no {code}"))
    };
    assert_eq!(
        by_code("8310-5")["valueQuantity"],
        json!({"value": 38.2, "unit": "Cel", "system": "http://unitsofmeasure.org", "code": "Cel"})
    );
    assert_eq!(by_code("9279-1")["valueQuantity"]["value"], json!(24.0));
    assert_eq!(by_code("8867-4")["category"][0]["coding"][0]["code"], json!("vital-signs"));
    // Every vital sign as its R4 vital-sign profile asks: category vital-signs, the profile's
    // LOINC code first, a UCUM valueQuantity.
    for (code, unit) in [("9279-1", "/min"), ("8867-4", "/min"), ("2708-6", "%"), ("8310-5", "Cel")] {
        let o = by_code(code);
        assert_eq!(
            o["category"][0]["coding"][0]["system"],
            json!("http://terminology.hl7.org/CodeSystem/observation-category")
        );
        assert_eq!(o["category"][0]["coding"][0]["code"], json!("vital-signs"), "{code}");
        assert_eq!(o["code"]["coding"][0]["system"], json!("http://loinc.org"), "{code}");
        assert_eq!(o["code"]["coding"][0]["code"], json!(code));
        assert_eq!(o["valueQuantity"]["system"], json!("http://unitsofmeasure.org"), "{code}");
        assert_eq!(
            (o["valueQuantity"]["unit"].clone(), o["valueQuantity"]["code"].clone()),
            (json!(unit), json!(unit))
        );
        assert_eq!(o["status"], json!("final"));
        assert!(o["subject"]["reference"].is_string() && o["effectiveDateTime"].is_string(), "{code}");
    }
    // SpO2: 2708-6 (required by the oxygen-saturation profile) with 59408-5 (pulse oximetry) beside it.
    let spo2 = by_code("2708-6");
    assert_eq!(loinc_codes(spo2), ["2708-6", "59408-5"]);
    assert_eq!(spo2["valueQuantity"]["value"], json!(93.0));
    let bp = by_code("85354-9");
    let components: Vec<(Value, Value)> = bp["component"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["code"]["coding"][0]["code"].clone(), c["valueQuantity"]["value"].clone()))
        .collect();
    assert_eq!(components, [(json!("8480-6"), json!(98.0)), (json!("8462-4"), json!(60.0))]);
    assert_eq!(bp["component"][0]["valueQuantity"]["code"], json!("mm[Hg]"));
    assert_eq!(bp["category"][0]["coding"][0]["code"], json!("vital-signs"));
    assert!(bp.get("valueQuantity").is_none(), "the panel's values are its components");
    let news2 = by_code("1104051000000101");
    assert_eq!(news2["code"]["coding"][0]["system"], json!("http://snomed.info/sct"));
    assert_eq!(news2["valueInteger"], json!(9));
    assert_eq!(news2["derivedFrom"].as_array().unwrap().len(), 5);
    for r in news2["derivedFrom"].as_array().unwrap() {
        assert!(obs.iter().any(|o| urn(o["id"].as_str().unwrap()) == r["reference"]));
    }

    // Flags: the manual one carries no priority.
    let m = one(b, "Flag", &id_of(&manual.body));
    assert_eq!((m["status"].clone(), m["code"]["text"].clone()), (json!("active"), json!("食事が摂れない")));
    assert_eq!(m["category"][0]["coding"][0]["code"], json!("clinical"));
    assert!(m.get("extension").is_none());
    news2_flag_priority(&t.patient_id, &note_id);

    // The discharge case and its tasks.
    let eoc = one(b, "EpisodeOfCare", &case_id);
    assert_eq!(
        (eoc["status"].clone(), eoc["managingOrganization"]["reference"].clone()),
        (json!("active"), urn(&hospital))
    );
    let tasks = resources(b, "Task");
    assert!(!tasks.is_empty());
    for task in &tasks {
        assert_eq!((task["intent"].clone(), task["basedOn"][0]["reference"].clone()), (json!("order"), urn(&case_id)));
        assert!(!task["status"].as_str().unwrap().contains('_'));
    }
    assert!(tasks.iter().any(|t| t["restriction"]["period"]["end"].is_string()));

    // Consent.
    let co = one(b, "Consent", &id_of(&consent.body));
    assert_eq!(
        (co["status"].clone(), co["scope"]["coding"][0]["code"].clone()),
        (json!("active"), json!("patient-privacy"))
    );
    assert_eq!(
        (co["dateTime"].clone(), co["provision"]["period"]["start"].clone()),
        (json!("2026-11-01"), json!("2026-11-01"))
    );

    // Files: DocumentReferences with size, SHA-1 hash (base64) and the download URL, related to
    // their note or case; none for the file entered in error.
    let docs = resources(b, "DocumentReference");
    assert_eq!(docs.len(), 2, "{docs:?}");
    for (view, related) in [(&photo.body, &note_id), (&letter.body, &case_id)] {
        let d = one(b, "DocumentReference", &id_of(view));
        let a = &d["content"][0]["attachment"];
        let (_, bytes) = crate::attachments::download(&app, &t.nurse, view["content_url"].as_str().unwrap(), &[]).await;
        use base64::Engine;
        use sha1::Digest;
        let sha1 = base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(&bytes));
        assert_eq!((a["size"].clone(), a["hash"].clone()), (json!(bytes.len()), json!(sha1)));
        assert_eq!(a["contentType"], view["content_type"]);
        assert_eq!(a["title"], view["file_name"]);
        assert!(a["url"].as_str().unwrap().ends_with(view["content_url"].as_str().unwrap()));
        assert_eq!(d["context"]["related"][0]["reference"], urn(related));
        assert_eq!(d["subject"]["reference"], urn(&t.patient_id));
    }

    validate_independently(b);

    // Scoped like any read, and audited.
    let outsider_org = app.organization(&t.admin, "visiting_nurse_station", "他の訪問看護", Some("14132")).await;
    let outsider = app.person(&t.admin, &outsider_org, "nurse", "member").await;
    app.get(&format!("{base}/fhir"), &outsider.token).await.expect(404);
    app.get(&format!("/api/v1/patients/{}/fhir", uuid_like()), &t.nurse.token).await.expect(404);
    let log = app.get(&format!("{base}/access-log"), &t.care_manager.token).await.expect(200);
    assert!(log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["resource_type"] == json!("fhir") && e["action"] == json!("R")));
}

/// A flag raised from a NEWS2 score carries the flag-priority extension of its band, and our
/// statuses map onto FHIR's.
fn news2_flag_priority(patient_id: &str, note_id: &str) {
    let at = Utc::now().naive_utc();
    let flag = |status: &str, source: &str| Flag {
        id: uuid_like(),
        patient_id: patient_id.into(),
        severity: FlagSeverity::Emergency,
        status: FlagStatus::parse(status).unwrap(),
        source: FlagSource::parse(source).unwrap(),
        source_note_id: Some(note_id.into()),
        reason: "NEWS2".into(),
        raised_by: None,
        raised_at: at,
        acknowledged_by: None,
        acknowledged_at: None,
        acknowledge_note: None,
        resolved_by: None,
        resolved_at: None,
        resolve_note: None,
        escalation_level: 0,
        next_escalation_at: None,
        version: 1,
        updated_at: at,
    };
    let priority = |total: i32| {
        let f = fhir::flag(&flag("active", "news2"), Some(total));
        assert_eq!(f["extension"][0]["url"], json!("http://hl7.org/fhir/StructureDefinition/flag-priority"));
        f["extension"][0]["valueCodeableConcept"]["coding"][0]["code"].as_str().unwrap().to_string()
    };
    assert_eq!(
        [priority(0), priority(1), priority(4), priority(5), priority(6), priority(7), priority(20)],
        ["PN", "PL", "PL", "PM", "PM", "PH", "PH"]
    );
    assert!(fhir::flag(&flag("active", "manual"), Some(9)).get("extension").is_none());
    let status = |ours: &str| fhir::flag(&flag(ours, "manual"), None)["status"].clone();
    assert_eq!(
        [status("active"), status("acknowledged"), status("resolved"), status("entered_in_error")],
        [json!("active"), json!("active"), json!("inactive"), json!("entered-in-error")]
    );
}

fn uuid_like() -> String {
    "00000000-0000-7000-8000-000000000000".into()
}

crate::both_backends!(fhir_export_validates);
