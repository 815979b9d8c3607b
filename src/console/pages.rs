//! The console's pages: askama templates compiled into the binary (HTML-escaped throughout) and
//! the lines they show. What a line says is decided in [`super::views`].

use askama::Template;

use super::chart::ChartView;
use super::text::Texts;
use crate::error::{AppError, AppResult};

/// What every page around its content shows: who is signed in, and the sign-out form.
pub struct Frame {
    pub t: &'static Texts,
    pub user_name: String,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignIn {
    pub t: &'static Texts,
    pub csrf: String,
    pub next: String,
    pub email: String,
    pub message: Option<&'static str>,
}

pub struct FlagLine {
    pub id: String,
    pub patient_id: String,
    pub patient_name: String,
    pub severity: &'static str,
    pub severity_key: &'static str,
    pub status: &'static str,
    pub active: bool,
    pub raised_at: String,
    pub reason: String,
    pub acknowledge_note: String,
}

pub struct TaskLine {
    pub title: String,
    pub case_id: String,
    pub patient_id: String,
    pub due: String,
    pub overdue: bool,
    pub status: &'static str,
}

pub struct UnreadLine {
    pub patient_id: String,
    pub patient_name: String,
    pub count: i64,
    pub newest: Vec<String>,
}

#[derive(Template)]
#[template(path = "my_page.html")]
pub struct MyPage {
    pub frame: Frame,
    pub flags: Vec<FlagLine>,
    pub tasks: Vec<TaskLine>,
    pub unread_total: i64,
    pub unread: Vec<UnreadLine>,
}

pub struct MemberLine {
    pub name: String,
    pub role: &'static str,
    pub organization: String,
    pub lead: bool,
}

pub struct TimelineLine {
    pub at: String,
    pub who: String,
    pub summary: String,
}

#[derive(Template)]
#[template(path = "patient.html")]
pub struct PatientPage {
    pub frame: Frame,
    pub id: String,
    pub name: String,
    pub kana: String,
    pub age: i32,
    pub birth_date: String,
    pub care_level: &'static str,
    pub status: &'static str,
    pub consent: &'static str,
    pub consent_missing: bool,
    pub team: Vec<MemberLine>,
    pub flags: Vec<FlagLine>,
    pub charts: Vec<ChartView>,
    pub timeline: Vec<TimelineLine>,
    pub older: Option<String>,
    pub paged: bool,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct Message {
    pub t: &'static Texts,
    pub title: &'static str,
    pub body: &'static str,
}

pub fn render(page: &impl Template) -> AppResult<String> {
    page.render().map_err(|e| AppError::internal(format!("console page: {e}")))
}
