//! FHIR R4 export: a patient's record as one `Bundle` of type `collection`.
//!
//! Every resource keeps our UUID as its id and appears with fullUrl `urn:uuid:<id>`; references
//! inside the bundle use the same `urn:uuid:` form, so they resolve without a server. Resources
//! with no row of their own (one Observation per vital sign, a Provenance per amendment) get a
//! stable name-based UUID, so exporting twice gives the same ids.
//!
//! Vocabularies follow docs/domain.md ("FHIR vocabularies"): HL7 FHIR R4 value sets, LOINC for
//! vital signs, SNOMED CT 1104051000000101 for the NEWS2 total. Patient names follow JP Core:
//! one HumanName in kanji (`IDE`) and one in kana (`SYL`), told apart by the ISO 21090
//! EN-representation extension. CareTeam, Task, Flag, Communication and Consent are base R4
//! (JP Core has no profiles for them).

pub mod care;
pub mod handlers;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::api::format_utc;
use crate::attachments::Attachment;
use crate::db::DbConn;
use crate::discharge::{cases::Case, tasks::Task, TaskStatus};
use crate::error::AppResult;
use crate::flags::Flag;
use crate::notes::{self, Listed, VersionView};
use crate::orgs::{self, Organization};
use crate::patients::{consents, consents::Consent, team, team::MemberView, Patient};
use crate::users::{self, User};
use crate::vocab::{ConsentSource, FlagSource, FlagStatus, PatientStatus};

/// The media type of the export.
pub const CONTENT_TYPE: &str = "application/fhir+json";

const LOINC: &str = "http://loinc.org";
const SNOMED: &str = "http://snomed.info/sct";
const UCUM: &str = "http://unitsofmeasure.org";
const EN_REPRESENTATION: &str = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation";
const FLAG_PRIORITY: &str = "http://hl7.org/fhir/StructureDefinition/flag-priority";
const FLAG_PRIORITY_CODES: &str = "http://hl7.org/fhir/flag-priority-code";
/// Our own code systems, where FHIR has no value set for the concept (the codes are the API's).
const ROLE_SYSTEM: &str = "urn:renkei-note:care-team-role";
const PROFESSION_SYSTEM: &str = "urn:renkei-note:profession";
const ORG_KIND_SYSTEM: &str = "urn:renkei-note:organization-kind";
const NOTE_KIND_SYSTEM: &str = "urn:renkei-note:note-kind";
const EPISODE_TYPE_SYSTEM: &str = "urn:renkei-note:episode-type";
const TASK_TEMPLATE_SYSTEM: &str = "urn:renkei-note:discharge-task-template";

/// NEWS2 total score, SNOMED CT (docs/domain.md).
pub const NEWS2_SNOMED: &str = "1104051000000101";

/// One vital sign as an Observation: our column, the LOINC code its FHIR R4 vital-sign profile
/// requires (with any further LOINC codings beside it), UCUM unit.
/// Source: the FHIR R4 vital-signs profiles (respiratory rate, heart rate, oxygen saturation, body
/// temperature, blood pressure) and the LOINC codes listed in docs/domain.md.
struct VitalCode {
    key: &'static str,
    loinc: &'static str,
    display: &'static str,
    /// More specific LOINC codings sent beside the profile's code.
    also: &'static [(&'static str, &'static str)],
    /// The code the Observation's stable id is derived from (unchanged since the first export).
    id_code: &'static str,
    unit: &'static str,
    ucum: &'static str,
}

const VITAL_CODES: [VitalCode; 4] = [
    VitalCode {
        key: "respiratory_rate",
        loinc: "9279-1",
        display: "Respiratory rate",
        also: &[],
        id_code: "9279-1",
        unit: "/min",
        ucum: "/min",
    },
    VitalCode {
        key: "pulse",
        loinc: "8867-4",
        display: "Heart rate",
        also: &[],
        id_code: "8867-4",
        unit: "/min",
        ucum: "/min",
    },
    // The R4 oxygen-saturation profile requires 2708-6; 59408-5 says it was by pulse oximetry.
    VitalCode {
        key: "spo2",
        loinc: "2708-6",
        display: "Oxygen saturation in Arterial blood",
        also: &[("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry")],
        id_code: "59408-5",
        unit: "%",
        ucum: "%",
    },
    VitalCode {
        key: "temperature",
        loinc: "8310-5",
        display: "Body temperature",
        also: &[],
        id_code: "8310-5",
        unit: "Cel",
        ucum: "Cel",
    },
];
const BP_PANEL: (&str, &str) = ("85354-9", "Blood pressure panel with all children optional");
const BP_SYSTOLIC: (&str, &str) = ("8480-6", "Systolic blood pressure");
const BP_DIASTOLIC: (&str, &str) = ("8462-4", "Diastolic blood pressure");

