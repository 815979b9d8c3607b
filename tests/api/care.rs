//! Medications, allergies and the emergency card, in the words of the people who use them: a
//! pharmacist reconciles six drugs after discharge, a nurse records a penicillin allergy, the
//! physician records the resuscitation wishes, an emergency physician breaks the glass at night
//! and gets the card in one request; nothing can be deleted.

use serde_json::{json, Value};

use crate::helpers::{Person, TestApp, TestResponse};
use crate::patients::team;

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

fn today_jst() -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive()
}

async fn put(app: &TestApp, path: &str, who: &Person, body: Value, if_match: Option<&str>) -> TestResponse {
    let headers: Vec<(&str, &str)> = if_match.map(|v| vec![("if-match", v)]).unwrap_or_default();
    app.call("PUT", path, Some(&who.token), Some(&body), &headers).await
}

/// The one field error of a 422, with its Japanese detail.
fn field_error(res: &TestResponse) -> (String, String) {
    assert_eq!(res.status, 422, "{}", res.text);
    let e = &res.body["errors"][0];
    (e["field"].as_str().unwrap().to_string(), e["detail"].as_str().unwrap_or_default().to_string())
}

/// The six drugs of a discharge summary (退院時薬剤情報), as the pharmacy reports them.
pub fn discharge_drugs() -> Vec<Value> {
    let drug = |name: &str, dose: &str, timing: &str| {
        json!({"drug_name": name, "dose": dose, "timing": timing, "route": "内服", "source": "pharmacy",
               "prescriber": "川崎 太郎(川崎在宅クリニック)", "pharmacy": "川崎薬局", "started_on": "2026-11-20"})
    };
    let mut drugs = vec![
        drug("アムロジピン錠5mg", "1錠", "1日1回 朝食後"),
        drug("フロセミド錠20mg", "1錠", "1日1回 朝食後"),
        drug("ランソプラゾールOD錠15mg", "1錠", "1日1回 夕食後"),
        drug("酸化マグネシウム錠330mg", "2錠", "1日3回 毎食後"),
        drug("ワルファリンK錠1mg", "2錠", "1日1回 夕食後"),
        drug("ゾルピデム酒石酸塩錠5mg", "1錠", "就寝前 不眠時"),
    ];
    // Codes as typed from a label, full-width digits included.
    drugs[0]["yj_code"] = json!("２１７１０２２Ｆ２０８０");
    drugs[1]["hot_code"] = json!("1019842010101");
    drugs
}

