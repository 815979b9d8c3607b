//! `renkei-bench seed`: a synthetic Kawasaki City, bulk-loaded, for the city-scale benchmark.
//!
//! Scale 1.0 is the whole city: 100,000 home-care patients across the seven wards, ~1,200
//! organisations, ~6,000 accounts, care teams, consents, 10,000,000 notes over the last three
//! years with their versions and read receipts, deterioration flags and discharge cases. Nothing
//! resembles a real person: names are built from syllables, e-mail domains are `.example`,
//! telephone numbers are all zeros, addresses name a made-up town.
//!
//! Rows are built with the product's own rules where they carry meaning — a note's version and
//! its NEWS2 by [`notebook::Version::new`], task deadlines by the discharge templates and
//! [`deadlines::due_at`] — and written in bulk: `COPY … FROM STDIN` on PostgreSQL, multi-row
//! INSERTs on SQLite, one code path otherwise. The generator runs on its own thread so that
//! building rows and writing them overlap. A seeded RNG makes a run reproducible: the same seed
//! on the same day gives the same city (times are relative to the start of the day of the run).
//!
//! The manifest written at the end tells the load driver (`renkei-bench load`) whom to sign in
//! as and what they may read.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use renkei::db::schema::{
    care_team_members, consents, discharge_cases, discharge_tasks, flags, note_reads, note_versions, notes,
    organization_services, organizations, patients, users, ward_coordinators,
};
use renkei::db::{self, DbConn, DbManager};
use renkei::discharge::cases::Case;
use renkei::discharge::{deadlines, templates, CaseStatus, TaskStatus};
use renkei::error::AppResult;
use renkei::notes::news2::{self, AlertLevel};
use renkei::notes::vitals::{Consciousness, Vitals};
use renkei::notes::{self as notebook, Content, PhysicianInfo, Soap};
use renkei::vocab::{CareLevel, NoteKind, OrgKind, OrgService, PatientStatus, Profession, TeamRole};

/// Every seeded account signs in with this password (hashed once: argon2id is slow on purpose).
pub const BENCH_PASSWORD: &str = "bench-password-2026";

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The database to fill; it must have no patients yet. postgres://… or sqlite://FILE.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// 1.0 is the whole city: 100,000 patients and 10,000,000 notes.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Where to write the manifest the load driver reads.
    #[arg(long, default_value = "./data/bench/manifest.json")]
    pub manifest: PathBuf,
    /// The RNG seed: the same seed on the same day gives the same city.
    #[arg(long, default_value_t = 20_261_201)]
    pub seed: u64,
}

pub fn run(args: Args) -> Result<(), String> {
    let manifest = seed(&args.database_url, &Options { scale: args.scale, seed: args.seed })?;
    if let Some(parent) = args.manifest.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let json = serde_json::to_string_pretty(&manifest).map_err(|e| format!("manifest: {e}"))?;
    std::fs::write(&args.manifest, json).map_err(|e| format!("cannot write {}: {e}", args.manifest.display()))?;
    println!("rows:");
    for (table, n) in &manifest.counts {
        println!("  {table:<24} {n:>12}");
    }
    println!(
        "seeded {} patients on {} in {:.1} s; manifest: {}",
        manifest.wards.iter().map(|w| w.patients).sum::<i64>(),
        manifest.database_backend,
        manifest.seconds,
        args.manifest.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The manifest: what the load driver reads.

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub scale: f64,
    pub seed: u64,
    /// The password of every seeded account.
    pub password: String,
    /// `postgres` or `sqlite`.
    pub database_backend: String,
    /// Rows per table after seeding.
    pub counts: BTreeMap<String, i64>,
    /// How long seeding took, wall clock.
    pub seconds: f64,
    pub wards: Vec<ManifestWard>,
    /// A sample of nurses, physicians and care managers on at least one team.
    pub clinicians: Vec<ManifestClinician>,
    /// Notes each readable by the named clinician (an active member of the patient's team).
    pub notes_sample: Vec<ManifestNote>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestWard {
    pub code: String,
    pub patients: i64,
    /// E-mail addresses of the ward's coordinating physicians.
    pub coordinators: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestClinician {
    pub email: String,
    pub user_id: String,
    pub profession: String,
    /// Up to 50 patients whose team the clinician is an active member of.
    pub patient_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestNote {
    pub note_id: String,
    pub patient_id: String,
    pub reader_email: String,
}

const SAMPLE_CLINICIANS: usize = 500;
const SAMPLE_PATIENTS_PER_CLINICIAN: usize = 50;
const SAMPLE_NOTES: usize = 2_000;

// ---------------------------------------------------------------------------------------------
// The city.

/// Kawasaki's wards with approximate 2020 census populations (rounded to the thousand), used as
/// weights for where patients and organisations are: 川崎区 gets about 15% of the patients.
const WARDS: [(&str, &str, u32); 7] = [
    ("14131", "川崎区", 232_000),
    ("14132", "幸区", 170_000),
    ("14133", "中原区", 262_000),
    ("14134", "高津区", 233_000),
    ("14135", "多摩区", 220_000),
    ("14136", "宮前区", 233_000),
    ("14137", "麻生区", 178_000),
];

const PATIENTS_AT_SCALE_1: f64 = 100_000.0;
const NOTES_PER_PATIENT: f64 = 100.0;

/// Organisations of the city at scale 1.0 and the least of each at any scale, from Kawasaki's
/// figures in docs/domain.md: 39 hospitals (5 of them home-care support hospitals), 115
/// home-care support clinics, 489 pharmacies doing home medication management, 49 community
/// support centres, 385 care-management offices, 79 visiting-nurse stations; dental clinics
/// doing home visits make up the ~1,200, and each ward has its office. Kinds a care team needs
/// in every ward have a minimum of one per ward.
const ORG_KINDS: [(OrgKind, f64, usize); 7] = [
    (OrgKind::Hospital, 39.0, 2),
    (OrgKind::Clinic, 115.0, 7),
    (OrgKind::Pharmacy, 489.0, 7),
    (OrgKind::CommunitySupportCenter, 49.0, 7),
    (OrgKind::CareManagementOffice, 385.0, 7),
    (OrgKind::VisitingNurseStation, 79.0, 7),
    (OrgKind::DentalClinic, 36.0, 1),
];

/// The accounts of one organisation of each kind (~6,000 in the city at scale 1.0).
fn staff_of(kind: OrgKind) -> &'static [(Profession, usize)] {
    use Profession::*;
    match kind {
        // Discharge-support MSWs and nurses, and ward physicians.
        OrgKind::Hospital => &[(SocialWorker, 4), (Nurse, 4), (Physician, 4)],
        OrgKind::Clinic => &[(Physician, 3), (Nurse, 2)],
        OrgKind::Pharmacy => &[(Pharmacist, 2)],
        // Care managers, social workers and a public-health nurse (保健師).
        OrgKind::CommunitySupportCenter => &[(CareManager, 3), (SocialWorker, 2), (Nurse, 1)],
        OrgKind::CareManagementOffice => &[(CareManager, 5)],
        OrgKind::VisitingNurseStation => &[(Nurse, 16), (Therapist, 4)],
        // Dentists and a dental hygienist.
        OrgKind::DentalClinic => &[(Dentist, 2), (Other, 1)],
        // The ward's coordinating physicians (区在宅療養調整医師), a public-health nurse and a
        // social worker.
        OrgKind::CityWardOffice => &[(Physician, 2), (Nurse, 1), (SocialWorker, 1)],
    }
}

fn org_suffix(kind: OrgKind) -> &'static str {
    match kind {
        OrgKind::Hospital => "病院",
        OrgKind::Clinic => "在宅クリニック",
        OrgKind::Pharmacy => "薬局",
        OrgKind::CommunitySupportCenter => "地域包括支援センター",
        OrgKind::CareManagementOffice => "居宅介護支援事業所",
        OrgKind::VisitingNurseStation => "訪問看護ステーション",
        OrgKind::DentalClinic => "歯科医院",
        OrgKind::CityWardOffice => "役所 地域みまもり支援センター",
    }
}

/// Syllables for synthetic names: a katakana reading and a kanji used for its sound (as in
/// man'yōgana), so that a name's kanji and kana always agree and no list of real names is used.
const SYLLABLES: [(&str, &str); 44] = [
    ("ア", "亜"),
    ("イ", "伊"),
    ("ウ", "宇"),
    ("エ", "恵"),
    ("オ", "緒"),
    ("カ", "加"),
    ("キ", "希"),
    ("ク", "久"),
    ("ケ", "景"),
    ("コ", "古"),
    ("サ", "佐"),
    ("シ", "志"),
    ("ス", "寿"),
    ("セ", "瀬"),
    ("ソ", "曽"),
    ("タ", "多"),
    ("チ", "知"),
    ("ツ", "津"),
    ("テ", "手"),
    ("ト", "登"),
    ("ナ", "奈"),
    ("ニ", "仁"),
    ("ネ", "根"),
    ("ノ", "野"),
    ("ハ", "葉"),
    ("ヒ", "比"),
    ("フ", "布"),
    ("ヘ", "部"),
    ("ホ", "穂"),
    ("マ", "真"),
    ("ミ", "美"),
    ("ム", "武"),
    ("メ", "芽"),
    ("モ", "茂"),
    ("ヤ", "矢"),
    ("ユ", "由"),
    ("ヨ", "代"),
    ("ラ", "良"),
    ("リ", "理"),
    ("ル", "留"),
    ("レ", "礼"),
    ("ロ", "呂"),
    ("ワ", "和"),
    ("ソ", "素"),
];

/// A synthetic name part of `n` syllables: (kanji, katakana).
fn name_part(rng: &mut StdRng, n: usize) -> (String, String) {
    let mut kanji = String::new();
    let mut kana = String::new();
    for _ in 0..n {
        let (k, c) = SYLLABLES[rng.gen_range(0..SYLLABLES.len())];
        kana.push_str(k);
        kanji.push_str(c);
    }
    (kanji, kana)
}

/// A whole synthetic person's name: family name of three syllables (rarer than real ones),
/// given name of two or three.
fn person_name(rng: &mut StdRng) -> (String, String, String, String) {
    let (family, family_kana) = name_part(rng, 3);
    let given_len = rng.gen_range(2..=3);
    let (given, given_kana) = name_part(rng, given_len);
    (family, given, family_kana, given_kana)
}

const FAKE_PHONE: &str = "000-0000-0000";

fn fake_address(rng: &mut StdRng, ward: &str) -> String {
    format!("神奈川県川崎市{ward}架空町{}-{}-{}", rng.gen_range(1..=5), rng.gen_range(1..=30), rng.gen_range(1..=20))
}

// ---------------------------------------------------------------------------------------------
// Rows as written. The product's own row types leave a NULL column out of an INSERT (diesel's
// default), which neither `COPY` nor a single multi-row INSERT can take, so the bulk path has its
// own, field for field the same as the tables.

#[derive(Insertable)]
#[diesel(table_name = organizations, treat_none_as_default_value = false)]
struct OrgRow {
    id: String,
    kind: String,
    name: String,
    name_kana: Option<String>,
    ward_code: Option<String>,
    address: Option<String>,
    phone: Option<String>,
    active: bool,
    version: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = organization_services, treat_none_as_default_value = false)]
struct ServiceRow {
    organization_id: String,
    service: String,
}

#[derive(Insertable)]
#[diesel(table_name = users, treat_none_as_default_value = false)]
struct UserRow {
    id: String,
    organization_id: String,
    email: String,
    name: String,
    name_kana: Option<String>,
    profession: String,
    role: String,
    active: bool,
    locale: String,
    password_hash: String,
    password_changed_at: NaiveDateTime,
    totp_secret: Option<String>,
    totp_enabled: bool,
    totp_last_step: Option<i64>,
    version: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    flag_notifications: String,
}

#[derive(Insertable)]
#[diesel(table_name = ward_coordinators, treat_none_as_default_value = false)]
struct CoordinatorRow {
    ward_code: String,
    user_id: String,
    assigned_by: String,
    assigned_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = patients, treat_none_as_default_value = false)]