/// A stable UUID for a resource derived from our ids (RFC 9562 version 8, from SHA-256).
pub fn derived_id(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid().to_string()
}

fn reference(resource_type: &str, id: &str) -> Value {
    json!({ "reference": format!("urn:uuid:{id}"), "type": resource_type })
}

fn instant(t: &NaiveDateTime) -> String {
    format_utc(t)
}

fn date(d: &NaiveDate) -> String {
    d.to_string()
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({ "system": system, "code": code, "display": display })
}

/// Inserts `key: value` when the value is present.
fn put<T: Into<Value>>(obj: &mut Value, key: &str, value: Option<T>) {
    if let (Some(map), Some(v)) = (obj.as_object_mut(), value) {
        map.insert(key.to_string(), v.into());
    }
}

/// Everything the export reads, gathered first so the resource functions are pure.
pub struct Record {
    pub patient: Patient,
    pub consents: Vec<Consent>,
    pub members: Vec<MemberView>,
    pub notes: Vec<Listed>,
    /// Every version of each note, oldest first, by note id.
    pub histories: BTreeMap<String, Vec<VersionView>>,
    pub flags: Vec<Flag>,
    pub cases: Vec<Case>,
    pub tasks: Vec<Task>,
    pub users: Vec<User>,
    pub organizations: Vec<Organization>,
    /// Files on the notes and cases, not those entered in error.
    pub attachments: Vec<Attachment>,
    /// The care records (`fhir::care`).
    pub care: CareRecords,
}

/// Medications (entered-in-error ones included), allergies, the last reconciliation and the
/// emergency card with the lists it shows.
pub struct CareRecords {
    pub medications: Vec<crate::care::medications::View>,
    pub allergies: Vec<crate::care::allergies::View>,
    pub reconciliation: Option<crate::care::medications::ReconciliationView>,
    pub card: Option<crate::care::card::CardView>,
    pub card_medications: Vec<crate::care::medications::View>,
    pub card_allergies: Vec<crate::care::allergies::View>,
    /// Every visit plan, ended ones included, and every appointment, entered-in-error ones too.
    pub visit_plans: Vec<crate::care::visits::View>,
    pub appointments: Vec<crate::care::appointments::View>,
}

