//! What the console's pages show, read through the same domain functions, access decisions and
//! audit records as the API's reads (`GET /me/flags`, `/me/tasks`, `/me/unread`,
//! `/patients/{id}`, its care team, flags, timeline and vitals): every read is audited in the
//! transaction that reads it, before any page leaves.

use actix_web::http::StatusCode;
use chrono::Duration;

use super::pages::{
    CasePage, CaseTaskLine, CaseloadLine, Choice, ConferenceLine, FlagLine, Frame, MemberLine, MyPage, NoteForm,
    PatientPage, TaskLine, TimelineLine, TotpPage, UnreadLine, WardLink, WardPage,
};
use super::{chart, qr, text};
use crate::access::{self, Need};
use crate::api::{self, PageQuery};
use crate::audit::{self, Action, Event, Resource};
use crate::auth::CurrentUser;
use crate::caseload::{self, CaseloadQuery, SortKey};
use crate::db::{now, DbConn};
use crate::discharge::workflow::{self, Step, TaskMove};
use crate::discharge::{CaseStatus, TaskStatus};
use crate::error::{AppResult, Lang};
use crate::flags::EscalationLimits;
use crate::flags::FlagView;
use crate::idempotency::{self, Answer};
use crate::mail::Mailer;
use crate::notes::timeline::{self, Position};
use crate::notes::vitals::Consciousness;
use crate::vocab::{CareLevel, FlagStatus, InvitationStatus, NoteKind, PatientStatus};
use crate::{discharge, flags, notes, patients, wards};

/// Items of a timeline page.
pub const TIMELINE_PAGE: i64 = 20;
/// Days of vital signs on the patient page (as `GET /patients/{id}/vitals` by default).
pub const VITALS_DAYS: i64 = 30;

pub fn frame(lang: Lang, me: &CurrentUser, csrf: String) -> Frame {
    Frame { t: text::texts(lang), user_name: me.name.clone(), csrf }
}

fn flag_line(lang: Lang, f: FlagView) -> FlagLine {
    FlagLine {
        severity: f.severity.label(lang),
        severity_key: f.severity.as_str(),
        status: f.status.label(lang),
        active: f.status == FlagStatus::Active,
        raised_at: text::moment(lang, f.raised_at),
        patient_name: format!("{} {}", f.patient_family_name, f.patient_given_name),
        reason: f.reason,
        acknowledge_note: f.acknowledge_note.unwrap_or_default(),
        id: f.id,
        patient_id: f.patient_id,
    }
}

/// マイページ: my open flags (most severe first), my tasks (overdue first), unread notes.
pub fn my_page(conn: &mut DbConn, me: &CurrentUser, lang: Lang, csrf: String) -> AppResult<MyPage> {
    // As `GET /me/flags`.
    let open = flags::open_for_member(conn, &me.id)?;
    let reads =
        open.iter().map(|f| Event::new(Action::Read, Resource::Flag, Some(&f.id), Some(&f.patient_id))).collect();
    audit::record_all(conn, me, reads)?;
    // As `GET /me/tasks`, first page.
    let limit = api::DEFAULT_LIMIT;
    let rows = discharge::tasks::mine(conn, &me.id, None, limit)?;
    let reads = rows
        .iter()
        .take(limit as usize)
        .map(|t| Event::new(Action::Read, Resource::DischargeTask, Some(&t.id), Some(&t.patient_id)).detail("me_tasks"))
        .collect();
    audit::record_all(conn, me, reads)?;
    let mut tasks = discharge::tasks::views(conn, rows, now())?;
    tasks.truncate(limit as usize);
    // Overdue first, otherwise in the list's order (by deadline).
    tasks.sort_by_key(|t| !t.overdue);
    // As `GET /me/unread`, first page.
    let unread = notes::reads::summary(conn, &me.id, &PageQuery::default())?;
    let reads = unread
        .items
        .iter()
        .map(|p| Event::new(Action::Read, Resource::Note, None, Some(&p.patient_id)).detail("unread"))
        .collect();
    audit::record_all(conn, me, reads)?;
    // The wards the reader coordinates (their caseloads are read, and audited, on their pages).
    let wards = wards::coordinated_by(conn, &me.id)?
        .into_iter()
        .map(|w| WardLink { name: ward_name(lang, &w), code: w.code })
        .collect();
    let circles = circles(conn, me, lang)?;
    Ok(MyPage {
        frame: frame(lang, me, csrf),
        circles,
        wards,
        flags: open.into_iter().map(|f| flag_line(lang, f)).collect(),
        tasks: tasks
            .into_iter()
            .map(|t| TaskLine {
                due: t.due_at.map(|d| text::moment(lang, d)).unwrap_or_else(|| "—".into()),
                overdue: t.overdue,
                status: t.status.label(lang),
                title: t.title,
                id: t.id,
                case_id: t.case_id,
                patient_id: t.patient_id,
            })
            .collect(),
        unread_total: unread.total_unread,
        unread: unread
            .items
            .into_iter()
            .map(|p| UnreadLine {
                patient_name: format!("{} {}", p.family_name, p.given_name),
                count: p.unread_count,
                newest: p
                    .newest
                    .into_iter()
                    .map(|n| format!("{} {}: {}", text::moment(lang, n.occurred_at), n.author_name, n.excerpt))
                    .collect(),
                patient_id: p.patient_id,
            })
            .collect(),
    })
}