struct PatientRow {
    id: String,
    family_name: String,
    given_name: String,
    family_name_kana: String,
    given_name_kana: String,
    name_kana_search: String,
    birth_date: NaiveDate,
    sex: String,
    ward_code: String,
    address: Option<String>,
    phone: Option<String>,
    care_level: String,
    status: String,
    emergency_contact_name: Option<String>,
    emergency_contact_relationship: Option<String>,
    emergency_contact_phone: Option<String>,
    spo2_target_88_92: bool,
    registered_by: String,
    version: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = consents, treat_none_as_default_value = false)]
struct ConsentRow {
    id: String,
    patient_id: String,
    scope: String,
    obtained_from: String,
    obtained_on: NaiveDate,
    obtained_by: String,
    note: Option<String>,
    revoked_at: Option<NaiveDateTime>,
    revoked_by: Option<String>,
    revoke_reason: Option<String>,
    created_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = care_team_members, treat_none_as_default_value = false)]
struct MemberRow {
    id: String,
    patient_id: String,
    user_id: String,
    organization_id: String,
    role: String,
    is_lead: bool,
    started_on: NaiveDate,
    ended_on: Option<NaiveDate>,
    ended_at: Option<NaiveDateTime>,
    added_by: String,
    ended_by: Option<String>,
    version: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = notes, treat_none_as_default_value = false)]
struct NoteRow {
    id: String,
    patient_id: String,
    kind: String,
    author_id: String,
    organization_id: String,
    author_profession: String,
    created_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = note_versions, treat_none_as_default_value = false)]
struct VersionRow {
    note_id: String,
    version: i32,
    patient_id: String,
    occurred_at: NaiveDateTime,
    text: String,
    soap_subjective: Option<String>,
    soap_objective: Option<String>,
    soap_assessment: Option<String>,
    soap_plan: Option<String>,
    temperature: Option<f64>,
    systolic_bp: Option<i32>,
    diastolic_bp: Option<i32>,
    pulse: Option<i32>,
    respiratory_rate: Option<i32>,
    spo2: Option<i32>,
    spo2_scale: Option<i32>,
    on_oxygen: Option<bool>,
    consciousness: Option<String>,
    news2_total: Option<i32>,
    news2_band: Option<String>,
    news2_partial: Option<bool>,
    news2_subscores: Option<String>,
    next_visit_on: Option<NaiveDate>,
    treatment_policy_changed: Option<bool>,
    treatment_policy_summary: Option<String>,
    cautions_for_team: Option<String>,
    author_id: String,
    reason: Option<String>,
    recorded_at: NaiveDateTime,
}

impl From<notebook::Version> for VersionRow {
    fn from(v: notebook::Version) -> VersionRow {
        VersionRow {
            note_id: v.note_id,
            version: v.version,
            patient_id: v.patient_id,
            occurred_at: v.occurred_at,
            text: v.text,
            soap_subjective: v.soap_subjective,
            soap_objective: v.soap_objective,
            soap_assessment: v.soap_assessment,
            soap_plan: v.soap_plan,
            temperature: v.temperature,
            systolic_bp: v.systolic_bp,
            diastolic_bp: v.diastolic_bp,
            pulse: v.pulse,
            respiratory_rate: v.respiratory_rate,
            spo2: v.spo2,
            spo2_scale: v.spo2_scale,
            on_oxygen: v.on_oxygen,
            consciousness: v.consciousness.map(String::from),
            news2_total: v.news2_total,
            news2_band: v.news2_band.map(String::from),
            news2_partial: v.news2_partial,
            news2_subscores: v.news2_subscores,
            next_visit_on: v.next_visit_on,
            treatment_policy_changed: v.treatment_policy_changed,
            treatment_policy_summary: v.treatment_policy_summary,
            cautions_for_team: v.cautions_for_team,
            author_id: v.author_id,
            reason: v.reason,
            recorded_at: v.recorded_at,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = note_reads, treat_none_as_default_value = false)]
struct ReadRow {
    note_id: String,
    user_id: String,
    patient_id: String,
    read_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = flags, treat_none_as_default_value = false)]
struct FlagRow {
    id: String,
    patient_id: String,
    severity: String,
    status: String,
    source: String,
    source_note_id: Option<String>,
    reason: String,
    raised_by: Option<String>,
    raised_at: NaiveDateTime,
    acknowledged_by: Option<String>,
    acknowledged_at: Option<NaiveDateTime>,
    acknowledge_note: Option<String>,
    resolved_by: Option<String>,
    resolved_at: Option<NaiveDateTime>,
    resolve_note: Option<String>,
    escalation_level: i32,
    next_escalation_at: Option<NaiveDateTime>,
    version: i32,
    updated_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = discharge_cases, treat_none_as_default_value = false)]
