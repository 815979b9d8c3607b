//! The care records in the export: each medication as a MedicationStatement, each allergy as an
//! AllergyIntolerance, the pharmacist's last reconciliation as a Provenance of the statements it
//! checked, the emergency card as a Composition whose sections point at those resources, and the
//! visit week as Appointments (one per appointment, one proposed Appointment per visit plan).
//! Base R4 (JP Core has no profiles used here); drug codes use JP Core's code systems.

use serde_json::{json, Value};

use super::{coding, date, derived_id, instant, put, reference};
use crate::care::allergies::View as Allergy;
use crate::care::appointments::View as AppointmentView;
use crate::care::card::CardView;
use crate::care::medications::{ReconciliationView, View as Medication};
use crate::care::visits::View as PlanView;
use crate::care::{AllergyVerification, MedicationSource, MedicationStatus};

/// JP Core code systems (http://jpfhir.jp/fhir/Common): the YJ code (OID 1.2.392.100495.20.1.73)
/// and the HOT codes of MEDIS-DC, HOT7 (OID 1.2.392.200119.4.403.2) and HOT9 (OID
/// 1.2.392.200119.4.403.1).
const YJ_SYSTEM: &str = "http://jpfhir.jp/fhir/Common/CodeSystem/JP_MedicationCodeYJ_CS";
const HOT7_SYSTEM: &str = "http://jpfhir.jp/fhir/Common/CodeSystem/JP_MedicationCodeHOT7_CS";
const HOT9_SYSTEM: &str = "http://jpfhir.jp/fhir/Common/CodeSystem/JP_MedicationCodeHOT9_CS";
const STATEMENT_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/medication-statement-category";
const SOURCE_SYSTEM: &str = "urn:renkei-note:medication-source";
const ALLERGY_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
const ALLERGY_VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";
const LOINC: &str = "http://loinc.org";
const SECTION_SYSTEM: &str = "urn:renkei-note:emergency-card-section";

/// FHIR's spelling of a code the API writes with `_`.
fn fhir_code(code: &str) -> String {
    code.replace('_', "-")
}

/// The drug's codings: the YJ code, and the HOT code — as HOT7, or as the HOT9 its first nine
/// digits are (a HOT11 or HOT13 code extends the HOT9 code of the same product).
fn drug_codings(m: &Medication) -> Vec<Value> {
    let mut codings = Vec::new();
    if let Some(yj) = &m.yj_code {
        codings.push(coding(YJ_SYSTEM, yj, &m.drug_name));
    }
    if let Some(hot) = &m.hot_code {
        match hot.len() {
            7 => codings.push(coding(HOT7_SYSTEM, hot, &m.drug_name)),
            n if n >= 9 => codings.push(coding(HOT9_SYSTEM, &hot[..9], &m.drug_name)),
            _ => {}
        }
    }
    codings
}