/// Reads a patient's whole record (the caller has already been allowed to read the patient).
pub fn load(conn: &mut DbConn, patient: Patient) -> AppResult<Record> {
    let pid = patient.id.clone();
    let consents = consents::list(conn, &pid)?;
    let members = team::list(conn, &pid, true)?;
    let notes = notes::list(conn, &pid, &notes::ListFilter::default(), None, i64::from(i32::MAX) - 1)?;
    let mut histories = BTreeMap::new();
    for n in notes.iter().filter(|n| n.version.version > 1) {
        histories.insert(n.note.id.clone(), notes::history(conn, &n.note.id)?);
    }
    let flags = crate::flags::for_patient(conn, &pid)?;
    let cases = crate::discharge::cases::for_patient(conn, &pid)?;
    let mut tasks = Vec::new();
    for c in &cases {
        tasks.extend(crate::discharge::tasks::for_case(conn, &c.id)?);
    }

    let attachments = crate::attachments::for_patient(conn, &pid)?;
    let care = CareRecords {
        medications: crate::care::medications::list(conn, &pid, true)?,
        allergies: crate::care::allergies::list(conn, &pid, true)?,
        reconciliation: crate::care::medications::last_reconciliation(conn, &pid)?,
        card: crate::care::card::current(conn, &pid)?,
        card_medications: crate::care::medications::current_list(conn, &pid)?,
        card_allergies: crate::care::allergies::current_list(conn, &pid)?,
        visit_plans: crate::care::visits::list(conn, &pid, true, crate::patients::today_jst())?,
        appointments: crate::care::appointments::list(conn, &pid, None, true)?,
    };

    let mut user_ids: BTreeSet<String> = members.iter().map(|m| m.user_id.clone()).collect();
    user_ids.extend(attachments.iter().map(|a| a.uploaded_by.clone()));
    user_ids.extend(care.medications.iter().map(|m| m.recorded_by.clone()));
    user_ids.extend(care.allergies.iter().map(|a| a.recorded_by.clone()));
    user_ids.extend(care.reconciliation.iter().map(|r| r.checked_by.clone()));
    user_ids.extend(care.card.iter().map(|c| c.recorded_by.clone()));
    user_ids.extend(care.visit_plans.iter().map(|p| p.user_id.clone()));
    user_ids.extend(care.appointments.iter().flat_map(|a| a.attendees.iter().cloned()));
    user_ids.extend(notes.iter().map(|n| n.note.author_id.clone()));
    user_ids.extend(histories.values().flatten().map(|v| v.author_id.clone()));
    user_ids.extend(flags.iter().filter_map(|f| f.raised_by.clone()));
    user_ids.extend(tasks.iter().filter_map(|t| t.assignee_id.clone()));
    user_ids.extend(cases.iter().map(|c| c.opened_by.clone()));
    let mut users = Vec::new();
    for id in &user_ids {
        if let Some(u) = users::find(conn, id)? {
            users.push(u);
        }
    }
    let mut org_ids: BTreeSet<String> = members.iter().map(|m| m.organization_id.clone()).collect();
    org_ids.extend(notes.iter().map(|n| n.note.organization_id.clone()));
    org_ids.extend(cases.iter().map(|c| c.hospital_id.clone()));
    org_ids.extend(users.iter().filter_map(|u| u.organization_id.clone()));
    let mut organizations = Vec::new();
    for id in &org_ids {
        if let Some(o) = orgs::find(conn, id)? {
            organizations.push(o);
        }
    }
    Ok(Record {
        patient,
        consents,
        members,
        notes,
        histories,
        flags,
        cases,
        tasks,
        users,
        organizations,
        attachments,
        care,
    })
}

/// The Bundle of a patient's record; file contents are linked under `base_url`
/// (`RENKEI_PUBLIC_URL`).
pub fn bundle(record: &Record, at: NaiveDateTime, base_url: &str) -> Value {
    let mut resources: Vec<Value> = vec![patient(&record.patient)];
    resources.extend(record.organizations.iter().map(organization));
    resources.extend(record.users.iter().map(practitioner));
    if !record.members.is_empty() {
        resources.push(care_team(&record.patient, &record.members));
    }
    for n in &record.notes {
        let observations = observations(&record.patient.id, n);
        let observation_ids: Vec<String> =
            observations.iter().filter_map(|o| o["id"].as_str().map(str::to_string)).collect();
        resources.push(communication(n, &observation_ids));
        resources.extend(observations);
        if let Some(history) = record.histories.get(&n.note.id) {
            resources.extend(history.iter().filter(|v| v.version > 1).map(|v| provenance(&n.note.id, v)));
        }
    }
    for f in &record.flags {
        let source = f.source_note_id.as_ref().and_then(|id| record.notes.iter().find(|n| &n.note.id == id));
        resources.push(flag(f, source.and_then(|n| n.version.news2_total)));
    }
    resources.extend(record.cases.iter().map(|c| episode_of_care(c, !record.members.is_empty())));
    resources.extend(record.tasks.iter().map(task));
    resources.extend(record.consents.iter().map(consent));
    resources.extend(record.attachments.iter().map(|a| document_reference(a, base_url)));
    let (pid, c) = (&record.patient.id, &record.care);
    resources.extend(c.medications.iter().map(|m| care::medication_statement(pid, m)));
    resources.extend(c.reconciliation.as_ref().and_then(|r| care::reconciliation(r, &c.medications)));
    resources.extend(c.allergies.iter().map(|a| care::allergy_intolerance(pid, a)));
    resources
        .extend(c.card.as_ref().map(|card| care::emergency_card(pid, card, &c.card_medications, &c.card_allergies)));
    let note_ids: Vec<&str> = record.notes.iter().map(|n| n.note.id.as_str()).collect();
    resources.extend(c.visit_plans.iter().map(|p| care::visit_plan(pid, p)));
    resources.extend(c.appointments.iter().map(|a| care::appointment(pid, a, &note_ids)));

    let entry: Vec<Value> = resources
        .into_iter()
        .map(|r| json!({ "fullUrl": format!("urn:uuid:{}", r["id"].as_str().unwrap_or_default()), "resource": r }))
        .collect();
    json!({
        "resourceType": "Bundle",
        "id": derived_id(&format!("bundle/{}/{}", record.patient.id, instant(&at))),
        "meta": { "lastUpdated": instant(&at) },
        "type": "collection",
        "timestamp": instant(&at),
        "entry": entry,
    })
}