/// The patient page: header, care team, flags, vital-sign charts, one page of the timeline.
/// A patient outside the caller's scope fails exactly as a missing one (`access::patient`).
pub fn patient_page(
    conn: &mut DbConn,
    me: &CurrentUser,
    lang: Lang,
    csrf: String,
    patient_id: &str,
    after: Option<Position>,
) -> AppResult<PatientPage> {
    // As `GET /patients/{id}`.
    let (patient, relation) = access::patient(conn, me, patient_id, Need::Read, Resource::Patient)?;
    audit::record(conn, me, Event::new(Action::Read, Resource::Patient, Some(patient_id), Some(patient_id)))?;
    let note_form = access::offers_note_form(&patient, &relation).then(|| note_form(lang));
    let family_channel = relation.allows(Need::FamilyChannel);
    let view = patient.view(patients::consents::state(conn, patient_id)?);
    let paged = after.is_some();
    // As `GET /patients/{id}/care-team`; a reader who may not see the team sees no team.
    let team = match access::patient(conn, me, patient_id, Need::ReadTeam, Resource::CareTeam) {
        Ok(_) => {
            audit::record(conn, me, Event::new(Action::Read, Resource::CareTeam, None, Some(patient_id)))?;
            patients::team::list(conn, patient_id, false)?
        }
        Err(e) if e.status() == StatusCode::NOT_FOUND => Vec::new(),
        Err(e) => return Err(e),
    };
    // The members' organisations' numbers, from the directory.
    let organizations: Vec<String> = team.iter().map(|m| m.organization_id.clone()).collect();
    let phones = crate::orgs::phones_of(conn, &organizations)?;
    // As `GET /patients/{id}/flags`.
    audit::record(conn, me, Event::new(Action::Read, Resource::Flag, None, Some(patient_id)))?;
    let mut flag_views = flags::list_for_patient(conn, patient_id, None)?;
    flag_views.retain(|f| matches!(f.status, FlagStatus::Active | FlagStatus::Acknowledged));
    // As `GET /patients/{id}/vitals`.
    audit::record(conn, me, Event::new(Action::Read, Resource::Vitals, None, Some(patient_id)))?;
    let until = now();
    let since = until - Duration::days(VITALS_DAYS);
    let trend = notes::trends::trend(conn, patient_id.to_string(), since, None)?;
    // As `GET /patients/{id}/timeline`.
    audit::record(conn, me, Event::new(Action::Read, Resource::Timeline, None, Some(patient_id)))?;
    let items = timeline::page(conn, patient_id, after.as_ref(), TIMELINE_PAGE)?;
    let page = api::page(items, TIMELINE_PAGE, |i| i.position().encode());
    Ok(PatientPage {
        frame: frame(lang, me, csrf),
        id: view.id.clone(),
        name: format!("{} {}", view.family_name, view.given_name),
        kana: format!("{} {}", view.family_name_kana, view.given_name_kana),
        age: view.age,
        birth_date: text::legal_date(lang, view.birth_date),
        care_level: view.care_level.label(lang),
        status: view.status.label(lang),
        consent: view.consent.state.label(lang),
        consent_missing: view.consent.missing,
        team: team
            .into_iter()
            .map(|m| {
                let phone = phones.get(&m.organization_id).cloned().unwrap_or_default();
                MemberLine {
                    name: m.user_name,
                    role: m.role.label(lang),
                    organization: m.organization_name,
                    tel: text::tel(&phone),
                    phone,
                    lead: m.is_lead,
                }
            })
            .collect(),
        flags: flag_views.into_iter().map(|f| flag_line(lang, f)).collect(),
        charts: chart::charts(lang, &trend.series, since, until, view.spo2_target_88_92),
        timeline: page
            .items
            .into_iter()
            .map(|i| TimelineLine {
                at: text::moment(lang, i.at),
                who: i.actor_name.unwrap_or_default(),
                summary: match lang {
                    Lang::Ja => i.summary,
                    Lang::En => i.summary_en,
                },
            })
            .collect(),
        older: page.next_cursor,
        paged,
        note_form,
        family_channel,
    })
}