/// MedicationStatement: the current version of one medication of the list.
pub fn medication_statement(patient_id: &str, m: &Medication) -> Value {
    let mut medication = json!({ "text": m.drug_name });
    let codings = drug_codings(m);
    if !codings.is_empty() {
        medication["coding"] = json!(codings);
    }
    // What the family reported is "patient specified"; what a pharmacy or physician reported is
    // care in the community.
    let (category, display) = if m.source == MedicationSource::Family {
        ("patientspecified", "Patient Specified")
    } else {
        ("community", "Community")
    };
    let mut r = json!({
        "resourceType": "MedicationStatement",
        "id": m.id,
        "meta": { "versionId": m.version.to_string(), "lastUpdated": instant(&m.recorded_at) },
        "status": fhir_code(m.status.as_str()),
        "category": { "coding": [coding(STATEMENT_CATEGORY, category, display),
                                 { "system": SOURCE_SYSTEM, "code": m.source.as_str() }] },
        "medicationCodeableConcept": medication,
        "subject": reference("Patient", patient_id),
        "dateAsserted": instant(&m.recorded_at),
        "informationSource": reference("Practitioner", &m.recorded_by),
    });
    if m.started_on.is_some() || m.stopped_on.is_some() {
        let mut period = json!({});
        put(&mut period, "start", m.started_on.as_ref().map(date));
        put(&mut period, "end", m.stopped_on.as_ref().map(date));
        r["effectivePeriod"] = period;
    }
    let how: Vec<&str> = [m.dose.as_deref(), m.timing.as_deref()].into_iter().flatten().collect();
    if !how.is_empty() || m.route.is_some() {
        let mut dosage = json!({});
        put(&mut dosage, "text", (!how.is_empty()).then(|| how.join(" ")));
        if let Some(timing) = &m.timing {
            dosage["timing"] = json!({ "code": { "text": timing } });
        }
        if let Some(route) = &m.route {
            dosage["route"] = json!({ "text": route });
        }
        r["dosage"] = json!([dosage]);
    }
    let mut notes = Vec::new();
    if let Some(p) = &m.prescriber {
        notes.push(json!({ "text": format!("処方医: {p}") }));
    }
    if let Some(p) = &m.pharmacy {
        notes.push(json!({ "text": format!("調剤薬局: {p}") }));
    }
    if let Some(n) = &m.note {
        notes.push(json!({ "text": n }));
    }
    if !notes.is_empty() {
        r["note"] = json!(notes);
    }
    if let (Some(reason), true) = (&m.reason, m.status != MedicationStatus::Active) {
        r["statusReason"] = json!([{ "text": reason }]);
    }
    r
}

/// Provenance: the pharmacist's reconciliation, of the statements on the list when it was made.
pub fn reconciliation(r: &ReconciliationView, medications: &[Medication]) -> Option<Value> {
    let targets: Vec<Value> = medications
        .iter()
        .filter(|m| m.recorded_at <= r.recorded_at && m.status != MedicationStatus::EnteredInError)
        .map(|m| reference("MedicationStatement", &m.id))
        .collect();
    if targets.is_empty() {
        return None;
    }
    let mut p = json!({
        "resourceType": "Provenance",
        "id": r.id,
        "target": targets,
        "occurredDateTime": date(&r.checked_on),
        "recorded": instant(&r.recorded_at),
        "activity": { "text": "服薬リストの照合(薬剤師) / medication reconciliation by a pharmacist" },
        "agent": [{ "who": reference("Practitioner", &r.checked_by) }],
    });
    put(&mut p, "reason", r.comment.as_ref().map(|c| json!([{ "text": c }])));
    Some(p)
}

/// AllergyIntolerance: the current version of one allergy or contraindication.
pub fn allergy_intolerance(patient_id: &str, a: &Allergy) -> Value {
    let verification = fhir_code(a.verification_status.as_str());
    let mut r = json!({
        "resourceType": "AllergyIntolerance",
        "id": a.id,
        "meta": { "versionId": a.version.to_string(), "lastUpdated": instant(&a.recorded_at) },
        "verificationStatus": { "coding": [coding(ALLERGY_VERIFICATION, &verification, a.verification_status.label(crate::error::Lang::En))] },
        "category": [a.category.as_str()],
        "code": { "text": a.substance },
        "patient": reference("Patient", patient_id),
        "recordedDate": instant(&a.recorded_at),
        "recorder": reference("Practitioner", &a.recorded_by),
    });
    // ait-2: no clinical status on a record entered in error.
    if a.verification_status != AllergyVerification::EnteredInError {
        r["clinicalStatus"] = json!({ "coding": [coding(ALLERGY_CLINICAL, a.clinical_status.as_str(), a.clinical_status.label(crate::error::Lang::En))] });
    }
    if a.reaction.is_some() || a.severity.is_some() {
        let mut reaction = json!({
            "manifestation": [{ "text": a.reaction.clone().unwrap_or_else(|| "記載なし".to_string()) }],
        });
        put(&mut reaction, "severity", a.severity.map(|s| s.as_str()));
        r["reaction"] = json!([reaction]);
    }
    let mut notes = Vec::new();
    if let Some(n) = &a.note {
        notes.push(json!({ "text": n }));
    }
    if let Some(reason) = &a.reason {
        notes.push(json!({ "text": format!("変更・入力誤りの理由: {reason}") }));
    }
    if !notes.is_empty() {
        r["note"] = json!(notes);
    }
    r
}