/// Patient: JP Core style names (kanji `IDE`, kana `SYL`), gender, birth date, address, phone
/// and the emergency contact.
pub fn patient(p: &Patient) -> Value {
    let name = |family: &str, given: &str, representation: &str| {
        json!({
            "extension": [{ "url": EN_REPRESENTATION, "valueCode": representation }],
            "use": "official",
            "text": format!("{family} {given}"),
            "family": family,
            "given": [given],
        })
    };
    let mut r = json!({
        "resourceType": "Patient",
        "id": p.id,
        "active": p.status != PatientStatus::Closed,
        "name": [name(&p.family_name, &p.given_name, "IDE"), name(&p.family_name_kana, &p.given_name_kana, "SYL")],
        "gender": p.sex,
        "birthDate": date(&p.birth_date),
    });
    put(&mut r, "address", p.address.as_ref().map(|a| json!([{ "use": "home", "text": a, "country": "JP" }])));
    put(&mut r, "telecom", p.phone.as_ref().map(|t| json!([{ "system": "phone", "value": t, "use": "home" }])));
    if let Some(name) = &p.emergency_contact_name {
        let mut c = json!({
            "relationship": [{ "coding": [coding("http://terminology.hl7.org/CodeSystem/v2-0131", "C", "Emergency Contact")] }],
            "name": { "text": name },
        });
        if let Some(rel) = &p.emergency_contact_relationship {
            if let Some(a) = c["relationship"].as_array_mut() {
                a.push(json!({ "text": rel }));
            }
        }
        put(&mut c, "telecom", p.emergency_contact_phone.as_ref().map(|t| json!([{ "system": "phone", "value": t }])));
        r["contact"] = json!([c]);
    }
    r
}

/// Organization: name, kana alias, kind, address and phone.
pub fn organization(o: &Organization) -> Value {
    let mut r = json!({
        "resourceType": "Organization",
        "id": o.id,
        "active": o.active,
        "type": [{ "coding": [{ "system": ORG_KIND_SYSTEM, "code": o.kind }], "text": o.kind }],
        "name": o.name,
    });
    put(&mut r, "alias", o.name_kana.as_ref().map(|k| json!([k])));
    put(&mut r, "address", o.address.as_ref().map(|a| json!([{ "text": a, "country": "JP" }])));
    put(&mut r, "telecom", o.phone.as_ref().map(|t| json!([{ "system": "phone", "value": t, "use": "work" }])));
    r
}

/// Practitioner: a user's name (kana as a second `SYL` name) and profession. Email addresses
/// are not exported.
pub fn practitioner(u: &User) -> Value {
    let mut names = vec![json!({ "use": "official", "text": u.name })];
    if let Some(kana) = &u.name_kana {
        names.push(json!({
            "extension": [{ "url": EN_REPRESENTATION, "valueCode": "SYL" }],
            "use": "official",
            "text": kana,
        }));
    }
    json!({
        "resourceType": "Practitioner",
        "id": u.id,
        "active": u.active,
        "name": names,
        "qualification": [{ "code": { "coding": [{ "system": PROFESSION_SYSTEM, "code": u.profession }], "text": u.profession } }],
    })
}