/// The place in the timeline a patient page's `cursor` names (422 naming `cursor` for one no
/// page handed out).
pub fn timeline_position(cursor: Option<&str>) -> AppResult<Option<Position>> {
    match cursor {
        None => Ok(None),
        Some(c) => PageQuery { limit: None, cursor: Some(c.to_string()) }
            .after()?
            .and_then(|p| Position::decode(&p))
            .map(Some)
            .ok_or_else(api::invalid_cursor),
    }
}

/// The kinds of note the console's form offers: all but the physician's information-sharing
/// note, whose required items (the next visit, the treatment policy) the API takes.
const FORM_NOTE_KINDS: [NoteKind; 8] = [
    NoteKind::Visit,
    NoteKind::Phone,
    NoteKind::Medication,
    NoteKind::Rehabilitation,
    NoteKind::Conference,
    NoteKind::Handover,
    NoteKind::Family,
    NoteKind::Other,
];

fn note_form(lang: Lang) -> NoteForm {
    let consciousness = [
        (Consciousness::A, "A: 清明", "A: alert"),
        (Consciousness::C, "C: 新たな混乱", "C: new confusion"),
        (Consciousness::V, "V: 声に反応", "V: responds to voice"),
        (Consciousness::P, "P: 痛みに反応", "P: responds to pain"),
        (Consciousness::U, "U: 反応なし", "U: unresponsive"),
    ];
    NoteForm {
        key: crate::db::new_id(),
        kinds: FORM_NOTE_KINDS
            .iter()
            .map(|k| Choice { value: k.as_str(), label: k.label(lang), selected: *k == NoteKind::Visit })
            .collect(),
        consciousness: consciousness
            .iter()
            .map(|(c, ja, en)| Choice {
                value: c.as_str(),
                label: match lang {
                    Lang::Ja => ja,
                    Lang::En => en,
                },
                selected: false,
            })
            .collect(),
        now: (now() + Duration::hours(9)).format("%Y-%m-%dT%H:%M").to_string(),
    }
}

/// A note sent from the patient page's form: `key` is the form's `Idempotency-Key`, and
/// `fingerprint` the form's, so that the key sent again with another note is refused.
pub struct NoteSubmission {
    pub key: String,
    pub fingerprint: String,
    pub kind: NoteKind,
    pub draft: notes::writing::Draft,
}

/// A note posted from the patient page, as `POST /patients/{id}/notes` with the form's key as
/// its `Idempotency-Key`: the same form sent twice posts one note. Answers the patient's id.
pub fn post_note(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    limits: &EscalationLimits,
    patient_id: &str,
    note: NoteSubmission,
) -> AppResult<String> {
    let patient = access::post_note(conn, me, patient_id, note.kind)?;
    let answer = idempotency::once(conn, &me.id, Some(&note.key), &note.fingerprint, |conn| {
        let listed = notes::writing::post(conn, me, mailer, limits, &patient, note.kind, note.draft)?;
        Answer::json(StatusCode::CREATED, &serde_json::json!({ "id": listed.note.id }))
    })?;
    answer.audit_replay(conn, me, Resource::Note, &patient.id)?;
    Ok(patient.id)
}

/// Acknowledges a flag, as `POST /flags/{id}/acknowledge`; answers the flag's patient.
pub fn acknowledge_flag(conn: &mut DbConn, me: &CurrentUser, flag_id: &str, note: Option<&str>) -> AppResult<String> {
    let flag = access::flag_to_act_on(conn, me, flag_id)?;
    if !flags::acknowledge(conn, flag_id, &me.id, note, now())? {
        return Err(flags::not_open());
    }
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::Flag, Some(&flag.id), Some(&flag.patient_id)).detail("acknowledged"),
    )?;
    Ok(flag.patient_id)
}