/// Text in an XHTML narrative.
fn xhtml_text(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn narrative(lines: &[String]) -> Value {
    let body: String = lines.iter().map(|l| format!("<p>{}</p>", xhtml_text(l))).collect();
    json!({ "status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{body}</div>") })
}

fn section(code: &str, title: &str, lines: Vec<String>) -> Value {
    let lines = if lines.is_empty() { vec!["記録なし".to_string()] } else { lines };
    json!({ "title": title, "code": { "coding": [{ "system": SECTION_SYSTEM, "code": code }] }, "text": narrative(&lines) })
}

/// Composition: the emergency card (急変時情報 / ACP), its own part as narrative sections, the
/// drugs taken now and the allergies that stand as references to their resources.
pub fn emergency_card(patient_id: &str, card: &CardView, medications: &[Medication], allergies: &[Allergy]) -> Value {
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "—".to_string());
    let dnar = match &card.dnar {
        Some(d) => format!(
            "{}(医師 {} が {} に決定)",
            d.decision.label(crate::error::Lang::Ja),
            d.recorded_by_name,
            d.decided_on
        ),
        None => "記録なし".to_string(),
    };
    let wishes = section(
        "wishes",
        "本人の意向(人生会議・ACP)",
        vec![
            format!("心肺蘇生(DNAR): {dnar}"),
            format!("蘇生・延命の希望: {}", opt(&card.resuscitation_wishes)),
            format!("希望する療養場所: {}", opt(&card.place_of_care)),
        ],
    );
    let mut contacts = vec![format!("在宅医 24時間連絡先: {}", opt(&card.physician_24h_phone))];
    if let Some(k) = &card.key_person {
        contacts.push(format!(
            "キーパーソン: {} {} {}",
            k.name,
            k.relationship.as_deref().unwrap_or(""),
            k.phone.as_deref().unwrap_or("")
        ));
    }
    contacts.extend(card.contacts.iter().enumerate().map(|(i, c)| {
        format!(
            "{}. {} {} {} {}",
            i + 1,
            c.name,
            c.relationship.as_deref().unwrap_or(""),
            c.phone,
            c.note.as_deref().unwrap_or("")
        )
    }));
    let mut medication_section =
        section("medications", "服用中の薬", medications.iter().map(|m| m.drug_name.clone()).collect());
    if !medications.is_empty() {
        medication_section["entry"] =
            json!(medications.iter().map(|m| reference("MedicationStatement", &m.id)).collect::<Vec<_>>());
    }
    let mut allergy_section =
        section("allergies", "アレルギー・禁忌", allergies.iter().map(|a| a.substance.clone()).collect());
    if !allergies.is_empty() {
        allergy_section["entry"] =
            json!(allergies.iter().map(|a| reference("AllergyIntolerance", &a.id)).collect::<Vec<_>>());
    }
    let mut sections = vec![
        wishes,
        section("contacts", "連絡先", contacts),
        section("diagnoses", "主な診断名", card.diagnoses.clone()),
        medication_section,
        allergy_section,
    ];
    if let Some(n) = &card.note {
        sections.push(section("note", "その他", vec![n.clone()]));
    }
    json!({
        "resourceType": "Composition",
        "id": derived_id(&format!("emergency-card/{patient_id}")),
        "meta": { "versionId": card.version.to_string(), "lastUpdated": instant(&card.recorded_at) },
        "status": "final",
        // LOINC 42348-3: Advance healthcare directives.
        "type": { "coding": [coding(LOINC, "42348-3", "Advance healthcare directives")], "text": "急変時情報" },
        "subject": reference("Patient", patient_id),
        "date": instant(&card.recorded_at),
        "author": [reference("Practitioner", &card.recorded_by)],
        "title": "急変時情報(人生会議・ACP)",
        "section": sections,
    })
}

const SERVICE_TYPE_SYSTEM: &str = "urn:renkei-note:service-type";
const APPOINTMENT_KIND_SYSTEM: &str = "urn:renkei-note:appointment-kind";