/// CareTeam: every membership, past ones with their end date, each with role, member,
/// organisation and period. The team is `active` while anyone is on it.
pub fn care_team(p: &Patient, members: &[MemberView]) -> Value {
    let participants: Vec<Value> = members
        .iter()
        .map(|m| {
            let mut period = json!({ "start": date(&m.started_on) });
            put(&mut period, "end", m.ended_on.as_ref().map(date));
            let mut role = json!({ "coding": [{ "system": ROLE_SYSTEM, "code": m.role }], "text": m.role });
            if m.is_lead {
                role["text"] = json!(format!("{} (lead)", m.role));
            }
            json!({
                "id": m.id,
                "role": [role],
                "member": { "reference": format!("urn:uuid:{}", m.user_id), "type": "Practitioner", "display": m.user_name },
                "onBehalfOf": { "reference": format!("urn:uuid:{}", m.organization_id), "type": "Organization", "display": m.organization_name },
                "period": period,
            })
        })
        .collect();
    let active = members.iter().any(|m| m.active);
    json!({
        "resourceType": "CareTeam",
        "id": care_team_id(&p.id),
        "status": if active { "active" } else { "inactive" },
        "category": [{ "coding": [coding(LOINC, "LA28866-4", "Home and community based services")] }],
        "name": format!("{} {} 在宅療養チーム", p.family_name, p.given_name),
        "subject": reference("Patient", &p.id),
        "participant": participants,
    })
}

fn care_team_id(patient_id: &str) -> String {
    derived_id(&format!("care-team/{patient_id}"))
}

/// Communication: a note at its current version, `sent` at the time its author gives for it
/// (the time the timeline orders by; notes written offline are posted later). Amendments are
/// told by Provenance resources (one per amendment) targeting it; the Communication itself
/// carries the current text and its version in `meta.versionId`.
pub fn communication(n: &Listed, observation_ids: &[String]) -> Value {
    let v = &n.version;
    // A physician's information-sharing note may have no free text; FHIR refuses an empty string.
    let mut payload: Vec<Value> =
        Some(&v.text).filter(|t| !t.trim().is_empty()).map(|t| json!({ "contentString": t })).into_iter().collect();
    for (label, part) in [
        ("S", &v.soap_subjective),
        ("O", &v.soap_objective),
        ("A", &v.soap_assessment),
        ("P", &v.soap_plan),
        ("次回訪問予定", &v.next_visit_on.map(|d| d.to_string())),
        ("治療方針の変更", &v.treatment_policy_summary),
        ("チームへの注意事項", &v.cautions_for_team),
    ] {
        if let Some(text) = part {
            payload.push(json!({ "contentString": format!("{label}: {text}") }));
        }
    }
    let mut r = json!({
        "resourceType": "Communication",
        "id": n.note.id,
        "meta": { "versionId": v.version.to_string(), "lastUpdated": instant(&v.recorded_at) },
        "status": "completed",
        "category": [{ "coding": [{ "system": NOTE_KIND_SYSTEM, "code": n.note.kind }], "text": n.note.kind }],
        "subject": reference("Patient", &n.note.patient_id),
        "sender": reference("Practitioner", &n.note.author_id),
        "sent": instant(&v.occurred_at),
        "payload": payload,
    });
    if !observation_ids.is_empty() {
        r["about"] = Value::Array(observation_ids.iter().map(|id| reference("Observation", id)).collect());
    }
    r
}