/// Resolves an open flag with a note, as `POST /flags/{id}/resolve`; answers the flag's patient.
pub fn resolve_flag(conn: &mut DbConn, me: &CurrentUser, flag_id: &str, note: &str) -> AppResult<String> {
    let flag = access::flag_to_act_on(conn, me, flag_id)?;
    if !flags::resolve(conn, flag_id, &me.id, note, FlagStatus::Resolved, now())? {
        return Err(flags::not_open());
    }
    audit::record(
        conn,
        me,
        Event::new(Action::Update, Resource::Flag, Some(&flag.id), Some(&flag.patient_id)).detail("resolved"),
    )?;
    Ok(flag.patient_id)
}

/// The patient of a flag the caller may read (an e-mail's link to a flag).
pub fn patient_of_flag(conn: &mut DbConn, me: &CurrentUser, flag_id: &str) -> AppResult<String> {
    let (flag, _) = access::flag(conn, me, flag_id, Need::Read)?;
    Ok(flag.patient_id)
}

fn ward_name(lang: Lang, w: &wards::Ward) -> String {
    match lang {
        Lang::Ja => w.name.clone(),
        Lang::En => w.name_en.clone(),
    }
}

/// Rows of a caseload page in the console.
pub const CASELOAD_PAGE: i64 = 50;

/// The filters and sort of a caseload query as a query string (no paging), for the page's
/// links: the next page, the CSV download.
pub fn caseload_filters(q: &CaseloadQuery) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    let flags = [
        ("has_active_flag", q.has_active_flag),
        ("no_home_physician", q.no_home_physician),
        ("open_discharge_case", q.open_discharge_case),
        ("overdue_tasks", q.overdue_tasks),
    ];
    for (name, on) in flags {
        if on == Some(true) {
            out.append_pair(name, "true");
        }
    }
    if let Some(d) = q.no_visit_days {
        out.append_pair("no_visit_days", &d.to_string());
    }
    if let Some(c) = q.care_level {
        out.append_pair("care_level", c.as_str());
    }
    if let Some(s) = q.status {
        out.append_pair("status", s.as_str());
    }
    if let Some(s) = &q.sort {
        out.append_pair("sort", s);
    }
    if let Some(o) = &q.order {
        out.append_pair("order", o);
    }
    out.finish()
}

fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// A ward's caseload page for its coordinating physicians: the API's filters and sorts, a page
/// of rows, the ward's counts. Read and audited as `GET /wards/{code}/caseload`; anyone else
/// gets the same 404 as for a ward that does not exist.
pub fn ward_page(
    conn: &mut DbConn,
    me: &CurrentUser,
    lang: Lang,
    csrf: String,
    code: &str,
    q: CaseloadQuery,
) -> AppResult<WardPage> {
    let t = text::texts(lang);
    let request = CaseloadQuery { limit: Some(CASELOAD_PAGE), ..q.clone() }.request()?;
    let paged = request.offset > 0;
    let page = caseload::read_page(conn, me, code, request)?;
    let ward = wards::find(conn, code)?.ok_or_else(crate::error::AppError::not_found)?;
    let ward_name = ward_name(lang, &ward);
    let base = format!("/console/wards/{code}");
    let filters = caseload_filters(&q);
    let next = page.next_cursor.as_ref().map(|c| {
        let mut query = form_urlencoded::Serializer::new(filters.clone());
        query.append_pair("cursor", c);
        with_query(&base, &query.finish())
    });
    let s = &page.summary;
    let counts = [
        s.patients,
        s.with_active_flag,
        s.no_home_physician,
        s.no_visit_14_days,
        s.open_discharge_cases,
        s.with_overdue_tasks,
        s.consent_missing,
    ];
    let summary_svg = chart::summary_bars(lang, &format!("{} — {ward_name}", t.summary), &t.summary_labels, &counts);
    let (sort, descending) = match q.sort.as_deref().and_then(SortKey::parse) {
        Some(k) => (k, q.order.as_deref() == Some("desc")),
        None => (SortKey::default(), q.order.as_deref() == Some("desc")),
    };
    let rows = page
        .items
        .into_iter()
        .map(|r| {
            let case = r.open_discharge_case.as_ref();
            CaseloadLine {
                name: format!("{} {}", r.family_name, r.given_name),
                kana: format!("{} {}", r.family_name_kana, r.given_name_kana),
                age: r.age,
                care_level: r.care_level.label(lang),
                status: r.status.label(lang),
                flagged: r.active_flags > 0,
                flags: match r.highest_flag_severity {
                    Some(sev) if r.active_flags > 0 => format!("{} ({})", r.active_flags, sev.label(lang)),
                    _ => r.active_flags.to_string(),
                },
                news2: r
                    .latest_news2
                    .as_ref()
                    .map(|n| format!("{} ({})", n.total, text::moment(lang, n.at)))
                    .unwrap_or_else(|| "—".into()),
                last_visit: match r.days_since_last_visit {
                    Some(d) => match lang {
                        Lang::Ja => format!("{d}{}", t.days_ago),
                        Lang::En => format!("{d} {}", t.days_ago),
                    },
                    None => t.never.to_string(),
                },
                discharge: case
                    .map(|c| {
                        let mut out = c.status.label(lang).to_string();
                        if let Some(d) = c.planned_discharge_on {
                            out.push_str(&format!(" — {} {}", t.planned_discharge, text::date(lang, d)));
                        }
                        if c.overdue_tasks > 0 {
                            out.push_str(&format!(" — {} {}", t.overdue_count, c.overdue_tasks));
                        }
                        out
                    })
                    .unwrap_or_else(|| "—".into()),
                no_physician: !r.has_primary_physician,
                consent: r.consent.state.label(lang),
                consent_missing: r.consent.missing,
                id: r.id,
            }
        })
        .collect();
    Ok(WardPage {
        frame: frame(lang, me, csrf),
        code: code.to_string(),
        ward_name,
        has_active_flag: q.has_active_flag == Some(true),
        no_home_physician: q.no_home_physician == Some(true),
        open_discharge_case: q.open_discharge_case == Some(true),
        overdue_tasks: q.overdue_tasks == Some(true),
        no_visit_days: q.no_visit_days.map(|d| d.to_string()).unwrap_or_default(),
        care_levels: CareLevel::ALL
            .iter()
            .map(|c| Choice { value: c.as_str(), label: c.label(lang), selected: q.care_level == Some(*c) })
            .collect(),
        statuses: PatientStatus::ALL
            .iter()
            .map(|c| Choice { value: c.as_str(), label: c.label(lang), selected: q.status == Some(*c) })
            .collect(),
        sorts: SortKey::NAMES
            .iter()
            .zip(t.sort_names)
            .map(|(value, label)| Choice { value, label, selected: SortKey::parse(value) == Some(sort) })
            .collect(),
        orders: vec![
            Choice { value: "asc", label: t.ascending, selected: !descending },
            Choice { value: "desc", label: t.descending, selected: descending },
        ],
        summary_svg,
        rows,
        next,
        first: paged.then(|| with_query(&base, &filters)),
        csv: with_query(&format!("{base}/caseload.csv"), &filters),
    })
}