fn service_type(s: crate::care::ServiceType) -> Value {
    json!([{ "coding": [coding(SERVICE_TYPE_SYSTEM, s.as_str(), s.label(crate::error::Lang::Ja))], "text": s.label(crate::error::Lang::Ja) }])
}

fn participants(patient_id: &str, user_ids: &[String]) -> Value {
    let mut p = vec![json!({ "actor": reference("Patient", patient_id), "status": "accepted" })];
    p.extend(user_ids.iter().map(|u| json!({ "actor": reference("Practitioner", u), "status": "accepted" })));
    json!(p)
}

/// Appointment (base R4: JP Core has no Appointment profile): one booked, fulfilled, cancelled
/// or entered-in-error appointment. The place and the video link go in `comment`, since R4 has
/// neither a virtual service nor a place without a Location; the minutes are the note's
/// Communication, referenced when the export holds it (`note_ids`).
pub fn appointment(patient_id: &str, a: &AppointmentView, note_ids: &[&str]) -> Value {
    let mut r = json!({
        "resourceType": "Appointment",
        "id": a.id,
        "meta": { "versionId": a.version.to_string(), "lastUpdated": instant(&a.recorded_at) },
        "status": fhir_code(a.status.as_str()),
        "appointmentType": { "coding": [coding(APPOINTMENT_KIND_SYSTEM, a.kind.as_str(), a.kind_label)], "text": a.kind_label },
        "description": a.kind_label,
        "start": instant(&a.starts_at),
        "end": instant(&a.ends_at),
        "created": instant(&a.recorded_at),
        "participant": participants(patient_id, &a.attendees),
    });
    put(&mut r, "serviceType", a.service_type.map(service_type));
    let mut comment = Vec::new();
    if let Some(place) = &a.place {
        comment.push(format!("場所: {place}"));
    }
    if let Some(url) = &a.video_url {
        comment.push(format!("ビデオ会議: {url}"));
    }
    if let Some(note) = &a.note {
        comment.push(note.clone());
    }
    if let Some(reason) = &a.reason {
        comment.push(format!("変更・中止の理由: {reason}"));
    }
    if !comment.is_empty() {
        r["comment"] = json!(comment.join("\n"));
    }
    if let Some(minutes) = a.minutes_note_id.as_deref().filter(|id| note_ids.contains(id)) {
        r["supportingInformation"] = json!([reference("Communication", minutes)]);
    }
    r
}

/// A visit plan as one *proposed* Appointment. R4 cannot say "every Monday and Thursday"
/// (recurrence arrived in R5), and expanding a plan into dated Appointments would present
/// visits nobody booked as booked, cut off at an arbitrary export window. So the plan is what
/// it is — a standing proposal — with its validity as `requestedPeriod` and the weekly pattern
/// in words; a proposed Appointment needs no `start`/`end` (app-3).
pub fn visit_plan(patient_id: &str, p: &PlanView) -> Value {
    const DAYS: [&str; 7] = ["月", "火", "水", "木", "金", "土", "日"];
    let days: Vec<&str> =
        p.weekdays.iter().filter_map(|d| DAYS.get(usize::from(*d).wrapping_sub(1)).copied()).collect();
    let pattern =
        format!("{} 毎週{}曜 {}から{}分", p.service_type_label, days.join("・"), p.start_time, p.duration_minutes);
    let mut period = json!({ "start": date(&p.valid_from) });
    put(&mut period, "end", p.valid_until.map(|u| date(&u)));
    let mut r = json!({
        "resourceType": "Appointment",
        "id": p.id,
        "meta": { "versionId": p.version.to_string(), "lastUpdated": instant(&p.recorded_at) },
        "status": "proposed",
        "serviceType": service_type(p.service_type),
        "description": pattern,
        "minutesDuration": p.duration_minutes,
        "requestedPeriod": [period],
        "created": instant(&p.recorded_at),
        "participant": participants(patient_id, std::slice::from_ref(&p.user_id)),
    });
    put(&mut r, "comment", p.note.clone());
    r
}