/// DocumentReference: one file of a note (related to its Communication) or of a discharge case
/// (related to its EpisodeOfCare). The content is linked, not embedded: `url` is the download
/// route, which asks for the reader's token and audits the read; `size` and `hash` (base64 of
/// the SHA-1, as R4's Attachment.hash defines it) let a receiver check what it fetched.
pub fn document_reference(a: &Attachment, base_url: &str) -> Value {
    use base64::Engine;
    let mut attachment = json!({
        "contentType": a.content_type.as_str(),
        "url": format!("{base_url}/api/v1/attachments/{}/content", a.id),
        "size": a.byte_size,
        "title": a.file_name,
        "creation": instant(&a.created_at),
    });
    if let Some(bytes) = a.sha1.as_deref().and_then(|h| hex::decode(h).ok()) {
        attachment["hash"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    let related = match (&a.note_id, &a.case_id) {
        (Some(note_id), _) => reference("Communication", note_id),
        (None, Some(case_id)) => reference("EpisodeOfCare", case_id),
        (None, None) => Value::Null,
    };
    let mut r = json!({
        "resourceType": "DocumentReference",
        "id": a.id,
        "status": "current",
        "subject": reference("Patient", &a.patient_id),
        "date": instant(&a.created_at),
        "author": [reference("Practitioner", &a.uploaded_by)],
        "description": a.file_name,
        "content": [{ "attachment": attachment }],
    });
    if !related.is_null() {
        r["context"] = json!({ "related": [related] });
    }
    r
}

/// Provenance: one amendment of a note (version 2 onwards), with its author, time and reason.
pub fn provenance(note_id: &str, v: &VersionView) -> Value {
    let mut r = json!({
        "resourceType": "Provenance",
        "id": derived_id(&format!("provenance/{note_id}/{}", v.version)),
        "target": [reference("Communication", note_id)],
        "occurredDateTime": instant(&v.occurred_at),
        "recorded": instant(&v.recorded_at),
        "activity": { "coding": [coding("http://terminology.hl7.org/CodeSystem/v3-DataOperation", "UPDATE", "revise")] },
        "agent": [{
            "type": { "coding": [coding("http://terminology.hl7.org/CodeSystem/provenance-participant-type", "author", "Author")] },
            "who": reference("Practitioner", &v.author_id),
        }],
    });
    r["reason"] = json!([{ "text": v.reason.clone().unwrap_or_else(|| format!("version {}", v.version)) }]);
    r
}

fn vital_id(note_id: &str, version: i32, code: &str) -> String {
    derived_id(&format!("observation/{note_id}/{version}/{code}"))
}

fn vital_base(patient_id: &str, id: &str, at: &NaiveDateTime, performer: &str, code: (&str, &str)) -> Value {
    json!({
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "category": [{ "coding": [coding("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs", "Vital Signs")] }],
        "code": { "coding": [coding(LOINC, code.0, code.1)], "text": code.1 },
        "subject": reference("Patient", patient_id),
        "effectiveDateTime": instant(at),
        "performer": [reference("Practitioner", performer)],
    })
}

fn quantity(value: f64, c: (&str, &str)) -> Value {
    json!({ "value": value, "unit": c.0, "system": UCUM, "code": c.1 })
}

/// Observations of a note's current version: one per vital sign given (blood pressure as a
/// panel with systolic and diastolic components), then the NEWS2 total derived from them.
pub fn observations(patient_id: &str, n: &Listed) -> Vec<Value> {
    let v = &n.version;
    let (nid, ver, at, author) = (&n.note.id, v.version, &v.occurred_at, &v.author_id);
    let mut out = Vec::new();
    let values: [(&str, Option<f64>); 4] = [
        ("respiratory_rate", v.respiratory_rate.map(f64::from)),
        ("pulse", v.pulse.map(f64::from)),
        ("spo2", v.spo2.map(f64::from)),
        ("temperature", v.temperature),
    ];
    for vc in &VITAL_CODES {
        if let Some((_, Some(value))) = values.iter().find(|(k, _)| *k == vc.key) {
            let mut o = vital_base(patient_id, &vital_id(nid, ver, vc.id_code), at, author, (vc.loinc, vc.display));
            if let Some(codings) = o["code"]["coding"].as_array_mut() {
                codings.extend(vc.also.iter().map(|(code, display)| coding(LOINC, code, display)));
            }
            o["valueQuantity"] = quantity(*value, (vc.unit, vc.ucum));
            out.push(o);
        }
    }
    if v.systolic_bp.is_some() || v.diastolic_bp.is_some() {
        let mut o = vital_base(patient_id, &vital_id(nid, ver, BP_PANEL.0), at, author, BP_PANEL);
        // The R4 blood-pressure profile requires both components: one not measured carries a
        // data-absent reason instead of a value (constraint vs-3).
        let component = |code: (&str, &str), value: Option<i32>| match value {
            Some(x) => json!({
                "code": { "coding": [coding(LOINC, code.0, code.1)] },
                "valueQuantity": quantity(f64::from(x), ("mmHg", "mm[Hg]")),
            }),
            None => json!({
                "code": { "coding": [coding(LOINC, code.0, code.1)] },
                "dataAbsentReason": { "coding": [coding("http://terminology.hl7.org/CodeSystem/data-absent-reason", "not-performed", "Not Performed")] },
            }),
        };
        o["component"] = json!([component(BP_SYSTOLIC, v.systolic_bp), component(BP_DIASTOLIC, v.diastolic_bp)]);
        out.push(o);
    }
    if let Some(total) = v.news2_total {
        let derived: Vec<Value> =
            out.iter().filter_map(|o| o["id"].as_str()).map(|id| reference("Observation", id)).collect();
        let mut o = json!({
            "resourceType": "Observation",
            "id": vital_id(nid, ver, NEWS2_SNOMED),
            "status": "final",
            "category": [{ "coding": [coding("http://terminology.hl7.org/CodeSystem/observation-category", "survey", "Survey")] }],
            "code": {
                "coding": [coding(SNOMED, NEWS2_SNOMED, "Royal College of Physicians NEWS2 (National Early Warning Score 2) total score")],
                "text": "NEWS2 total score",
            },
            "subject": reference("Patient", patient_id),
            "effectiveDateTime": instant(at),
            "performer": [reference("Practitioner", author)],
            "valueInteger": total,
            "derivedFrom": derived,
        });
        let mut notes =
            vec![json!({ "text": "Decision support only: NEWS2 is validated in hospitals, not in home care." })];
        if v.news2_partial == Some(true) {
            notes.push(json!({ "text": "Partial score: some parameters were not recorded." }));
        }
        o["note"] = Value::Array(notes);
        put(&mut o, "interpretation", v.news2_band.as_ref().map(|b| json!([{ "text": b }])));
        out.push(o);
    }
    out
}

/// FHIR flag priority from a NEWS2 total: PN 0, PL 1–4, PM 5–6, PH 7 and above (docs/domain.md).
pub fn flag_priority(total: i32) -> (&'static str, &'static str) {
    match total {
        i32::MIN..=0 => ("PN", "No alarm"),
        1..=4 => ("PL", "Low priority"),
        5..=6 => ("PM", "Medium priority"),
        _ => ("PH", "High priority"),
    }
}

/// Flag status: active and acknowledged flags are `active`, resolved ones `inactive`.
pub fn flag_status(status: FlagStatus) -> &'static str {
    match status {
        FlagStatus::Resolved => "inactive",
        FlagStatus::EnteredInError => "entered-in-error",
        FlagStatus::Active | FlagStatus::Acknowledged => "active",
    }
}

/// Flag: status, category, the reason as code text, period, author and, for flags raised from
/// a NEWS2 score, the priority extension.
pub fn flag(f: &Flag, news2_total: Option<i32>) -> Value {
    let mut period = json!({ "start": instant(&f.raised_at) });
    put(&mut period, "end", f.resolved_at.as_ref().map(instant));
    let mut r = json!({
        "resourceType": "Flag",
        "id": f.id,
        "status": flag_status(f.status),
        "category": [{
            "coding": [coding("http://terminology.hl7.org/CodeSystem/flag-category", "clinical", "Clinical")],
            "text": f.severity.as_str(),
        }],
        "code": { "text": f.reason },
        "subject": reference("Patient", &f.patient_id),
        "period": period,
    });
    put(&mut r, "author", f.raised_by.as_ref().map(|a| reference("Practitioner", a)));
    if f.source == FlagSource::News2 {
        if let Some(total) = news2_total {
            let (code, display) = flag_priority(total);
            r["extension"] = json!([{
                "url": FLAG_PRIORITY,
                "valueCodeableConcept": { "coding": [coding(FLAG_PRIORITY_CODES, code, display)] },
            }]);
        }
    }
    r
}

/// EpisodeOfCare status of a discharge case: open and discharged cases are `active` (the
/// coordination continues after discharge until the case is closed).
pub fn episode_status(status: &str) -> &'static str {
    match status {
        "closed" => "finished",
        "cancelled" => "cancelled",
        _ => "active",
    }
}