/// A discharge case's page: the case, its tasks with deadlines and who does them (each open
/// task with the moves its status may make), its conferences. Read and audited as
/// `GET /discharge-cases/{id}`, its tasks and its conferences; a case of a patient outside the
/// reader's scope fails exactly as a missing one (`access::case`).
pub fn case_page(conn: &mut DbConn, me: &CurrentUser, lang: Lang, csrf: String, case_id: &str) -> AppResult<CasePage> {
    let t = text::texts(lang);
    let (case, relation) = access::case(conn, me, case_id, Need::Read)?;
    // The moves a form offers are those the reader may make; the API decides each again.
    let manages = access::manages_case(me, &case, &relation);
    let works_on_tasks = relation.allows(Need::Write);
    let patient_id = case.patient_id.clone();
    audit::record(conn, me, Event::new(Action::Read, Resource::DischargeCase, Some(&case.id), Some(&patient_id)))?;
    audit::record(conn, me, Event::new(Action::Read, Resource::DischargeTask, None, Some(&patient_id)).detail("list"))?;
    audit::record(
        conn,
        me,
        Event::new(Action::Read, Resource::DischargeConference, None, Some(&patient_id)).detail("list"),
    )?;
    let at = now();
    let rows = discharge::tasks::for_case(conn, &case.id)?;
    let tasks = discharge::tasks::views(conn, rows, at)?;
    let conferences = discharge::conferences::for_case(conn, &case.id)?;
    let view = discharge::cases::view(conn, case, at)?;
    // Who does a task: its assignee by name, or the role on the team.
    let names: std::collections::HashMap<String, String> =
        patients::team::list(conn, &patient_id, true)?.into_iter().map(|m| (m.user_id, m.user_name)).collect();
    let active = view.status.is_active();
    let tasks = tasks
        .into_iter()
        .map(|task| {
            let who = match (&task.assignee_id, task.team_role) {
                (Some(a), _) => names.get(a).cloned().unwrap_or_default(),
                (None, Some(role)) => role.label(lang).to_string(),
                (None, None) => String::new(),
            };
            let moves = if active && works_on_tasks {
                task.status
                    .next()
                    .into_iter()
                    .filter(|s| *s != TaskStatus::EnteredInError)
                    .map(|s| Choice { value: s.as_str(), label: s.label(lang), selected: false })
                    .collect()
            } else {
                Vec::new()
            };
            CaseTaskLine {
                due: task.due_at.map(|d| text::moment(lang, d)).unwrap_or_else(|| t.no_deadline.to_string()),
                overdue: task.overdue,
                unassigned: task.unassigned,
                who,
                status: task.status.label(lang),
                version: task.version,
                moves,
                title: task.title,
                id: task.id,
            }
        })
        .collect();
    let conferences = conferences
        .into_iter()
        .map(|c| ConferenceLine {
            held_at: text::moment(lang, c.held_at),
            place: c.place.unwrap_or_default(),
            attendees: c
                .attendees
                .iter()
                .map(|a| format!("{} ({})", a.name, a.profession.label(lang)))
                .collect::<Vec<_>>()
                .join(if lang == Lang::Ja { "、" } else { ", " }),
            content: c.content,
        })
        .collect();
    let day = |d: Option<chrono::NaiveDate>| d.map(|d| text::date(lang, d)).unwrap_or_else(|| "—".into());
    Ok(CasePage {
        frame: frame(lang, me, csrf),
        patient_name: view.patient_name,
        hospital: view.hospital_name,
        admitted_on: text::date(lang, view.admitted_on),
        planned_discharge_on: day(view.planned_discharge_on),
        discharged_on: day(view.discharged_on),
        department: [view.department, view.hospital_ward].into_iter().flatten().collect::<Vec<_>>().join(" / "),
        status: view.status.label(lang),
        has_home_physician: view.has_home_physician,
        open_tasks: view.open_tasks,
        overdue_tasks: view.overdue_tasks,
        version: view.version,
        can_discharge: manages && view.status.can_become(CaseStatus::Discharged),
        can_close: manages && view.status.can_become(CaseStatus::Closed),
        can_cancel: manages && view.status.can_become(CaseStatus::Cancelled),
        today: patients::today_jst().to_string(),
        tasks,
        conferences,
        patient_id,
        id: view.id,
    })
}

/// Moves a task to `status` at the version the form showed, as `PATCH /tasks/{id}` does;
/// answers the task's case.
pub fn move_task(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    task_id: &str,
    expected: i32,
    status: TaskStatus,
) -> AppResult<String> {
    let (task, case) = access::task(conn, me, task_id, Need::Write)?;
    workflow::check_version(Some(expected), task.version)?;
    workflow::require_active(&case)?;
    let change = TaskMove { status: Some(status), ..Default::default() };
    workflow::work_on_task(conn, me, mailer, task, expected, change)?;
    Ok(case.id)
}

/// A move of a case the console's forms make.
pub enum CaseMove {
    Discharge(chrono::NaiveDate),
    Close,
    Cancel(String),
}

/// Moves a case, as `POST /discharge-cases/{id}/discharge`, `/close` and `/cancel` do: only the
/// case's hospital staff on the team (`access::case_to_manage`), at the version the form showed.
pub fn move_case(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    case_id: &str,
    expected: i32,
    step: CaseMove,
) -> AppResult<String> {
    let case = access::case_to_manage(conn, me, case_id)?;
    if let CaseMove::Discharge(on) = &step {
        if *on > patients::today_jst() {
            return Err(crate::error::AppError::field(
                "discharged_on",
                "in_future",
                "退院日が未来になっています。",
                "discharged_on is in the future.",
            ));
        }
    }
    let expected = Some(expected);
    let step = match step {
        CaseMove::Discharge(on) => Step::Discharge { case, expected, on, mailer },
        CaseMove::Close => Step::Close { case, expected },
        CaseMove::Cancel(reason) => Step::Cancel { case, expected, reason },
    };
    Ok(workflow::transition(conn, me, step)?.id)
}

/// The case of a task the caller may read (an e-mail's link to a task).
pub fn case_of_task(conn: &mut DbConn, me: &CurrentUser, task_id: &str) -> AppResult<String> {
    let (task, _) = access::task(conn, me, task_id, Need::Read)?;
    Ok(task.case_id)
}