async fn the_team_keeps_medications_allergies_and_the_wishes(app: TestApp) {
    let t = team(&app, "14133").await;
    let base = format!("/api/v1/patients/{}", t.patient_id);
    let pharmacy = app.organization(&t.admin, "pharmacy", "中原薬局", Some("14133")).await;
    let pharmacist = app.person(&t.admin, &pharmacy, "pharmacist", "member").await;
    let clinic = app.organization(&t.admin, "clinic", "中原在宅クリニック", Some("14133")).await;
    let physician = app.person(&t.admin, &clinic, "physician", "member").await;
    for (who, role) in [(&pharmacist, "pharmacist"), (&physician, "primary_physician")] {
        app.post(&format!("{base}/care-team"), &t.care_manager.token, json!({"user_id": who.id, "role": role}))
            .await
            .expect(201);
    }

    // After discharge the pharmacist enters the six drugs of the discharge summary.
    let mut bad = discharge_drugs()[0].clone();
    bad["yj_code"] = json!("2171022-F208");
    let (field, detail) = field_error(&app.post(&format!("{base}/medications"), &pharmacist.token, bad).await);
    assert_eq!(field, "yj_code");
    assert!(detail.contains("YJコード"), "{detail}");
    let mut bad = discharge_drugs()[1].clone();
    bad["hot_code"] = json!("12345");
    assert_eq!(field_error(&app.post(&format!("{base}/medications"), &pharmacist.token, bad).await).0, "hot_code");
    let mut bad = discharge_drugs()[2].clone();
    bad["stopped_on"] = json!("2026-11-01");
    assert_eq!(field_error(&app.post(&format!("{base}/medications"), &pharmacist.token, bad).await).0, "stopped_on");
    let mut ids = Vec::new();
    for (i, drug) in discharge_drugs().into_iter().enumerate() {
        let key = format!("discharge-drug-{i}");
        let path = format!("{base}/medications");
        let res = app.call("POST", &path, Some(&pharmacist.token), Some(&drug), &[("idempotency-key", &key)]).await;
        let res = res.expect(201);
        assert_eq!(res.header("etag").as_deref(), Some("\"1\""));
        assert_eq!(res.body["drug_name"], drug["drug_name"], "Japanese text round-trips exactly");
        // A retry after losing signal creates nothing new.
        let again = app.call("POST", &path, Some(&pharmacist.token), Some(&drug), &[("idempotency-key", &key)]).await;
        assert_eq!((again.status, id_of(&again.body)), (201, id_of(&res.body)));
        ids.push(id_of(&res.body));
    }
    let first = app.get(&format!("/api/v1/medications/{}", ids[0]), &t.nurse.token).await.expect(200);
    assert_eq!(first.body["yj_code"], json!("2171022F2080"), "stored in ASCII");

    // Only a pharmacist marks the list as reconciled.
    let checked_on = today_jst().to_string();
    let reconcile = json!({"checked_on": checked_on, "comment": "退院時処方と持参薬を照合"});
    app.post(&format!("{base}/medication-reconciliations"), &t.nurse.token, reconcile.clone()).await.expect(403);
    let future = json!({"checked_on": (today_jst() + chrono::Duration::days(2)).to_string()});
    let (field, _) =
        field_error(&app.post(&format!("{base}/medication-reconciliations"), &pharmacist.token, future).await);
    assert_eq!(field, "checked_on");
    let r = app.post(&format!("{base}/medication-reconciliations"), &pharmacist.token, reconcile).await.expect(201);
    assert_eq!(r.body["medication_count"], json!(6));
    let list = app.get(&format!("{base}/medications"), &t.nurse.token).await.expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 6);
    assert_eq!(list.body["last_reconciliation"]["checked_on"], json!(checked_on));
    assert_eq!(list.body["last_reconciliation"]["checked_by"], json!(pharmacist.id));

    // The physician lowers the warfarin dose: a new version of the one read (If-Match).
    let warfarin = format!("/api/v1/medications/{}", ids[4]);
    let mut lower = discharge_drugs()[4].clone();
    lower["dose"] = json!("1.5錠");
    lower["source"] = json!("physician");
    lower["reason"] = json!("PT-INR 3.2 のため減量");
    put(&app, &warfarin, &physician, lower.clone(), None).await.expect(428);
    let changed = put(&app, &warfarin, &physician, lower.clone(), Some("\"1\"")).await.expect(200);
    assert_eq!((changed.body["version"].clone(), changed.header("etag")), (json!(2), Some("\"2\"".to_string())));
    put(&app, &warfarin, &physician, lower, Some("\"1\"")).await.expect(412);

    // The sleeping pill was never prescribed: entered in error, with a reason; never deleted.
    let zolpidem = format!("/api/v1/medications/{}", ids[5]);
    let (field, _) = field_error(
        &app.post(&format!("{zolpidem}/entered-in-error"), &pharmacist.token, json!({"reason": " "})).await,
    );
    assert_eq!(field, "reason");
    app.post(&format!("{zolpidem}/entered-in-error"), &pharmacist.token, json!({"reason": "別の患者の薬を入力"}))
        .await
        .expect(200);
    app.post(&format!("{zolpidem}/entered-in-error"), &pharmacist.token, json!({"reason": "二度目"})).await.expect(409);
    let gone = app.get(&zolpidem, &t.nurse.token).await.expect(200);
    assert_eq!(
        (gone.body["status"].clone(), gone.body["reason"].clone()),
        (json!("entered_in_error"), json!("別の患者の薬を入力"))
    );
    let versions = app.get(&format!("{zolpidem}/versions"), &t.nurse.token).await.expect(200);
    assert_eq!(versions.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(versions.body["items"][0]["status"], json!("active"));
    let list = app.get(&format!("{base}/medications"), &t.nurse.token).await.expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 5);

    // The nurse records a penicillin allergy; FHIR's verification vocabulary only.
    let penicillin = json!({"substance": "ペニシリン系抗菌薬", "category": "medication", "reaction": "全身の発疹・呼吸苦",
                            "severity": "severe", "verification_status": "confirmed"});
    let mut bad = penicillin.clone();
    bad["verification_status"] = json!("entered_in_error");
    assert_eq!(
        field_error(&app.post(&format!("{base}/allergies"), &t.nurse.token, bad).await).0,
        "verification_status"
    );
    let mut bad = penicillin.clone();
    bad["category"] = json!("drug");
    assert_eq!(field_error(&app.post(&format!("{base}/allergies"), &t.nurse.token, bad).await).0, "category");
    let allergy = app.post(&format!("{base}/allergies"), &t.nurse.token, penicillin).await.expect(201);
    let shellfish = app
        .post(&format!("{base}/allergies"), &t.nurse.token, json!({"substance": "えび", "category": "food"}))
        .await
        .expect(201);
    let refuted = json!({"substance": "えび", "category": "food", "verification_status": "refuted",
                         "reason": "家族に確認、アレルギーなし"});
    put(&app, &format!("/api/v1/allergies/{}", id_of(&shellfish.body)), &t.nurse, refuted, Some("\"1\""))
        .await
        .expect(200);

    // The wishes: anyone on the team writes the card, the DNAR decision is the physician's.
    let card_path = format!("{base}/emergency-card");
    let empty = app.get(&card_path, &t.care_manager.token).await.expect(200);
    assert_eq!((empty.body["card"].clone(), empty.header("etag")), (Value::Null, Some("\"0\"".to_string())));
    let mut card = json!({
        "place_of_care": "最期まで自宅で過ごしたい",
        "resuscitation_wishes": "心肺蘇生や人工呼吸器は望まない。苦痛をとる治療は希望。",
        "key_person": {"name": "川崎 一郎", "relationship": "長男", "phone": "090-0000-0000"},
        "contacts": [{"name": "川崎 一郎", "relationship": "長男", "phone": "090-0000-0000", "note": "平日日中は勤務先"},
                     {"name": "川崎 花子", "relationship": "長女", "phone": "080-1111-2222"}],
        "physician_24h_phone": "044-999-0000",
        "diagnoses": ["慢性心不全", "心房細動", "2型糖尿病"],
        "note": "鍵はポストの中 <script>alert(1)</script>",
        "dnar": {"decision": "dnar", "decided_on": "2026-11-28"},
    });
    put(&app, &card_path, &t.care_manager, card.clone(), Some("\"0\"")).await.expect(403);
    card.as_object_mut().unwrap().remove("dnar");
    let mut bad = card.clone();
    bad["contacts"][1]["phone"] = json!("夜は不可");
    assert_eq!(field_error(&put(&app, &card_path, &t.care_manager, bad, Some("\"0\"")).await).0, "contacts[1].phone");
    put(&app, &card_path, &t.care_manager, card.clone(), None).await.expect(428);
    let first = put(&app, &card_path, &t.care_manager, card.clone(), Some("\"0\"")).await.expect(201);
    assert_eq!(first.header("etag").as_deref(), Some("\"1\""));
    put(&app, &card_path, &physician, card.clone(), None).await.expect(428);
    card["dnar"] = json!({"decision": "dnar", "decided_on": "2026-11-28"});
    let second = put(&app, &card_path, &physician, card.clone(), Some("\"1\"")).await.expect(200);
    assert_eq!(second.body["card"]["dnar"]["recorded_by"], json!(physician.id));
    // The care manager corrects a phone number; the physician's decision stays as recorded.
    card["physician_24h_phone"] = json!("044-999-0001");
    put(&app, &card_path, &t.care_manager, card.clone(), Some("\"2\"")).await.expect(200);
    card["dnar"] = Value::Null;
    put(&app, &card_path, &t.care_manager, card, Some("\"3\"")).await.expect(403);

    // At night an emergency physician, not on the team, breaks the glass and gets it all at once.
    let er = app.organization(&t.admin, "hospital", "中原救急病院", Some("14133")).await;
    let er_physician = app.person(&t.admin, &er, "physician", "member").await;
    app.get(&card_path, &er_physician.token).await.expect(404);
    app.post(
        &format!("{base}/emergency-access"),
        &er_physician.token,
        json!({"reason": "夜間救急搬送、意識レベル低下。急変時の意向と服薬の確認"}),
    )
    .await
    .expect(201);
    let sheet = app.get(&card_path, &er_physician.token).await.expect(200);
    let b = &sheet.body;
    assert_eq!(b["version"], json!(3));
    assert_eq!(b["card"]["dnar"]["decision"], json!("dnar"));
    assert_eq!(b["card"]["dnar"]["decided_on"], json!("2026-11-28"));
    assert_eq!(b["card"]["physician_24h_phone"], json!("044-999-0001"));
    assert_eq!(b["card"]["contacts"][0]["name"], json!("川崎 一郎"));
    assert_eq!(b["card"]["diagnoses"], json!(["慢性心不全", "心房細動", "2型糖尿病"]));
    let drugs: Vec<&str> =
        b["medications"].as_array().unwrap().iter().map(|m| m["drug_name"].as_str().unwrap()).collect();
    assert_eq!(drugs.len(), 5, "{drugs:?}");
    assert!(!drugs.iter().any(|d| d.starts_with("ゾルピデム")));
    assert_eq!(b["medications"][4]["dose"], json!("1.5錠"));
    assert_eq!(b["medications_checked"]["checked_by"], json!(pharmacist.id));
    let allergies: Vec<&str> =
        b["allergies"].as_array().unwrap().iter().map(|a| a["substance"].as_str().unwrap()).collect();
    assert_eq!(allergies, ["ペニシリン系抗菌薬"], "the refuted one is left out");
    // The print page: Japanese, escaped, nothing fetched from outside.
    let page = app.call("GET", &format!("{card_path}/print"), Some(&er_physician.token), None, &[]).await.expect(200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    for text in ["急変時情報", "ペニシリン系抗菌薬", "DNAR", "044-999-0001", "アムロジピン錠5mg", "鍵はポストの中"]
    {
        assert!(page.text.contains(text), "{text} missing from the page");
    }
    assert!(page.text.contains("&#60;script&#62;") && !page.text.contains("<script>"), "escaped");
    assert!(!page.text.contains("http://") && !page.text.contains("https://"), "no external assets");
    // Under break-glass the record is read, never written.
    app.post(
        &format!("{base}/allergies"),
        &er_physician.token,
        json!({"substance": "ヨード", "category": "medication"}),
    )
    .await
    .expect(403);
    // The lead sees who read the card.
    let log = app.get(&format!("{base}/access-log"), &t.care_manager.token).await.expect(200);
    assert!(log.body["items"].as_array().unwrap().iter().any(|e| e["actor_id"] == json!(er_physician.id)
        && e["resource_type"] == json!("emergency_card")
        && e["outcome"] == json!("success")));

    // The timeline shows the changes.
    let timeline = app.get(&format!("{base}/timeline?limit=100"), &t.nurse.token).await.expect(200);
    let types: Vec<&str> =
        timeline.body["items"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(types.iter().filter(|t| **t == "medication_changed").count(), 8, "6 added, 1 changed, 1 in error");
    assert_eq!(types.iter().filter(|t| **t == "medication_reconciled").count(), 1);
    assert_eq!(types.iter().filter(|t| **t == "allergy_changed").count(), 3);

    // Card versions stay readable.
    let versions = app.get(&format!("{card_path}/versions"), &t.nurse.token).await.expect(200);
    assert_eq!(versions.body["items"].as_array().unwrap().len(), 3);
    assert_eq!(versions.body["items"][0]["dnar"], Value::Null);

    // Nothing can be deleted, not even with database access.
    use diesel::connection::SimpleConnection;
    let mut conn = app.db.get().unwrap();
    for sql in [
        "DELETE FROM medication_versions",
        "UPDATE medication_versions SET dose = '10錠'",
        "DELETE FROM medications",
        "DELETE FROM medication_reconciliations",
        "DELETE FROM allergy_versions",
        "UPDATE allergy_versions SET substance = 'x'",
        "DELETE FROM allergies",
        "DELETE FROM emergency_card_versions",
        "UPDATE emergency_card_versions SET dnar_decision = NULL",
        "DELETE FROM emergency_cards",
    ] {
        assert!(conn.batch_execute(sql).is_err(), "{sql} refused by the database");
    }
    let _ = allergy;
}

/// The care records in the FHIR export: MedicationStatement, AllergyIntolerance, the
/// reconciliation as Provenance and the card as a Composition, validated independently.
async fn care_records_in_the_fhir_export(app: TestApp) {
    let t = team(&app, "14132").await;
    let base = format!("/api/v1/patients/{}", t.patient_id);
    let pharmacy = app.organization(&t.admin, "pharmacy", "幸薬局", Some("14132")).await;
    let pharmacist = app.person(&t.admin, &pharmacy, "pharmacist", "member").await;
    let clinic = app.organization(&t.admin, "clinic", "幸在宅クリニック", Some("14132")).await;
    let physician = app.person(&t.admin, &clinic, "physician", "member").await;
    for (who, role) in [(&pharmacist, "pharmacist"), (&physician, "primary_physician")] {
        app.post(&format!("{base}/care-team"), &t.care_manager.token, json!({"user_id": who.id, "role": role}))
            .await
            .expect(201);
    }
    let mut ids = Vec::new();
    for drug in discharge_drugs() {
        ids.push(id_of(&app.post(&format!("{base}/medications"), &pharmacist.token, drug).await.expect(201).body));
    }
    let hot7 =
        json!({"drug_name": "家族が持参した湿布", "hot_code": "1234567", "source": "family", "status": "on_hold"});
    app.post(&format!("{base}/medications"), &t.nurse.token, hot7).await.expect(201);
    app.post(&format!("/api/v1/medications/{}/entered-in-error", ids[5]), &pharmacist.token, json!({"reason": "重複"}))
        .await
        .expect(200);
    app.post(
        &format!("{base}/medication-reconciliations"),
        &pharmacist.token,
        json!({"checked_on": today_jst().to_string()}),
    )
    .await
    .expect(201);
    let penicillin = json!({"substance": "ペニシリン", "category": "medication", "reaction": "発疹", "severity": "moderate",
                            "verification_status": "confirmed"});
    app.post(&format!("{base}/allergies"), &t.nurse.token, penicillin).await.expect(201);
    let wrong = app
        .post(&format!("{base}/allergies"), &t.nurse.token, json!({"substance": "そば", "category": "food"}))
        .await
        .expect(201);
    app.post(
        &format!("/api/v1/allergies/{}/entered-in-error", id_of(&wrong.body)),
        &t.nurse.token,
        json!({"reason": "別の患者"}),
    )
    .await
    .expect(200);
    let card = json!({"place_of_care": "自宅", "resuscitation_wishes": "延命は望まない <b>", "diagnoses": ["慢性心不全"],
                      "dnar": {"decision": "dnar", "decided_on": "2026-11-30"}});
    put(&app, &format!("{base}/emergency-card"), &physician, card, Some("\"0\"")).await.expect(201);

    let res = app.get(&format!("{base}/fhir"), &t.care_manager.token).await.expect(200);
    let bundle = &res.body;
    let of = |kind: &str| -> Vec<Value> {
        bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].clone())
            .filter(|r| r["resourceType"] == json!(kind))
            .collect()
    };
    let statements = of("MedicationStatement");
    assert_eq!(statements.len(), 7, "entered-in-error ones stay, marked");
    let amlodipine = statements.iter().find(|s| s["id"] == json!(ids[0])).unwrap();
    assert_eq!(amlodipine["medicationCodeableConcept"]["coding"][0]["code"], json!("2171022F2080"));
    assert_eq!(amlodipine["medicationCodeableConcept"]["text"], json!("アムロジピン錠5mg"));
    let furosemide = statements.iter().find(|s| s["id"] == json!(ids[1])).unwrap();
    assert_eq!(furosemide["medicationCodeableConcept"]["coding"][0]["code"], json!("101984201"), "HOT13 as its HOT9");
    assert!(statements.iter().any(|s| s["status"] == json!("entered-in-error")));
    assert!(statements.iter().any(|s| s["status"] == json!("on-hold")));
    let provenance = of("Provenance");
    assert!(provenance.iter().any(|p| p["target"].as_array().is_some_and(|t| t.len() == 6)), "{provenance:?}");
    let allergies = of("AllergyIntolerance");
    assert_eq!(allergies.len(), 2);
    assert!(allergies.iter().any(|a| a["verificationStatus"]["coding"][0]["code"] == json!("entered-in-error")
        && a.get("clinicalStatus").is_none()));
    let composition = of("Composition");
    assert_eq!(composition.len(), 1);
    let sections = composition[0]["section"].as_array().unwrap();
    assert!(sections[0]["text"]["div"].as_str().unwrap().contains("&lt;b&gt;"), "narrative escaped");
    let meds = sections.iter().find(|s| s["code"]["coding"][0]["code"] == json!("medications")).unwrap();
    assert_eq!(meds["entry"].as_array().unwrap().len(), 6, "the five active drugs and the one on hold");
    crate::fhir::validate_independently(bundle);
}

crate::both_backends!(the_team_keeps_medications_allergies_and_the_wishes, care_records_in_the_fhir_export);