/// EpisodeOfCare: a discharge case, managed by the hospital, from admission to closing.
pub fn episode_of_care(c: &Case, has_team: bool) -> Value {
    let mut period = json!({ "start": c.admitted_at.as_ref().map(instant).unwrap_or_else(|| date(&c.admitted_on)) });
    put(&mut period, "end", c.closed_at.or(c.cancelled_at).as_ref().map(instant));
    let mut r = json!({
        "resourceType": "EpisodeOfCare",
        "id": c.id,
        "status": episode_status(c.status.as_str()),
        "type": [{ "coding": [{ "system": EPISODE_TYPE_SYSTEM, "code": "discharge_coordination" }], "text": "退院支援" }],
        "patient": reference("Patient", &c.patient_id),
        "managingOrganization": reference("Organization", &c.hospital_id),
        "period": period,
        "careManager": reference("Practitioner", &c.opened_by),
    });
    if has_team {
        r["team"] = json!([reference("CareTeam", &care_team_id(&c.patient_id))]);
    }
    r
}

/// Task.status: each of FHIR R4's twelve codes for ours, which spell `-` as `_`.
pub fn task_status(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Draft => "draft",
        TaskStatus::Requested => "requested",
        TaskStatus::Received => "received",
        TaskStatus::Accepted => "accepted",
        TaskStatus::Rejected => "rejected",
        TaskStatus::Ready => "ready",
        TaskStatus::Cancelled => "cancelled",
        TaskStatus::InProgress => "in-progress",
        TaskStatus::OnHold => "on-hold",
        TaskStatus::Failed => "failed",
        TaskStatus::Completed => "completed",
        TaskStatus::EnteredInError => "entered-in-error",
    }
}