/// What the two-factor page says about the form just sent.
pub struct TotpOutcome {
    /// Two-factor sign-in was just switched on, or off.
    pub done: bool,
    pub turned_off: bool,
    /// What went wrong.
    pub message: Option<String>,
    /// Recovery codes just made, shown this once.
    pub recovery_codes: Vec<String>,
}

/// The two-factor page: on or off, or — while an enrolment waits for its first code — the
/// QR code of its `otpauth://` address and the key.
pub fn totp_page(
    conn: &mut DbConn,
    me: &CurrentUser,
    lang: Lang,
    csrf: String,
    outcome: TotpOutcome,
) -> AppResult<TotpPage> {
    let TotpOutcome { done, turned_off, message, recovery_codes } = outcome;
    let t = text::texts(lang);
    let user = crate::users::find(conn, &me.id)?.ok_or_else(crate::error::AppError::invalid_token)?;
    let pending = if user.totp_enabled { None } else { user.totp_secret.clone() };
    let (qr_svg, secret) = match pending {
        Some(secret) => {
            let url = crate::auth::totp::url(&secret, &user.email)
                .ok_or_else(|| crate::error::AppError::internal("totp url"))?;
            (Some(qr::svg(&url, t.totp_qr)?), secret)
        }
        None => (None, String::new()),
    };
    let recovery_remaining = crate::auth::recovery::state(conn, &user.id)?.remaining;
    Ok(TotpPage {
        frame: frame(lang, me, csrf),
        enabled: user.totp_enabled,
        done,
        message,
        qr_svg,
        secret,
        recovery_remaining,
        recovery_codes,
        may_turn_off: access::turn_off_two_factor(me).is_ok(),
        turned_off,
    })
}

/// A care-team invitation addressed to the reader (`patients::joining`): its role and how long
/// it is open, or that it can no longer be answered.
pub fn invitation_page(
    conn: &mut DbConn,
    me: &CurrentUser,
    lang: Lang,
    csrf: String,
    token: String,
) -> AppResult<super::pages::InvitationPage> {
    let invitation = patients::joining::addressed_to_me(conn, me, &token)?;
    let t = text::texts(lang);
    let open = invitation.status == InvitationStatus::Pending && invitation.expires_at > now();
    let about = if open {
        t.invitation_open
            .replace("{role}", invitation.role.label(lang))
            .replace("{until}", &text::moment(lang, invitation.expires_at))
    } else {
        let status =
            if invitation.status == InvitationStatus::Pending { InvitationStatus::Expired } else { invitation.status };
        t.invitation_closed.replace("{status}", status.label(lang))
    };
    Ok(super::pages::InvitationPage { frame: frame(lang, me, csrf), about, open, token })
}

/// A participant invitation as its page shows it before it is taken up: whether the address
/// has an account already (then: sign in and accept), and until when the link works.
pub struct ParticipantInvitationShown {
    pub role: &'static str,
    pub until: String,
    pub has_account: bool,
}

/// The invitation a link's token names (422 when it is not one, used or expired).
pub fn participant_invitation(conn: &mut DbConn, lang: Lang, token: &str) -> AppResult<ParticipantInvitationShown> {
    let found = access::participant_invitation(conn, token)?;
    Ok(ParticipantInvitationShown {
        role: found.role.label(lang),
        until: text::moment(lang, found.expires_at),
        has_account: crate::users::email_taken(conn, &found.email)?,
    })
}

/// Takes the invitation up as the signed-in account; answers the patient.
pub fn accept_participant_invitation(conn: &mut DbConn, me: &CurrentUser, token: &str) -> AppResult<String> {
    let found = access::participant_joining(conn, me, token)?;
    Ok(patients::participants::join(conn, me, &found)?.patient_id)
}

