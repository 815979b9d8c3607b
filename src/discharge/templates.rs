//! Discharge task templates: the tasks a discharge-coordination case is made of, the profession
//! each is assigned to, and the deadline rule it follows.
//!
//! They are rows of `discharge_task_templates`, seeded by the migration
//! `2026-11-25-000030_discharge_templates` from the discharge-coordination table of
//! shared/DOMAIN.md (2024 fee revision: 入院時情報連携加算, 入退院支援加算, 退院時共同指導料,
//! 退院・退所加算, 訪問看護指示料, 特別訪問看護指示加算, and common practice). They are data, not
//! code: a city adjusts a deadline, adds a task or retires one (`active = FALSE`) without a release.

use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::discharge_task_templates;
use crate::db::DbConn;
use crate::discharge::deadlines::TemplateRule;
use crate::error::AppResult;
use crate::vocab::Profession;

crate::text_enum! {
    /// The date a task's clock starts from. The admission is always known; the planned discharge
    /// date is set some time into the stay, and the discharge date once the patient has left.
    Anchor {
        Admission => "admission",
        PlannedDischarge => "planned_discharge",
        Discharge => "discharge",
    }
}

crate::text_enum! {
    /// How a template's due day (the anchor day plus `offset_days`) becomes a deadline:
    /// `end_of_day` — by the end of that day; `before_anchor` — before that day begins, that is
    /// by the end of the day before it ("before discharge": the patient leaves during the day).
    DueRule {
        EndOfDay => "end_of_day",
        BeforeAnchor => "before_anchor",
    }
}

/// One row of `discharge_task_templates`. The vocabulary columns stay text, as stored; read them
/// typed with [`Template::rule`] and [`Template::profession`].
#[derive(Queryable, Selectable, Serialize, Debug, Clone)]
#[diesel(table_name = discharge_task_templates)]
pub struct Template {
    pub key: String,
    /// Japanese title, as people in Japanese practice name the task.
    pub title: String,
    pub title_en: String,
    pub profession: String,
    pub anchor: String,
    pub offset_days: i32,
    pub due_rule: String,
    pub business_hours_rule: bool,
    /// The fee (加算, 指導料) or practice the deadline comes from.
    pub source: String,
    pub note: Option<String>,
    pub sort_order: i32,
    pub active: bool,
}

impl Template {
    /// The deadline rule, for [`crate::discharge::deadlines::due_at`]. A value the code does not
    /// know (a row edited by hand) is a data error, reported rather than guessed at.
    pub fn rule(&self) -> AppResult<TemplateRule> {
        Ok(TemplateRule {
            anchor: Anchor::from_db(&self.anchor)?,
            offset_days: self.offset_days,
            due_rule: DueRule::from_db(&self.due_rule)?,
            business_hours_rule: self.business_hours_rule,
        })
    }

    /// The profession a task from this template is assigned to.
    pub fn profession(&self) -> AppResult<Profession> {
        Profession::from_db(&self.profession)
    }
}

/// One template by key, retired or not (a task keeps the template it was made from).
pub fn find(conn: &mut DbConn, key: &str) -> AppResult<Option<Template>> {
    Ok(discharge_task_templates::table
        .filter(discharge_task_templates::key.eq(key))
        .select(Template::as_select())
        .first(conn)
        .optional()?)
}

/// The templates a new case is built from, in the order a person reads them.
pub fn active_templates(conn: &mut DbConn) -> AppResult<Vec<Template>> {
    Ok(discharge_task_templates::table
        .filter(discharge_task_templates::active.eq(true))
        // The key breaks ties, so that two rows a city gave the same sort_order keep one order.
        .order((discharge_task_templates::sort_order.asc(), discharge_task_templates::key.asc()))
        .select(Template::as_select())
        .load(conn)?)
}

/// Every template, retired variants included, in the same order (for `GET /discharge-task-templates`).
pub fn all_templates(conn: &mut DbConn) -> AppResult<Vec<Template>> {
    Ok(discharge_task_templates::table
        .order((discharge_task_templates::sort_order.asc(), discharge_task_templates::key.asc()))
        .select(Template::as_select())
        .load(conn)?)
}