/// Task: a discharge task, ordered by its case, with its deadline and owner.
pub fn task(t: &Task) -> Value {
    let mut r = json!({
        "resourceType": "Task",
        "id": t.id,
        "basedOn": [reference("EpisodeOfCare", &t.case_id)],
        "status": task_status(t.status),
        "intent": "order",
        "priority": "routine",
        "description": t.title,
        "for": reference("Patient", &t.patient_id),
        "authoredOn": instant(&t.created_at),
        "lastModified": instant(&t.updated_at),
        "requester": reference("Practitioner", &t.created_by),
    });
    put(
        &mut r,
        "code",
        t.template_key
            .as_ref()
            .map(|k| json!({ "coding": [{ "system": TASK_TEMPLATE_SYSTEM, "code": k }], "text": t.title })),
    );
    put(&mut r, "statusReason", t.status_reason.as_ref().map(|s| json!({ "text": s })));
    put(&mut r, "owner", t.assignee_id.as_ref().map(|a| reference("Practitioner", a)));
    put(&mut r, "restriction", t.due_at.as_ref().map(|d| json!({ "period": { "end": instant(d) } })));
    let mut notes = Vec::new();
    if let Some(d) = &t.description {
        notes.push(json!({ "text": d }));
    }
    if let Some(s) = &t.source {
        notes.push(json!({ "text": format!("source: {s}") }));
    }
    if !notes.is_empty() {
        r["note"] = Value::Array(notes);
    }
    r
}

/// Consent: sharing within the care team (`patient-privacy`), active until revoked, with the
/// date obtained and the period it covered.
pub fn consent(c: &Consent) -> Value {
    let mut period = json!({ "start": date(&c.obtained_on) });
    put(&mut period, "end", c.revoked_at.as_ref().map(instant));
    let mut r = json!({
        "resourceType": "Consent",
        "id": c.id,
        "status": if c.revoked_at.is_some() { "inactive" } else { "active" },
        "scope": { "coding": [coding("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy", "Privacy Consent")] },
        "category": [{ "coding": [coding(LOINC, "59284-0", "Patient Consent")] }],
        "patient": reference("Patient", &c.patient_id),
        "dateTime": date(&c.obtained_on),
        "policyRule": {
            "coding": [coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "OPTIN", "opt-in")],
            "text": format!("scope: {}; obtained from: {}", c.scope, c.obtained_from),
        },
        "provision": { "type": "permit", "period": period },
    });
    if c.obtained_from == ConsentSource::Patient {
        r["performer"] = json!([reference("Patient", &c.patient_id)]);
    }
    r
}