/// The family page: the channel, newest first, with its form, and for the patient and the key
/// person the joinings waiting for their approval. As `GET /patients/{id}/family-messages` and
/// `GET /patients/{id}/joining-requests`.
pub fn family_page(
    conn: &mut DbConn,
    me: &CurrentUser,
    lang: Lang,
    csrf: String,
    patient_id: &str,
) -> AppResult<super::pages::FamilyPage> {
    let (patient, relation) = access::family_channel(conn, me, patient_id)?;
    audit::record(conn, me, Event::new(Action::Read, Resource::FamilyMessage, None, Some(&patient.id)))?;
    let messages = crate::family::page(conn, &patient.id, None, api::MAX_LIMIT)?
        .into_iter()
        .take(api::MAX_LIMIT as usize)
        .map(|m| super::pages::FamilyMessageLine {
            own: m.author_id == me.id,
            withdrawn: m.error_reason.clone(),
            id: m.id.clone(),
            who: if m.author_profession == crate::vocab::Profession::Layperson {
                m.author_name
            } else {
                format!("{}（{}）", m.author_name, text::profession(lang, m.author_profession))
            },
            at: text::moment(lang, m.created_at),
            text: m.text,
            raised_flag: m.flag_id.is_some(),
        })
        .collect();
    let approves = relation.allows(Need::ApproveJoining);
    let requests = if approves {
        audit::record(conn, me, Event::new(Action::Read, Resource::JoiningApproval, None, Some(&patient.id)))?;
        patients::approval::requests(conn, &patient.id)?
            .into_iter()
            .filter(|r| r.status == InvitationStatus::AwaitingApproval)
            .map(|r| super::pages::JoiningLine {
                invitation_id: r.invitation_id,
                name: r.name.unwrap_or_default(),
                profession: r.profession.map(|p| text::profession(lang, p)).unwrap_or_default(),
                organization: r.organization_name.unwrap_or_default(),
                role: r.role.label(lang),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(super::pages::FamilyPage {
        frame: frame(lang, me, csrf),
        id: patient.id.clone(),
        name: format!("{} {}", patient.family_name, patient.given_name),
        messages,
        approves,
        requests,
        key: crate::auth::tokens::random_token(18),
    })
}

/// A message of the family page's form, with its key and fingerprint.
pub struct FamilySubmission {
    pub key: String,
    pub fingerprint: String,
    pub post: crate::family::Post,
}

/// Posts in the family channel, as `POST /patients/{id}/family-messages` (the page's key is its
/// `Idempotency-Key`); answers the patient.
pub fn post_family_message(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    limits: &EscalationLimits,
    patient_id: &str,
    message: FamilySubmission,
) -> AppResult<String> {
    let (patient, _) = access::family_channel(conn, me, patient_id)?;
    let answer = idempotency::once(conn, &me.id, Some(&message.key), &message.fingerprint, |conn| {
        let view = crate::family::post(conn, me, mailer, limits, &patient, message.post)?;
        Answer::json(StatusCode::CREATED, &serde_json::json!({ "id": view.id }))
    })?;
    answer.audit_replay(conn, me, Resource::FamilyMessage, &patient.id)?;
    Ok(patient.id)
}

/// Withdraws one's own message, as `POST /patients/{id}/family-messages/{id}/entered-in-error`;
/// answers the patient.
pub fn withdraw_family_message(
    conn: &mut DbConn,
    me: &CurrentUser,
    patient_id: &str,
    message_id: &str,
    reason: &str,
) -> AppResult<String> {
    let message = access::family_message_in_error(conn, me, patient_id, message_id)?;
    crate::family::mark_in_error(conn, me, &message, reason)?;
    Ok(message.patient_id)
}

/// Approves or refuses a joining, as `POST /patients/{id}/joining-requests/{id}/approve` and
/// `/refuse`; answers the patient.
pub fn decide_joining(
    conn: &mut DbConn,
    me: &CurrentUser,
    mailer: &Mailer,
    patient_id: &str,
    invitation_id: &str,
    approve: bool,
) -> AppResult<String> {
    let (patient, invitation) = access::joining_to_decide(conn, me, patient_id, invitation_id)?;
    if approve {
        let invitee = access::approved_joiner(conn, me, &patient, &invitation)?;
        patients::approval::approve(conn, me, mailer, &patient, &invitation, &invitee)?;
    } else {
        patients::approval::refuse(conn, me, mailer, &patient, &invitation)?;
    }
    Ok(patient.id)
}

/// The circles the reader takes part in (the patient, a family member, the key person), for
/// マイページ.
pub fn circles(conn: &mut DbConn, me: &CurrentUser, lang: Lang) -> AppResult<Vec<super::pages::CircleLink>> {
    let mut out = Vec::new();
    for (patient_id, role) in patients::participants::of_user(conn, &me.id)? {
        if let Some(p) = patients::find(conn, &patient_id)? {
            audit::record(
                conn,
                me,
                Event::new(Action::Read, Resource::Participant, None, Some(&p.id)).detail("my page"),
            )?;
            out.push(super::pages::CircleLink {
                patient_id: p.id,
                name: format!("{} {}", p.family_name, p.given_name),
                role: role.label(lang),
            });
        }
    }
    Ok(out)
}