struct CaseRow {
    id: String,
    patient_id: String,
    hospital_id: String,
    opened_by: String,
    opener_member_id: String,
    admitted_at: Option<NaiveDateTime>,
    admitted_on: NaiveDate,
    planned_discharge_on: Option<NaiveDate>,
    discharged_on: Option<NaiveDate>,
    status: String,
    department: Option<String>,
    hospital_ward: Option<String>,
    reason: Option<String>,
    contact_name: Option<String>,
    contact_phone: Option<String>,
    cancel_reason: Option<String>,
    closed_at: Option<NaiveDateTime>,
    cancelled_at: Option<NaiveDateTime>,
    version: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl From<Case> for CaseRow {
    fn from(c: Case) -> CaseRow {
        CaseRow {
            id: c.id,
            patient_id: c.patient_id,
            hospital_id: c.hospital_id,
            opened_by: c.opened_by,
            opener_member_id: c.opener_member_id,
            admitted_at: c.admitted_at,
            admitted_on: c.admitted_on,
            planned_discharge_on: c.planned_discharge_on,
            discharged_on: c.discharged_on,
            status: c.status.into(),
            department: c.department,
            hospital_ward: c.hospital_ward,
            reason: c.reason,
            contact_name: c.contact_name,
            contact_phone: c.contact_phone,
            cancel_reason: c.cancel_reason,
            closed_at: c.closed_at,
            cancelled_at: c.cancelled_at,
            version: c.version,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = discharge_tasks, treat_none_as_default_value = false)]
struct TaskRow {
    id: String,
    case_id: String,
    patient_id: String,
    template_key: Option<String>,
    title: String,
    description: Option<String>,
    source: Option<String>,
    profession: Option<String>,
    assignee_id: Option<String>,
    anchor: Option<String>,
    offset_days: Option<i32>,
    due_rule: Option<String>,
    business_hours_rule: Option<bool>,
    due_at: Option<NaiveDateTime>,
    status: String,
    status_reason: Option<String>,
    completed_at: Option<NaiveDateTime>,
    completed_by: Option<String>,
    sort_order: i32,
    created_by: String,
    version: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// SQLite binds at most 32,766 parameters per statement; the widest table has 29 columns.
const SQLITE_ROWS_PER_INSERT: usize = 1_000;

/// Appends rows to a table: binary `COPY … FROM STDIN` on PostgreSQL, multi-row INSERTs on
/// SQLite. The statement differs per backend; the rows are the same.
macro_rules! put {
    ($conn:expr, $table:expr, $rows:expr) => {{
        let rows = &$rows;
        let written: Result<usize, diesel::result::Error> = if rows.is_empty() {
            Ok(0)
        } else {
            match &mut *$conn {
                DbConn::Postgres(c) => diesel::copy_from($table).from_insertable(rows).execute(c),
                DbConn::Sqlite(c) => {
                    let mut n = Ok(0);
                    for chunk in rows.chunks(SQLITE_ROWS_PER_INSERT) {
                        match diesel::insert_into($table).values(chunk).execute(c) {
                            Ok(k) => n = n.map(|m| m + k),
                            Err(e) => {
                                n = Err(e);
                                break;
                            }
                        }
                    }
                    n
                }
            }
        };
        written
    }};
}

// ---------------------------------------------------------------------------------------------
// Identifiers and time.

/// UUIDv7 identifiers, as `db::new_id` mints them, but from the seeded RNG and a counter so that
/// a run is reproducible and ids follow the order rows are written (append-friendly indexes, as
/// in production where ids are minted as rows arrive). They sort before anything the server
/// mints after the seed.
struct Ids {
    base_ms: u64,
    counter: u64,
    rng: StdRng,
}

impl Ids {
    fn next(&mut self) -> String {
        let c = self.counter;
        self.counter += 1;
        let ms = self.base_ms + (c >> 12);
        let rand_a = (c & 0xfff) as u16;
        let rand_b: u64 = self.rng.gen();
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        b[6] = 0x70 | (rand_a >> 8) as u8;
        b[7] = (rand_a & 0xff) as u8;
        b[8..].copy_from_slice(&rand_b.to_be_bytes());
        b[8] = 0x80 | (b[8] & 0x3f);
        uuid::Uuid::from_bytes(b).to_string()
    }
}

fn micros(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_micros()
}

fn from_micros(us: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.naive_utc()).unwrap_or_default()
}

/// A moment uniformly between two others (microsecond precision, as both backends keep).
fn between(rng: &mut StdRng, from: NaiveDateTime, to: NaiveDateTime) -> NaiveDateTime {
    let (a, b) = (micros(from), micros(to));
    if b <= a {
        return from;
    }
    from_micros(rng.gen_range(a..b))
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

fn jst_date(t: NaiveDateTime) -> NaiveDate {
    (t + Duration::hours(9)).date()
}

/// A standard normal variate (Box–Muller): rand 0.8 alone has no normal distribution.
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Picks an index by weight.
fn weighted(rng: &mut StdRng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut x = rng.gen_range(0..total.max(1));
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// Splits `n` over the wards in proportion to their populations (largest remainder), so that
/// every run at a scale gives each ward exactly its share.
fn apportion(n: usize) -> [usize; 7] {
    let total: f64 = WARDS.iter().map(|w| f64::from(w.2)).sum();
    let exact: Vec<f64> = WARDS.iter().map(|w| n as f64 * f64::from(w.2) / total).collect();
    let mut out = [0usize; 7];
    for (o, e) in out.iter_mut().zip(&exact) {
        *o = e.floor() as usize;
    }
    let mut order: Vec<usize> = (0..7).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    let given: usize = out.iter().sum();
    for &i in order.iter().take(n.saturating_sub(given)) {
        out[i] += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The plan: people and teams, held in memory while notes are generated.

struct Org {
    id: String,
    kind: OrgKind,
}

struct Staff {
    id: String,
    email: String,
    org: usize,
    profession: Profession,
}

/// Who is where: staff by (organisation kind, ward, profession), and city-wide.
#[derive(Default)]
struct Directory {
    by_ward: HashMap<(OrgKind, usize, Profession), Vec<usize>>,
    city: HashMap<(OrgKind, Profession), Vec<usize>>,
}

impl Directory {
    /// A member of staff of this kind and profession, from the patient's ward with probability
    /// `local` (when the ward has one), otherwise from anywhere in the city.
    fn pick(&self, rng: &mut StdRng, kind: OrgKind, prof: Profession, ward: usize, local: f64) -> Option<usize> {
        if rng.gen_bool(local) {
            if let Some(v) = self.by_ward.get(&(kind, ward, prof)).filter(|v| !v.is_empty()) {
                return v.choose(rng).copied();
            }
        }
        self.city.get(&(kind, prof)).and_then(|v| v.choose(rng).copied())
    }
}

#[derive(Clone)]
struct Member {
    user: usize,
    role: TeamRole,
}

struct Plan {
    id: String,
    ward: usize,
    registered: NaiveDateTime,
    /// Notes are written up to this moment (death, transfer, admission, or now).
    notes_until: NaiveDateTime,
    members: Vec<Member>,
    spo2_scale_2: bool,
    on_oxygen: bool,
    /// Has a deterioration in the last days, which leaves an open flag.
    deteriorating: bool,
}

// ---------------------------------------------------------------------------------------------
// Seeding.

pub struct Options {
    pub scale: f64,
    pub seed: u64,
}

#[derive(QueryableByName)]
struct IndexDef {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    sql: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The tables whose secondary indexes are dropped during the load and built again after it:
/// building an index once over sorted data is much faster than updating it row by row.
const BULK_TABLES: [&str; 3] = ["notes", "note_versions", "note_reads"];

const COUNTED_TABLES: [&str; 14] = [
    "organizations",
    "organization_services",
    "users",
    "ward_coordinators",
    "patients",
    "consents",
    "care_team_members",
    "notes",
    "note_versions",
    "note_reads",
    "flags",
    "discharge_cases",
    "discharge_tasks",
    "caseload_entries",
];

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Fills an empty database with a synthetic city and returns the manifest (not yet written).
pub fn seed(database_url: &str, opts: &Options) -> Result<Manifest, String> {
    if !(opts.scale > 0.0 && opts.scale <= 10.0) {
        return Err("--scale must be above 0 and at most 10 (1.0 is the whole city)".into());
    }
    let started = Instant::now();
    let manager = DbManager::new(database_url).map_err(|e| format!("DATABASE_URL: {e}"))?;
    let mut conn = manager.connect_now().map_err(|e| format!("cannot connect to the database: {e}"))?;
    let conn = &mut conn;
    db::migrate(conn)?;
    let existing: i64 = patients::table.count().get_result(conn).map_err(err)?;
    if existing > 0 {
        return Err(format!(
            "this database already has {existing} patients; bench seed fills an empty database only (use a new one)"
        ));
    }
    let backend = match &*conn {
        DbConn::Postgres(_) => "postgres",
        DbConn::Sqlite(_) => "sqlite",
    };
    println!("seeding a synthetic city at scale {} on {backend} (seed {})", opts.scale, opts.seed);

    if let DbConn::Postgres(c) = &mut *conn {
        // Commits need not wait for the disk: a failed seed is started again anyway.
        c.batch_execute("SET synchronous_commit = off; SET maintenance_work_mem = '512MB'").map_err(err)?;
    }
    let password_hash = renkei::auth::password::hash(BENCH_PASSWORD).map_err(|e| format!("{e:?}"))?;

    // Times are relative to the start of today (UTC), so that a seed gives the same city all day.
    let today = chrono::Utc::now().date_naive().and_time(NaiveTime::MIN);
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let ids = Ids {
        base_ms: u64::try_from(micros(today - days(1)) / 1000).unwrap_or(0),
        counter: 0,
        rng: StdRng::seed_from_u64(opts.seed ^ 0x05ee_d1d5),
    };
    let mut city = City { now: today, ids, password_hash, ..City::default() };

    let templates = templates::active_templates(conn).map_err(err)?;
    let t = Instant::now();
    conn.transaction(|c| city.people(c, &mut rng, opts.scale, &templates)).map_err(err)?;
    println!(
        "organisations, people, patients, teams, consents and discharge cases: {:.1} s ({} patients, {} users)",
        t.elapsed().as_secs_f64(),
        city.plans.len(),
        city.staff.len()
    );

    let indexes = drop_indexes(conn).map_err(err)?;
    let fk_off = match &mut *conn {
        // Skipping foreign-key triggers during the load is what pg_restore does: the rows are
        // consistent by construction. It needs a superuser; without one, checks simply stay on.
        DbConn::Postgres(c) => c.batch_execute("SET session_replication_role = replica").is_ok(),
        DbConn::Sqlite(c) => c.batch_execute("PRAGMA foreign_keys = OFF").is_ok(),
    };
    let t = Instant::now();
    let (sample, flag_rows) = city.notes(conn, opts)?;
    match &mut *conn {
        DbConn::Postgres(c) if fk_off => c.batch_execute("SET session_replication_role = DEFAULT").map_err(err)?,
        DbConn::Sqlite(c) => c.batch_execute("PRAGMA foreign_keys = ON").map_err(err)?,
        DbConn::Postgres(_) => {}
    }
    println!("notes, versions and read receipts: {:.1} s", t.elapsed().as_secs_f64());

    conn.transaction(|c| put!(c, flags::table, flag_rows)).map_err(err)?;
    let t = Instant::now();
    for ix in &indexes {
        conn.batch_execute(&ix.sql).map_err(err)?;
    }
    println!("rebuilt {} indexes: {:.1} s", indexes.len(), t.elapsed().as_secs_f64());

    // Statistics first: the entries are computed with per-patient queries that need them.
    let t = Instant::now();
    conn.batch_execute("ANALYZE").map_err(err)?;
    println!("ANALYZE: {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let entries = fill_caseload_entries(conn).map_err(err)?;
    conn.batch_execute("ANALYZE caseload_entries").map_err(err)?;
    println!("caseload entries: {entries} in {:.1} s", t.elapsed().as_secs_f64());

    let mut counts = BTreeMap::new();
    for table in COUNTED_TABLES {
        let c: Count = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}")).get_result(conn).map_err(err)?;
        counts.insert(table.to_string(), c.n);
    }
    let wards = (0..WARDS.len())
        .map(|w| ManifestWard {
            code: WARDS[w].0.to_string(),
            patients: city.plans.iter().filter(|p| p.ward == w).count() as i64,
            coordinators: city.coordinators[w].iter().map(|&u| city.staff[u].email.clone()).collect(),
        })
        .collect();
    let clinicians = city
        .sampled
        .iter()
        .map(|&u| ManifestClinician {
            email: city.staff[u].email.clone(),
            user_id: city.staff[u].id.clone(),
            profession: city.staff[u].profession.as_str().to_string(),
            patient_ids: city.patients_of[u]
                .iter()
                .take(SAMPLE_PATIENTS_PER_CLINICIAN)
                .map(|&p| city.plans[p].id.clone())
                .collect(),
        })
        .collect();
    Ok(Manifest {
        scale: opts.scale,
        seed: opts.seed,
        password: BENCH_PASSWORD.to_string(),
        database_backend: backend.to_string(),
        counts,
        seconds: started.elapsed().as_secs_f64(),
        wards,
        clinicians,
        notes_sample: sample,
    })
}

/// The caseload's per-patient entries (`caseload_entries`) for every seeded patient, computed
/// by the product itself.
fn fill_caseload_entries(conn: &mut DbConn) -> AppResult<usize> {
    let entries = renkei::caseload::entries::rebuild_all(conn)?;
    // What each member has not read (`/me/unread`), counted once over the loaded notes.
    renkei::notes::unread::rebuild_all(conn)?;
    Ok(entries)
}

/// Drops the secondary indexes of the bulk tables and returns their definitions, read from the
/// database's catalogue so that they come back exactly as the migrations made them.
fn drop_indexes(conn: &mut DbConn) -> Result<Vec<IndexDef>, diesel::result::Error> {
    let tables = BULK_TABLES.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
    let query = match conn {
        // Indexes that back a constraint (primary keys) stay.
        DbConn::Postgres(_) => format!(
            "SELECT indexname::text AS name, indexdef AS sql FROM pg_indexes \
             WHERE schemaname = current_schema() AND tablename IN ({tables}) \
             AND indexname NOT IN (SELECT conname FROM pg_constraint) ORDER BY indexname"
        ),
        // Automatic indexes (primary keys) have no SQL and stay.
        DbConn::Sqlite(_) => format!(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ({tables}) \
             AND sql IS NOT NULL ORDER BY name"
        ),
    };
    let defs: Vec<IndexDef> = diesel::sql_query(query).load(conn)?;
    for ix in &defs {
        conn.batch_execute(&format!("DROP INDEX {}", ix.name))?;
    }
    Ok(defs)
}

#[derive(Default)]
struct City {
    now: NaiveDateTime,
    ids: Ids,
    password_hash: String,
    orgs: Vec<Org>,
    staff: Vec<Staff>,
    dir: Directory,
    plans: Vec<Plan>,
    /// Active patients of each member of staff (indexes into `plans`), for the manifest.
    patients_of: Vec<Vec<usize>>,
    coordinators: Vec<Vec<usize>>,
    sampled: Vec<usize>,
}

impl Default for Ids {
    fn default() -> Ids {
        Ids { base_ms: 0, counter: 0, rng: StdRng::seed_from_u64(0) }
    }
}

impl City {
    /// Organisations, staff, coordinators, patients, consents, care teams and discharge cases.
    fn people(
        &mut self,
        conn: &mut DbConn,
        rng: &mut StdRng,
        scale: f64,
        templates: &[templates::Template],
    ) -> Result<(), diesel::result::Error> {
        let now = self.now;
        let since = now - days(3 * 365);

        // Organisations: first one per ward where every ward needs one, then by population.
        let weights: Vec<u32> = WARDS.iter().map(|w| w.2).collect();
        let mut org_rows = Vec::new();
        let mut service_rows = Vec::new();
        let mut org_wards = Vec::new();
        let mut kinds: Vec<(OrgKind, usize)> =
            ORG_KINDS.iter().map(|&(k, n, min)| (k, ((n * scale).round() as usize).max(min))).collect();
        kinds.push((OrgKind::CityWardOffice, WARDS.len()));
        for (kind, n) in kinds {
            for i in 0..n {
                let ward = if kind == OrgKind::CityWardOffice || (n >= WARDS.len() && i < WARDS.len()) {
                    i % WARDS.len()
                } else {
                    weighted(rng, &weights)
                };
                let id = self.ids.next();
                let name = if kind == OrgKind::CityWardOffice {
                    format!("{}{}", WARDS[ward].1, org_suffix(kind))
                } else {
                    format!("{}{}", name_part(rng, 3).0, org_suffix(kind))
                };
                let created = between(rng, since - days(365), since);
                org_rows.push(OrgRow {
                    id: id.clone(),
                    kind: kind.as_str().into(),
                    name,
                    name_kana: None,
                    ward_code: Some(WARDS[ward].0.into()),
                    address: Some(fake_address(rng, WARDS[ward].1)),
                    phone: Some(FAKE_PHONE.into()),
                    active: true,
                    version: 1,
                    created_at: created,
                    updated_at: created,
                });
                for service in services_of(rng, kind, i) {
                    service_rows.push(ServiceRow { organization_id: id.clone(), service: service.as_str().into() });
                }
                self.orgs.push(Org { id, kind });
                org_wards.push(ward);
            }
        }
        // The operator organisation of the one system administrator who assigned the coordinators.
        let operator_id = self.ids.next();
        org_rows.push(OrgRow {
            id: operator_id.clone(),
            kind: OrgKind::CityWardOffice.as_str().into(),
            name: "ベンチマーク運用事務局".into(),
            name_kana: None,
            ward_code: None,
            address: None,
            phone: Some(FAKE_PHONE.into()),
            active: true,
            version: 1,
            created_at: since,
            updated_at: since,
        });
        put!(conn, organizations::table, org_rows)?;
        put!(conn, organization_services::table, service_rows)?;

        // Staff: u000001@bench.example and so on; the first of each organisation administers it.
        let mut user_rows = Vec::new();
        let admin_id = self.ids.next();
        user_rows.push(self.user_row(
            rng,
            admin_id.clone(),
            &operator_id,
            "admin@bench.example".into(),
            "other",
            "system_admin",
            since,
        ));
        for (o, org) in self.orgs.iter().enumerate() {
            let mut first = true;
            for &(prof, n) in staff_of(org.kind) {
                for _ in 0..n {
                    let u = self.staff.len();
                    let id = self.ids.next();
                    let email = format!("u{:06}@bench.example", u + 1);
                    let role = if first { "org_admin" } else { "member" };
                    first = false;
                    let created = between(rng, since - days(300), since);
                    user_rows.push(self.user_row(
                        rng,
                        id.clone(),
                        &org.id,
                        email.clone(),
                        prof.as_str(),
                        role,
                        created,
                    ));
                    self.dir.by_ward.entry((org.kind, org_wards[o], prof)).or_default().push(u);
                    self.dir.city.entry((org.kind, prof)).or_default().push(u);
                    self.staff.push(Staff { id, email, org: o, profession: prof });
                }
            }
        }
        put!(conn, users::table, user_rows)?;
        self.patients_of = vec![Vec::new(); self.staff.len()];

        // One or two coordinating physicians per ward (two in 川崎区, the ward the caseload
        // benchmark reads), from the ward office's physicians.
        let mut coordinator_rows = Vec::new();
        self.coordinators = vec![Vec::new(); WARDS.len()];
        for (w, ward) in WARDS.iter().enumerate() {
            let physicians =
                self.dir.by_ward.get(&(OrgKind::CityWardOffice, w, Profession::Physician)).cloned().unwrap_or_default();
            let n = if w == 0 { 2 } else { rng.gen_range(1..=2) };
            for &u in physicians.iter().take(n) {
                coordinator_rows.push(CoordinatorRow {
                    ward_code: ward.0.into(),
                    user_id: self.staff[u].id.clone(),
                    assigned_by: admin_id.clone(),
                    assigned_at: since,
                });
                self.coordinators[w].push(u);
            }
        }
        put!(conn, ward_coordinators::table, coordinator_rows)?;

        // Patients, ward by ward in proportion to population.
        let n_patients = ((PATIENTS_AT_SCALE_1 * scale).round() as usize).max(1);
        let per_ward = apportion(n_patients);
        let mut out = PeopleRows::default();
        for (w, &n) in per_ward.iter().enumerate() {
            for _ in 0..n {
                self.patient(rng, w, templates, &mut out);
            }
        }
        put!(conn, patients::table, out.patients)?;
        put!(conn, consents::table, out.consents)?;
        put!(conn, care_team_members::table, out.members)?;
        put!(conn, discharge_cases::table, out.cases)?;
        put!(conn, discharge_tasks::table, out.tasks)?;

        // The manifest's clinicians: nurses, physicians and care managers on at least one team.
        let mut eligible: Vec<usize> = (0..self.staff.len())
            .filter(|&u| {
                matches!(self.staff[u].profession, Profession::Nurse | Profession::Physician | Profession::CareManager)
                    && !self.patients_of[u].is_empty()
                    && self.orgs[self.staff[u].org].kind != OrgKind::CityWardOffice
            })
            .collect();
        eligible.shuffle(rng);
        eligible.truncate(SAMPLE_CLINICIANS);
        eligible.sort_unstable();
        self.sampled = eligible;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn user_row(
        &self,
        rng: &mut StdRng,
        id: String,
        org: &str,
        email: String,
        profession: &str,
        role: &str,
        created: NaiveDateTime,
    ) -> UserRow {
        let (family, given, family_kana, given_kana) = person_name(rng);
        UserRow {
            id,
            organization_id: org.into(),
            email,
            name: format!("{family} {given}"),
            name_kana: Some(format!("{family_kana} {given_kana}")),
            profession: profession.into(),
            role: role.into(),
            active: true,
            locale: "ja".into(),
            password_hash: self.password_hash.clone(),
            password_changed_at: created,
            totp_secret: None,
            totp_enabled: false,
            totp_last_step: None,
            version: 1,
            created_at: created,
            updated_at: created,
            flag_notifications: "all".into(),
        }
    }

    /// One patient: the record, consent, care team, and any discharge case.
    fn patient(&mut self, rng: &mut StdRng, ward: usize, templates: &[templates::Template], out: &mut PeopleRows) {
        let now = self.now;
        let id = self.ids.next();
        let registered = between(rng, now - days(3 * 365), now - days(30));
        let care_level = CareLevel::ALL[weighted(rng, &[2, 2, 8, 8, 20, 20, 15, 13, 12])];
        let support =
            matches!(care_level, CareLevel::None | CareLevel::Applying | CareLevel::Support1 | CareLevel::Support2);
        let heavy = matches!(care_level, CareLevel::Care3 | CareLevel::Care4 | CareLevel::Care5);

        // The team. 地域包括支援センター look after 要支援 patients; 居宅介護支援事業所 the rest.
        let mut members: Vec<Member> = Vec::new();
        let cm_kind = if support { OrgKind::CommunitySupportCenter } else { OrgKind::CareManagementOffice };
        let Some(cm) = self.dir.pick(rng, cm_kind, Profession::CareManager, ward, 0.9) else { return };
        members.push(Member { user: cm, role: TeamRole::CareManager });
        let with_physician = rng.gen_bool(if heavy {
            0.95
        } else if support {
            0.7
        } else {
            0.85
        });
        if with_physician {
            if let Some(pp) = self.dir.pick(rng, OrgKind::Clinic, Profession::Physician, ward, 0.85) {
                members.push(Member { user: pp, role: TeamRole::PrimaryPhysician });
                if rng.gen_bool(0.2) {
                    // 診診連携: the backup physician is from another clinic.
                    let backup = (0..5)
                        .filter_map(|_| self.dir.pick(rng, OrgKind::Clinic, Profession::Physician, ward, 0.7))
                        .find(|&b| self.staff[b].org != self.staff[pp].org);
                    if let Some(b) = backup {
                        members.push(Member { user: b, role: TeamRole::BackupPhysician });
                    }
                }
            }
        }
        let mut station = None;
        if rng.gen_bool(if heavy { 0.85 } else { 0.5 }) {
            if let Some(n) = self.dir.pick(rng, OrgKind::VisitingNurseStation, Profession::Nurse, ward, 0.85) {
                members.push(Member { user: n, role: TeamRole::VisitingNurse });
                station = Some(self.staff[n].org);
            }
        }
        if rng.gen_bool(0.55) {
            if let Some(p) = self.dir.pick(rng, OrgKind::Pharmacy, Profession::Pharmacist, ward, 0.9) {
                members.push(Member { user: p, role: TeamRole::Pharmacist });
            }
        }
        if rng.gen_bool(0.2) {
            if let Some(t) = self.dir.pick(rng, OrgKind::VisitingNurseStation, Profession::Therapist, ward, 0.85) {
                members.push(Member { user: t, role: TeamRole::Therapist });
            }
        }
        if rng.gen_bool(0.1) {
            if let Some(d) = self.dir.pick(rng, OrgKind::DentalClinic, Profession::Dentist, ward, 0.7) {
                members.push(Member { user: d, role: TeamRole::Dentist });
            }
        }
        if let Some(s) = station.filter(|_| rng.gen_bool(0.1)) {
            // A second nurse of the same station, for the station's rota.
            let same: Vec<usize> = self
                .dir
                .city
                .get(&(OrgKind::VisitingNurseStation, Profession::Nurse))
                .map(|v| v.iter().copied().filter(|&u| self.staff[u].org == s).collect())
                .unwrap_or_default();
            if let Some(&n2) = same.iter().find(|&&u| members.iter().all(|m| m.user != u)) {
                members.push(Member { user: n2, role: TeamRole::VisitingNurse });
            }
        }
        // At least three members: a pharmacist, then a visiting nurse.
        for (kind, prof, role) in [
            (OrgKind::Pharmacy, Profession::Pharmacist, TeamRole::Pharmacist),
            (OrgKind::VisitingNurseStation, Profession::Nurse, TeamRole::VisitingNurse),
        ] {
            if members.len() < 3 && !members.iter().any(|m| m.role == role) {
                if let Some(u) = self.dir.pick(rng, kind, prof, ward, 0.9) {
                    members.push(Member { user: u, role });
                }
            }
        }
        members.dedup_by_key(|m| m.user);

        // 3–8 active members: room is kept for hospital staff while a case runs.
        members.truncate(7);

        // Where the patient is now; a discharge case for a few.
        let roll: f64 = rng.gen();
        let (mut status, ended_at) = if roll < 0.02 {
            (PatientStatus::Deceased, Some(between(rng, registered + days(30), now - days(1))))
        } else if roll < 0.03 {
            (PatientStatus::Transferred, Some(between(rng, registered + days(30), now - days(1))))
        } else if roll < 0.04 {
            (PatientStatus::Closed, Some(between(rng, registered + days(30), now - days(1))))
        } else {
            (PatientStatus::Home, None)
        };
        let mut notes_until = ended_at.unwrap_or(now);
        let cm_user = self.staff[cm].id.clone();

        let case_roll: f64 = rng.gen();
        let mut running_case = None;
        if status == PatientStatus::Home && case_roll < 0.03 {
            status = PatientStatus::Hospitalized;
            let admitted = between(rng, now - days(21), now - Duration::hours(6));
            notes_until = admitted;
            running_case = Some((CaseStatus::Open, admitted));
        } else if status == PatientStatus::Home && case_roll < 0.035 {
            running_case = Some((CaseStatus::Discharged, between(rng, now - days(30), now - days(8))));
        }
        if let Some((case_status, admitted)) = running_case {
            if let Some(h) = self.case(rng, &id, ward, &members, case_status, admitted, templates, out) {
                members.push(Member { user: h, role: TeamRole::HospitalStaff });
            }
        }
        // Some patients were in hospital before: a closed case, or a cancelled one.
        if registered < now - days(90) && rng.gen_bool(0.06) {
            let admitted = between(rng, registered + days(7), now - days(60));
            let st = if rng.gen_bool(0.9) { CaseStatus::Closed } else { CaseStatus::Cancelled };
            self.case(rng, &id, ward, &members, st, admitted, templates, out);
        }

        // The record itself.
        let (family, given, family_kana, given_kana) = person_name(rng);
        let age = if rng.gen_bool(0.9) { rng.gen_range(65..=101) } else { rng.gen_range(40..=64) };
        let birth = (now - days(age * 365 + rng.gen_range(0..365))).date();
        let contact = rng.gen_bool(0.85).then(|| {
            let (f, g, _, _) = person_name(rng);
            let rel = ["長女", "長男", "配偶者", "次女", "次男", "姪"][rng.gen_range(0..6)];
            (format!("{f} {g}"), rel.to_string())
        });
        let spo2_scale_2 = rng.gen_bool(0.03);
        out.patients.push(PatientRow {
            id: id.clone(),
            name_kana_search: renkei::patients::kana_search_key(&family_kana, &given_kana),
            family_name: family,
            given_name: given,
            family_name_kana: family_kana,
            given_name_kana: given_kana,
            birth_date: birth,
            sex: if rng.gen_bool(0.58) { "female" } else { "male" }.into(),
            ward_code: WARDS[ward].0.into(),
            address: Some(fake_address(rng, WARDS[ward].1)),
            phone: Some(FAKE_PHONE.into()),
            care_level: care_level.as_str().into(),
            status: status.as_str().into(),
            emergency_contact_relationship: contact.as_ref().map(|c| c.1.clone()),
            emergency_contact_phone: contact.as_ref().map(|_| FAKE_PHONE.to_string()),
            emergency_contact_name: contact.map(|c| c.0),
            spo2_target_88_92: spo2_scale_2,
            registered_by: cm_user.clone(),
            version: if status == PatientStatus::Home { 1 } else { 2 },
            created_at: registered,
            updated_at: ended_at.unwrap_or(registered),
        });

        // Consent (本人同意): most have it; some revoked it; some have none on record yet.
        let consent_roll: f64 = rng.gen();
        if consent_roll < 0.92 {
            let revoked = (consent_roll >= 0.88).then(|| between(rng, registered + days(10), now - days(1)));
            out.consents.push(ConsentRow {
                id: self.ids.next(),
                patient_id: id.clone(),
                scope: if rng.gen_bool(0.3) { "care_team_and_hospital" } else { "care_team" }.into(),
                obtained_from: ["patient", "patient", "patient", "family", "guardian"][rng.gen_range(0..5)].into(),
                obtained_on: jst_date(registered),
                obtained_by: cm_user.clone(),
                note: None,
                revoked_at: revoked,
                revoked_by: revoked.map(|_| cm_user.clone()),
                revoke_reason: revoked.map(|_| "本人の意向により撤回".to_string()),
                created_at: registered,
            });
        }

        // Memberships: the active team, and for a few a member who has left.
        for (i, m) in members.iter().enumerate() {
            let hospital = m.role == TeamRole::HospitalStaff;
            if hospital {
                continue; // written with its case
            }
            let started = if i == 0 { registered } else { between(rng, registered, registered + days(14)) };
            out.members.push(MemberRow {
                id: self.ids.next(),
                patient_id: id.clone(),
                user_id: self.staff[m.user].id.clone(),
                organization_id: self.orgs[self.staff[m.user].org].id.clone(),
                role: m.role.as_str().into(),
                is_lead: i == 0,
                started_on: jst_date(started),
                ended_on: None,
                ended_at: None,
                added_by: cm_user.clone(),
                ended_by: None,
                version: 1,
                created_at: started,
                updated_at: started,
            });
        }
        if rng.gen_bool(0.08) {
            if let Some(former) = self.dir.pick(rng, OrgKind::Pharmacy, Profession::Pharmacist, ward, 0.9) {
                let started = registered;
                let ended = between(rng, registered + days(7), now - days(1));
                out.members.push(MemberRow {
                    id: self.ids.next(),
                    patient_id: id.clone(),
                    user_id: self.staff[former].id.clone(),
                    organization_id: self.orgs[self.staff[former].org].id.clone(),
                    role: TeamRole::Pharmacist.as_str().into(),
                    is_lead: false,
                    started_on: jst_date(started),
                    ended_on: Some(jst_date(ended)),
                    ended_at: Some(ended),
                    added_by: cm_user.clone(),
                    ended_by: Some(cm_user.clone()),
                    version: 2,
                    created_at: started,
                    updated_at: ended,
                });
            }
        }

        let p = self.plans.len();
        for m in &members {
            self.patients_of[m.user].push(p);
        }
        let deteriorating = status == PatientStatus::Home && rng.gen_bool(0.025);
        self.plans.push(Plan {
            id,
            ward,
            registered,
            notes_until,
            members,
            spo2_scale_2,
            on_oxygen: rng.gen_bool(0.05),
            deteriorating,
        });
    }

    /// A discharge case opened by a hospital's staff member, its opener's membership and its
    /// tasks generated from the active templates with the product's deadline rules. Returns the
    /// opener when the membership is still active (open or discharged cases).
    #[allow(clippy::too_many_arguments)]
    fn case(
        &mut self,
        rng: &mut StdRng,
        patient_id: &str,
        ward: usize,
        members: &[Member],
        status: CaseStatus,
        admitted_at: NaiveDateTime,
        templates: &[templates::Template],
        out: &mut PeopleRows,
    ) -> Option<usize> {
        let now = self.now;
        let prof = if rng.gen_bool(0.6) { Profession::SocialWorker } else { Profession::Nurse };
        let opener = self.dir.pick(rng, OrgKind::Hospital, prof, ward, 0.7)?;
        let opener_id = self.staff[opener].id.clone();
        let hospital_id = self.orgs[self.staff[opener].org].id.clone();
        let admitted_on = jst_date(admitted_at);
        let opened = (admitted_at + Duration::minutes(rng.gen_range(30..2 * 24 * 60))).min(now);
        let stay = days(rng.gen_range(7..40));
        let (planned, discharged, closed, cancelled) = match status {
            CaseStatus::Open => {
                (rng.gen_bool(0.65).then(|| admitted_on + days(rng.gen_range(10..35))), None, None, None)
            }
            CaseStatus::Discharged => {
                let d = (now - days(rng.gen_range(1..6))).date();
                (Some(d), Some(d), None, None)
            }
            CaseStatus::Closed => {
                let d = jst_date(admitted_at + stay);
                let closed = (admitted_at + stay + days(rng.gen_range(7..20))).min(now);
                (Some(d), Some(d), Some(closed), None)
            }
            CaseStatus::Cancelled => (None, None, None, Some((opened + days(2)).min(now))),
        };
        let ended = closed.or(cancelled);
        let member_id = self.ids.next();
        out.members.push(MemberRow {
            id: member_id.clone(),
            patient_id: patient_id.into(),
            user_id: opener_id.clone(),
            organization_id: hospital_id.clone(),
            role: TeamRole::HospitalStaff.as_str().into(),
            is_lead: false,
            started_on: jst_date(opened),
            ended_on: ended.map(jst_date),
            ended_at: ended,
            added_by: opener_id.clone(),
            ended_by: ended.map(|_| opener_id.clone()),
            version: if ended.is_some() { 2 } else { 1 },
            created_at: opened,
            updated_at: ended.unwrap_or(opened),
        });
        let last_change = ended.or(discharged.and_then(|d| d.and_hms_opt(3, 0, 0))).unwrap_or(opened).min(now);
        let case = Case {
            id: self.ids.next(),
            patient_id: patient_id.into(),
            hospital_id,
            opened_by: opener_id.clone(),
            opener_member_id: member_id,
            admitted_at: Some(admitted_at),
            admitted_on,
            planned_discharge_on: planned,
            discharged_on: discharged,
            status,
            department: Some(
                ["内科", "整形外科", "呼吸器内科", "循環器内科", "脳神経外科"][rng.gen_range(0..5)].into(),
            ),
            hospital_ward: Some(format!(
                "{}階{}病棟",
                rng.gen_range(3..9),
                ["東", "西", "南", "北"][rng.gen_range(0..4)]
            )),
            reason: Some(["肺炎", "大腿骨頸部骨折", "心不全増悪", "脱水", "尿路感染症"][rng.gen_range(0..5)].into()),
            contact_name: Some({
                let (f, g, _, _) = person_name(rng);
                format!("{f} {g}")
            }),
            contact_phone: Some(FAKE_PHONE.into()),
            cancel_reason: cancelled.map(|_| "転院のため".to_string()),
            closed_at: closed,
            cancelled_at: cancelled,
            version: match status {
                CaseStatus::Open => 1 + i32::from(planned.is_some()),
                CaseStatus::Discharged | CaseStatus::Cancelled => 3,
                CaseStatus::Closed => 4,
            },
            created_at: opened,
            updated_at: last_change,
        };
        // Seeded organisations keep the common business hours.
        let anchors = case.anchors(renkei::calendar::BusinessHours::default()).ok();
        let finished = matches!(status, CaseStatus::Closed | CaseStatus::Cancelled);
        for t in templates {
            let rule = t.rule();
            let due = anchors.as_ref().and_then(|a| deadlines::due_at(&rule, a));
            let assignee = match t.profession {
                Profession::CareManager => members.iter().find(|m| m.role == TeamRole::CareManager),
                Profession::Physician => members.iter().find(|m| m.role == TeamRole::PrimaryPhysician),
                Profession::Nurse => members.iter().find(|m| m.role == TeamRole::VisitingNurse),
                Profession::Pharmacist => members.iter().find(|m| m.role == TeamRole::Pharmacist),
                _ => None,
            }
            .map(|m| m.user)
            .or((t.profession == Profession::SocialWorker).then_some(opener))
            .filter(|_| rng.gen_bool(0.6));
            let overdue = due.is_some_and(|d| d < now);
            let optional = t.key == "special_home_nursing_order";
            let task_status = if status == CaseStatus::Cancelled || (optional && rng.gen_bool(0.6)) {
                TaskStatus::Cancelled
            } else if finished || (overdue && rng.gen_bool(0.7)) || (!overdue && rng.gen_bool(0.15)) {
                TaskStatus::Completed
            } else {
                [TaskStatus::Requested, TaskStatus::Requested, TaskStatus::Accepted, TaskStatus::InProgress]
                    [rng.gen_range(0..4)]
            };
            let done_at = match task_status {
                TaskStatus::Completed | TaskStatus::Cancelled => {
                    let latest = due.unwrap_or(now).min(ended.unwrap_or(now)).min(now);
                    Some(between(rng, opened, latest.max(opened)))
                }
                _ => None,
            };
            let completed = task_status == TaskStatus::Completed;
            out.tasks.push(TaskRow {
                id: self.ids.next(),
                case_id: case.id.clone(),
                patient_id: patient_id.into(),
                template_key: Some(t.key.clone()),
                title: t.title.clone(),
                description: t.note.clone(),
                source: Some(t.source.clone()),
                profession: Some(t.profession.as_str().into()),
                assignee_id: assignee.map(|u| self.staff[u].id.clone()),
                anchor: Some(rule.anchor.as_str().into()),
                offset_days: Some(rule.offset_days),
                due_rule: Some(rule.due_rule.as_str().into()),
                business_hours_rule: Some(rule.business_hours_rule),
                due_at: due,
                status: task_status.as_str().into(),
                status_reason: (task_status == TaskStatus::Cancelled).then(|| "不要のため取消".to_string()),
                completed_at: done_at.filter(|_| completed),
                completed_by: assignee.filter(|_| completed).map(|u| self.staff[u].id.clone()),
                sort_order: t.sort_order,
                created_by: opener_id.clone(),
                version: match task_status {
                    TaskStatus::Requested => 1,
                    TaskStatus::Accepted | TaskStatus::Cancelled => 2,
                    _ => 3,
                },
                created_at: opened,
                updated_at: done_at.unwrap_or(opened),
            });
        }
        out.cases.push(case.into());
        (!finished).then_some(opener)
    }

    /// The notebook: notes with their first versions (some amended), read receipts and the
    /// flags NEWS2 raised, generated on a thread of their own while this one writes them.
    fn notes(&mut self, conn: &mut DbConn, opts: &Options) -> Result<(Vec<ManifestNote>, Vec<FlagRow>), String> {
        let total_expected = (self.plans.len() as f64 * NOTES_PER_PATIENT) as u64;
        let (tx, rx) = mpsc::sync_channel::<Batch>(4);
        let staff: Vec<(String, String, String, Profession)> = self
            .staff
            .iter()
            .map(|s| (s.id.clone(), self.orgs[s.org].id.clone(), s.email.clone(), s.profession))
            .collect();
        let plans = std::mem::take(&mut self.plans);
        let ids = std::mem::take(&mut self.ids);
        let sampled: std::collections::HashSet<usize> = self.sampled.iter().copied().collect();
        let now = self.now;
        let seed = opts.seed;
        let generator = std::thread::spawn(move || {
            let mut g = Generator {
                rng: StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                ids,
                staff,
                now,
                sample: Vec::new(),
                sample_seen: 0,
                flags: Vec::new(),
                batch: Batch::default(),
            };
            for plan in &plans {
                let reader = plan.members.iter().find(|m| sampled.contains(&m.user)).map(|m| m.user);
                g.patient(plan, reader);
                if g.batch.notes.len() >= BATCH_NOTES {
                    let full = std::mem::take(&mut g.batch);
                    if tx.send(full).is_err() {
                        break; // the writer failed; it reports why
                    }
                }
            }
            let _ = tx.send(std::mem::take(&mut g.batch));
            (plans, g.ids, g.sample, g.flags)
        });

        let t = Instant::now();
        let mut written: u64 = 0;
        let mut rows: u64 = 0;
        let result: Result<(), diesel::result::Error> = (|| loop {
            let done = conn.transaction(|c| {
                let mut in_tx = 0;
                while in_tx < NOTES_PER_TRANSACTION {
                    let Ok(batch) = rx.recv() else { return Ok::<bool, diesel::result::Error>(true) };
                    in_tx += batch.notes.len();
                    written += batch.notes.len() as u64;
                    rows += put!(c, notes::table, batch.notes)? as u64;
                    rows += put!(c, note_versions::table, batch.versions)? as u64;
                    rows += put!(c, note_reads::table, batch.reads)? as u64;
                }
                Ok(false)
            })?;
            let secs = t.elapsed().as_secs_f64().max(0.001);
            println!("  notes {written:>10} / ~{total_expected} ({rows} rows, {:.0} rows/s)", rows as f64 / secs);
            if done {
                return Ok(());
            }
        })();
        drop(rx);
        let joined = generator.join().map_err(|_| "the note generator failed".to_string())?;
        result.map_err(err)?;
        let (plans, ids, sample, flags) = joined;
        self.plans = plans;
        self.ids = ids;
        Ok((sample, flags))
    }
}

#[derive(Default)]
struct PeopleRows {
    patients: Vec<PatientRow>,
    consents: Vec<ConsentRow>,
    members: Vec<MemberRow>,
    cases: Vec<CaseRow>,
    tasks: Vec<TaskRow>,
}

fn services_of(rng: &mut StdRng, kind: OrgKind, i: usize) -> Vec<OrgService> {
    use OrgService::*;
    let mut s = Vec::new();
    let mut maybe = |rng: &mut StdRng, p: f64, service: OrgService| {
        if rng.gen_bool(p) {
            s.push(service);
        }
    };
    match kind {
        OrgKind::Clinic => {
            maybe(rng, 0.9, Visits24h);
            maybe(rng, 0.9, Contact24h);
            maybe(rng, 0.6, TerminalCare);
            maybe(rng, 0.5, HomeOxygen);
            maybe(rng, 0.3, DementiaCare);
        }
        OrgKind::Hospital => {
            maybe(rng, 1.0, DischargeSupport);
            // The first five are home-care support hospitals (在宅療養支援病院).
            if i < 5 {
                maybe(rng, 1.0, Visits24h);
                maybe(rng, 1.0, Contact24h);
            }
        }
        OrgKind::Pharmacy => {
            maybe(rng, 1.0, HomeMedicationManagement);
            maybe(rng, 0.15, AsepticPreparation);
        }
        OrgKind::DentalClinic => maybe(rng, 1.0, DentalHomeVisit),
        OrgKind::VisitingNurseStation => {
            maybe(rng, 0.8, Contact24h);
            maybe(rng, 0.6, TerminalCare);
            maybe(rng, 0.4, Rehabilitation);
            maybe(rng, 0.3, PressureUlcerCare);
            maybe(rng, 0.1, Pediatric);
        }
        OrgKind::CareManagementOffice => maybe(rng, 0.2, DementiaCare),
        OrgKind::CommunitySupportCenter | OrgKind::CityWardOffice => {}
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Notes.

/// Notes per batch handed from the generator to the writer, and per transaction.
const BATCH_NOTES: usize = 20_000;
const NOTES_PER_TRANSACTION: usize = 500_000;

#[derive(Default)]
struct Batch {
    notes: Vec<NoteRow>,
    versions: Vec<VersionRow>,
    reads: Vec<ReadRow>,
}

struct Generator {
    rng: StdRng,
    ids: Ids,
    /// (user id, organisation id, e-mail, profession) of each member of staff.
    staff: Vec<(String, String, String, Profession)>,
    now: NaiveDateTime,
    sample: Vec<ManifestNote>,
    sample_seen: u64,
    flags: Vec<FlagRow>,
    batch: Batch,
}

/// Kinds of note in the proportions of a home-care notebook: mostly visits.
const KINDS: [(NoteKind, u32); 9] = [
    (NoteKind::Visit, 650),
    (NoteKind::Phone, 100),
    (NoteKind::Medication, 80),
    (NoteKind::Rehabilitation, 50),
    (NoteKind::Handover, 40),
    (NoteKind::Family, 30),
    (NoteKind::Conference, 20),
    (NoteKind::PhysicianInfoSharing, 20),
    (NoteKind::Other, 10),
];

const VISIT_PHRASES: [&str; 12] = [
    "訪問。バイタル安定。",
    "本日訪問。食事摂取良好。",
    "訪問時やや傾眠傾向あり。",
    "排便コントロール良好。",
    "仙骨部の皮膚状態良好、発赤なし。",
    "服薬確認、飲み忘れなし。",
    "家族より夜間の不眠の訴えあり。",
    "歩行器使用にて室内移動自立。",
    "下肢に軽度浮腫あり、経過観察。",
    "食欲やや低下。水分摂取を促した。",
    "入浴介助実施。皮膚トラブルなし。",
    "痰がらみあり、吸引実施。",
];
const OTHER_PHRASES: [&str; 8] = [
    "家族と電話で状況確認。",
    "次回訪問日を調整。",
    "処方変更について連絡あり。",
    "サービス担当者会議の日程を共有。",
    "福祉用具の追加を検討中。",
    "ショートステイ利用予定を共有。",
    "残薬を確認し一包化を提案。",
    "体調に大きな変化なし。",
];

impl Generator {
    fn patient(&mut self, plan: &Plan, reader: Option<usize>) {
        let rng = &mut self.rng;
        // ~100 notes per patient on average, varied (log-normal with mean 1), at least 5.
        let factor = (0.6 * normal(rng) - 0.18).exp();
        let n = ((NOTES_PER_PATIENT * factor).round() as usize).clamp(5, 800);
        let start = micros(plan.registered);
        let end = micros(plan.notes_until).max(start + 1);
        let mut times: Vec<i64> = (0..n).map(|_| rng.gen_range(start..end)).collect();
        if plan.deteriorating {
            // The latest note, in the last three days, reports the deterioration.
            times.push(micros(self.now - Duration::minutes(rng.gen_range(120..3 * 24 * 60))));
        }
        times.sort_unstable();
        let last = times.len().saturating_sub(1);
        // Flags: at most one open at a time, as the product keeps it.
        let mut flag_open_until: Option<NaiveDateTime> = None;
        for (i, &at) in times.iter().enumerate() {
            let force = plan.deteriorating && i == last;
            self.note(plan, from_micros(at), force, reader, &mut flag_open_until);
        }
    }

    fn author(&mut self, plan: &Plan, kind: NoteKind) -> usize {
        use TeamRole::*;
        let prefs: &[(TeamRole, u32)] = match kind {
            NoteKind::Visit => &[
                (VisitingNurse, 45),
                (PrimaryPhysician, 20),
                (CareManager, 15),
                (Pharmacist, 8),
                (Therapist, 8),
                (Dentist, 2),
                (BackupPhysician, 2),
            ],
            NoteKind::Phone => &[(CareManager, 60), (VisitingNurse, 25), (PrimaryPhysician, 15)],
            NoteKind::Medication => &[(Pharmacist, 80), (PrimaryPhysician, 10), (VisitingNurse, 10)],
            NoteKind::Rehabilitation => &[(Therapist, 80), (VisitingNurse, 20)],
            NoteKind::PhysicianInfoSharing => &[(PrimaryPhysician, 1)],
            _ => &[(CareManager, 60), (VisitingNurse, 40)],
        };
        let present: Vec<(usize, u32)> = prefs
            .iter()
            .flat_map(|&(role, w)| plan.members.iter().filter(move |m| m.role == role).map(move |m| (m.user, w)))
            .collect();
        if present.is_empty() {
            return plan.members[0].user;
        }
        let weights: Vec<u32> = present.iter().map(|p| p.1).collect();
        present[weighted(&mut self.rng, &weights)].0
    }

    fn note(
        &mut self,
        plan: &Plan,
        occurred: NaiveDateTime,
        force_deterioration: bool,
        reader: Option<usize>,
        flag_open_until: &mut Option<NaiveDateTime>,
    ) {
        let now = self.now;
        let weights: Vec<u32> = KINDS.iter().map(|k| k.1).collect();
        let mut kind = if force_deterioration { NoteKind::Visit } else { KINDS[weighted(&mut self.rng, &weights)].0 };
        if kind == NoteKind::PhysicianInfoSharing && !plan.members.iter().any(|m| m.role == TeamRole::PrimaryPhysician)
        {
            kind = NoteKind::Visit;
        }
        let author = self.author(plan, kind);
        let (author_id, org_id, _, profession) = self.staff[author].clone();
        let rng = &mut self.rng;
        let created = (occurred + Duration::minutes(rng.gen_range(5..360))).min(now);
        let note = notebook::Note {
            id: self.ids.next(),
            patient_id: plan.id.clone(),
            kind,
            author_id: author_id.clone(),
            organization_id: org_id.clone(),
            author_profession: profession,
            created_at: created,
        };

        // Vital signs on about half the visits (a third of all notes).
        let clinical = matches!(profession, Profession::Nurse | Profession::Physician | Profession::Therapist);
        let vitals = (force_deterioration || (kind == NoteKind::Visit && clinical && rng.gen_bool(0.7)))
            .then(|| vitals(rng, plan, force_deterioration));
        let mut text = String::new();
        let phrases: &[&str] = if kind == NoteKind::Visit { &VISIT_PHRASES } else { &OTHER_PHRASES };
        for _ in 0..rng.gen_range(1..=3) {
            text.push_str(phrases[rng.gen_range(0..phrases.len())]);
        }
        let soap = (kind == NoteKind::Visit && rng.gen_bool(0.3)).then(|| Soap {
            subjective: Some("「特に変わりないです」".into()),
            objective: Some(VISIT_PHRASES[rng.gen_range(0..VISIT_PHRASES.len())].into()),
            assessment: Some("状態は概ね安定している。".into()),
            plan: Some("現在のケアを継続し、次回訪問で再評価。".into()),
        });
        let physician = (kind == NoteKind::PhysicianInfoSharing).then(|| {
            let changed = rng.gen_bool(0.2);
            PhysicianInfo {
                next_visit_on: jst_date(occurred) + days(14),
                treatment_policy_changed: changed,
                treatment_policy_summary: changed.then(|| "利尿薬を減量し経過をみる。".to_string()),
                cautions_for_team: "転倒に注意。SpO2 低下時は連絡を。".into(),
            }
        });
        let content = Content { occurred_at: occurred, text, soap, vitals: vitals.clone(), physician };
        // The product's own constructor: NEWS2 is scored and stored exactly as a POST would.
        let first = notebook::Version::new(&note, 1, content.clone(), &author_id, None, created);
        if rng.gen_bool(0.02) {
            // An amendment by the author a little later (訂正): version 2 with a reason.
            let at = (created + Duration::minutes(rng.gen_range(10..3 * 24 * 60))).min(now);
            let mut amended = content;
            amended.text.push_str("(追記)");
            let v2 = notebook::Version::new(&note, 2, amended, &author_id, Some("記載漏れの追記".into()), at);
            self.batch.versions.push(v2.into());
        }
        self.batch.versions.push(first.into());

        // Read receipts: the author at once (as the product records), others of the team often
        // for older notes and less for the newest.
        self.batch.reads.push(ReadRow {
            note_id: note.id.clone(),
            user_id: author_id.clone(),
            patient_id: plan.id.clone(),
            read_at: created,
        });
        let age_days = (now - created).num_days();
        let p_read = if age_days > 30 {
            0.35
        } else if age_days > 7 {
            0.25
        } else {
            0.12
        };
        for m in &plan.members {
            // Hospital staff join at admission, after the notebook they could have read.
            if m.user != author && m.role != TeamRole::HospitalStaff && self.rng.gen_bool(p_read) {
                let read_at = (created + Duration::minutes(self.rng.gen_range(1..5 * 24 * 60))).min(now);
                self.batch.reads.push(ReadRow {
                    note_id: note.id.clone(),
                    user_id: self.staff[m.user].0.clone(),
                    patient_id: plan.id.clone(),
                    read_at,
                });
            }
        }

        // A flag when NEWS2 calls for one and none is open, as the product raises them.
        if let Some(v) = &vitals {
            let score = news2::score(v);
            if let Some(level) = score.alert_level() {
                if flag_open_until.is_none_or(|until| until < created) {
                    *flag_open_until = Some(self.flag(plan, &note, &score, level, author));
                }
            }
        }

        // The manifest's sample: a reservoir of notes the sampled reader may open.
        if let Some(r) = reader {
            self.sample_seen += 1;
            let entry = ManifestNote {
                note_id: note.id.clone(),
                patient_id: plan.id.clone(),
                reader_email: self.staff[r].2.clone(),
            };
            if self.sample.len() < SAMPLE_NOTES {
                self.sample.push(entry);
            } else {
                let j = self.rng.gen_range(0..self.sample_seen);
                if (j as usize) < SAMPLE_NOTES {
                    self.sample[j as usize] = entry;
                }
            }
        }
        self.batch.notes.push(NoteRow {
            id: note.id,
            patient_id: note.patient_id,
            kind: note.kind.into(),
            author_id: note.author_id,
            organization_id: note.organization_id,
            author_profession: note.author_profession.into(),
            created_at: note.created_at,
        });
    }

    /// A NEWS2 flag from this note; returns until when it stays open. Flags of the last three
    /// days are still open (active or acknowledged), older ones were acknowledged and resolved.
    fn flag(
        &mut self,
        plan: &Plan,
        note: &notebook::Note,
        score: &news2::News2,
        level: AlertLevel,
        author: usize,
    ) -> NaiveDateTime {
        let now = self.now;
        let rng = &mut self.rng;
        let raised = note.created_at;
        let (ja, en) = score.trigger_description();
        let severity = renkei::flags::severity_of(level);
        let clinician = plan
            .members
            .iter()
            .find(|m| matches!(m.role, TeamRole::PrimaryPhysician | TeamRole::VisitingNurse))
            .map_or(author, |m| m.user);
        let by = self.staff[clinician].0.clone();
        let recent = raised > now - days(3);
        let acked = !recent || rng.gen_bool(0.4);
        let ack_at = (raised + Duration::minutes(rng.gen_range(10..6 * 60))).min(now);
        let resolved_at = (!recent).then(|| (ack_at + Duration::hours(rng.gen_range(12..72))).min(now));
        let status = if resolved_at.is_some() {
            "resolved"
        } else if acked {
            "acknowledged"
        } else {
            "active"
        };
        self.flags.push(FlagRow {
            id: self.ids.next(),
            patient_id: plan.id.clone(),
            severity: severity.as_str().into(),
            status: status.into(),
            source: "news2".into(),
            source_note_id: Some(note.id.clone()),
            reason: format!("{ja}\n{en}"),
            raised_by: Some(note.author_id.clone()),
            raised_at: raised,
            acknowledged_by: acked.then(|| by.clone()),
            acknowledged_at: acked.then_some(ack_at),
            acknowledge_note: acked.then(|| "確認し、訪問で再評価します。".to_string()),
            resolved_by: resolved_at.map(|_| by.clone()),
            resolved_at,
            resolve_note: resolved_at.map(|_| "状態改善を確認。".to_string()),
            // An unacknowledged seeded flag has already run through its escalation steps, so that
            // a server started on the seeded database does not send a burst of escalation e-mails.
            escalation_level: if acked { 0 } else { 2 },
            next_escalation_at: None,
            // Raised, then acknowledged and resolved — or escalated twice.
            version: if status == "acknowledged" { 2 } else { 3 },
            updated_at: resolved_at.or(acked.then_some(ack_at)).unwrap_or(raised),
        });
        resolved_at.unwrap_or(now + days(1))
    }
}

/// Vital signs of a home visit: mostly within normal limits, sometimes off, and clearly off for
/// a deterioration. Some are partial (respiration rate is the one most often not counted).
fn vitals(rng: &mut StdRng, plan: &Plan, deteriorating: bool) -> Vitals {
    let ill = deteriorating || rng.gen_bool(0.002);
    let unwell = !ill && rng.gen_bool(0.03);
    let tenth = |x: f64| (x * 10.0).round() / 10.0;
    let int = |x: f64, lo: i32, hi: i32| (x.round() as i32).clamp(lo, hi);
    let (temp, sbp, pulse, rr, spo2_drop, confused) = if ill {
        (
            38.0 + 1.2 * rng.gen::<f64>(),
            95.0 + 15.0 * rng.gen::<f64>(),
            100.0 + 30.0 * rng.gen::<f64>(),
            21.0 + 6.0 * rng.gen::<f64>(),
            3.0 + 3.0 * rng.gen::<f64>(),
            rng.gen_bool(0.3),
        )
    } else if unwell {
        // A fever or a fast pulse that a visit notices: mostly low to medium NEWS2.
        (
            37.3 + 1.2 * rng.gen::<f64>(),
            110.0 + 25.0 * rng.gen::<f64>(),
            85.0 + 25.0 * rng.gen::<f64>(),
            18.0 + 5.0 * rng.gen::<f64>(),
            2.0 * rng.gen::<f64>(),
            false,
        )
    } else {
        (
            36.5 + 0.3 * normal(rng),
            128.0 + 15.0 * normal(rng),
            74.0 + 9.0 * normal(rng),
            16.0 + 2.0 * normal(rng),
            0.0,
            rng.gen_bool(0.005),
        )
    };
    let spo2 =
        if plan.spo2_scale_2 { 90.0 + 1.5 * normal(rng) - spo2_drop } else { 96.8 + 1.2 * normal(rng) - spo2_drop };
    let mut v = Vitals {
        temperature: Some(tenth(temp).clamp(33.0, 42.0)),
        systolic_bp: Some(int(sbp, 70, 220)),
        diastolic_bp: Some(int(sbp * 0.6 + 4.0 * normal(rng), 40, 130)),
        pulse: Some(int(pulse, 35, 180)),
        respiratory_rate: Some(int(rr, 8, 40)),
        spo2: Some(int(spo2, 70, 100)),
        spo2_scale: Some(if plan.spo2_scale_2 { 2 } else { 1 }),
        spo2_scale_reason: None,
        on_oxygen: Some(plan.on_oxygen),
        consciousness: Some(if confused { Consciousness::C } else { Consciousness::A }),
    };
    if !deteriorating {
        if rng.gen_bool(0.15) {
            v.respiratory_rate = None;
        }
        if rng.gen_bool(0.05) {
            v.consciousness = None;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wards_get_their_share_of_the_city() {
        let shares = apportion(100_000);
        assert_eq!(shares.iter().sum::<usize>(), 100_000);
        // 川崎区, the ward the caseload benchmark reads: ~15,000 patients.
        assert!((14_500..=15_500).contains(&shares[0]), "{shares:?}");
        assert_eq!(apportion(60).iter().sum::<usize>(), 60);
    }

    #[test]
    fn ids_are_ordered_uuidv7() {
        let mut ids = Ids { base_ms: 1_800_000_000_000, counter: 0, rng: StdRng::seed_from_u64(1) };
        let all: Vec<String> = (0..10_000).map(|_| ids.next()).collect();
        for pair in all.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
        }
        let parsed = uuid::Uuid::parse_str(&all[0]).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
    }

    #[test]
    fn names_are_valid_katakana_readings() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..1_000 {
            let (family, given, family_kana, given_kana) = person_name(&mut rng);
            assert!(renkei::vocab::is_katakana_name(&family_kana), "{family_kana}");
            assert!(renkei::vocab::is_katakana_name(&given_kana), "{given_kana}");
            assert_eq!(family.chars().count(), family_kana.chars().count());
            assert_eq!(given.chars().count(), given_kana.chars().count());
        }
    }
}
